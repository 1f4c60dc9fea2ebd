namespace Adder.Core.Cpu;

/// <summary>The CPU backend: holds <see cref="Models"/> models (parameters and AdamW state) and runs each
/// verb one model at a time; inside a verb, a batch is split into chunks of 16 sequences (one per lane),
/// the chunks run on all cores and the per-thread gradients are reduced. Holds its buffers so a training
/// step allocates nothing beyond the thread pool's own bookkeeping.</summary>
public sealed class CpuBackend : IBackend
{
    const int W = LaneMath.Width;
    public string Name => "cpu";
    public ModelConfig Config { get; }
    public ParameterLayout Layout { get; }
    public int Models { get; }
    public int Threads { get; }

    readonly HostModels models;
    readonly float[] grad;
    readonly Activations[] activations;
    readonly Transformer.Gradients[] gradients;
    readonly float[] posTable;
    readonly float[] dPos;
    // the verb in flight: its model's parameters, its tokens ([count][34] or prompts [count][22], pinned by
    // the verb for its duration, so they are read in place) and outputs
    float[] current = [];
    unsafe int* batchTokens;
    int batchCount, tokensPerExample, nextChunk;
    float chunkScale;
    unsafe void* output;     // the verb's output (int tokens or float logits), pinned like the tokens
    readonly Action<int, int> gradientChunk, decodeChunk, logitsChunk;
    readonly bool preset311;   // the 311p's shape: Transformer311's specialised (bit-identical) code

    /// <summary>Gradients are summed in this many fixed partitions of the batch's chunks (chunk c goes to
    /// partition c mod 8), whatever the thread count, so a step's result is bit-for-bit the same on any
    /// machine and a resumed run continues exactly.</summary>
    public const int GradientPartitions = 8;

    public CpuBackend(ModelConfig config, int models, CpuOptions options)
    {
        if (models < 1) throw new AdderException($"a backend holds at least one model, got {models}");
        Limits.CheckBackendMemory(config, models, options.Threads);   // before any buffer is allocated

        Config = config;
        Layout = new ParameterLayout(config);
        Models = models;
        Threads = options.WorkerThreads;
        this.models = new HostModels(models, Layout.Count);
        grad = new float[Layout.Count];
        activations = new Activations[Math.Max(Threads, GradientPartitions)];
        for (int i = 0; i < activations.Length; i++) activations[i] = new Activations(config);
        gradients = new Transformer.Gradients[GradientPartitions];
        for (int i = 0; i < GradientPartitions; i++) gradients[i] = new Transformer.Gradients(Layout, activations[i]);
        posTable = new float[config.MaxSeqLen * config.DModel];
        dPos = new float[config.MaxSeqLen * config.DModel];
        gradientChunk = GradientChunk;
        decodeChunk = DecodeChunk;
        logitsChunk = LogitsChunk;
        preset311 = Transformer311.Matches(config);
    }

    public CpuBackend(ModelConfig config) : this(config, 1, CpuOptions.Default) { }

    public void Dispose() { }

    float[] Model(int model) => models.Parameters(model);

    public void SetParameters(int model, ReadOnlySpan<float> values) => models.Set(model, values);

    public void GetParameters(int model, Span<float> values) => models.Get(model, values);

    public void SetOptimizer(int model, OptimizerState state) => models.SetOptimizer(model, state);

    public OptimizerState GetOptimizer(int model) => models.GetOptimizer(model);

    /// <summary>SPEC section 7's step for each model in turn: loss and gradient (fixed partitions), the Grokfast
    /// filter when asked for, global-norm clipping, AdamW, all on the host arrays.</summary>
    public void TrainStep(ReadOnlySpan<int> tokens, int batch, in StepSettings settings, Span<StepResult> results)
    {
        BackendContract.Batch(batch);
        int per = batch * Tokens.FullLength;
        BackendContract.Length(tokens.Length, (long)Models * per, "tokens");
        BackendContract.Length(results.Length, Models, "results");
        for (int m = 0; m < Models; m++)
        {
            float loss = LossAndGradient(m, tokens.Slice(m * per, per), batch, grad);
            double norm = models.Update(m, grad, settings);
            results[m] = new StepResult(loss, norm);
        }
    }

    /// <summary>0 + 0, what padding lanes hold (weight 0 in the loss).</summary>
    static readonly int[] Padding = Tokens.EncodeFull(0, 0);

    /// <summary>Writes chunk c's sequences into a.Tokens; returns the active lanes.</summary>
    unsafe int LoadChunk(Activations a, int chunk)
    {
        int first = chunk * W, active = Math.Min(W, batchCount - first), length = tokensPerExample;
        for (int lane = 0; lane < W; lane++)
        {
            var source = lane < active ? new ReadOnlySpan<int>(batchTokens + (first + lane) * length, length) : Padding.AsSpan(0, length);
            for (int t = 0; t < length; t++) a.Tokens[t * W + lane] = source[t];
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

    void ForwardPosition(Activations a, int t)
    {
        if (preset311) Transformer311.ForwardPosition(current, Layout, posTable, a, t);
        else Transformer.ForwardPosition(current, Layout, posTable, a, t);
    }

    static int ChunkCount(int n) => (n + W - 1) / W;

    /// <summary>Runs a verb's chunks over count examples of `length` tokens each with the model's parameters;
    /// the tokens stay pinned (read in place by the workers) until the chunks are done.</summary>
    unsafe void Run(int model, ReadOnlySpan<int> tokens, int count, int length, Action<int, int> work, bool staticPartition)
    {
        current = Model(model);
        if (count <= 0 || tokens.Length < count * length) throw new ArgumentException("bad batch size");
        batchCount = count;
        tokensPerExample = length;
        Layers.PositionForward(current, Layout.Position, posTable);
        fixed (int* pinned = tokens)
        {
            batchTokens = pinned;
            try { RunChunks(ChunkCount(count), work, staticPartition); }
            finally { batchTokens = null; }
        }
    }

    public float LossAndGradient(int model, ReadOnlySpan<int> tokens, int batch, Span<float> gradient)
    {
        BackendContract.Model(model, Models);
        BackendContract.Batch(batch);
        BackendContract.Length(tokens.Length, (long)batch * Tokens.FullLength, "tokens");
        BackendContract.Length(gradient.Length, Layout.Count, "gradient");
        foreach (var g in gradients) g.Clear();
        chunkScale = 1f / (batch * Tokens.ScoredPositions);
        Run(model, tokens, batch, Tokens.FullLength, gradientChunk, staticPartition: true);
        return ReduceGradients(gradient);
    }

    void GradientChunk(int worker, int chunk)
    {
        var a = activations[worker];
        int active = LoadChunk(a, chunk);
        for (int t = 0; t < Tokens.InputLength; t++) ForwardPosition(a, t);
        Span<float> w = stackalloc float[W];
        for (int lane = 0; lane < W; lane++) w[lane] = lane < active ? chunkScale : 0f;
        if (preset311) Transformer311.Backward(current, Layout, a, gradients[worker], V.Create<float>(w));
        else Transformer.Backward(current, Layout, a, gradients[worker], V.Create<float>(w));
    }

    /// <summary>Runs a verb that writes into outputs (pinned for the verb's duration, written in place).</summary>
    unsafe void RunInto<T>(Span<T> outputs, int model, ReadOnlySpan<int> tokens, int count, int length, Action<int, int> work)
        where T : unmanaged
    {
        fixed (T* pinned = outputs)
        {
            output = pinned;
            try { Run(model, tokens, count, length, work, staticPartition: false); }
            finally { output = null; }
        }
    }

    public void Logits(int model, ReadOnlySpan<int> tokens, int count, Span<float> logits)
    {
        BackendContract.Model(model, Models);
        BackendContract.Count(count);
        BackendContract.Length(tokens.Length, (long)count * Tokens.FullLength, "tokens");
        BackendContract.Length(logits.Length, (long)count * Tokens.InputLength * Config.VocabSize, "logits");
        if (count == 0) return;
        RunInto(logits, model, tokens, count, Tokens.FullLength, logitsChunk);
    }

    unsafe void LogitsChunk(int worker, int chunk)
    {
        var act = activations[worker];
        int active = LoadChunk(act, chunk);
        int vocab = Config.VocabSize, T = Tokens.InputLength;
        Span<VF> logits = stackalloc VF[vocab];
        for (int t = 0; t < T; t++)
        {
            ForwardPosition(act, t);
            Layers.HeadForward(current, Layout.TokenEmbedding, vocab, act.Z.AsSpan(t * act.D, act.D), logits);
            for (int lane = 0; lane < active; lane++)
                for (int v = 0; v < vocab; v++)
                    ((float*)output)[(((chunk * W + lane) * T) + t) * vocab + v] = logits[v][lane];
        }
    }

    public void Decode(int model, ReadOnlySpan<int> prompts, int count, Span<int> decoded)
    {
        BackendContract.Model(model, Models);
        BackendContract.Count(count);
        BackendContract.Length(prompts.Length, (long)count * Tokens.PromptLength, "prompts");
        BackendContract.Length(decoded.Length, (long)count * Tokens.SumDigits, "output");
        if (count == 0) return;
        RunInto(decoded, model, prompts, count, Tokens.PromptLength, decodeChunk);
    }

    unsafe void DecodeChunk(int worker, int chunk)
    {
        var a = activations[worker];
        int active = LoadChunk(a, chunk);
        int vocab = Config.VocabSize, D = a.D;
        Span<VF> logits = stackalloc VF[vocab];
        Span<int> best = stackalloc int[W];
        int last = Tokens.FirstScoredPosition + Tokens.SumDigits;    // position 31 yields the 11th digit
        for (int t = 0; t < last; t++)
        {
            ForwardPosition(a, t);
            if (t < Tokens.FirstScoredPosition) continue;
            Layers.HeadForward(current, Layout.TokenEmbedding, vocab, a.Z.AsSpan(t * D, D), logits);
            Layers.Argmax(logits, best);
            int digit = t - Tokens.FirstScoredPosition;
            for (int lane = 0; lane < W; lane++)
            {
                a.Tokens[(t + 1) * W + lane] = best[lane];
                if (lane < active) ((int*)output)[(chunk * W + lane) * Tokens.SumDigits + digit] = best[lane];
            }
        }
    }

    /// <summary>Sums the partitions' gradients in a fixed order, then runs the position embedding's backward.</summary>
    float ReduceGradients(Span<float> gradient)
    {
        gradient.Clear();
        float loss = 0;
        Array.Clear(dPos);
        foreach (var g in gradients)
        {
            for (int k = 0; k < gradient.Length; k++) gradient[k] += LaneMath.Sum(g.Grad[k]);
            for (int k = 0; k < g.DEmbed.Length; k++) gradient[Layout.TokenEmbedding + k] += g.DEmbed[k];
            for (int k = 0; k < dPos.Length; k++) dPos[k] += LaneMath.Sum(g.DPos[k]);
            loss += LaneMath.Sum(g.Loss);
        }
        Layers.PositionBackward(current, Layout.Position, dPos, gradient);
        return loss;
    }
}
