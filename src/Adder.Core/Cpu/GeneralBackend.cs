namespace Adder.Core.Cpu;

/// <summary>The CPU backend for any architecture (<see cref="ModelConfig.General"/>): each verb materialises the
/// model's roles from its stored parameters (<see cref="RoleGraph"/>), runs <see cref="GeneralBlock"/> over the
/// batch's sequences on all cores, and pulls the roles' gradients back into the stored parameters. Tokens are
/// in the architecture's format (<see cref="ModelConfig.Format"/>). Gradients are summed in fixed partitions
/// (sequence s in partition s mod 8) in a fixed order, so a step is the same on any thread count.</summary>
public sealed class GeneralBackend : IBackend
{
    public const int GradientPartitions = 8;
    public string Name => "cpu";
    public ModelConfig Config { get; }
    public ParameterLayout Layout { get; }
    public int Models { get; }
    public int Threads { get; }

    readonly CompiledArchitecture arch;
    readonly GeneralBlock block;
    readonly TokenFormat format;
    readonly HostModels models;
    readonly float[] grad;
    readonly GeneralBlock.RoleSet[] partitionGrads;
    readonly GeneralBlock.Workspace[] partitionWorkspaces;
    const int W = LaneMath.Width;
    readonly GeneralLaneBlock lanes;
    readonly GeneralLaneBlock.Gradients[] laneGrads;
    readonly GeneralLaneBlock.Workspace[] laneWorkspaces;

    public GeneralBackend(ModelConfig config, int models, CpuOptions options)
    {
        var general = config.General ?? throw new AdderException("the general backend needs an architecture");
        Config = config;
        Layout = new ParameterLayout(config);
        arch = general.Compile();
        block = new GeneralBlock(arch);
        format = general.Format;
        Models = models;
        Threads = options.WorkerThreads;
        this.models = new HostModels(models, Layout.Count);
        grad = new float[Layout.Count];
        partitionGrads = new GeneralBlock.RoleSet[GradientPartitions];
        partitionWorkspaces = new GeneralBlock.Workspace[GradientPartitions];
        for (int i = 0; i < GradientPartitions; i++) { partitionGrads[i] = GeneralBlock.RoleSet.Zeros(arch); partitionWorkspaces[i] = block.NewWorkspace(); }
        lanes = new GeneralLaneBlock(arch);
        laneGrads = new GeneralLaneBlock.Gradients[GradientPartitions];
        laneWorkspaces = new GeneralLaneBlock.Workspace[GradientPartitions];
        for (int i = 0; i < GradientPartitions; i++) { laneGrads[i] = new GeneralLaneBlock.Gradients(partitionGrads[i]); laneWorkspaces[i] = lanes.NewWorkspace(); }
    }

    public void Dispose() { }

    float[] Model(int model) => models.Parameters(model);

    public void SetParameters(int model, ReadOnlySpan<float> values) => models.Set(model, values);

    public void GetParameters(int model, Span<float> values) => models.Get(model, values);

    public void SetOptimizer(int model, OptimizerState state) => models.SetOptimizer(model, state);

    public OptimizerState GetOptimizer(int model) => models.GetOptimizer(model);

    public void TrainStep(ReadOnlySpan<int> tokens, int batch, in StepSettings settings, Span<StepResult> results)
    {
        BackendContract.Batch(batch);
        int per = batch * format.FullLength;
        BackendContract.Length(tokens.Length, (long)Models * per, "tokens");
        BackendContract.Length(results.Length, Models, "results");
        for (int m = 0; m < Models; m++)
        {
            float loss = LossAndGradient(m, tokens.Slice(m * per, per), batch, grad);
            double norm = models.Update(m, grad, settings);
            results[m] = new StepResult(loss, norm);
        }
    }

    ParallelOptions Parallelism => new() { MaxDegreeOfParallelism = Threads };

    public float LossAndGradient(int model, ReadOnlySpan<int> tokens, int batch, Span<float> gradient)
    {
        BackendContract.Model(model, Models);
        BackendContract.Batch(batch);
        int full = format.FullLength;
        BackendContract.Length(tokens.Length, (long)batch * full, "tokens");
        BackendContract.Length(gradient.Length, Layout.Count, "gradient");
        var roles = new GeneralLaneBlock.Roles(Materialise(Widen(Model(model))));
        var sequences = tokens[..(batch * full)].ToArray();
        float weight = 1f / (batch * format.ScoredPositions);
        int chunks = (batch + W - 1) / W, parts = Math.Min(GradientPartitions, chunks);
        var losses = new double[parts];
        Parallel.For(0, parts, Parallelism, part =>
        {
            var dr = laneGrads[part];
            var ws = laneWorkspaces[part];
            dr.Clear();
            double loss = 0;
            Span<float> w = stackalloc float[W];
            for (int c = part; c < chunks; c += GradientPartitions)
            {
                int first = c * W, count = Math.Min(W, batch - first);
                GeneralLaneBlock.Load(ws, sequences.AsSpan(first * full), full, count);
                for (int lane = 0; lane < W; lane++) w[lane] = lane < count ? weight : 0f;
                loss += lanes.LossAndBackward(roles, ws, format.FirstScoredPosition, format.ScoredPositions, V.Create<float>(w), dr);
            }
            losses[part] = loss;
        });
        var total = GeneralBlock.RoleSet.Zeros(arch);
        double sum = 0;
        for (int part = 0; part < parts; part++) { laneGrads[part].SumInto(total); sum += losses[part]; }
        var stored = new double[Layout.Count];
        PullBack(total, stored);
        for (int i = 0; i < stored.Length; i++) gradient[i] = (float)stored[i];
        return (float)sum;
    }

    /// <summary>Role gradients → stored parameters' gradients (the role graph's backward).</summary>
    void PullBack(GeneralBlock.RoleSet roleGrads, double[] stored)
    {
        arch.Graph.ClearGradients();
        foreach (var (role, data) in roleGrads.Named(arch))
        {
            var g = arch.Role(role).Grad.Data;
            for (int i = 0; i < g.Length; i++) g[i] += data[i];
        }
        Array.Clear(stored);
        arch.Graph.Backward(stored);
    }

    /// <summary>The same in double precision end to end, for any parameter values (gradient checks).</summary>
    public double LossAndGradient(double[] values, ReadOnlySpan<int> tokens, int batch, double[] gradient)
    {
        int full = format.FullLength;
        if (batch <= 0 || tokens.Length < batch * full) throw new ArgumentException("bad batch size");
        var roles = Materialise(values);
        var sequences = tokens[..(batch * full)].ToArray();
        double weight = 1.0 / (batch * format.ScoredPositions);
        int parts = Math.Min(GradientPartitions, batch);
        var losses = new double[parts];
        Parallel.For(0, parts, Parallelism, part =>
        {
            var dr = partitionGrads[part];
            var ws = partitionWorkspaces[part];
            dr.Clear();
            double loss = 0;
            for (int s = part; s < batch; s += GradientPartitions)
            {
                sequences.AsSpan(s * full, full).CopyTo(ws.Tokens);
                loss += block.LossAndBackward(roles, ws, format.FirstScoredPosition, format.ScoredPositions, weight, dr);
            }
            losses[part] = loss;
        });
        var total = GeneralBlock.RoleSet.Zeros(arch);
        double sum = 0;
        for (int part = 0; part < parts; part++) { partitionGrads[part].AddTo(total); sum += losses[part]; }
        PullBack(total, gradient);
        return sum * weight;
    }

    static double[] Widen(float[] p)
    {
        var values = new double[p.Length];
        for (int i = 0; i < p.Length; i++) values[i] = p[i];
        return values;
    }

    /// <summary>The roles' effective matrices for these parameter values.</summary>
    GeneralBlock.RoleSet Materialise(double[] values)
    {
        arch.Graph.Forward(values);
        return GeneralBlock.RoleSet.Values(arch);
    }

    public void Logits(int model, ReadOnlySpan<int> tokens, int count, Span<float> logits)
    {
        int full = format.FullLength, T = format.InputLength, vocab = format.VocabSize;
        BackendContract.Model(model, Models);
        BackendContract.Count(count);
        BackendContract.Length(tokens.Length, (long)count * full, "tokens");
        BackendContract.Length(logits.Length, (long)count * T * vocab, "logits");
        if (count == 0) return;
        var roles = new GeneralLaneBlock.Roles(Materialise(Widen(Model(model))));
        var ws = lanes.NewWorkspace();
        for (int first = 0; first < count; first += W)
        {
            int n = Math.Min(W, count - first);
            GeneralLaneBlock.Load(ws, tokens.Slice(first * full), full, n);
            for (int t = 0; t < T; t++)
            {
                lanes.ForwardPosition(roles, ws, t);
                for (int lane = 0; lane < n; lane++)
                    for (int v = 0; v < vocab; v++) logits[((first + lane) * T + t) * vocab + v] = ws.Logits[t * vocab + v][lane];
            }
        }
    }

    public void Decode(int model, ReadOnlySpan<int> prompts, int count, Span<int> output)
    {
        int prompt = format.PromptLength, digits = TokenFormat.SumDigits, vocab = format.VocabSize;
        BackendContract.Model(model, Models);
        BackendContract.Count(count);
        BackendContract.Length(prompts.Length, (long)count * prompt, "prompts");
        BackendContract.Length(output.Length, (long)count * digits, "output");
        if (count == 0) return;
        var roles = new GeneralLaneBlock.Roles(Materialise(Widen(Model(model))));
        var input = prompts[..(count * prompt)].ToArray();
        var result = new int[count * digits];
        int chunks = (count + W - 1) / W;
        Parallel.For(0, chunks, Parallelism, () => lanes.NewWorkspace(), (c, _, ws) =>
        {
            int first = c * W, n = Math.Min(W, count - first);
            GeneralLaneBlock.Load(ws, input.AsSpan(first * prompt), prompt, n);
            for (int t = 0; t < prompt - 1; t++) lanes.ForwardKeyValue(roles, ws, t);
            for (int k = 0; k < digits; k++)
            {
                int t = prompt - 1 + k;
                lanes.ForwardPosition(roles, ws, t);
                for (int lane = 0; lane < W; lane++)
                {
                    int best = 0;
                    for (int v = 1; v < vocab; v++) if (ws.Logits[t * vocab + v][lane] > ws.Logits[t * vocab + best][lane]) best = v;
                    if (lane < n) result[(first + lane) * digits + k] = best;
                    ws.Tokens[(t + 1) * W + lane] = best;
                }
            }
            return ws;
        }, _ => { });
        result.CopyTo(output);
    }
}
