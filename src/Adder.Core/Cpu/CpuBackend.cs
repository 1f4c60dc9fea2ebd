namespace Adder.Core.Cpu;

/// <summary>The CPU backend: splits a batch into chunks of 16 sequences (one per lane), runs the chunks on
/// all cores, and reduces the per-thread gradients. Holds its buffers so a training step allocates nothing
/// beyond the thread pool's own bookkeeping.</summary>
public sealed class CpuBackend
{
    const int W = LaneMath.Width;
    public ModelConfig Config { get; }
    public ParameterLayout Layout { get; }
    public int Threads { get; }

    readonly Activations[] activations;
    readonly Transformer.Gradients[] gradients;
    readonly float[] posTable;
    readonly float[] dPos;
    long[] batchA = [], batchB = [];
    float[] parameters = [];
    int batchCount, nextChunk;
    readonly Action<int, int> gradientChunk, decodeChunk;

    /// <summary>Gradients are summed in this many fixed partitions of the batch's chunks (chunk c goes to
    /// partition c mod 8), whatever the thread count, so a step's result is bit-for-bit the same on any
    /// machine and a resumed run continues exactly.</summary>
    public const int GradientPartitions = 8;

    public CpuBackend(ModelConfig config, int threads = 0)
    {
        Limits.CheckThreads(threads);
        Limits.CheckBackendMemory(config, threads);   // before any buffer is allocated
        Config = config;
        Layout = new ParameterLayout(config);
        Threads = threads > 0 ? threads : Environment.ProcessorCount;
        activations = new Activations[Math.Max(Threads, GradientPartitions)];
        for (int i = 0; i < activations.Length; i++) activations[i] = new Activations(config);
        gradients = new Transformer.Gradients[GradientPartitions];
        for (int i = 0; i < GradientPartitions; i++) gradients[i] = new Transformer.Gradients(Layout, activations[i]);
        posTable = new float[config.MaxSeqLen * config.DModel];
        gradientChunk = GradientChunk;
        decodeChunk = DecodeChunk;
        dPos = new float[config.MaxSeqLen * config.DModel];
    }

    void CheckParameters(float[] p)
    {
        if (p.Length != Layout.Count) throw new ArgumentException($"expected {Layout.Count} parameters, got {p.Length}");
    }

    /// <summary>Writes the full sequences of chunk c into a.Tokens (padding lanes repeat 0 + 0); returns active lanes.</summary>
    int LoadChunk(Activations a, int chunk, bool promptOnly)
    {
        Span<int> full = stackalloc int[Tokens.FullLength];
        int first = chunk * W, active = Math.Min(W, batchCount - first);
        for (int lane = 0; lane < W; lane++)
        {
            if (lane < active) Tokens.EncodeFull(batchA[first + lane], batchB[first + lane], full);
            else Tokens.EncodeFull(0, 0, full);
            int length = promptOnly ? Tokens.PromptLength : Tokens.FullLength;
            for (int t = 0; t < length; t++) a.Tokens[t * W + lane] = full[t];
        }
        return active;
    }

    /// <summary>Runs work(slot, chunk) for every chunk on up to Threads threads. Decoding hands chunks out
    /// dynamically (slot = worker); training uses the fixed partitions (slot = partition, chunks
    /// slot, slot + 8, ...), so each gradient sum always sees the same chunks in the same order.</summary>
    void RunChunks(int chunks, Action<int, int> work, bool staticPartition)
    {
        nextChunk = 0;
        int slots = staticPartition ? Math.Min(GradientPartitions, chunks) : Math.Min(Threads, chunks);
        if (slots <= 1 || Threads == 1)
        {
            if (staticPartition) { for (int c = 0; c < chunks; c++) work(c % GradientPartitions, c); }
            else { for (int c = 0; c < chunks; c++) work(0, c); }
            return;
        }
        Parallel.For(0, slots, new ParallelOptions { MaxDegreeOfParallelism = Threads }, slot =>
        {
            if (staticPartition)
            {
                for (int c = slot; c < chunks; c += GradientPartitions) work(slot, c);
                return;
            }
            int next;
            while ((next = Interlocked.Increment(ref nextChunk) - 1) < chunks) work(slot, next);
        });
    }

    static int ChunkCount(int n) => (n + W - 1) / W;

    /// <summary>Mean cross-entropy over the scored positions of the batch; its gradient overwrites grad.</summary>
    public float LossAndGradient(float[] p, long[] a, long[] b, int count, float[] grad)
    {
        CheckParameters(p);
        if (count <= 0 || count > a.Length || count > b.Length) throw new ArgumentException("bad batch size");
        parameters = p; batchA = a; batchB = b; batchCount = count;
        Transformer.PositionTable(p, Layout, posTable);
        foreach (var g in gradients) g.Clear();
        chunkScale = 1f / (count * Tokens.ScoredPositions);
        RunChunks(ChunkCount(count), gradientChunk, staticPartition: true);
        return ReduceGradients(grad);
    }

    float chunkScale;

    void GradientChunk(int worker, int chunk)
    {
        var a = activations[worker];
        int active = LoadChunk(a, chunk, promptOnly: false);
        for (int t = 0; t < Tokens.InputLength; t++) Transformer.ForwardPosition(parameters, Layout, posTable, a, t);
        Span<float> w = stackalloc float[W];
        for (int lane = 0; lane < W; lane++) w[lane] = lane < active ? chunkScale : 0f;
        Transformer.Backward(parameters, Layout, a, gradients[worker], V.Create<float>(w));
    }

    /// <summary>Teacher-forced logits of every input position, [count][33][vocab].</summary>
    public float[] Logits(float[] p, long[] a, long[] b, int count)
    {
        CheckParameters(p);
        parameters = p; batchA = a; batchB = b; batchCount = count;
        Transformer.PositionTable(p, Layout, posTable);
        int vocab = Config.VocabSize, T = Tokens.InputLength;
        var result = new float[count * T * vocab];
        RunChunks(ChunkCount(count), staticPartition: false, work: (worker, chunk) =>
        {
            var act = activations[worker];
            int active = LoadChunk(act, chunk, promptOnly: false);
            Span<VF> logits = stackalloc VF[vocab];
            for (int t = 0; t < T; t++)
            {
                Transformer.ForwardPosition(p, Layout, posTable, act, t);
                Layers.HeadForward(p, Layout.TokenEmbedding, vocab, act.Z.AsSpan(t * act.D, act.D), logits);
                for (int lane = 0; lane < active; lane++)
                    for (int v = 0; v < vocab; v++)
                        result[(((chunk * W + lane) * T) + t) * vocab + v] = logits[v][lane];
            }
        });
        return result;
    }

    int[] decoded = [];

    /// <summary>Greedy decoding with a KV cache (SPEC section 3): feeds each prompt, then its own argmax
    /// tokens; writes the 11 generated tokens of each example (reversed sum digits when right) into output.</summary>
    public void Decode(float[] p, long[] a, long[] b, int count, int[] output)
    {
        CheckParameters(p);
        if (output.Length < count * Tokens.SumDigits) throw new ArgumentException("output too small");
        parameters = p; batchA = a; batchB = b; batchCount = count; decoded = output;
        Transformer.PositionTable(p, Layout, posTable);
        RunChunks(ChunkCount(count), decodeChunk, staticPartition: false);
    }

    void DecodeChunk(int worker, int chunk)
    {
        var a = activations[worker];
        int active = LoadChunk(a, chunk, promptOnly: true);
        int vocab = Config.VocabSize, D = a.D;
        Span<VF> logits = stackalloc VF[vocab];
        Span<int> best = stackalloc int[W];
        int last = Tokens.FirstScoredPosition + Tokens.SumDigits;    // position 31 yields the 11th digit
        for (int t = 0; t < last; t++)
        {
            Transformer.ForwardPosition(parameters, Layout, posTable, a, t);
            if (t < Tokens.FirstScoredPosition) continue;
            Layers.HeadForward(parameters, Layout.TokenEmbedding, vocab, a.Z.AsSpan(t * D, D), logits);
            Layers.Argmax(logits, best);
            int digit = t - Tokens.FirstScoredPosition;
            for (int lane = 0; lane < W; lane++)
            {
                a.Tokens[(t + 1) * W + lane] = best[lane];
                if (lane < active) decoded[(chunk * W + lane) * Tokens.SumDigits + digit] = best[lane];
            }
        }
    }

    float ReduceGradients(float[] grad)
    {
        Array.Clear(grad);
        float loss = 0;
        Array.Clear(dPos);
        foreach (var g in gradients)
        {
            for (int k = 0; k < grad.Length; k++) grad[k] += LaneMath.Sum(g.Grad[k]);
            for (int k = 0; k < g.DEmbed.Length; k++) grad[Layout.TokenEmbedding + k] += g.DEmbed[k];
            for (int k = 0; k < dPos.Length; k++) dPos[k] += LaneMath.Sum(g.DPos[k]);
            loss += LaneMath.Sum(g.Loss);
        }
        // P = A·B: dA = dP·Bᵀ, dB = Aᵀ·dP
        var pos = Layout.Position;
        int d = pos.Out;
        for (int t = 0; t < pos.In; t++)
            for (int i = 0; i < d; i++)
            {
                float g = dPos[t * d + i];
                if (!pos.LowRank) { grad[pos.W + t * d + i] += g; continue; }
                for (int j = 0; j < pos.Rank; j++)
                {
                    grad[pos.A + t * pos.Rank + j] += g * parameters[pos.B + j * d + i];
                    grad[pos.B + j * d + i] += g * parameters[pos.A + t * pos.Rank + j];
                }
            }
        return loss;
    }
}
