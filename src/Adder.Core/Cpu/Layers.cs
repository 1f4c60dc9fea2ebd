namespace Adder.Core.Cpu;

/// <summary>One forward and one backward function per layer, on lane vectors (one sequence per lane).
/// Parameters are scalars broadcast to all lanes; parameter gradients accumulate per lane into
/// <c>grad</c> (indexed like the flat parameter buffer) and are summed across lanes once per batch.</summary>
public static class Layers
{
    const int W = LaneMath.Width;

    // ---- position embedding P = pos_emb.A · pos_emb.B (or pos_emb.weight), [max_seq_len][d_model] ----
    // The same for every lane, so it runs once per batch on scalars; its gradient dP arrives summed over lanes.

    public static void PositionForward(float[] p, in LinearView pos, Span<float> table)
    {
        int d = pos.Out;
        for (int t = 0; t < pos.In; t++)
            for (int i = 0; i < d; i++)
            {
                if (!pos.LowRank) { table[t * d + i] = p[pos.W + t * d + i]; continue; }
                float acc = 0;
                for (int j = 0; j < pos.Rank; j++) acc += p[pos.A + t * pos.Rank + j] * p[pos.B + j * d + i];
                table[t * d + i] = acc;
            }
    }

    /// <summary>Adds the gradients of pos_emb's tensors into grad: dA = dP·Bᵀ, dB = Aᵀ·dP (or dW = dP).</summary>
    public static void PositionBackward(float[] p, in LinearView pos, ReadOnlySpan<float> dTable, Span<float> grad)
    {
        int d = pos.Out;
        for (int t = 0; t < pos.In; t++)
            for (int i = 0; i < d; i++)
            {
                float g = dTable[t * d + i];
                if (!pos.LowRank) { grad[pos.W + t * d + i] += g; continue; }
                for (int j = 0; j < pos.Rank; j++)
                {
                    grad[pos.A + t * pos.Rank + j] += g * p[pos.B + j * d + i];
                    grad[pos.B + j * d + i] += g * p[pos.A + t * pos.Rank + j];
                }
            }
    }

    // ---- embedding x0 = E[token] + P[t] (one position of 16 sequences) ----

    public static void EmbeddingForward(float[] p, int embedding, ReadOnlySpan<int> tokens, ReadOnlySpan<float> posRow, Span<VF> x0)
    {
        Span<float> gathered = stackalloc float[W];
        int d = x0.Length;
        for (int i = 0; i < d; i++)
        {
            for (int lane = 0; lane < W; lane++) gathered[lane] = p[embedding + tokens[lane] * d + i];
            x0[i] = V.Create<float>(gathered) + V.Create(posRow[i]);
        }
    }

    /// <summary>Adds dx0 into the position table's gradient row (per lane, summed once per batch) and scatters
    /// each lane's dx0 into its token's row of the embedding gradient.</summary>
    public static void EmbeddingBackward(ReadOnlySpan<int> tokens, ReadOnlySpan<VF> dx0, Span<VF> dPosRow, Span<float> dEmbed)
    {
        int d = dx0.Length;
        for (int i = 0; i < d; i++)
        {
            dPosRow[i] += dx0[i];
            for (int lane = 0; lane < W; lane++) dEmbed[tokens[lane] * d + i] += dx0[i][lane];
        }
    }

    // ---- matrix product y = x·M, M stored in×out row-major (low-rank factors, shared qkv_A) ----

    public static void MatMulForward(float[] p, int m, int inDim, int outDim, ReadOnlySpan<VF> x, Span<VF> y)
    {
        for (int o = 0; o < outDim; o++)
        {
            var acc = VF.Zero;
            for (int i = 0; i < inDim; i++) acc = LaneMath.Fma(x[i], p[m + i * outDim + o], acc);
            y[o] = acc;
        }
    }

    /// <summary>Adds dL/dx into dx and dL/dM into grad.</summary>
    public static void MatMulBackward(float[] p, int m, int inDim, int outDim, ReadOnlySpan<VF> x, ReadOnlySpan<VF> dy,
        Span<VF> dx, Span<VF> grad)
    {
        for (int i = 0; i < inDim; i++)
        {
            var acc = dx[i];
            int row = m + i * outDim;
            for (int o = 0; o < outDim; o++)
            {
                grad[row + o] = LaneMath.Fma(x[i], dy[o], grad[row + o]);
                acc = LaneMath.Fma(dy[o], p[row + o], acc);
            }
            dx[i] = acc;
        }
    }

    // ---- linear: y = x·A·B (low rank) or y = x·Wᵀ (full, W stored out×in) ----

    public static void LinearForward(float[] p, in LinearView lin, ReadOnlySpan<VF> x, Span<VF> hidden, Span<VF> y)
    {
        if (lin.LowRank)
        {
            MatMulForward(p, lin.A, lin.In, lin.Rank, x, hidden);
            MatMulForward(p, lin.B, lin.Rank, lin.Out, hidden, y);
            return;
        }
        for (int o = 0; o < lin.Out; o++)
        {
            var acc = VF.Zero;
            int row = lin.W + o * lin.In;
            for (int i = 0; i < lin.In; i++) acc = LaneMath.Fma(x[i], p[row + i], acc);
            y[o] = acc;
        }
    }

    /// <summary>Adds dL/dx into dx and the parameter gradients into grad. scratch holds at least Rank vectors.</summary>
    public static void LinearBackward(float[] p, in LinearView lin, ReadOnlySpan<VF> x, ReadOnlySpan<VF> hidden,
        ReadOnlySpan<VF> dy, Span<VF> scratch, Span<VF> dx, Span<VF> grad)
    {
        if (lin.LowRank)
        {
            var dHidden = scratch[..lin.Rank];
            dHidden.Clear();
            MatMulBackward(p, lin.B, lin.Rank, lin.Out, hidden, dy, dHidden, grad);
            MatMulBackward(p, lin.A, lin.In, lin.Rank, x, dHidden, dx, grad);
            return;
        }
        for (int o = 0; o < lin.Out; o++)
        {
            int row = lin.W + o * lin.In;
            var g = dy[o];
            for (int i = 0; i < lin.In; i++)
            {
                grad[row + i] = LaneMath.Fma(g, x[i], grad[row + i]);
                dx[i] = LaneMath.Fma(g, p[row + i], dx[i]);
            }
        }
    }

    // ---- RMSNorm (weight) or LayerNorm (weight, bias) ----

    public static void NormForward(float[] p, in NormView norm, ReadOnlySpan<VF> x, Span<VF> hat, out VF rstd, Span<VF> y)
    {
        int d = x.Length;
        var invD = V.Create(1f / d);
        if (norm.Bias < 0)
        {
            var ss = VF.Zero;
            for (int i = 0; i < d; i++) ss = LaneMath.Fma(x[i], x[i], ss);
            rstd = V.Create(1f) / V.Sqrt(ss * invD + V.Create(ModelConfig.RmsNormEps));
            for (int i = 0; i < d; i++) { hat[i] = x[i] * rstd; y[i] = hat[i] * V.Create(p[norm.Weight + i]); }
        }
        else
        {
            var sum = VF.Zero;
            for (int i = 0; i < d; i++) sum += x[i];
            var mean = sum * invD;
            var ss = VF.Zero;
            for (int i = 0; i < d; i++) { var c = x[i] - mean; ss = LaneMath.Fma(c, c, ss); }
            rstd = V.Create(1f) / V.Sqrt(ss * invD + V.Create(ModelConfig.LayerNormEps));
            for (int i = 0; i < d; i++)
            {
                hat[i] = (x[i] - mean) * rstd;
                y[i] = LaneMath.Fma(hat[i], p[norm.Weight + i], V.Create(p[norm.Bias + i]));
            }
        }
    }

    /// <summary>Adds dL/dx into dx. scratch holds at least d vectors.</summary>
    public static void NormBackward(float[] p, in NormView norm, ReadOnlySpan<VF> hat, VF rstd, ReadOnlySpan<VF> dy,
        Span<VF> scratch, Span<VF> dx, Span<VF> grad)
    {
        int d = hat.Length;
        var dHat = scratch[..d];
        var meanDHatHat = VF.Zero;
        var meanDHat = VF.Zero;
        for (int i = 0; i < d; i++)
        {
            grad[norm.Weight + i] = LaneMath.Fma(dy[i], hat[i], grad[norm.Weight + i]);
            if (norm.Bias >= 0) grad[norm.Bias + i] += dy[i];
            dHat[i] = dy[i] * V.Create(p[norm.Weight + i]);
            meanDHatHat = LaneMath.Fma(dHat[i], hat[i], meanDHatHat);
            meanDHat += dHat[i];
        }
        var invD = V.Create(1f / d);
        meanDHatHat *= invD;
        meanDHat = norm.Bias >= 0 ? meanDHat * invD : VF.Zero;   // RMSNorm has no centring term
        for (int i = 0; i < d; i++)
            dx[i] += rstd * (dHat[i] - meanDHat - hat[i] * meanDHatHat);
    }

    // ---- causal self-attention for one query position t (keys and values of positions 0..t) ----

    /// <summary>q: this position's queries [D]; keys, values: [T][D] of this layer; att: [H][T][T] of this layer;
    /// y: output [D].</summary>
    public static void AttentionForward(int t, int heads, int headDim, ReadOnlySpan<VF> q, ReadOnlySpan<VF> keys,
        ReadOnlySpan<VF> values, Span<VF> att, int T, Span<VF> y)
    {
        int d = heads * headDim;
        var scale = V.Create(1f / MathF.Sqrt(headDim));
        for (int h = 0; h < heads; h++)
        {
            var row = att.Slice((h * T + t) * T, t + 1);
            int c0 = h * headDim;
            var yh = y.Slice(c0, headDim);
            if (headDim == 4) { HeadDim4Forward(q.Slice(c0, 4), keys[c0..], values[c0..], d, scale, row, yh); continue; }
            var max = V.Create(float.NegativeInfinity);
            for (int j = 0; j <= t; j++)
            {
                var s = VF.Zero;
                for (int c = 0; c < headDim; c++) s = LaneMath.Fma(q[c0 + c], keys[j * d + c0 + c], s);
                s *= scale;
                row[j] = s;
                max = V.Max(max, s);
            }
            // exponentials and the unnormalised weighted sum of values in one pass
            yh.Clear();
            var sum = VF.Zero;
            for (int j = 0; j <= t; j++)
            {
                var e = LaneMath.Exp(row[j] - max);
                row[j] = e;
                sum += e;
                for (int c = 0; c < headDim; c++) yh[c] = LaneMath.Fma(e, values[j * d + c0 + c], yh[c]);
            }
            var inv = V.Create(1f) / sum;
            for (int c = 0; c < headDim; c++) yh[c] *= inv;
            for (int j = 0; j <= t; j++) row[j] *= inv;   // the backward reads the probabilities
        }
    }

    /// <summary>AttentionForward for one head of width 4 (both presets), with q and the output in registers.
    /// keys and values start at the head's first column; rows are d apart.</summary>
    static void HeadDim4Forward(ReadOnlySpan<VF> q, ReadOnlySpan<VF> keys, ReadOnlySpan<VF> values, int d, VF scale,
        Span<VF> row, Span<VF> y)
    {
        VF q0 = q[0] * scale, q1 = q[1] * scale, q2 = q[2] * scale, q3 = q[3] * scale;
        var max = V.Create(float.NegativeInfinity);
        for (int j = 0; j < row.Length; j++)
        {
            var k = keys.Slice(j * d, 4);
            var s = LaneMath.Fma(q3, k[3], LaneMath.Fma(q2, k[2], LaneMath.Fma(q1, k[1], q0 * k[0])));
            row[j] = s;
            max = V.Max(max, s);
        }
        VF y0 = VF.Zero, y1 = VF.Zero, y2 = VF.Zero, y3 = VF.Zero, sum = VF.Zero;
        for (int j = 0; j < row.Length; j++)
        {
            var e = LaneMath.Exp(row[j] - max);
            row[j] = e;
            sum += e;
            var v = values.Slice(j * d, 4);
            y0 = LaneMath.Fma(e, v[0], y0); y1 = LaneMath.Fma(e, v[1], y1);
            y2 = LaneMath.Fma(e, v[2], y2); y3 = LaneMath.Fma(e, v[3], y3);
        }
        var inv = V.Create(1f) / sum;
        y[0] = y0 * inv; y[1] = y1 * inv; y[2] = y2 * inv; y[3] = y3 * inv;
        for (int j = 0; j < row.Length; j++) row[j] *= inv;
    }

    /// <summary>Backward of one query position: adds into dq [D], and into dKeys, dValues [T][D] for
    /// positions 0..t (the same array when K and V are tied).</summary>
    public static void AttentionBackward(int t, int heads, int headDim, ReadOnlySpan<VF> q, ReadOnlySpan<VF> keys,
        ReadOnlySpan<VF> values, ReadOnlySpan<VF> att, int T, ReadOnlySpan<VF> dy, Span<VF> dq, Span<VF> dKeys,
        Span<VF> dValues, Span<VF> scratch)
    {
        int d = heads * headDim;
        var scale = V.Create(1f / MathF.Sqrt(headDim));
        for (int h = 0; h < heads; h++)
        {
            var row = att.Slice((h * T + t) * T, t + 1);
            var dp = scratch[..(t + 1)];
            int c0 = h * headDim;
            if (headDim == 4)
            {
                HeadDim4Backward(q.Slice(c0, 4), keys[c0..], values[c0..], d, scale, row, dy.Slice(c0, 4), dq.Slice(c0, 4),
                    dKeys[c0..], dValues[c0..], dp);
                continue;
            }
            // dp[j] = dy·v_j; the softmax backward needs their probability-weighted mean first
            var dot = VF.Zero;
            for (int j = 0; j <= t; j++)
            {
                var acc = VF.Zero;
                for (int c = 0; c < headDim; c++) acc = LaneMath.Fma(dy[c0 + c], values[j * d + c0 + c], acc);
                dp[j] = acc;
                dot = LaneMath.Fma(row[j], acc, dot);
            }
            for (int j = 0; j <= t; j++)
            {
                var ds = row[j] * (dp[j] - dot) * scale;
                for (int c = 0; c < headDim; c++)
                {
                    int x = j * d + c0 + c;
                    dValues[x] = LaneMath.Fma(row[j], dy[c0 + c], dValues[x]);
                    dq[c0 + c] = LaneMath.Fma(ds, keys[x], dq[c0 + c]);
                    dKeys[x] = LaneMath.Fma(ds, q[c0 + c], dKeys[x]);
                }
            }
        }
    }

    /// <summary>AttentionBackward for one head of width 4; the same sums in the same order, in registers.</summary>
    static void HeadDim4Backward(ReadOnlySpan<VF> q, ReadOnlySpan<VF> keys, ReadOnlySpan<VF> values, int d, VF scale,
        ReadOnlySpan<VF> row, ReadOnlySpan<VF> dy, Span<VF> dq, Span<VF> dKeys, Span<VF> dValues, Span<VF> dp)
    {
        VF dy0 = dy[0], dy1 = dy[1], dy2 = dy[2], dy3 = dy[3];
        var dot = VF.Zero;
        for (int j = 0; j < row.Length; j++)
        {
            var v = values.Slice(j * d, 4);
            var acc = LaneMath.Fma(dy3, v[3], LaneMath.Fma(dy2, v[2], LaneMath.Fma(dy1, v[1], dy0 * v[0])));
            dp[j] = acc;
            dot = LaneMath.Fma(row[j], acc, dot);
        }
        VF q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3];
        VF dq0 = dq[0], dq1 = dq[1], dq2 = dq[2], dq3 = dq[3];
        for (int j = 0; j < row.Length; j++)
        {
            var p = row[j];
            var ds = p * (dp[j] - dot) * scale;
            var k = keys.Slice(j * d, 4);
            dq0 = LaneMath.Fma(ds, k[0], dq0); dq1 = LaneMath.Fma(ds, k[1], dq1);
            dq2 = LaneMath.Fma(ds, k[2], dq2); dq3 = LaneMath.Fma(ds, k[3], dq3);
            var dv = dValues.Slice(j * d, 4);
            dv[0] = LaneMath.Fma(p, dy0, dv[0]); dv[1] = LaneMath.Fma(p, dy1, dv[1]);
            dv[2] = LaneMath.Fma(p, dy2, dv[2]); dv[3] = LaneMath.Fma(p, dy3, dv[3]);
            var dk = dKeys.Slice(j * d, 4);   // after dv: with tied K and V this is the same row
            dk[0] = LaneMath.Fma(ds, q0, dk[0]); dk[1] = LaneMath.Fma(ds, q1, dk[1]);
            dk[2] = LaneMath.Fma(ds, q2, dk[2]); dk[3] = LaneMath.Fma(ds, q3, dk[3]);
        }
        dq[0] = dq0; dq[1] = dq1; dq[2] = dq2; dq[3] = dq3;
    }

    // ---- tied head and cross-entropy ----

    /// <summary>logits[v] = z · E[v]ᵀ for the tied output head.</summary>
    public static void HeadForward(float[] p, int embedding, int vocab, ReadOnlySpan<VF> z, Span<VF> logits)
    {
        int d = z.Length;
        for (int v = 0; v < vocab; v++)
        {
            var acc = VF.Zero;
            for (int i = 0; i < d; i++) acc = LaneMath.Fma(z[i], p[embedding + v * d + i], acc);
            logits[v] = acc;
        }
    }

    /// <summary>Turns logits into dL/dlogits in place ((softmax − one-hot) · weight) and returns the per-lane
    /// loss −log p[label]. labels holds each lane's label id as a float.</summary>
    public static VF CrossEntropyForwardBackward(Span<VF> logits, VF labels, VF weight)
    {
        int vocab = logits.Length;
        var max = logits[0];
        for (int v = 1; v < vocab; v++) max = V.Max(max, logits[v]);
        var sum = VF.Zero;
        var labelShifted = VF.Zero;
        for (int v = 0; v < vocab; v++)
        {
            var shifted = logits[v] - max;
            labelShifted = V.ConditionalSelect(V.Equals(labels, V.Create((float)v)), shifted, labelShifted);
            var e = LaneMath.Exp(shifted);
            logits[v] = e;
            sum += e;
        }
        var inv = V.Create(1f) / sum;
        for (int v = 0; v < vocab; v++)
        {
            var hit = V.ConditionalSelect(V.Equals(labels, V.Create((float)v)), V.Create(1f), VF.Zero);
            logits[v] = (logits[v] * inv - hit) * weight;
        }
        return V.Log(sum) - labelShifted;
    }

    /// <summary>Backward of the tied head: adds into dz [D] and the embedding's gradient.</summary>
    public static void HeadBackward(float[] p, int embedding, int vocab, ReadOnlySpan<VF> z, ReadOnlySpan<VF> dLogits,
        Span<VF> dz, Span<VF> grad)
    {
        int d = z.Length;
        for (int v = 0; v < vocab; v++)
        {
            int row = embedding + v * d;
            for (int i = 0; i < d; i++)
            {
                grad[row + i] = LaneMath.Fma(dLogits[v], z[i], grad[row + i]);
                dz[i] = LaneMath.Fma(dLogits[v], p[row + i], dz[i]);
            }
        }
    }

    /// <summary>Lane-wise argmax, lowest index on ties (SPEC section 3).</summary>
    public static void Argmax(ReadOnlySpan<VF> logits, Span<int> best)
    {
        var bestValue = logits[0];
        var bestIndex = VF.Zero;
        for (int v = 1; v < logits.Length; v++)
        {
            var greater = V.GreaterThan(logits[v], bestValue);
            bestValue = V.ConditionalSelect(greater, logits[v], bestValue);
            bestIndex = V.ConditionalSelect(greater, V.Create((float)v), bestIndex);
        }
        for (int lane = 0; lane < LaneMath.Width; lane++) best[lane] = (int)bestIndex[lane];
    }
}
