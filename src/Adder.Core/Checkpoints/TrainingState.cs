using System.Globalization;

namespace Adder.Core;

/// <summary>What a run's last.safetensors holds beyond the weights and AdamW (whose tensors
/// <see cref="Checkpoint"/> names): the metadata keys a resumed run continues from. One list, so
/// <c>convert --weights-only</c> drops exactly these.</summary>
public sealed record TrainingState(int Step, double BestValExact, int BestStep, uint[] SamplerState)
{
    public const string StepKey = "step", BestValExactKey = "best_val_exact", BestStepKey = "best_step", SamplerStateKey = "sampler_state";
    public static readonly string[] Keys = [StepKey, BestValExactKey, BestStepKey, SamplerStateKey];

    public void WriteTo(IDictionary<string, string> metadata)
    {
        metadata[StepKey] = Step.ToString(CultureInfo.InvariantCulture);
        metadata[BestValExactKey] = BestValExact.ToString("R", CultureInfo.InvariantCulture);
        metadata[BestStepKey] = BestStep.ToString(CultureInfo.InvariantCulture);
        var bytes = new byte[SamplerState.Length * 4];
        for (int i = 0; i < SamplerState.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(4 * i, 4), SamplerState[i]);
        metadata[SamplerStateKey] = Convert.ToBase64String(bytes);
    }

    public static TrainingState ReadFrom(IReadOnlyDictionary<string, string> metadata, string path)
    {
        string Get(string key) => metadata.TryGetValue(key, out var v) ? v : throw new AdderException($"--resume: {path} lacks '{key}'");
        try
        {
            var bytes = Convert.FromBase64String(Get(SamplerStateKey));
            var words = new uint[bytes.Length / 4];
            for (int i = 0; i < words.Length; i++) words[i] = BitConverter.ToUInt32(bytes, 4 * i);
            return new TrainingState(int.Parse(Get(StepKey), CultureInfo.InvariantCulture),
                double.Parse(Get(BestValExactKey), CultureInfo.InvariantCulture),
                int.Parse(Get(BestStepKey), CultureInfo.InvariantCulture), words);
        }
        catch (FormatException e) { throw new AdderException($"--resume: {path} has a bad training state ({e.Message})"); }
    }

    /// <summary>The metadata without the training state (for a checkpoint that publishes weights only).</summary>
    public static Dictionary<string, string> Without(IReadOnlyDictionary<string, string> metadata) =>
        metadata.Where(kv => kv.Key == StepKey || !Keys.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
}
