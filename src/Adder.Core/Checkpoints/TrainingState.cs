using System.Globalization;

namespace Adder.Core;

/// <summary>What a run's last.safetensors holds beyond the weights and AdamW (whose tensors
/// <see cref="Checkpoint"/> names): the metadata keys a resumed run continues from. One list, so
/// <c>convert --weights-only</c> drops exactly these. LossSum and LossCount are the metrics row in progress
/// and ElapsedSeconds the run's time so far, so a resumed run logs what a straight run logs.</summary>
public sealed record TrainingState(int Step, double BestValExact, int BestStep, uint[] SamplerState,
    double LossSum, int LossCount, double ElapsedSeconds)
{
    public const string StepKey = "step", BestValExactKey = "best_val_exact", BestStepKey = "best_step", SamplerStateKey = "sampler_state",
        LossSumKey = "loss_sum", LossCountKey = "loss_count", ElapsedKey = "elapsed_s";
    public static readonly string[] Keys = [StepKey, BestValExactKey, BestStepKey, SamplerStateKey, LossSumKey, LossCountKey, ElapsedKey];

    public void WriteTo(IDictionary<string, string> metadata)
    {
        metadata[StepKey] = Step.ToString(CultureInfo.InvariantCulture);
        metadata[BestValExactKey] = BestValExact.ToString("R", CultureInfo.InvariantCulture);
        metadata[BestStepKey] = BestStep.ToString(CultureInfo.InvariantCulture);
        var bytes = new byte[SamplerState.Length * 4];
        for (int i = 0; i < SamplerState.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(4 * i, 4), SamplerState[i]);
        metadata[SamplerStateKey] = Convert.ToBase64String(bytes);
        metadata[LossSumKey] = LossSum.ToString("R", CultureInfo.InvariantCulture);
        metadata[LossCountKey] = LossCount.ToString(CultureInfo.InvariantCulture);
        metadata[ElapsedKey] = ElapsedSeconds.ToString("R", CultureInfo.InvariantCulture);
    }

    /// <summary>Reads the state of a run of <paramref name="steps"/> steps, checking every value: the step must
    /// lie in [0, steps], numbers must be finite, the sampler state whole words. The keys loss_sum, loss_count and
    /// elapsed_s, absent from checkpoints of older versions, default to an empty window and 0 s.</summary>
    public static TrainingState ReadFrom(IReadOnlyDictionary<string, string> metadata, string path, int steps)
    {
        string Get(string key) => metadata.TryGetValue(key, out var v) ? v : throw new AdderException($"--resume: {path} lacks '{key}'");
        AdderException Bad(string key) => new($"--resume: {path} has a bad '{key}' ({Limits.Echo(Get(key))})");
        int Integer(string key, int lo, int hi) =>
            int.TryParse(Get(key), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) && v >= lo && v <= hi ? v : throw Bad(key);
        double Real(string key) =>
            double.TryParse(Get(key), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v : throw Bad(key);

        int step = Integer(StepKey, 0, steps);
        double bestVal = Real(BestValExactKey);
        int bestStep = Integer(BestStepKey, -1, step);
        double lossSum = metadata.ContainsKey(LossSumKey) ? Real(LossSumKey) : 0.0;
        int lossCount = metadata.ContainsKey(LossCountKey) ? Integer(LossCountKey, 0, step) : 0;
        double elapsed = metadata.ContainsKey(ElapsedKey) ? Real(ElapsedKey) : 0.0;
        byte[] bytes;
        try { bytes = Convert.FromBase64String(Get(SamplerStateKey)); }
        catch (FormatException) { throw Bad(SamplerStateKey); }
        if (bytes.Length == 0 || bytes.Length % 4 != 0) throw Bad(SamplerStateKey);
        var words = new uint[bytes.Length / 4];
        for (int i = 0; i < words.Length; i++) words[i] = BitConverter.ToUInt32(bytes, 4 * i);
        return new TrainingState(step, bestVal, bestStep, words, lossSum, lossCount, elapsed);
    }

    /// <summary>The metadata without the training state (for a checkpoint that publishes weights only).</summary>
    public static Dictionary<string, string> Without(IReadOnlyDictionary<string, string> metadata) =>
        metadata.Where(kv => kv.Key == StepKey || !Keys.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
}
