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
    readonly float[][] parameters;
    readonly AdamW[] optimizers;
    readonly float[]?[] grokfastEmas;
    readonly float[] grad;
    readonly GeneralBlock.RoleSet[] partitionGrads;
    readonly GeneralBlock.Workspace[] partitionWorkspaces;

    public GeneralBackend(ModelConfig config, int models, CpuOptions options)
    {
        if (models < 1) throw new AdderException($"a backend holds at least one model, got {models}");
        var general = config.General ?? throw new AdderException("the general backend needs an architecture");
        Config = config;
        Layout = new ParameterLayout(config);
        arch = general.Compile();
        block = new GeneralBlock(arch);
        format = general.Format;
        Models = models;
        Threads = options.WorkerThreads;
        parameters = new float[models][];
        optimizers = new AdamW[models];
        grokfastEmas = new float[]?[models];
        for (int m = 0; m < models; m++) { parameters[m] = new float[Layout.Count]; optimizers[m] = new AdamW(Layout.Count); }
        grad = new float[Layout.Count];
        partitionGrads = new GeneralBlock.RoleSet[GradientPartitions];
        partitionWorkspaces = new GeneralBlock.Workspace[GradientPartitions];
        for (int i = 0; i < GradientPartitions; i++) { partitionGrads[i] = GeneralBlock.RoleSet.Zeros(arch); partitionWorkspaces[i] = block.NewWorkspace(); }
    }

    public void Dispose() { }

    float[] Model(int model) =>
        model >= 0 && model < Models ? parameters[model] : throw new ArgumentOutOfRangeException(nameof(model), $"model {model} of {Models}");

    public void SetParameters(int model, ReadOnlySpan<float> values)
    {
        if (values.Length != Layout.Count) throw new ArgumentException($"expected {Layout.Count} parameters, got {values.Length}");
        values.CopyTo(Model(model));
    }

    public void GetParameters(int model, Span<float> values) => Model(model).CopyTo(values);

    public void SetOptimizer(int model, OptimizerState state)
    {
        Model(model);
        if (state.M.Length != Layout.Count || state.V.Length != Layout.Count)
            throw new AdderException($"optimizer state has {state.M.Length} values, the model {Layout.Count}");
        if (state.GrokfastEma is { } ema && ema.Length != Layout.Count)
            throw new AdderException($"Grokfast state has {ema.Length} values, the model {Layout.Count}");
        optimizers[model] = new AdamW(state.Step, (float[])state.M.Clone(), (float[])state.V.Clone());
        grokfastEmas[model] = (float[]?)state.GrokfastEma?.Clone();
    }

    public OptimizerState GetOptimizer(int model)
    {
        Model(model);
        var o = optimizers[model];
        return new OptimizerState(o.Step, (float[])o.M.Clone(), (float[])o.V.Clone(), (float[]?)grokfastEmas[model]?.Clone());
    }

    public void TrainStep(ReadOnlySpan<int> tokens, int batch, in StepSettings settings, Span<StepResult> results)
    {
        int per = batch * format.FullLength;
        if (tokens.Length < Models * per) throw new ArgumentException($"expected {Models} batches of {batch} sequences");
        if (results.Length < Models) throw new ArgumentException("results too small");
        for (int m = 0; m < Models; m++)
        {
            float loss = LossAndGradient(m, tokens.Slice(m * per, per), batch, grad);
            if (settings.GrokfastLambda != 0)
                Grokfast.Apply(grad, grokfastEmas[m] ??= new float[Layout.Count], settings.GrokfastAlpha, settings.GrokfastLambda);
            double norm = GradClip.Apply(grad, settings.Clip).Norm;
            var o = optimizers[m];
            if (o.Beta1 != settings.Beta1 || o.Beta2 != settings.Beta2 || o.Eps != settings.Eps)
                o = optimizers[m] = new AdamW(o.Step, o.M, o.V) { Beta1 = settings.Beta1, Beta2 = settings.Beta2, Eps = settings.Eps };
            o.Update(parameters[m], grad, settings.Lr, settings.WeightDecay);
            results[m] = new StepResult(loss, norm);
        }
    }

    ParallelOptions Parallelism => new() { MaxDegreeOfParallelism = Threads };

    public float LossAndGradient(int model, ReadOnlySpan<int> tokens, int batch, Span<float> gradient)
    {
        if (gradient.Length != Layout.Count) throw new ArgumentException($"expected {Layout.Count} gradient values, got {gradient.Length}");
        var stored = new double[Layout.Count];
        double loss = LossAndGradient(Widen(Model(model)), tokens, batch, stored);
        for (int i = 0; i < stored.Length; i++) gradient[i] = (float)stored[i];
        return (float)loss;
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
        arch.Graph.ClearGradients();
        double sum = 0;
        for (int part = 0; part < parts; part++)
        {
            sum += losses[part];
            foreach (var (role, data) in partitionGrads[part].Named(arch))
            {
                var g = arch.Role(role).Grad.Data;
                for (int i = 0; i < g.Length; i++) g[i] += data[i];
            }
        }
        Array.Clear(gradient);
        arch.Graph.Backward(gradient);
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
        if (logits.Length < count * T * vocab) throw new ArgumentException("logits too small");
        var roles = Materialise(Widen(Model(model)));
        var ws = block.NewWorkspace();
        for (int s = 0; s < count; s++)
        {
            tokens.Slice(s * full, full).CopyTo(ws.Tokens);
            for (int t = 0; t < T; t++)
            {
                block.ForwardPosition(roles, ws, t);
                for (int v = 0; v < vocab; v++) logits[(s * T + t) * vocab + v] = (float)ws.Logits[t * vocab + v];
            }
        }
    }

    public void Decode(int model, ReadOnlySpan<int> prompts, int count, Span<int> output)
    {
        int prompt = format.PromptLength, digits = TokenFormat.SumDigits, vocab = format.VocabSize;
        if (output.Length < count * digits) throw new ArgumentException("output too small");
        var roles = Materialise(Widen(Model(model)));
        var input = prompts[..(count * prompt)].ToArray();
        var result = new int[count * digits];
        const int Chunk = 256;
        Parallel.For(0, (count + Chunk - 1) / Chunk, Parallelism, () => block.NewWorkspace(), (c, _, ws) =>
        {
            for (int s = c * Chunk; s < Math.Min(count, (c + 1) * Chunk); s++)
            {
                input.AsSpan(s * prompt, prompt).CopyTo(ws.Tokens);
                for (int t = 0; t < prompt - 1; t++) block.ForwardPosition(roles, ws, t);
                for (int k = 0; k < digits; k++)
                {
                    int t = prompt - 1 + k;
                    block.ForwardPosition(roles, ws, t);
                    int best = 0;
                    for (int v = 1; v < vocab; v++) if (ws.Logits[t * vocab + v] > ws.Logits[t * vocab + best]) best = v;
                    result[s * digits + k] = best;
                    ws.Tokens[t + 1] = best;
                }
            }
            return ws;
        }, _ => { });
        result.CopyTo(output);
    }
}
