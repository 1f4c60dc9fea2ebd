namespace Adder.Core;

/// <summary>One training step's optimiser settings (SPEC section 7): the learning rate changes every step,
/// the rest are the run's. GrokfastLambda 0 (the published recipe) leaves the gradient unfiltered
/// (<see cref="Grokfast"/>). DecayScale, when given, multiplies the weight decay element by element over the flat
/// parameter buffer (<see cref="WeightDecayScales"/>); null decays every parameter alike.</summary>
public readonly record struct StepSettings(double Lr, double WeightDecay, double Clip, double Beta1, double Beta2, double Eps,
                                           double GrokfastAlpha = Grokfast.DefaultAlpha, double GrokfastLambda = Grokfast.DefaultLambda,
                                           float[]? DecayScale = null);

/// <summary>What one model's training step reports: the batch's mean loss and the gradient's global L2 norm
/// before clipping.</summary>
public readonly record struct StepResult(float Loss, double GradNorm);

/// <summary>A device that holds <see cref="Models"/> models of one config side by side (one seed each) with
/// their AdamW state, and runs the verbs of a training system on them (llm.c's forward, backward, update).
/// Token layouts: a full sequence is <see cref="Tokens.FullLength"/> (34) ids, prompt then target
/// (<see cref="Tokens.EncodeFull(long, long, Span{int})"/>); a prompt is <see cref="Tokens.PromptLength"/> (22) ids.
/// Implementations: <c>Cpu.CpuBackend</c> (always present) and the CUDA backend (Adder.Kernels).</summary>
public interface IBackend : IDisposable
{
    /// <summary>"cpu" or "cuda".</summary>
    string Name { get; }
    ModelConfig Config { get; }
    ParameterLayout Layout { get; }
    /// <summary>How many models this backend holds (model indices 0 .. Models−1).</summary>
    int Models { get; }

    void SetParameters(int model, ReadOnlySpan<float> parameters);
    void GetParameters(int model, Span<float> parameters);
    /// <summary>Loads AdamW's step and moments (a fresh optimiser is step 0 and zero moments).</summary>
    void SetOptimizer(int model, OptimizerState state);
    OptimizerState GetOptimizer(int model);

    /// <summary>One training step of every model: forward, backward, gradient norm, clipping, AdamW.
    /// tokens: [Models][batch][34], model m's batch first; results: [Models].</summary>
    void TrainStep(ReadOnlySpan<int> tokens, int batch, in StepSettings settings, Span<StepResult> results);

    /// <summary>Mean cross-entropy of one model on a batch ([batch][34]); its gradient overwrites grad.</summary>
    float LossAndGradient(int model, ReadOnlySpan<int> tokens, int batch, Span<float> grad);

    /// <summary>Teacher-forced logits: tokens [count][34] in, logits [count][33][vocab] out.</summary>
    void Logits(int model, ReadOnlySpan<int> tokens, int count, Span<float> logits);

    /// <summary>Greedy decoding with a KV cache (SPEC section 3): prompts [count][22] in, the 11 generated
    /// tokens of each example [count][11] out (reversed sum digits when right).</summary>
    void Decode(int model, ReadOnlySpan<int> prompts, int count, Span<int> output);
}
