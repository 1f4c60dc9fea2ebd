namespace Adder.Core;

/// <summary>The shipped architectures (architectures/*.json, embedded): the seed's 311p described as roles,
/// and the AdderBoard frontier's "Qwen3 + arc" 62p, 44p, 36p and MicroAdder 67p, 57p
/// (../shared/reference/FRONTIER.md).</summary>
public static class ArchitecturePresets
{
    public static readonly string[] Names = ["311p", "62p", "44p", "36p", "67p", "57p"];

    public static bool IsPreset(string name) => Names.Contains(name.ToLowerInvariant());

    public static Architecture Load(string name)
    {
        var key = name.ToLowerInvariant();
        if (!Names.Contains(key)) throw new AdderException($"unknown architecture preset '{Limits.Echo(name)}' (known: {string.Join(", ", Names)})");
        using var stream = typeof(ArchitecturePresets).Assembly.GetManifestResourceStream($"architectures/{key}.json")
            ?? throw new InvalidOperationException($"architecture preset {key} is not embedded");
        using var reader = new StreamReader(stream);
        return Architecture.FromJson(reader.ReadToEnd(), $"preset {key}");
    }

    /// <summary>An architecture file (`--arch FILE`): the presets' schema.</summary>
    public static Architecture FromFile(string path) =>
        Architecture.FromJson(SafeFiles.ReadAllText(path, "architecture file"), path);
}
