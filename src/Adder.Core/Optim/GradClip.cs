namespace Adder.Core;

public readonly record struct ClipResult(double Norm, double Coefficient);

/// <summary>Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_ (SPEC section 7).</summary>
public static class GradClip
{
    public static ClipResult Apply(Span<float> grad, double maxNorm)
    {
        double sum = 0;
        foreach (var g in grad) sum += (double)g * g;
        double norm = Math.Sqrt(sum);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1)
        {
            float c = (float)coefficient;
            for (int i = 0; i < grad.Length; i++) grad[i] *= c;
        }
        return new ClipResult(norm, Math.Min(coefficient, 1.0));
    }
}
