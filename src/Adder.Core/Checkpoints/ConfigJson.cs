using System.Text.Json;
using System.Text.Json.Nodes;

namespace Adder.Core;

/// <summary>The model config under the reference's option names (SPEC section 9's model_config).</summary>
public static class ConfigJson
{
    /// <summary>The key under which a general model's whole architecture is saved.</summary>
    public const string ArchitectureKey = "architecture";

    /// <summary>The seed family's keys, each written and read here (dropout is the reference's, always 0).</summary>
    public static readonly string[] SeedKeys =
        ["n_layer", "d_model", "n_head", "d_ff", "dropout", "max_seq_len", "vocab_size", "pos_rank", "qkv_rank", "attn_out_rank", "ffn_rank", "use_rmsnorm", "tie_qkv"];

    public static string Write(ModelConfig c) => c.General is { } g
        ? "{\"" + ArchitectureKey + "\":" + g.ToJson() + "}"
        : new JsonObject
    {
        ["n_layer"] = c.NLayer, ["d_model"] = c.DModel, ["n_head"] = c.NHead, ["d_ff"] = c.DFf,
        ["dropout"] = 0.0, ["max_seq_len"] = c.MaxSeqLen, ["vocab_size"] = c.VocabSize,
        ["pos_rank"] = c.PosRank, ["qkv_rank"] = c.QkvRank, ["attn_out_rank"] = c.AttnOutRank, ["ffn_rank"] = c.FfnRank,
        ["use_rmsnorm"] = c.UseRmsNorm, ["tie_qkv"] = c.TieQkv,
    }.ToJsonString();

    public static ModelConfig Read(string json, string source)
    {
        JsonObject o;
        try { o = JsonNode.Parse(json) as JsonObject ?? throw new AdderException($"{source}: model_config is not a JSON object"); }
        catch (JsonException e) { throw new AdderException($"{source}: model_config is not valid JSON ({e.Message})"); }
        if (o[ArchitectureKey] is JsonObject arch) return OfArchitecture(arch.ToJsonString(), o.Select(kv => kv.Key), source);
        var values = new Dictionary<string, object?>();
        foreach (var (key, node) in o)
            values[key] = node?.GetValueKind() switch
            {
                // an integer stays exact (2^40 is reported as 2^40, not clipped); other numbers are doubles
                JsonValueKind.Number => node.AsValue().TryGetValue<long>(out var l) ? (object)l : node.GetValue<double>(),
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.String => node.GetValue<string>(),
                _ => null,
            };
        return FromDictionary(values, source);
    }

    /// <summary>Maps option names to a config; a missing option takes the 311p value, a wrong type is an error.</summary>
    /// <summary>A general model's config: its architecture, the model_config's only key (a safetensors header holds
    /// it as an object, a .pt as a JSON string).</summary>
    static ModelConfig OfArchitecture(string json, IEnumerable<string> keys, string source)
    {
        var other = keys.FirstOrDefault(k => k != ArchitectureKey);
        if (other is not null) throw new AdderException($"{source}: model_config has an architecture and other keys ('{Limits.Echo(other)}')");
        return ModelConfig.Of(Architecture.FromJson(json, source));
    }

    public static ModelConfig FromDictionary(IReadOnlyDictionary<string, object?> values, string source)
    {
        // an architecture's .pt: its description as one JSON string
        if (values.TryGetValue(ArchitectureKey, out var described))
            return described is string json
                ? OfArchitecture(json, values.Keys, source)
                : throw new AdderException($"{source}: model_config's architecture is not a JSON string");
        // a key this version does not know would be silently dropped, and the model computed as something else
        foreach (var key in values.Keys)
            if (!SeedKeys.Contains(key))
                throw new AdderException($"{source}: unknown model_config key '{Limits.Echo(key)}' (known: {string.Join(", ", SeedKeys)}, or {ArchitectureKey} alone)");
        var d = ModelConfig.Preset311;
        int Int(string key, int fallback)
        {
            if (!values.TryGetValue(key, out var v) || v is null) return fallback;
            return v switch
            {
                int i => i,
                long l when l >= int.MinValue && l <= int.MaxValue => (int)l,
                long l => throw new AdderException($"{source}: unsupported model config: {key} {l} (out of range)"),
                double x when x == Math.Floor(x) && x >= int.MinValue && x <= int.MaxValue => (int)x,
                double x when x == Math.Floor(x) => throw new AdderException($"{source}: unsupported model config: {key} {x.ToString("R", System.Globalization.CultureInfo.InvariantCulture)} (out of range)"),
                _ => throw new AdderException($"{source}: model_config '{key}' is not an integer ({Limits.Echo(v.ToString()!)})"),
            };
        }
        bool Bool(string key, bool fallback) =>
            !values.TryGetValue(key, out var v) || v is null ? fallback
            : v is bool b ? b : throw new AdderException($"{source}: model_config '{key}' is not a boolean ({Limits.Echo(v.ToString()!)})");
        string Str(string key, string fallback) =>
            !values.TryGetValue(key, out var v) || v is null ? fallback
            : v as string ?? throw new AdderException($"{source}: model_config '{key}' is not a string ({Limits.Echo(v.ToString()!)})");
        var config = new ModelConfig(
            NLayer: Int("n_layer", d.NLayer), DModel: Int("d_model", d.DModel), NHead: Int("n_head", d.NHead),
            DFf: Int("d_ff", d.DFf), MaxSeqLen: Int("max_seq_len", d.MaxSeqLen), VocabSize: Int("vocab_size", d.VocabSize),
            PosRank: Int("pos_rank", d.PosRank), QkvRank: Int("qkv_rank", d.QkvRank), AttnOutRank: Int("attn_out_rank", d.AttnOutRank),
            FfnRank: Int("ffn_rank", d.FfnRank), UseRmsNorm: Bool("use_rmsnorm", d.UseRmsNorm), TieQkv: Str("tie_qkv", d.TieQkv));
        try { return config.Validate(); }
        catch (AdderException e) { throw new AdderException($"{source}: {e.Message}"); }
    }
}
