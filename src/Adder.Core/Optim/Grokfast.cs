namespace Adder.Core;

/// <summary>Grokfast-EMA (Lee et al. 2024, "Grokfast: accelerated grokking by amplifying slow gradients"):
/// an exponential moving average of the gradient, h ← α·h + (1−α)·g, amplifies the gradient's slow part,
/// g ← g + λ·h. Applied to the batch's summed gradient right after the backward pass, before clipping (as
/// ../shared/notes/grokfast-probe.md measured it). h starts at zero and is saved with the optimizer state.
/// λ = 0 is the published recipe: the filter is then not run at all, so the trajectory is untouched.</summary>
public static class Grokfast
{
    public const double DefaultAlpha = 0.98, DefaultLambda = 0.0;

    public static void Apply(Span<float> grad, Span<float> ema, double alpha, double lambda)
    {
        if (grad.Length != ema.Length) throw new ArgumentException("length mismatch");
        float a = (float)alpha, oneMinusA = (float)(1 - alpha), l = (float)lambda;
        for (int i = 0; i < grad.Length; i++)
        {
            ema[i] = a * ema[i] + oneMinusA * grad[i];
            grad[i] += l * ema[i];
        }
    }
}
