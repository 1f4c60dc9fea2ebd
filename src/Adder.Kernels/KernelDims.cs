using System.Runtime.InteropServices;

namespace Adder.Kernels;

/// <summary>C's AdderLinear (kernels/common.cuh) = <see cref="LinearView"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct AdderLinear
{
    public int In, Out, Rank, A, B, W;

    public static AdderLinear From(LinearView v) => new() { In = v.In, Out = v.Out, Rank = v.Rank, A = v.A, B = v.B, W = v.W };
}

/// <summary>C's AdderDims (kernels/ABI.md), passed by value as every kernel's first argument: 57 int32, no
/// padding, fields in the C order. The values all come from <see cref="ParameterLayout"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct AdderDims
{
    public int Params, DModel, NHead, DFf, Vocab, SeqLen, SharedA, TokEmb;
    public AdderLinear Pos;
    public int Ln1W, QkvA, QkvRank, Bq, Bkv;
    public AdderLinear Q, K, V, Proj;
    public int Ln2W;
    public AdderLinear Fc1, Fc2;
    public int LnfW;

    public const int Ints = 57;

    /// <summary>One gradient record's length: P parameter gradients, the position table's [T][D], the loss.</summary>
    public readonly int GradientRecord => Params + SeqLen * DModel + 1;

    // ABI.md "Supported configs" (common.cuh's ADDER_MAX_*).
    public const int MaxDModel = 8, MaxDFf = 32, MaxRank = 8, MaxParams = 1616;

    /// <summary>Whether adder_train_rows (kernels/train_rows.cu) trains this config: the 311p family, d_model 4, one
    /// head, d_ff 8, shareA_tieKV, every rank 1 to 3 (ABI.md "rows_fit"). Others run adder_train_step.</summary>
    public static bool RowsFit(ParameterLayout layout)
    {
        var c = layout.Config;
        static bool Low(int rank) => rank is >= 1 and <= 3;
        return c.NLayer == 1 && c.UseRmsNorm && c.VocabSize == Tokens.VocabSize && c.MaxSeqLen == Tokens.InputLength
            && c.DModel == 4 && c.NHead == 1 && c.DFf == 8 && c.TieQkv == TieModes.ShareATieKV
            && Low(c.PosRank) && Low(c.QkvRank) && Low(c.AttnOutRank) && Low(c.FfnRank);
    }

    /// <summary>The dims of a config the kernels support; otherwise a one-line AdderException naming the limit.</summary>
    public static AdderDims From(ParameterLayout layout)
    {
        var c = layout.Config;
        void Require(bool ok, string what)
        {
            if (!ok) throw new AdderException($"unsupported model config for --device cuda: {what}");
        }
        Require(c.NLayer == 1, $"n_layer {c.NLayer} (the CUDA kernels support 1)");
        Require(c.UseRmsNorm, "LayerNorm (the CUDA kernels support RMSNorm only)");
        Require(c.VocabSize == Tokens.VocabSize, $"vocab_size {c.VocabSize} (must be {Tokens.VocabSize})");
        Require(c.MaxSeqLen == Tokens.InputLength, $"max_seq_len {c.MaxSeqLen} (the CUDA kernels support {Tokens.InputLength})");
        Require(c.DModel <= MaxDModel, $"d_model {c.DModel} (at most {MaxDModel})");
        Require(c.DFf <= MaxDFf, $"d_ff {c.DFf} (at most {MaxDFf})");
        foreach (var (name, r) in new[] { ("pos_rank", c.PosRank), ("qkv_rank", c.QkvRank), ("attn_out_rank", c.AttnOutRank), ("ffn_rank", c.FfnRank) })
            Require(r <= MaxRank, $"{name} {r} (at most {MaxRank}, or 0 for full rank)");
        Require(layout.Count <= MaxParams, $"{layout.Count} parameters (at most {MaxParams})");

        var b = layout.Blocks[0];
        return new AdderDims
        {
            Params = layout.Count, DModel = c.DModel, NHead = c.NHead, DFf = c.DFf, Vocab = c.VocabSize, SeqLen = c.MaxSeqLen,
            SharedA = b.SharedA ? 1 : 0, TokEmb = layout.TokenEmbedding, Pos = AdderLinear.From(layout.Position),
            Ln1W = b.Ln1.Weight, QkvA = b.QkvA, QkvRank = b.QkvRank, Bq = b.Bq, Bkv = b.Bkv,
            Q = AdderLinear.From(b.Q), K = AdderLinear.From(b.K), V = AdderLinear.From(b.V), Proj = AdderLinear.From(b.Proj),
            Ln2W = b.Ln2.Weight, Fc1 = AdderLinear.From(b.Fc1), Fc2 = AdderLinear.From(b.Fc2), LnfW = layout.LnF.Weight,
        };
    }
}
