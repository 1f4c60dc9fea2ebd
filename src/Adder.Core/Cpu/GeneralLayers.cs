namespace Adder.Core.Cpu;

/// <summary>The generic block's layers, one forward and one backward each, on one position of one sequence in
/// double precision. Matrices are the roles' effective matrices, row-major out × in, applied as y = W·x;
/// backward functions add into their gradient arguments.</summary>
public static class GeneralLayers
{
    // ---- y = W·x ----

    public static void MatVec(ReadOnlySpan<double> w, ReadOnlySpan<double> x, Span<double> y)
    {
        int n = x.Length;
        for (int o = 0; o < y.Length; o++)
        {
            double s = 0;
            var row = w.Slice(o * n, n);
            for (int i = 0; i < n; i++) s += row[i] * x[i];
            y[o] = s;
        }
    }

    /// <summary>dW += dy·xᵀ; dx += Wᵀ·dy.</summary>
    public static void MatVecBackward(ReadOnlySpan<double> w, ReadOnlySpan<double> x, ReadOnlySpan<double> dy, Span<double> dw, Span<double> dx)
    {
        int n = x.Length;
        for (int o = 0; o < dy.Length; o++)
        {
            double g = dy[o];
            if (g == 0) continue;
            var row = w.Slice(o * n, n);
            var drow = dw.Slice(o * n, n);
            for (int i = 0; i < n; i++) { drow[i] += g * x[i]; dx[i] += g * row[i]; }
        }
    }

    // ---- RMSNorm: y = x / sqrt(mean(x²) + eps) ⊙ w; returns 1 / sqrt(mean(x²) + eps) ----

    public static double RmsNorm(ReadOnlySpan<double> x, ReadOnlySpan<double> w, double eps, Span<double> y)
    {
        double ss = 0;
        for (int i = 0; i < x.Length; i++) ss += x[i] * x[i];
        double r = 1.0 / Math.Sqrt(ss / x.Length + eps);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * r * w[i];
        return r;
    }

    /// <summary>dw += dy ⊙ x·r; dx += r·(w ⊙ dy) − r³/n · x · Σ x ⊙ w ⊙ dy.</summary>
    public static void RmsNormBackward(ReadOnlySpan<double> x, ReadOnlySpan<double> w, double r, ReadOnlySpan<double> dy, Span<double> dw, Span<double> dx)
    {
        int n = x.Length;
        double dot = 0;
        for (int i = 0; i < n; i++) { dw[i] += dy[i] * x[i] * r; dot += x[i] * w[i] * dy[i]; }
        double k = r * r * r * dot / n;
        for (int i = 0; i < n; i++) dx[i] += r * w[i] * dy[i] - k * x[i];
    }

    // ---- RoPE at position t: pair i of (x[2i], x[2i+1]) rotated by t·θ^(−2i/n) ----

    /// <summary>cos and sin of every position's pair angles, [position][pair][2]: what Rope reads.</summary>
    public static double[] RopeTable(int positions, int n, double theta)
    {
        var table = new double[positions * n];
        for (int t = 0; t < positions; t++)
            for (int i = 0; i < n / 2; i++)
            {
                // frequencies, angles, cos and sin in float32, as PyTorch rotary tables hold them (the 62p and 36p
                // goldens match to 1e-9 this way, to 1e-7 with them in double)
                double frequency = (float)(1.0 / Math.Pow(theta, 2.0 * i / n));
                float angle = (float)(t * frequency);
                table[(t * n / 2 + i) * 2] = MathF.Cos(angle);
                table[(t * n / 2 + i) * 2 + 1] = MathF.Sin(angle);
            }
        return table;
    }

    /// <summary>Rotates x's pairs by position t's angles (inverse: the transpose, for the backward).</summary>
    public static void Rope(Span<double> x, int t, ReadOnlySpan<double> table, bool inverse = false)
    {
        int n = x.Length;
        for (int i = 0; i < n / 2; i++)
        {
            double c = table[(t * n / 2 + i) * 2], s = table[(t * n / 2 + i) * 2 + 1] * (inverse ? -1 : 1);
            double a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * c - b * s;
            x[2 * i + 1] = a * s + b * c;
        }
    }

    // ---- causal attention of query t over keys 0..t: p = softmax(scale·q·k_j), o = Σ p_j v_j ----

    public static void Attention(ReadOnlySpan<double> q, ReadOnlySpan<double> keys, ReadOnlySpan<double> values, int t, double scale,
                                 Span<double> p, Span<double> o)
    {
        int dq = q.Length, dv = o.Length;
        double max = double.NegativeInfinity;
        for (int j = 0; j <= t; j++)
        {
            double s = 0;
            var k = keys.Slice(j * dq, dq);
            for (int i = 0; i < dq; i++) s += q[i] * k[i];
            p[j] = s * scale;
            if (p[j] > max) max = p[j];
        }
        double sum = 0;
        for (int j = 0; j <= t; j++) { p[j] = Math.Exp(p[j] - max); sum += p[j]; }
        o.Clear();
        for (int j = 0; j <= t; j++)
        {
            p[j] /= sum;
            var v = values.Slice(j * dv, dv);
            for (int i = 0; i < dv; i++) o[i] += p[j] * v[i];
        }
    }

    /// <summary>Query t's share of the attention backward: dq, and dk_j, dv_j for j ≤ t.</summary>
    public static void AttentionBackward(ReadOnlySpan<double> q, ReadOnlySpan<double> keys, ReadOnlySpan<double> values, int t, double scale,
                                         ReadOnlySpan<double> p, ReadOnlySpan<double> dO, Span<double> dq, Span<double> dKeys, Span<double> dValues)
    {
        int nq = q.Length, dv = dO.Length;
        Span<double> dp = stackalloc double[t + 1];
        double dot = 0;
        for (int j = 0; j <= t; j++)
        {
            double s = 0;
            var v = values.Slice(j * dv, dv);
            var dvj = dValues.Slice(j * dv, dv);
            for (int i = 0; i < dv; i++) { s += dO[i] * v[i]; dvj[i] += p[j] * dO[i]; }
            dp[j] = s;
            dot += p[j] * s;
        }
        for (int j = 0; j <= t; j++)
        {
            double ds = p[j] * (dp[j] - dot) * scale;
            if (ds == 0) continue;
            var k = keys.Slice(j * nq, nq);
            var dk = dKeys.Slice(j * nq, nq);
            for (int i = 0; i < nq; i++) { dq[i] += ds * k[i]; dk[i] += ds * q[i]; }
        }
    }

    // ---- activations ----

    public static double Gelu(double u) => 0.5 * u * (1 + Erf(u / Math.Sqrt(2)));
    public static double GeluGrad(double u) => 0.5 * (1 + Erf(u / Math.Sqrt(2))) + u * Math.Exp(-0.5 * u * u) / Math.Sqrt(2 * Math.PI);
    public static double Silu(double u) => u / (1 + Math.Exp(-u));
    public static double SiluGrad(double u) { double s = 1 / (1 + Math.Exp(-u)); return s * (1 + u * (1 - s)); }

    /// <summary>erf to double precision (W. J. Cody's rational approximations, as in most libms).</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax < 0.5)
        {
            double t = x * x;
            double num = (((0.185777706184603153 * t + 3.16112374387056560) * t + 113.864154151050156) * t + 377.485237685302021) * t + 3209.37758913846947;
            double den = (((t + 23.6012909523441209) * t + 244.024637934444173) * t + 1282.61652607737228) * t + 2844.23683343917062;
            return x * num / den;
        }
        double erfc;
        if (ax < 4)
        {
            double num = (((((((2.15311535474403846e-8 * ax + 0.564188496988670089) * ax + 8.88314979438837594) * ax + 66.1191906371416295) * ax
                         + 298.635138197400131) * ax + 881.952221241769090) * ax + 1712.04761263407058) * ax + 2051.07837782607147) * ax + 1230.33935479799725;
            double den = (((((((ax + 15.7449261107098347) * ax + 117.693950891312499) * ax + 537.181101862009858) * ax + 1621.38957456669019) * ax
                         + 3290.79923573345963) * ax + 4362.61909014324716) * ax + 3439.36767414372164) * ax + 1230.33935480374942;
            erfc = Math.Exp(-ax * ax) * num / den;
        }
        else
        {
            double z = 1 / (ax * ax);
            double num = ((((0.0163153871373020978 * z + 0.305326634961232344) * z + 0.360344899949804439) * z + 0.125781726111229246) * z + 0.0160837851487422766) * z + 6.58749161529837803e-4;
            double den = ((((z + 2.56852019228982242) * z + 1.87295284992346725) * z + 0.527905102951428412) * z + 0.0605183413124413191) * z + 0.00233520497626869185;
            erfc = Math.Exp(-ax * ax) / ax * (0.564189583547756287 - z * num / den);
        }
        return x < 0 ? erfc - 1 : 1 - erfc;
    }

    // ---- loss: cross-entropy of logits against a target; writes dlogits = scale·(softmax − onehot) ----

    public static double CrossEntropy(ReadOnlySpan<double> logits, int target, double scale, Span<double> dlogits)
    {
        double max = double.NegativeInfinity;
        foreach (var l in logits) if (l > max) max = l;
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += Math.Exp(logits[i] - max);
        for (int i = 0; i < logits.Length; i++) dlogits[i] = scale * (Math.Exp(logits[i] - max) / sum - (i == target ? 1 : 0));
        return Math.Log(sum) + max - logits[target];
    }
}
