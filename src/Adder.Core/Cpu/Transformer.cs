namespace Adder.Core.Cpu;

/// <summary>The model's forward and backward over one chunk of 16 sequences, one position at a time
/// (causal: position t only reads keys and values of positions ≤ t, so the same code serves teacher-forced
/// training and greedy decoding with a KV cache).</summary>
public static class Transformer
{
    const int W = LaneMath.Width;

    /// <summary>Runs position t through every layer and the final norm; leaves z in a.Z. posTable is
    /// <see cref="Layers.PositionForward"/>'s output.</summary>
    public static void ForwardPosition(float[] p, ParameterLayout layout, float[] posTable, Activations a, int t)
    {
        int T = a.T, D = a.D, F = a.F;
        Layers.EmbeddingForward(p, layout.TokenEmbedding, a.Tokens.AsSpan(t * W, W), posTable.AsSpan(t * D, D), a.X.AsSpan(t * D, D));
        Span<VF> tmp = stackalloc VF[D];
        for (int l = 0; l < a.L; l++)
        {
            ref readonly var block = ref layout.Blocks[l];
            int row = (l * T + t) * D;
            var xIn = a.X.AsSpan(row, D);
            var n1 = a.N1.AsSpan(row, D);
            Layers.NormForward(p, block.Ln1, xIn, a.Ln1Hat.AsSpan(row, D), out a.Ln1Rstd[l * T + t], n1);

            var hidden = a.QkvHidden.AsSpan((l * T + t) * a.QkvMid, a.QkvMid);
            var q = a.Q.AsSpan(row, D);
            if (block.SharedA)
            {
                int r = block.QkvRank;
                Layers.MatMulForward(p, block.QkvA, D, r, n1, hidden);
                Layers.MatMulForward(p, block.Bq, r, D, hidden, q);
                Layers.MatMulForward(p, block.Bkv, r, D, hidden, a.K.AsSpan(row, D));
            }
            else
            {
                int r = block.Q.Rank;
                Layers.LinearForward(p, block.Q, n1, hidden.Slice(0, r), q);
                Layers.LinearForward(p, block.K, n1, hidden.Slice(r, r), a.K.AsSpan(row, D));
                Layers.LinearForward(p, block.V, n1, hidden.Slice(2 * r, r), a.Vv.AsSpan(row, D));
            }
            var y = a.Y.AsSpan(row, D);
            Layers.AttentionForward(t, a.H, a.HeadDim, q, a.K.AsSpan(l * T * D, T * D), a.Vv.AsSpan(l * T * D, T * D),
                a.Att.AsSpan(l * a.H * T * T, a.H * T * T), T, y);
            Layers.LinearForward(p, block.Proj, y, a.ProjHidden.AsSpan((l * T + t) * a.ProjMid, a.ProjMid), tmp);
            var xMid = a.XMid.AsSpan(row, D);
            for (int i = 0; i < D; i++) xMid[i] = xIn[i] + tmp[i];

            var n2 = a.N2.AsSpan(row, D);
            Layers.NormForward(p, block.Ln2, xMid, a.Ln2Hat.AsSpan(row, D), out a.Ln2Rstd[l * T + t], n2);
            var u = a.U.AsSpan((l * T + t) * F, F);
            var g = a.G.AsSpan((l * T + t) * F, F);
            Layers.LinearForward(p, block.Fc1, n2, a.Fc1Hidden.AsSpan((l * T + t) * a.FfnMid, a.FfnMid), u);
            for (int k = 0; k < F; k++) g[k] = LaneMath.Gelu(u[k]);
            Layers.LinearForward(p, block.Fc2, g, a.Fc2Hidden.AsSpan((l * T + t) * a.FfnMid, a.FfnMid), tmp);
            var xOut = a.X.AsSpan(((l + 1) * T + t) * D, D);
            for (int i = 0; i < D; i++) xOut[i] = xMid[i] + tmp[i];
        }
        Layers.NormForward(p, layout.LnF, a.X.AsSpan((a.L * T + t) * D, D), a.LnFHat.AsSpan(t * D, D),
            out a.LnFRstd[t], a.Z.AsSpan(t * D, D));
    }

    /// <summary>Per-thread buffers of the backward pass.</summary>
    public sealed class Gradients
    {
        public readonly VF[] Grad;        // per-lane parameter gradient sums, flat like the parameters
        public readonly VF[] DPos;        // [T][D] gradient of the position table
        public readonly float[] DEmbed;   // token embedding's input-side gradient (a per-lane scatter)
        public readonly VF[] DKeys, DValues;   // [L][T][D]; the same array when K and V are tied
        public readonly VF[] Scratch;   // 8 layer-local vectors of Width, then the logits
        public readonly int Width;
        public VF Loss;

        public Gradients(ParameterLayout layout, Activations a)
        {
            Grad = new VF[layout.Count];
            DPos = new VF[a.T * a.D];
            DEmbed = new float[a.Vocab * a.D];
            DKeys = new VF[a.L * a.T * a.D];
            DValues = a.TiedKV ? DKeys : new VF[a.L * a.T * a.D];
            Width = Math.Max(Math.Max(a.D, a.F), Math.Max(a.T, Math.Max(a.QkvMid, Math.Max(a.ProjMid, a.FfnMid))));
            Scratch = new VF[8 * Width + a.Vocab];
        }

        public void Clear()
        {
            Array.Clear(Grad); Array.Clear(DPos); Array.Clear(DEmbed); Loss = VF.Zero;
        }
    }

    /// <summary>Backward of a chunk whose forward ran over positions 0..32. Labels are a.Tokens[t+1];
    /// positions 21..32 are scored, each lane's loss weighted by weight (0 for padding lanes).</summary>
    public static void Backward(float[] p, ParameterLayout layout, Activations a, Gradients gr, VF weight)
    {
        int T = a.T, D = a.D, F = a.F, Vocab = a.Vocab;
        Array.Clear(gr.DKeys);
        if (!a.TiedKV) Array.Clear(gr.DValues);
        var s = gr.Scratch.AsSpan();
        int width = gr.Width;
        var dRes = s.Slice(0 * width, D);
        var dA = s.Slice(1 * width, width);     // layer-local gradient vectors
        var dB = s.Slice(2 * width, width);
        var dC = s.Slice(3 * width, width);
        var scratch = s.Slice(4 * width, 4 * width);
        var logits = s.Slice(8 * width, Vocab);
        Span<float> labelFloats = stackalloc float[W];
        var grad = gr.Grad.AsSpan();

        for (int t = Tokens.InputLength - 1; t >= 0; t--)
        {
            dRes.Clear();
            if (t >= Tokens.FirstScoredPosition)
            {
                var z = a.Z.AsSpan(t * D, D);
                Layers.HeadForward(p, layout.TokenEmbedding, Vocab, z, logits);
                for (int lane = 0; lane < W; lane++) labelFloats[lane] = a.Tokens[(t + 1) * W + lane];
                gr.Loss = LaneMath.Fma(Layers.CrossEntropyForwardBackward(logits, V.Create<float>(labelFloats), weight),
                    weight, gr.Loss);
                var dz = dA[..D];
                dz.Clear();
                Layers.HeadBackward(p, layout.TokenEmbedding, Vocab, z, logits, dz, grad);
                Layers.NormBackward(p, layout.LnF, a.LnFHat.AsSpan(t * D, D), a.LnFRstd[t], dz, scratch, dRes, grad);
            }
            for (int l = a.L - 1; l >= 0; l--)
            {
                ref readonly var block = ref layout.Blocks[l];
                int row = (l * T + t) * D;
                // MLP: x_out = x_mid + fc2(gelu(fc1(ln2(x_mid))))
                var dG = dA[..F]; dG.Clear();
                Layers.LinearBackward(p, block.Fc2, a.G.AsSpan((l * T + t) * F, F),
                    a.Fc2Hidden.AsSpan((l * T + t) * a.FfnMid, a.FfnMid), dRes, scratch, dG, grad);
                var u = a.U.AsSpan((l * T + t) * F, F);
                for (int k = 0; k < F; k++) dG[k] *= LaneMath.GeluGrad(u[k]);
                var dN2 = dB[..D]; dN2.Clear();
                Layers.LinearBackward(p, block.Fc1, a.N2.AsSpan(row, D),
                    a.Fc1Hidden.AsSpan((l * T + t) * a.FfnMid, a.FfnMid), dG, scratch, dN2, grad);
                // dRes becomes dL/dx_mid
                Layers.NormBackward(p, block.Ln2, a.Ln2Hat.AsSpan(row, D), a.Ln2Rstd[l * T + t], dN2, scratch, dRes, grad);

                // attention: x_mid = x_in + proj(attn(q, k, v))
                var dY = dB[..D]; dY.Clear();
                Layers.LinearBackward(p, block.Proj, a.Y.AsSpan(row, D),
                    a.ProjHidden.AsSpan((l * T + t) * a.ProjMid, a.ProjMid), dRes, scratch, dY, grad);
                var dQ = dC[..D]; dQ.Clear();
                var layerKeys = a.K.AsSpan(l * T * D, T * D);
                var layerValues = a.Vv.AsSpan(l * T * D, T * D);
                var dKeys = gr.DKeys.AsSpan(l * T * D, T * D);
                var dValues = gr.DValues.AsSpan(l * T * D, T * D);
                Layers.AttentionBackward(t, a.H, a.HeadDim, a.Q.AsSpan(row, D), layerKeys, layerValues,
                    a.Att.AsSpan(l * a.H * T * T, a.H * T * T), T, dY, dQ, dKeys, dValues, scratch);

                // q, k, v at position t: its dK and dV are complete now (later positions ran first)
                var n1 = a.N1.AsSpan(row, D);
                var hidden = a.QkvHidden.AsSpan((l * T + t) * a.QkvMid, a.QkvMid);
                var dN1 = dA[..D]; dN1.Clear();
                if (block.SharedA)
                {
                    int r = block.QkvRank;
                    var dH = scratch[..r]; dH.Clear();
                    Layers.MatMulBackward(p, block.Bq, r, D, hidden, dQ, dH, grad);
                    Layers.MatMulBackward(p, block.Bkv, r, D, hidden, dKeys.Slice(t * D, D), dH, grad);
                    Layers.MatMulBackward(p, block.QkvA, D, r, n1, dH, dN1, grad);
                }
                else
                {
                    int r = block.Q.Rank;
                    Layers.LinearBackward(p, block.Q, n1, hidden.Slice(0, r), dQ, scratch, dN1, grad);
                    Layers.LinearBackward(p, block.K, n1, hidden.Slice(r, r), dKeys.Slice(t * D, D), scratch, dN1, grad);
                    Layers.LinearBackward(p, block.V, n1, hidden.Slice(2 * r, r), dValues.Slice(t * D, D), scratch, dN1, grad);
                }
                // dRes becomes dL/dx_in
                Layers.NormBackward(p, block.Ln1, a.Ln1Hat.AsSpan(row, D), a.Ln1Rstd[l * T + t], dN1, scratch, dRes, grad);
            }
            Layers.EmbeddingBackward(a.Tokens.AsSpan(t * W, W), dRes, gr.DPos.AsSpan(t * D, D), gr.DEmbed);
        }
    }
}
