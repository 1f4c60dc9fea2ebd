namespace Adder.Core.Cpu;

/// <summary>Everything one chunk of 16 sequences (one per lane) computes in the forward pass, kept for the
/// backward pass; K and V double as the decoder's KV cache. Indexing: [layer][position][feature].</summary>
public sealed class Activations
{
    public readonly int T, D, F, L, H, HeadDim, QkvMid, ProjMid, FfnMid, Vocab;
    public readonly bool TiedKV;

    public readonly int[] Tokens;        // [T+1][lane]: inputs, and at T the last label
    public readonly VF[] X;              // [L+1][T][D]: block inputs; X[L] feeds ln_f
    public readonly VF[] Ln1Hat, N1;     // [L][T][D]
    public readonly VF[] Ln1Rstd;        // [L][T]
    public readonly VF[] QkvHidden;      // [L][T][QkvMid]: shared h (rank) or hq|hk|hv for low-rank separate q, k, v
    public readonly VF[] Q, K, Vv;       // [L][T][D]; Vv is K when K and V are tied
    public readonly VF[] Att;            // [L][H][T][T]: softmax row t over j ≤ t
    public readonly VF[] Y;              // [L][T][D]: attention output before proj
    public readonly VF[] ProjHidden;     // [L][T][ProjMid]
    public readonly VF[] XMid;           // [L][T][D]: after the attention residual
    public readonly VF[] Ln2Hat, N2;     // [L][T][D]
    public readonly VF[] Ln2Rstd;        // [L][T]
    public readonly VF[] Fc1Hidden, Fc2Hidden;   // [L][T][FfnMid]
    public readonly VF[] U, G;           // [L][T][F]: pre- and post-GELU
    public readonly VF[] LnFHat, Z;      // [T][D]
    public readonly VF[] LnFRstd;        // [T]

    public Activations(ModelConfig c)
    {
        T = c.MaxSeqLen; D = c.DModel; F = c.DFf; L = c.NLayer; H = c.NHead; HeadDim = c.HeadDim; Vocab = c.VocabSize;
        TiedKV = c.TieQkv == TieModes.ShareATieKV;
        QkvMid = TiedKV ? c.QkvRank : 3 * c.QkvRank;
        ProjMid = c.AttnOutRank;
        FfnMid = c.FfnRank;
        const int W = LaneMath.Width;
        Tokens = new int[(T + 1) * W];
        X = new VF[(L + 1) * T * D];
        Ln1Hat = new VF[L * T * D]; N1 = new VF[L * T * D]; Ln1Rstd = new VF[L * T];
        QkvHidden = new VF[Math.Max(1, L * T * QkvMid)];
        Q = new VF[L * T * D]; K = new VF[L * T * D]; Vv = TiedKV ? K : new VF[L * T * D];
        Att = new VF[L * H * T * T];
        Y = new VF[L * T * D];
        ProjHidden = new VF[Math.Max(1, L * T * ProjMid)];
        XMid = new VF[L * T * D];
        Ln2Hat = new VF[L * T * D]; N2 = new VF[L * T * D]; Ln2Rstd = new VF[L * T];
        Fc1Hidden = new VF[Math.Max(1, L * T * FfnMid)]; Fc2Hidden = new VF[Math.Max(1, L * T * FfnMid)];
        U = new VF[L * T * F]; G = new VF[L * T * F];
        LnFHat = new VF[T * D]; Z = new VF[T * D]; LnFRstd = new VF[T];
    }
}
