namespace Adder.Core;

/// <summary>AdamW with torch's defaults and update order (SPEC section 7): decoupled weight decay first,
/// then bias-corrected moments. Moments are float32 as in torch; the scalar factors are double.</summary>
public sealed class AdamW
{
    public const double DefaultBeta1 = 0.9, DefaultBeta2 = 0.999, DefaultEps = 1e-8;
    public double Beta1 { get; init; } = DefaultBeta1;
    public double Beta2 { get; init; } = DefaultBeta2;
    public double Eps { get; init; } = DefaultEps;
    public long Step { get; private set; }
    public float[] M { get; }
    public float[] V { get; }

    public AdamW(int parameterCount) : this(0, new float[parameterCount], new float[parameterCount]) { }

    public AdamW(long step, float[] m, float[] v)
    {
        if (m.Length != v.Length) throw new AdderException("optimizer moments differ in length");
        Step = step;
        M = m;
        V = v;
    }

    /// <param name="decayScale">empty, or one factor a parameter multiplying its decay (lr·wd·factor)</param>
    public void Update(Span<float> parameters, ReadOnlySpan<float> grad, double lr, double weightDecay, ReadOnlySpan<float> decayScale = default)
    {
        if (parameters.Length != M.Length || grad.Length != M.Length) throw new ArgumentException("length mismatch");
        if (!decayScale.IsEmpty && decayScale.Length != M.Length) throw new ArgumentException("decay scale length mismatch");
        bool scaled = !decayScale.IsEmpty;
        Step++;
        float decay = (float)(1 - lr * weightDecay);
        double biasCorrection1 = 1 - Math.Pow(Beta1, Step);
        double biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, Step));
        float stepSize = (float)(lr / biasCorrection1);
        float bc2Sqrt = (float)biasCorrection2Sqrt;
        float b1 = (float)(1 - Beta1), b2 = (float)Beta2, oneMinusB2 = (float)(1 - Beta2), eps = (float)Eps;
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = grad[i];
            parameters[i] *= scaled ? (float)(1 - lr * weightDecay * decayScale[i]) : decay;
            M[i] += b1 * (g - M[i]);                     // torch: exp_avg.lerp_(grad, 1 - beta1)
            V[i] = V[i] * b2 + oneMinusB2 * g * g;
            float denom = MathF.Sqrt(V[i]) / bc2Sqrt + eps;
            parameters[i] -= stepSize * (M[i] / denom);   // torch: addcdiv_(m, denom, -step_size)
        }
    }
}
