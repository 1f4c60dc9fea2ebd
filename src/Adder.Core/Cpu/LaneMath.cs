using System.Runtime.CompilerServices;

namespace Adder.Core.Cpu;

/// <summary>Element-wise functions on lane vectors that the BCL lacks (erf) or that we want inlined.</summary>
public static class LaneMath
{
    public const int Width = 16;   // VF.Count; a constant so buffers can be sized without a runtime query

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VF Fma(VF a, VF b, VF c) => V.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VF Fma(VF a, float b, VF c) => V.FusedMultiplyAdd(a, V.Create(b), c);

    /// <summary>erf in float32: the rational approximation XLA and Eigen use (clamped to [-4, 4],
    /// where erf is ±1 in float32), a few ulp from the true value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VF Erf(VF x)
    {
        x = V.Clamp(x, V.Create(-4f), V.Create(4f));
        var x2 = x * x;
        var p = Fma(x2, V.Create(-2.72614225801306e-10f), V.Create(2.77068142495902e-08f));
        p = Fma(x2, p, V.Create(-2.10102402082508e-06f));
        p = Fma(x2, p, V.Create(-5.69250639462346e-05f));
        p = Fma(x2, p, V.Create(-7.34990630326855e-04f));
        p = Fma(x2, p, V.Create(-2.95459980854025e-03f));
        p = Fma(x2, p, V.Create(-1.60960333262415e-02f));
        p *= x;
        var q = Fma(x2, V.Create(-1.45660718464996e-05f), V.Create(-2.13374055278905e-04f));
        q = Fma(x2, q, V.Create(-1.68282697438203e-03f));
        q = Fma(x2, q, V.Create(-7.37332916720468e-03f));
        q = Fma(x2, q, V.Create(-1.42647390514189e-02f));
        return p / q;
    }

    /// <summary>e^x in float32 (Cephes expf: Cody-Waite reduction by ln 2, degree-6 polynomial, within
    /// 2 ulp; inputs below -87.3 give ~1e-38 rather than 0). Several times cheaper than Vector512.Exp,
    /// which widens to double; attention's softmax spends most of its time here.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VF Exp(VF x)
    {
        x = V.Clamp(x, V.Create(-87.3f), V.Create(88.7f));
        var n = V.Round(x * V.Create(1.44269504088896341f));
        var r = Fma(n, V.Create(-0.693359375f), x);
        r = Fma(n, V.Create(2.12194440e-4f), r);
        var p = Fma(V.Create(1.9875691500e-4f), r, V.Create(1.3981999507e-3f));
        p = Fma(p, r, V.Create(8.3334519073e-3f));
        p = Fma(p, r, V.Create(4.1665795894e-2f));
        p = Fma(p, r, V.Create(1.6666665459e-1f));
        p = Fma(p, r, V.Create(5.0000001201e-1f));
        p = Fma(p, r * r, r + V.Create(1f));
        // n is within [-126, 128] after the clamp, where the native conversion needs no saturation fix-up
        var scale = V.AsSingle(V.ShiftLeft(V.ConvertToInt32Native(n) + V.Create(127), 23));
        return p * scale;
    }

    const float InvSqrt2 = 0.70710678118654752f;
    const float InvSqrt2Pi = 0.39894228040143268f;

    /// <summary>Exact GELU: 0.5·u·(1 + erf(u/√2)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VF Gelu(VF u) => V.Create(0.5f) * u * (V.Create(1f) + Erf(u * V.Create(InvSqrt2)));

    /// <summary>d GELU / du = Φ(u) + u·φ(u).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static VF GeluGrad(VF u)
    {
        var cdf = V.Create(0.5f) * (V.Create(1f) + Erf(u * V.Create(InvSqrt2)));
        var pdf = Exp(V.Create(-0.5f) * u * u) * V.Create(InvSqrt2Pi);
        return Fma(u, pdf, cdf);
    }

    /// <summary>Horizontal sum of one lane vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(VF v) => V.Sum(v);
}
