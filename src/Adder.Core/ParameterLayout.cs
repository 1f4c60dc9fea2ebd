namespace Adder.Core;

/// <summary>One named tensor inside the flat parameter buffer.</summary>
public sealed record TensorSpec(string Name, int[] Shape, int Offset, float InitStd, float InitConstant)
{
    public int Size => Shape.Aggregate(1, (a, b) => a * b);
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>A linear map x (in) → y (out): low-rank y = x·A·B (A in×r, B r×out) when Rank > 0,
/// otherwise full y = x·Wᵀ with W stored out×in like torch's Linear. Offsets index the flat buffer.</summary>
public readonly record struct LinearView(int In, int Out, int Rank, int A, int B, int W)
{
    public bool LowRank => Rank > 0;
}

/// <summary>A norm's weight (and LayerNorm's bias; -1 for RMSNorm).</summary>
public readonly record struct NormView(int Weight, int Bias);

/// <summary>Offsets of one transformer block's tensors. For shareA_tieKV (SharedA), QkvA, Bq and Bkv hold
/// attn.qkv_A, qkv_Bq and qkv_Bkv and Q, K, V are unused; otherwise the reverse.</summary>
public readonly record struct BlockView(
    NormView Ln1, bool SharedA, int QkvA, int QkvRank, int Bq, int Bkv,
    LinearView Q, LinearView K, LinearView V, LinearView Proj,
    NormView Ln2, LinearView Fc1, LinearView Fc2);

/// <summary>The names, shapes and offsets of every unique parameter of a config, in the reference's key order
/// (SPEC section 2). The tied output head is token_emb.weight and has no entry of its own.</summary>
public sealed class ParameterLayout
{
    public ModelConfig Config { get; }
    public IReadOnlyList<TensorSpec> Tensors { get; }
    public int Count { get; }
    public int TokenEmbedding { get; }
    public LinearView Position { get; }      // in = max_seq_len (one-hot position), out = d_model
    public BlockView[] Blocks { get; }
    public NormView LnF { get; }

    readonly Dictionary<string, TensorSpec> byName;

    public ParameterLayout(ModelConfig config)
    {
        Config = config.Validate();
        var tensors = new List<TensorSpec>();
        int offset = 0;
        if (config.General is { } general)
        {
            // an architecture's stored parameters, in its order; its roles are derived from them (RoleGraph)
            foreach (var p in general.Parameters)
            {
                tensors.Add(new TensorSpec(p.Name, p.Shape, offset, 0f, 0f));
                offset += p.Size;
            }
            Blocks = [];
            Tensors = tensors;
            Count = offset;
            byName = tensors.ToDictionary(t => t.Name);
            return;
        }
        int Add(string name, int[] shape, float std = 0f, float constant = 0f)
        {
            var spec = new TensorSpec(name, shape, offset, std, constant);
            tensors.Add(spec);
            offset += spec.Size;
            return spec.Offset;
        }
        static float XavierStd(int fanIn, int fanOut) => MathF.Sqrt(2f / (fanIn + fanOut));
        LinearView Linear(string name, int inDim, int outDim, int rank)
        {
            if (rank > 0)
            {
                int a = Add(name + ".A", [inDim, rank], XavierStd(inDim, rank));
                int b = Add(name + ".B", [rank, outDim], XavierStd(rank, outDim));
                return new LinearView(inDim, outDim, rank, a, b, -1);
            }
            int w = Add(name + ".weight", [outDim, inDim], 0.02f);
            return new LinearView(inDim, outDim, 0, -1, -1, w);
        }
        NormView Norm(string name)
        {
            int w = Add(name + ".weight", [config.DModel], 0f, 1f);
            int b = config.UseRmsNorm ? -1 : Add(name + ".bias", [config.DModel]);
            return new NormView(w, b);
        }

        int d = config.DModel;
        TokenEmbedding = Add("token_emb.weight", [config.VocabSize, d], 0.02f);
        if (config.PosRank > 0)
        {
            int a = Add("pos_emb.A", [config.MaxSeqLen, config.PosRank], 0.02f);
            int b = Add("pos_emb.B", [config.PosRank, d], 0.02f);
            Position = new LinearView(config.MaxSeqLen, d, config.PosRank, a, b, -1);
        }
        else
        {
            // Stored as max_seq_len × d_model like nn.Embedding (row t is position t).
            int w = Add("pos_emb.weight", [config.MaxSeqLen, d], 0.02f);
            Position = new LinearView(config.MaxSeqLen, d, 0, -1, -1, w);
        }

        Blocks = new BlockView[config.NLayer];
        for (int l = 0; l < config.NLayer; l++)
        {
            string p = $"blocks.{l}.";
            var ln1 = Norm(p + "ln1");
            BlockView block;
            if (config.TieQkv == TieModes.ShareATieKV)
            {
                int r = config.QkvRank;
                int qa = Add(p + "attn.qkv_A", [d, r], XavierStd(d, r));
                int bq = Add(p + "attn.qkv_Bq", [r, d], XavierStd(r, d));
                int bkv = Add(p + "attn.qkv_Bkv", [r, d], XavierStd(r, d));
                var proj = Linear(p + "attn.proj", d, d, config.AttnOutRank);
                var ln2 = Norm(p + "ln2");
                var fc1 = Linear(p + "mlp.fc1", d, config.DFf, config.FfnRank);
                var fc2 = Linear(p + "mlp.fc2", config.DFf, d, config.FfnRank);
                block = new BlockView(ln1, true, qa, r, bq, bkv, default, default, default, proj, ln2, fc1, fc2);
            }
            else
            {
                var q = Linear(p + "attn.q", d, d, config.QkvRank);
                var k = Linear(p + "attn.k", d, d, config.QkvRank);
                var v = Linear(p + "attn.v", d, d, config.QkvRank);
                var proj = Linear(p + "attn.proj", d, d, config.AttnOutRank);
                var ln2 = Norm(p + "ln2");
                var fc1 = Linear(p + "mlp.fc1", d, config.DFf, config.FfnRank);
                var fc2 = Linear(p + "mlp.fc2", config.DFf, d, config.FfnRank);
                block = new BlockView(ln1, false, -1, 0, -1, -1, q, k, v, proj, ln2, fc1, fc2);
            }
            Blocks[l] = block;
        }
        LnF = Norm("ln_f");
        Tensors = tensors;
        Count = offset;
        byName = tensors.ToDictionary(t => t.Name);
    }

    public TensorSpec this[string name] =>
        byName.TryGetValue(name, out var t) ? t : throw new AdderException($"the model has no tensor '{name}'");

    public bool Contains(string name) => byName.ContainsKey(name);

    /// <summary>Fills a buffer with SPEC section 2's initialisation (normal, mean 0; norm weights 1).</summary>
    public void Initialise(Span<float> parameters, int seed)
    {
        if (Config.General is { } general) { general.Compile().Initialise(parameters, seed); return; }
        var rng = new Random(seed);
        foreach (var t in Tensors)
        {
            var view = parameters.Slice(t.Offset, t.Size);
            for (int i = 0; i < view.Length; i++)
                view[i] = t.InitStd > 0 ? t.InitStd * (float)Gaussian(rng) : t.InitConstant;
        }
    }

    static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
