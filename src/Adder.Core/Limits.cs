using System.Globalization;
using System.Text;

namespace Adder.Core;

/// <summary>The bounds adder enforces so that no input can make it use unbounded memory or echo an unbounded
/// string. README's "Limits" section states the same numbers.</summary>
public static class Limits
{
    /// <summary>--threads: each thread holds its own activations, so a huge count is a huge allocation.</summary>
    public const int MaxThreads = 256;
    /// <summary>Seeds in one sweep (--seeds), counted before the list is expanded.</summary>
    public const int MaxSweepSeeds = 10_000;
    /// <summary>A checkpoint file (.pt or .safetensors), and the data a .pt's zip entries may inflate to.</summary>
    public const long MaxCheckpointBytes = 1L << 30;
    /// <summary>A .pt's data.pkl (the pickle describing the tensors).</summary>
    public const long MaxPickleBytes = 16L << 20;
    /// <summary>Values a .pt's data.pkl may push (objects created, memo fetches, marks: this bounds the stack's depth and
    /// every container's size too), and entries it may put in its memo: 16 MiB of opcodes could otherwise build
    /// gigabytes of empty dicts. The published checkpoint pushes fewer than a thousand.</summary>
    public const int MaxPickleValues = 1 << 18;
    /// <summary>Bytes of an integer in a .pt's data.pkl (as many decimal digits for a text one): converting a longer
    /// one takes time quadratic in its length.</summary>
    public const int MaxPickleIntegerBytes = 16;
    /// <summary>Entries of a safetensors header (tensors and metadata keys), and the JSON tokens it may hold in all:
    /// a parsed header is some 30 times its text.</summary>
    public const int MaxSafetensorsEntries = 4096;
    public const int MaxSafetensorsTokens = 64 * MaxSafetensorsEntries;
    /// <summary>config.json, metrics.csv and golden files.</summary>
    public const long MaxTextFileBytes = 64L << 20;
    /// <summary>A line of a pairs file (predict --file); longer is an error, found without reading the rest.</summary>
    public const int MaxLineLength = 4096;
    /// <summary>The CPU backend's buffers (activations per thread, per-partition gradients, weights, AdamW).</summary>
    public const long MaxBackendBytes = 4L << 30;
    /// <summary>Sequences in a training batch: the batch's operands are held in full (16 bytes each).</summary>
    public const int MaxBatch = 1 << 20;
    /// <summary>Pairs of eval --suite random: the pairs and their decoded digits are held in full (about 60 bytes each).</summary>
    public const int MaxEvalCount = 10_000_000;
    /// <summary>Failures a targeted fine-tune keeps for mixing in (the newest); a mining pass keeps at most as many,
    /// split evenly over its generators, and counts the rest: a weak model fails nearly every mined sum.</summary>
    public const int MaxFailurePool = 1 << 18;
    /// <summary>Characters of an operand or a line echoed in an error message.</summary>
    public const int EchoLength = 20;

    /// <summary>Text from the user as an error message shows it: at most EchoLength characters, then "…", its
    /// control characters escaped (EscapeControls).</summary>
    public static string Echo(string text)
    {
        if (text.Length <= EchoLength) return EscapeControls(text);
        // a character outside the BMP is two chars: cut before it rather than through it
        int keep = char.IsHighSurrogate(text[EchoLength - 1]) ? EchoLength - 1 : EchoLength;
        return EscapeControls(text[..keep]) + "…";
    }

    /// <summary>Control characters (ESC, CR, NUL, …) written as \xNN: text quoted in an error cannot move the
    /// terminal's cursor, change its colours or hide the rest of the line.</summary>
    public static string EscapeControls(string text)
    {
        if (!text.Any(char.IsControl)) return text;
        var escaped = new StringBuilder(text.Length + 8);
        foreach (char c in text)
            if (char.IsControl(c)) escaped.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}");
            else escaped.Append(c);
        return escaped.ToString();
    }

    public static void CheckThreads(int threads)
    {
        if (threads > MaxThreads) throw new AdderException($"--threads {threads} is more than the limit of {MaxThreads}");
    }

    /// <summary>Bytes the CPU backend allocates for a config, a model count and a thread count: one Activations
    /// per thread (at least 8), 8 gradient partitions holding a vector per parameter, the shared gradient, and
    /// each model's weights and AdamW moments. Counts the buffers of Activations and Transformer.Gradients; an
    /// estimate, not a measurement.</summary>
    public static long BackendBytes(ModelConfig c, int models, int threads)
    {
        const long vector = 64;   // one Vector512<float>: 16 lanes
        long T = c.MaxSeqLen, D = c.DModel, F = c.DFf, L = c.NLayer, H = c.NHead;
        long qkvMid = c.TieQkv == TieModes.ShareATieKV ? c.QkvRank : 3L * c.QkvRank;
        long perLayerPosition = 12 * D + 2 + qkvMid + c.AttnOutRank + 2L * c.FfnRank + 2 * F + H * T;
        long activations = vector * (L * T * perLayerPosition + 3 * T * D + T + T * c.VocabSize + T + 1);
        long parameters = new ParameterLayout(c).Count;
        long gradients = vector * (parameters + 2 * L * T * D + T * D) + 4L * c.VocabSize * D;
        int slots = Math.Max(threads > 0 ? threads : Environment.ProcessorCount, 8);
        return slots * activations + 8 * gradients + 4 * parameters * (2 + 3L * models);
    }

    /// <summary>Refuses a config whose backend would need more than MaxBackendBytes: the CPU backend asks it
    /// before it allocates anything.</summary>
    public static void CheckBackendMemory(ModelConfig c, int models, int threads)
    {
        long bytes = BackendBytes(c, models, threads);
        if (bytes > MaxBackendBytes) throw TooLarge(c, bytes, threads);
    }

    static AdderException TooLarge(ModelConfig c, long bytes, int threads) =>
        new($"model too large: n_layer={c.NLayer} d_model={c.DModel} d_ff={c.DFf} needs about {Gib(bytes)} GiB for a training " +
            $"step or decode on {Math.Max(threads > 0 ? threads : Environment.ProcessorCount, 8)} slots, more than the limit of {Gib(MaxBackendBytes)} GiB");

    /// <summary>Refuses, before any folder is made, a run of `models` models of `c` whose estimated memory is more
    /// than MaxBackendBytes: the CPU backend's buffers (when it is the CPU backend; a model too large alone is
    /// named as such), the token buffers, the holdouts and `other` bytes.</summary>
    public static void CheckRunMemory(ModelConfig c, bool onCpu, int models, int threads, int batch, long holdoutPerModel, long other)
    {
        long backend = onCpu ? BackendBytes(c, models, threads) : 0;
        if (backend > MaxBackendBytes) throw TooLarge(c, backend, threads);
        CheckTokenBuffers(models, batch);
        CheckRunMemory(backend, models, batch, holdoutPerModel, other);
    }

    /// <summary>The training loop's token buffers for `models` models of `batch` sequences: two (a step trains on
    /// one while the next step's batches are drawn into the other), int32 tokens.</summary>
    public static long TokenBufferBytes(int models, int batch) => 2L * models * batch * Tokens.FullLength * sizeof(int);

    /// <summary>Refuses a cohort whose token buffers would need more than MaxBackendBytes.</summary>
    public static void CheckTokenBuffers(int models, int batch)
    {
        long bytes = TokenBufferBytes(models, batch);
        if (bytes > MaxBackendBytes)
            throw new AdderException(
                $"--batch {batch} with {models} model(s) side by side needs about {Gib(bytes)} GiB of token buffers, more than the " +
                $"limit of {Gib(MaxBackendBytes)} GiB; use a smaller --batch or --models-per-launch");
    }

    /// <summary>Bytes a run holds per model outside the backend: its holdout (the pairs, the set its sampler asks and
    /// that set's filter), the validation operands and their encoded prompts, and its stream's pair arrays. About
    /// 1.3 MB for SPEC's 5,000 + 10,000 pairs (1.27 MB measured); an estimate.</summary>
    public static long HoldoutBytes(int validation, int test, int promptLength, int batch) =>
        PairSetBytes(validation + test) + (1 << 17) / 8 + 16L * validation + 4L * validation * promptLength + 16L * batch;

    /// <summary>Pairs held in an array and a hash set of them: 16 bytes in the array, about 36 in the set.</summary>
    public static long PairSetBytes(long pairs) => 52 * pairs;

    /// <summary>A targeted fine-tune's failures at most, besides the pairs it never mines: the pool (a queue of
    /// boxed pairs, the set that keeps it distinct, the copy a round mixes from) and the kept failures of three
    /// mining passes (a round's start, its best and its last checkpoint).</summary>
    public static long FailurePoolBytes(long heldOutPairs) => MaxFailurePool * (40L + 40 + 8 + 3 * 40) + PairSetBytes(heldOutPairs);

    /// <summary>Refuses a run whose estimated memory is more than MaxBackendBytes: `backend` bytes (the CPU backend's;
    /// 0 on a GPU), the token buffers of `models` models, their holdouts, and `other` bytes (a targeted run's failures).</summary>
    public static void CheckRunMemory(long backend, int models, int batch, long holdoutPerModel, long other)
    {
        long holdouts = models * holdoutPerModel;
        long bytes = backend + TokenBufferBytes(models, batch) + holdouts + other;
        if (bytes > MaxBackendBytes)
            throw new AdderException(
                $"{models} model(s) side by side need about {Gib(bytes)} GiB ({Gib(holdouts)} GiB of it their held-out pairs" +
                (other > 0 ? $", {Gib(other)} GiB mined failures" : "") + $"), more than the limit of {Gib(MaxBackendBytes)} GiB; " +
                "train fewer models side by side (--models-per-launch) or use a smaller --batch");
    }

    static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("0.#", CultureInfo.InvariantCulture);
}
