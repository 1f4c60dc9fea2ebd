namespace Adder.Core;

/// <summary>How the attention's Q, K and V projections are parameterised (SPEC section 2).</summary>
public static class TieModes
{
    /// <summary>h = n·qkv_A; q = h·Bq; k = v = h·Bkv (the 311p model).</summary>
    public const string ShareATieKV = "shareA_tieKV";
    /// <summary>Separate q, k, v projections, each low-rank or full.</summary>
    public const string None = "none";
}

/// <summary>The model's shape, with the reference's option names in comments. A rank of 0 means full rank.</summary>
public sealed record ModelConfig(
    int NLayer = 1,            // n_layer
    int DModel = 4,            // d_model
    int NHead = 1,             // n_head
    int DFf = 8,               // d_ff
    int MaxSeqLen = 33,        // max_seq_len
    int VocabSize = 14,        // vocab_size
    int PosRank = 3,           // pos_rank
    int QkvRank = 3,           // qkv_rank
    int AttnOutRank = 3,       // attn_out_rank
    int FfnRank = 3,           // ffn_rank
    bool UseRmsNorm = true,    // use_rmsnorm (false: LayerNorm with bias)
    string TieQkv = TieModes.ShareATieKV)   // tie_qkv
{
    public const float RmsNormEps = 1e-8f;
    public const float LayerNormEps = 1e-5f;

    /// <summary>The published 311-parameter configuration.</summary>
    public static readonly ModelConfig Preset311 = new();

    public int HeadDim => DModel / NHead;

    /// <summary>A model described by an architecture (roles derived from stored parameters, any token format),
    /// run by the general CPU backend; null for the seed's family, whose knobs are the fields above and whose
    /// specialised CPU and GPU paths stay as they are.</summary>
    public Architecture? General { get; init; }

    public static ModelConfig Of(Architecture architecture) =>
        new(VocabSize: architecture.Format.VocabSize, MaxSeqLen: architecture.Format.InputLength) { General = architecture };

    /// <summary>How this model's sequences are written (the seed's format for the seed's family).</summary>
    public TokenFormat Format => General?.Format ?? TokenFormat.Seed;

    public static ModelConfig Preset(string name) => name.ToLowerInvariant() switch
    {
        "311p" => Preset311,
        // The 311p with qkv and ffn ranks cut to 2 (311 − 12 − 24 = 275), the AdderBoard's 275p; `adder truncate` makes one from a 311p.
        "275p" => new ModelConfig(QkvRank: 2, FfnRank: 2),
        // A wider sibling (full rank, two heads) that learns in minutes on a CPU.
        "wide" => new ModelConfig(DModel: 8, DFf: 16, NHead: 2, PosRank: 0, QkvRank: 0, AttnOutRank: 0, FfnRank: 0, TieQkv: TieModes.None),
        _ => throw new AdderException($"unknown model preset '{Limits.Echo(name)}' (known: 311p, 275p, wide)"),
    };

    /// <summary>Throws an AdderException naming the first option this code does not support.</summary>
    public ModelConfig Validate()
    {
        void Require(bool ok, string message) { if (!ok) throw new AdderException($"unsupported model config: {message}"); }
        if (General is not null) return this;   // checked whole when the architecture was built
        Require(VocabSize == Tokens.VocabSize, $"vocab_size {VocabSize} (must be {Tokens.VocabSize})");
        Require(MaxSeqLen >= Tokens.InputLength && MaxSeqLen <= 4096, $"max_seq_len {MaxSeqLen} (must be at least {Tokens.InputLength})");
        Require(NLayer >= 1 && NLayer <= 64, $"n_layer {NLayer}");
        Require(DModel >= 1 && DModel <= 512, $"d_model {DModel}");
        Require(NHead >= 1 && DModel % NHead == 0, $"n_head {NHead} does not divide d_model {DModel}");
        Require(DFf >= 1 && DFf <= 4096, $"d_ff {DFf}");
        foreach (var (name, r) in new[] { ("pos_rank", PosRank), ("qkv_rank", QkvRank), ("attn_out_rank", AttnOutRank), ("ffn_rank", FfnRank) })
            Require(r >= 0 && r <= 4096, $"{name} {r}");
        Require(TieQkv is TieModes.ShareATieKV or TieModes.None, $"tie_qkv '{Limits.Echo(TieQkv)}' (supported: {TieModes.ShareATieKV}, {TieModes.None})");
        Require(TieQkv != TieModes.ShareATieKV || QkvRank > 0, "tie_qkv shareA_tieKV needs qkv_rank > 0");
        return this;
    }

    public string Describe() => General is { } g
        ? $"architecture {g.Name} ({g.Count} parameters, format {g.Format.Name}, d_model {g.DModel}, {g.Mlp})"
        : $"n_layer={NLayer} d_model={DModel} n_head={NHead} d_ff={DFf} max_seq_len={MaxSeqLen} vocab_size={VocabSize} " +
        $"pos_rank={PosRank} qkv_rank={QkvRank} attn_out_rank={AttnOutRank} ffn_rank={FfnRank} " +
        $"norm={(UseRmsNorm ? "rmsnorm" : "layernorm")} tie_qkv={TieQkv}";
}
