namespace Adder.Core.Cpu;

/// <summary>The CPU backends' models on the host: each model's flat parameters, AdamW state and Grokfast average,
/// and SPEC section 7's update once a model's summed gradient is known (the Grokfast filter when asked for,
/// global-norm clipping, AdamW).</summary>
public sealed class HostModels
{
    readonly float[][] parameters;
    readonly AdamW[] optimizers;
    readonly float[]?[] grokfastEmas;   // per model; allocated at its first filtered step
    readonly int count;

    public HostModels(int models, int parameterCount)
    {
        if (models < 1) throw new AdderException($"a backend holds at least one model, got {models}");
        count = parameterCount;
        parameters = new float[models][];
        optimizers = new AdamW[models];
        grokfastEmas = new float[]?[models];
        for (int m = 0; m < models; m++) { parameters[m] = new float[count]; optimizers[m] = new AdamW(count); }
    }

    public int Models => parameters.Length;

    /// <summary>Model m's parameters, held in place (the verbs read them).</summary>
    public float[] Parameters(int model)
    {
        BackendContract.Model(model, Models);
        return parameters[model];
    }

    public void Set(int model, ReadOnlySpan<float> values)
    {
        BackendContract.Length(values.Length, count, "parameters");
        values.CopyTo(Parameters(model));
    }

    public void Get(int model, Span<float> values)
    {
        BackendContract.Length(values.Length, count, "parameters");
        Parameters(model).CopyTo(values);
    }

    public void SetOptimizer(int model, OptimizerState state)
    {
        Parameters(model);
        if (state.M.Length != count || state.V.Length != count)
            throw new AdderException($"optimizer state has {state.M.Length} values, the model {count}");
        if (state.GrokfastEma is { } ema && ema.Length != count)
            throw new AdderException($"Grokfast state has {ema.Length} values, the model {count}");
        optimizers[model] = new AdamW(state.Step, (float[])state.M.Clone(), (float[])state.V.Clone());
        grokfastEmas[model] = (float[]?)state.GrokfastEma?.Clone();
    }

    public OptimizerState GetOptimizer(int model)
    {
        Parameters(model);
        var o = optimizers[model];
        return new OptimizerState(o.Step, (float[])o.M.Clone(), (float[])o.V.Clone(), (float[]?)grokfastEmas[model]?.Clone());
    }

    /// <summary>Filters, clips and applies model m's gradient; returns its norm before clipping.</summary>
    public double Update(int model, Span<float> grad, in StepSettings settings)
    {
        if (settings.GrokfastLambda != 0)
            Grokfast.Apply(grad, grokfastEmas[model] ??= new float[count], settings.GrokfastAlpha, settings.GrokfastLambda);
        double norm = GradClip.Apply(grad, settings.Clip).Norm;
        var o = optimizers[model];
        if (o.Beta1 != settings.Beta1 || o.Beta2 != settings.Beta2 || o.Eps != settings.Eps)
            o = optimizers[model] = new AdamW(o.Step, o.M, o.V) { Beta1 = settings.Beta1, Beta2 = settings.Beta2, Eps = settings.Eps };
        o.Update(parameters[model], grad, settings.Lr, settings.WeightDecay, settings.DecayScale);
        return norm;
    }
}
