using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Adder.Core.Cpu;

/// <summary><see cref="Transformer"/>'s forward and backward written out for the 311p shape alone (one layer,
/// d_model 4, one head, d_ff 8, every rank 3, shareA_tieKV, RMSNorm, 33 positions): the same float operations
/// in the same order (every FMA an FMA, every sum in the generic loop's order), so results are bit-for-bit the
/// generic code's, but with constant trip counts unrolled, the small vectors kept in locals and no bounds checks
/// (the generic code spends most of its time on loop overhead in its 3- to 8-wide loops).
/// <see cref="Matches"/> says when it may be used; Transformer311Tests holds the two paths equal.</summary>
public static class Transformer311
{
    const int W = LaneMath.Width, T = 33, D = 4, F = 8;

    /// <summary>True for the one config this code is written for (array sizes are not checked beyond this).</summary>
    public static bool Matches(ModelConfig config) => config == ModelConfig.Preset311;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF Fma(VF a, VF b, VF c) => V.FusedMultiplyAdd(a, b, c);

    /// <summary>Parameter i broadcast to all lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF Pb(ref float p, int i) => V.Create(Unsafe.Add(ref p, i));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ref VF At(VF[] a, int i) => ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(a), i);

    // ---- the small matrix products of Layers.MatMulForward, y = x·M (M in×out row-major) ----

    /// <summary>4 → 3 (qkv_A, proj.A, fc1.A).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF Mm4(ref float p, int m, int o, VF x0, VF x1, VF x2, VF x3) =>
        Fma(x3, Pb(ref p, m + 9 + o), Fma(x2, Pb(ref p, m + 6 + o), Fma(x1, Pb(ref p, m + 3 + o), Fma(x0, Pb(ref p, m + o), VF.Zero))));

    /// <summary>3 → n, output o (Bq, Bkv, proj.B with n = 4; fc1.B with n = 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF Mm3(ref float p, int m, int n, int o, VF h0, VF h1, VF h2) =>
        Fma(h2, Pb(ref p, m + 2 * n + o), Fma(h1, Pb(ref p, m + n + o), Fma(h0, Pb(ref p, m + o), VF.Zero)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe VF Gather(float* p, Vector256<int> lo, Vector256<int> hi) =>
        V.Create(Avx2.GatherVector256(p, lo, 4), Avx2.GatherVector256(p, hi, 4));

    /// <summary>Layers.NormForward for RMSNorm of width 4: writes hat, rstd and y; returns y in locals.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void RmsForward(ref float p, int weight, VF x0, VF x1, VF x2, VF x3, ref VF hat, out VF rstd, ref VF y,
        out VF y0, out VF y1, out VF y2, out VF y3)
    {
        var ss = Fma(x3, x3, Fma(x2, x2, Fma(x1, x1, Fma(x0, x0, VF.Zero))));
        rstd = V.Create(1f) / V.Sqrt(ss * V.Create(1f / D) + V.Create(ModelConfig.RmsNormEps));
        VF h0 = x0 * rstd, h1 = x1 * rstd, h2 = x2 * rstd, h3 = x3 * rstd;
        hat = h0; Unsafe.Add(ref hat, 1) = h1; Unsafe.Add(ref hat, 2) = h2; Unsafe.Add(ref hat, 3) = h3;
        y0 = h0 * Pb(ref p, weight); y1 = h1 * Pb(ref p, weight + 1); y2 = h2 * Pb(ref p, weight + 2); y3 = h3 * Pb(ref p, weight + 3);
        y = y0; Unsafe.Add(ref y, 1) = y1; Unsafe.Add(ref y, 2) = y2; Unsafe.Add(ref y, 3) = y3;
    }

    /// <summary>Transformer.ForwardPosition for the 311p.</summary>
    [SkipLocalsInit]
    public static unsafe void ForwardPosition(float[] parameters, ParameterLayout layout, float[] posTable, Activations a, int t)
    {
        ref readonly var b = ref layout.Blocks[0];
        ref float p = ref MemoryMarshal.GetArrayDataReference(parameters);
        int row = t * D;

        // x0 = E[token] + P[t] (Layers.EmbeddingForward; a gather is the same loads)
        VF x0, x1, x2, x3;
        ref float pos = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(posTable), row);
        if (Avx2.IsSupported)
        {
            var index = V.LoadUnsafe(ref a.Tokens[0], (nuint)(t * W)) * V.Create(D) + V.Create(layout.TokenEmbedding);
            Vector256<int> lo = index.GetLower(), hi = index.GetUpper();
            fixed (float* pp = parameters)
            {
                x0 = Gather(pp, lo, hi) + V.Create(pos);
                x1 = Gather(pp + 1, lo, hi) + V.Create(Unsafe.Add(ref pos, 1));
                x2 = Gather(pp + 2, lo, hi) + V.Create(Unsafe.Add(ref pos, 2));
                x3 = Gather(pp + 3, lo, hi) + V.Create(Unsafe.Add(ref pos, 3));
            }
        }
        else
        {
            Span<VF> x = stackalloc VF[D];
            Layers.EmbeddingForward(parameters, layout.TokenEmbedding, a.Tokens.AsSpan(t * W, W), posTable.AsSpan(row, D), x);
            x0 = x[0]; x1 = x[1]; x2 = x[2]; x3 = x[3];
        }
        ref VF xIn = ref At(a.X, row);
        xIn = x0; Unsafe.Add(ref xIn, 1) = x1; Unsafe.Add(ref xIn, 2) = x2; Unsafe.Add(ref xIn, 3) = x3;

        RmsForward(ref p, b.Ln1.Weight, x0, x1, x2, x3, ref At(a.Ln1Hat, row), out a.Ln1Rstd[t], ref At(a.N1, row),
            out var n0, out var n1, out var n2, out var n3);

        // h = n·qkv_A; q = h·Bq; k = v = h·Bkv
        VF h0 = Mm4(ref p, b.QkvA, 0, n0, n1, n2, n3), h1 = Mm4(ref p, b.QkvA, 1, n0, n1, n2, n3), h2 = Mm4(ref p, b.QkvA, 2, n0, n1, n2, n3);
        ref VF hidden = ref At(a.QkvHidden, t * 3);
        hidden = h0; Unsafe.Add(ref hidden, 1) = h1; Unsafe.Add(ref hidden, 2) = h2;
        VF q0 = Mm3(ref p, b.Bq, D, 0, h0, h1, h2), q1 = Mm3(ref p, b.Bq, D, 1, h0, h1, h2),
           q2 = Mm3(ref p, b.Bq, D, 2, h0, h1, h2), q3 = Mm3(ref p, b.Bq, D, 3, h0, h1, h2);
        ref VF q = ref At(a.Q, row);
        q = q0; Unsafe.Add(ref q, 1) = q1; Unsafe.Add(ref q, 2) = q2; Unsafe.Add(ref q, 3) = q3;
        ref VF k = ref At(a.K, row);
        k = Mm3(ref p, b.Bkv, D, 0, h0, h1, h2); Unsafe.Add(ref k, 1) = Mm3(ref p, b.Bkv, D, 1, h0, h1, h2);
        Unsafe.Add(ref k, 2) = Mm3(ref p, b.Bkv, D, 2, h0, h1, h2); Unsafe.Add(ref k, 3) = Mm3(ref p, b.Bkv, D, 3, h0, h1, h2);

        // attention (Layers.HeadDim4Forward with values = keys)
        VF y0, y1, y2, y3;
        {
            var scale = V.Create(1f / MathF.Sqrt(D));
            VF s0 = q0 * scale, s1 = q1 * scale, s2 = q2 * scale, s3 = q3 * scale;
            ref VF keys = ref At(a.K, 0);
            ref VF att = ref At(a.Att, t * T);
            var max = V.Create(float.NegativeInfinity);
            for (int j = 0; j <= t; j++)
            {
                ref VF kj = ref Unsafe.Add(ref keys, j * D);
                var s = Fma(s3, Unsafe.Add(ref kj, 3), Fma(s2, Unsafe.Add(ref kj, 2), Fma(s1, Unsafe.Add(ref kj, 1), s0 * kj)));
                Unsafe.Add(ref att, j) = s;
                max = V.Max(max, s);
            }
            VF a0 = VF.Zero, a1 = VF.Zero, a2 = VF.Zero, a3 = VF.Zero, sum = VF.Zero;
            for (int j = 0; j <= t; j++)
            {
                ref VF e = ref Unsafe.Add(ref att, j);
                var ej = LaneMath.Exp(e - max);
                e = ej;
                sum += ej;
                ref VF vj = ref Unsafe.Add(ref keys, j * D);
                a0 = Fma(ej, vj, a0); a1 = Fma(ej, Unsafe.Add(ref vj, 1), a1);
                a2 = Fma(ej, Unsafe.Add(ref vj, 2), a2); a3 = Fma(ej, Unsafe.Add(ref vj, 3), a3);
            }
            var inv = V.Create(1f) / sum;
            y0 = a0 * inv; y1 = a1 * inv; y2 = a2 * inv; y3 = a3 * inv;
            for (int j = 0; j <= t; j++) Unsafe.Add(ref att, j) *= inv;
        }
        ref VF y = ref At(a.Y, row);
        y = y0; Unsafe.Add(ref y, 1) = y1; Unsafe.Add(ref y, 2) = y2; Unsafe.Add(ref y, 3) = y3;

        // x_mid = x_in + proj(y)
        VF g0 = Mm4(ref p, b.Proj.A, 0, y0, y1, y2, y3), g1 = Mm4(ref p, b.Proj.A, 1, y0, y1, y2, y3), g2 = Mm4(ref p, b.Proj.A, 2, y0, y1, y2, y3);
        ref VF projHidden = ref At(a.ProjHidden, t * 3);
        projHidden = g0; Unsafe.Add(ref projHidden, 1) = g1; Unsafe.Add(ref projHidden, 2) = g2;
        int pb = b.Proj.B;
        VF m0 = x0 + Mm3(ref p, pb, D, 0, g0, g1, g2), m1 = x1 + Mm3(ref p, pb, D, 1, g0, g1, g2),
           m2 = x2 + Mm3(ref p, pb, D, 2, g0, g1, g2), m3 = x3 + Mm3(ref p, pb, D, 3, g0, g1, g2);
        ref VF xMid = ref At(a.XMid, row);
        xMid = m0; Unsafe.Add(ref xMid, 1) = m1; Unsafe.Add(ref xMid, 2) = m2; Unsafe.Add(ref xMid, 3) = m3;

        // x_out = x_mid + fc2(gelu(fc1(ln2(x_mid))))
        RmsForward(ref p, b.Ln2.Weight, m0, m1, m2, m3, ref At(a.Ln2Hat, row), out a.Ln2Rstd[t], ref At(a.N2, row),
            out n0, out n1, out n2, out n3);
        int fa = b.Fc1.A;
        VF f0 = Mm4(ref p, fa, 0, n0, n1, n2, n3), f1 = Mm4(ref p, fa, 1, n0, n1, n2, n3), f2 = Mm4(ref p, fa, 2, n0, n1, n2, n3);
        ref VF fc1Hidden = ref At(a.Fc1Hidden, t * 3);
        fc1Hidden = f0; Unsafe.Add(ref fc1Hidden, 1) = f1; Unsafe.Add(ref fc1Hidden, 2) = f2;
        ref VF u = ref At(a.U, t * F);
        ref VF g = ref At(a.G, t * F);
        int fb = b.Fc1.B, ga = b.Fc2.A;
        // fc2.A's sums run over the 8 GELU outputs in order; each output of fc1.B feeds all three at once
        VF c0 = VF.Zero, c1 = VF.Zero, c2 = VF.Zero;
        for (int i = 0; i < F; i++)
        {
            var ui = Mm3(ref p, fb, F, i, f0, f1, f2);
            Unsafe.Add(ref u, i) = ui;
            var gi = LaneMath.Gelu(ui);
            Unsafe.Add(ref g, i) = gi;
            c0 = Fma(gi, Pb(ref p, ga + i * 3), c0);
            c1 = Fma(gi, Pb(ref p, ga + i * 3 + 1), c1);
            c2 = Fma(gi, Pb(ref p, ga + i * 3 + 2), c2);
        }
        ref VF fc2Hidden = ref At(a.Fc2Hidden, t * 3);
        fc2Hidden = c0; Unsafe.Add(ref fc2Hidden, 1) = c1; Unsafe.Add(ref fc2Hidden, 2) = c2;
        int gb = b.Fc2.B;
        VF o0 = m0 + Mm3(ref p, gb, D, 0, c0, c1, c2), o1 = m1 + Mm3(ref p, gb, D, 1, c0, c1, c2),
           o2 = m2 + Mm3(ref p, gb, D, 2, c0, c1, c2), o3 = m3 + Mm3(ref p, gb, D, 3, c0, c1, c2);
        ref VF xOut = ref At(a.X, T * D + row);
        xOut = o0; Unsafe.Add(ref xOut, 1) = o1; Unsafe.Add(ref xOut, 2) = o2; Unsafe.Add(ref xOut, 3) = o3;

        RmsForward(ref p, layout.LnF.Weight, o0, o1, o2, o3, ref At(a.LnFHat, row), out a.LnFRstd[t], ref At(a.Z, row),
            out _, out _, out _, out _);
    }

    /// <summary>Layers.NormBackward for RMSNorm of width 4: adds the weight's gradient into grad and dL/dx into
    /// dx0..dx3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void RmsBackward(ref float p, int weight, ref VF hat, VF rstd, VF dy0, VF dy1, VF dy2, VF dy3, ref VF grad,
        ref VF dx0, ref VF dx1, ref VF dx2, ref VF dx3)
    {
        VF h0 = hat, h1 = Unsafe.Add(ref hat, 1), h2 = Unsafe.Add(ref hat, 2), h3 = Unsafe.Add(ref hat, 3);
        ref VF gw = ref Unsafe.Add(ref grad, weight);
        gw = Fma(dy0, h0, gw);
        Unsafe.Add(ref gw, 1) = Fma(dy1, h1, Unsafe.Add(ref gw, 1));
        Unsafe.Add(ref gw, 2) = Fma(dy2, h2, Unsafe.Add(ref gw, 2));
        Unsafe.Add(ref gw, 3) = Fma(dy3, h3, Unsafe.Add(ref gw, 3));
        VF d0 = dy0 * Pb(ref p, weight), d1 = dy1 * Pb(ref p, weight + 1), d2 = dy2 * Pb(ref p, weight + 2), d3 = dy3 * Pb(ref p, weight + 3);
        var m = Fma(d3, h3, Fma(d2, h2, Fma(d1, h1, Fma(d0, h0, VF.Zero))));
        m *= V.Create(1f / D);
        // the generic code subtracts a zero centring term for RMSNorm; kept so the operations match
        dx0 += rstd * (d0 - VF.Zero - h0 * m);
        dx1 += rstd * (d1 - VF.Zero - h1 * m);
        dx2 += rstd * (d2 - VF.Zero - h2 * m);
        dx3 += rstd * (d3 - VF.Zero - h3 * m);
    }

    /// <summary>Layers.MatMulBackward for M 3×4 (Bq, Bkv, proj.B, fc2.B): adds x·dy into grad and dy·Mᵀ into
    /// dx0..dx2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Mm3Backward(ref float p, int m, VF x0, VF x1, VF x2, VF dy0, VF dy1, VF dy2, VF dy3, ref VF grad,
        ref VF dx0, ref VF dx1, ref VF dx2)
    {
        dx0 = Row3Backward(ref p, m, x0, dy0, dy1, dy2, dy3, ref grad, dx0);
        dx1 = Row3Backward(ref p, m + 4, x1, dy0, dy1, dy2, dy3, ref grad, dx1);
        dx2 = Row3Backward(ref p, m + 8, x2, dy0, dy1, dy2, dy3, ref grad, dx2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF Row3Backward(ref float p, int row, VF x, VF dy0, VF dy1, VF dy2, VF dy3, ref VF grad, VF acc)
    {
        ref VF g = ref Unsafe.Add(ref grad, row);
        g = Fma(x, dy0, g);
        Unsafe.Add(ref g, 1) = Fma(x, dy1, Unsafe.Add(ref g, 1));
        Unsafe.Add(ref g, 2) = Fma(x, dy2, Unsafe.Add(ref g, 2));
        Unsafe.Add(ref g, 3) = Fma(x, dy3, Unsafe.Add(ref g, 3));
        acc = Fma(dy0, Pb(ref p, row), acc);
        acc = Fma(dy1, Pb(ref p, row + 1), acc);
        acc = Fma(dy2, Pb(ref p, row + 2), acc);
        return Fma(dy3, Pb(ref p, row + 3), acc);
    }

    /// <summary>Layers.MatMulBackward for M 4×3 (qkv_A, proj.A, fc1.A) with dx starting at zero: adds x·dy into
    /// grad; returns row i's dy·M[i]ᵀ.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF Row4Backward(ref float p, int row, VF x, VF dy0, VF dy1, VF dy2, ref VF grad)
    {
        ref VF g = ref Unsafe.Add(ref grad, row);
        g = Fma(x, dy0, g);
        Unsafe.Add(ref g, 1) = Fma(x, dy1, Unsafe.Add(ref g, 1));
        Unsafe.Add(ref g, 2) = Fma(x, dy2, Unsafe.Add(ref g, 2));
        var acc = Fma(dy0, Pb(ref p, row), VF.Zero);
        acc = Fma(dy1, Pb(ref p, row + 1), acc);
        return Fma(dy2, Pb(ref p, row + 2), acc);
    }

    /// <summary>Transformer.Backward for the 311p.</summary>
    [SkipLocalsInit]
    public static void Backward(float[] parameters, ParameterLayout layout, Activations a, Transformer.Gradients gr, VF weight)
    {
        ref readonly var b = ref layout.Blocks[0];
        ref float p = ref MemoryMarshal.GetArrayDataReference(parameters);
        ref VF grad = ref At(gr.Grad, 0);
        Array.Clear(gr.DKeys);   // DValues is the same array (K and V tied)
        ref VF dKeys = ref At(gr.DKeys, 0);
        ref VF keys = ref At(a.K, 0);
        ref VF dp = ref At(gr.Scratch, 0);                      // attention's dL/dp, T vectors
        var logits = gr.Scratch.AsSpan(8 * gr.Width, Tokens.VocabSize);
        ref VF logit = ref logits[0];
        Span<float> embedRows = stackalloc float[D * W];
        int E = layout.TokenEmbedding, ga = b.Fc2.A, gb = b.Fc2.B, fa = b.Fc1.A, fb = b.Fc1.B;
        var scale = V.Create(1f / MathF.Sqrt(D));

        for (int t = Tokens.InputLength - 1; t >= 0; t--)
        {
            int row = t * D;
            VF r0 = VF.Zero, r1 = VF.Zero, r2 = VF.Zero, r3 = VF.Zero;   // dRes
            if (t >= Tokens.FirstScoredPosition)
            {
                ref VF z = ref At(a.Z, row);
                VF z0 = z, z1 = Unsafe.Add(ref z, 1), z2 = Unsafe.Add(ref z, 2), z3 = Unsafe.Add(ref z, 3);
                for (int v = 0; v < Tokens.VocabSize; v++)
                {
                    int e = E + v * D;
                    Unsafe.Add(ref logit, v) = Fma(z3, Pb(ref p, e + 3), Fma(z2, Pb(ref p, e + 2), Fma(z1, Pb(ref p, e + 1), Fma(z0, Pb(ref p, e), VF.Zero))));
                }
                var labels = V.ConvertToSingle(V.LoadUnsafe(ref a.Tokens[0], (nuint)((t + 1) * W)));
                gr.Loss = Fma(Layers.CrossEntropyForwardBackward(logits, labels, weight), weight, gr.Loss);
                VF dz0 = VF.Zero, dz1 = VF.Zero, dz2 = VF.Zero, dz3 = VF.Zero;
                for (int v = 0; v < Tokens.VocabSize; v++)
                {
                    int e = E + v * D;
                    var dl = Unsafe.Add(ref logit, v);
                    ref VF g = ref Unsafe.Add(ref grad, e);
                    g = Fma(dl, z0, g);
                    Unsafe.Add(ref g, 1) = Fma(dl, z1, Unsafe.Add(ref g, 1));
                    Unsafe.Add(ref g, 2) = Fma(dl, z2, Unsafe.Add(ref g, 2));
                    Unsafe.Add(ref g, 3) = Fma(dl, z3, Unsafe.Add(ref g, 3));
                    dz0 = Fma(dl, Pb(ref p, e), dz0); dz1 = Fma(dl, Pb(ref p, e + 1), dz1);
                    dz2 = Fma(dl, Pb(ref p, e + 2), dz2); dz3 = Fma(dl, Pb(ref p, e + 3), dz3);
                }
                RmsBackward(ref p, layout.LnF.Weight, ref At(a.LnFHat, row), a.LnFRstd[t], dz0, dz1, dz2, dz3, ref grad,
                    ref r0, ref r1, ref r2, ref r3);
            }

            // MLP: x_out = x_mid + fc2(gelu(fc1(ln2(x_mid))))
            ref VF c = ref At(a.Fc2Hidden, t * 3);
            VF e0 = VF.Zero, e1 = VF.Zero, e2 = VF.Zero;             // dL/d fc2 hidden
            Mm3Backward(ref p, gb, c, Unsafe.Add(ref c, 1), Unsafe.Add(ref c, 2), r0, r1, r2, r3, ref grad, ref e0, ref e1, ref e2);
            ref VF f = ref At(a.Fc1Hidden, t * 3);
            VF f0 = f, f1 = Unsafe.Add(ref f, 1), f2 = Unsafe.Add(ref f, 2);
            ref VF gelu = ref At(a.G, t * F);
            ref VF u = ref At(a.U, t * F);
            // row i of fc2.A's backward gives dG_i, which feeds fc1.B's backward sums (over i, in order) at once
            VF k0 = VF.Zero, k1 = VF.Zero, k2 = VF.Zero;             // dL/d fc1 hidden
            for (int i = 0; i < F; i++)
            {
                var dG = Row4Backward(ref p, ga + i * 3, Unsafe.Add(ref gelu, i), e0, e1, e2, ref grad);
                dG *= LaneMath.GeluGrad(Unsafe.Add(ref u, i));
                ref VF g = ref Unsafe.Add(ref grad, fb + i);
                g = Fma(f0, dG, g);
                Unsafe.Add(ref g, F) = Fma(f1, dG, Unsafe.Add(ref g, F));
                Unsafe.Add(ref g, 2 * F) = Fma(f2, dG, Unsafe.Add(ref g, 2 * F));
                k0 = Fma(dG, Pb(ref p, fb + i), k0);
                k1 = Fma(dG, Pb(ref p, fb + F + i), k1);
                k2 = Fma(dG, Pb(ref p, fb + 2 * F + i), k2);
            }
            ref VF n2 = ref At(a.N2, row);
            VF dn0 = Row4Backward(ref p, fa, n2, k0, k1, k2, ref grad), dn1 = Row4Backward(ref p, fa + 3, Unsafe.Add(ref n2, 1), k0, k1, k2, ref grad),
               dn2 = Row4Backward(ref p, fa + 6, Unsafe.Add(ref n2, 2), k0, k1, k2, ref grad), dn3 = Row4Backward(ref p, fa + 9, Unsafe.Add(ref n2, 3), k0, k1, k2, ref grad);
            // dRes becomes dL/dx_mid
            RmsBackward(ref p, b.Ln2.Weight, ref At(a.Ln2Hat, row), a.Ln2Rstd[t], dn0, dn1, dn2, dn3, ref grad, ref r0, ref r1, ref r2, ref r3);

            // attention: x_mid = x_in + proj(attn(q, k, v))
            ref VF ph = ref At(a.ProjHidden, t * 3);
            VF j0 = VF.Zero, j1 = VF.Zero, j2 = VF.Zero;
            Mm3Backward(ref p, b.Proj.B, ph, Unsafe.Add(ref ph, 1), Unsafe.Add(ref ph, 2), r0, r1, r2, r3, ref grad, ref j0, ref j1, ref j2);
            ref VF y = ref At(a.Y, row);
            int pa = b.Proj.A;
            VF dy0 = Row4Backward(ref p, pa, y, j0, j1, j2, ref grad), dy1 = Row4Backward(ref p, pa + 3, Unsafe.Add(ref y, 1), j0, j1, j2, ref grad),
               dy2 = Row4Backward(ref p, pa + 6, Unsafe.Add(ref y, 2), j0, j1, j2, ref grad), dy3 = Row4Backward(ref p, pa + 9, Unsafe.Add(ref y, 3), j0, j1, j2, ref grad);

            // Layers.HeadDim4Backward with values = keys and dValues = dKeys
            ref VF q = ref At(a.Q, row);
            VF q0 = q, q1 = Unsafe.Add(ref q, 1), q2 = Unsafe.Add(ref q, 2), q3 = Unsafe.Add(ref q, 3);
            VF dq0 = VF.Zero, dq1 = VF.Zero, dq2 = VF.Zero, dq3 = VF.Zero;
            {
                ref VF att = ref At(a.Att, t * T);
                var dot = VF.Zero;
                for (int j = 0; j <= t; j++)
                {
                    ref VF v = ref Unsafe.Add(ref keys, j * D);
                    var acc = Fma(dy3, Unsafe.Add(ref v, 3), Fma(dy2, Unsafe.Add(ref v, 2), Fma(dy1, Unsafe.Add(ref v, 1), dy0 * v)));
                    Unsafe.Add(ref dp, j) = acc;
                    dot = Fma(Unsafe.Add(ref att, j), acc, dot);
                }
                for (int j = 0; j <= t; j++)
                {
                    var pj = Unsafe.Add(ref att, j);
                    var ds = pj * (Unsafe.Add(ref dp, j) - dot) * scale;
                    ref VF k = ref Unsafe.Add(ref keys, j * D);
                    dq0 = Fma(ds, k, dq0); dq1 = Fma(ds, Unsafe.Add(ref k, 1), dq1);
                    dq2 = Fma(ds, Unsafe.Add(ref k, 2), dq2); dq3 = Fma(ds, Unsafe.Add(ref k, 3), dq3);
                    // the value gradient, then the key gradient, into the one tied row
                    ref VF dk = ref Unsafe.Add(ref dKeys, j * D);
                    dk = Fma(ds, q0, Fma(pj, dy0, dk));
                    Unsafe.Add(ref dk, 1) = Fma(ds, q1, Fma(pj, dy1, Unsafe.Add(ref dk, 1)));
                    Unsafe.Add(ref dk, 2) = Fma(ds, q2, Fma(pj, dy2, Unsafe.Add(ref dk, 2)));
                    Unsafe.Add(ref dk, 3) = Fma(ds, q3, Fma(pj, dy3, Unsafe.Add(ref dk, 3)));
                }
            }

            // h = n·qkv_A, q = h·Bq, k = v = h·Bkv at position t: its dK is complete now (later positions ran first)
            ref VF h = ref At(a.QkvHidden, t * 3);
            VF h0 = h, h1 = Unsafe.Add(ref h, 1), h2 = Unsafe.Add(ref h, 2);
            VF dh0 = VF.Zero, dh1 = VF.Zero, dh2 = VF.Zero;
            Mm3Backward(ref p, b.Bq, h0, h1, h2, dq0, dq1, dq2, dq3, ref grad, ref dh0, ref dh1, ref dh2);
            ref VF dkt = ref Unsafe.Add(ref dKeys, row);
            Mm3Backward(ref p, b.Bkv, h0, h1, h2, dkt, Unsafe.Add(ref dkt, 1), Unsafe.Add(ref dkt, 2), Unsafe.Add(ref dkt, 3), ref grad,
                ref dh0, ref dh1, ref dh2);
            ref VF n1 = ref At(a.N1, row);
            int qa = b.QkvA;
            dn0 = Row4Backward(ref p, qa, n1, dh0, dh1, dh2, ref grad); dn1 = Row4Backward(ref p, qa + 3, Unsafe.Add(ref n1, 1), dh0, dh1, dh2, ref grad);
            dn2 = Row4Backward(ref p, qa + 6, Unsafe.Add(ref n1, 2), dh0, dh1, dh2, ref grad); dn3 = Row4Backward(ref p, qa + 9, Unsafe.Add(ref n1, 3), dh0, dh1, dh2, ref grad);
            // dRes becomes dL/dx_in
            RmsBackward(ref p, b.Ln1.Weight, ref At(a.Ln1Hat, row), a.Ln1Rstd[t], dn0, dn1, dn2, dn3, ref grad, ref r0, ref r1, ref r2, ref r3);

            // Layers.EmbeddingBackward: the position row per lane, each lane's row of the embedding by its token
            ref VF dPos = ref At(gr.DPos, row);
            dPos += r0; Unsafe.Add(ref dPos, 1) += r1; Unsafe.Add(ref dPos, 2) += r2; Unsafe.Add(ref dPos, 3) += r3;
            ref float rows = ref MemoryMarshal.GetReference(embedRows);
            V.StoreUnsafe(r0, ref rows); V.StoreUnsafe(r1, ref rows, W); V.StoreUnsafe(r2, ref rows, 2 * W); V.StoreUnsafe(r3, ref rows, 3 * W);
            var tokens = a.Tokens.AsSpan(t * W, W);
            var dEmbed = gr.DEmbed;
            for (int lane = 0; lane < W; lane++)
            {
                // per (token, i) the lanes still add in lane order, as in the generic i-then-lane loop
                ref float dst = ref dEmbed[tokens[lane] * D];
                dst += embedRows[lane];
                Unsafe.Add(ref dst, 1) += embedRows[W + lane];
                Unsafe.Add(ref dst, 2) += embedRows[2 * W + lane];
                Unsafe.Add(ref dst, 3) += embedRows[3 * W + lane];
            }
        }
    }
}
