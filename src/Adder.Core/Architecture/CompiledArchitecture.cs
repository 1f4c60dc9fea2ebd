namespace Adder.Core;

/// <summary>The block's roles: each an effective matrix (out × in, applied as W·x) or vector the generic
/// block computes with. The shapes are the block's; an architecture says how each is derived.</summary>
public static class ArchitectureRoles
{
    public const string TokenEmbedding = "token_embedding", PositionEmbedding = "position_embedding";
    public const string Ln1 = "ln1", Ln2 = "ln2", LnFinal = "ln_final";
    public const string Q = "q", K = "k", V = "v", O = "o", QNorm = "q_norm", KNorm = "k_norm";
    public const string MlpIn = "mlp_in", MlpOut = "mlp_out", MlpGate = "mlp_gate", MlpUp = "mlp_up", MlpDown = "mlp_down";
    public const string Head = "head";

    public static readonly string[] All =
        [TokenEmbedding, PositionEmbedding, Ln1, Ln2, LnFinal, Q, K, V, QNorm, KNorm, O, MlpIn, MlpOut, MlpGate, MlpUp, MlpDown, Head];

    /// <summary>What each role is, for `adder info` and errors.</summary>
    public static string Describe(string role) => role switch
    {
        TokenEmbedding => "token table, vocab × d_model (x0 = table[token] + position)",
        PositionEmbedding => "position table, input length × d_model (added; absent: no learned positions)",
        Ln1 => "RMSNorm weight before attention (d_model)",
        Ln2 => "RMSNorm weight before the MLP (d_model)",
        LnFinal => "RMSNorm weight before the head (d_model)",
        Q => "query, head dim × d_model", K => "key, head dim × d_model", V => "value, value dim × d_model",
        QNorm => "RMSNorm weight of q before RoPE (head dim)", KNorm => "RMSNorm weight of k before RoPE (head dim)",
        O => "attention output, d_model × value dim",
        MlpIn => "GELU MLP in, d_ff × d_model", MlpOut => "GELU MLP out, d_model × d_ff",
        MlpGate => "SwiGLU gate, d_ff × d_model", MlpUp => "SwiGLU up, d_ff × d_model", MlpDown => "SwiGLU down, d_model × d_ff",
        Head => "output head, vocab × d_model (logits = head · rms(x))",
        _ => role,
    };
}

/// <summary>An architecture made executable: its parameters' offsets in the flat buffer, the role graph,
/// and the block's dimensions read off the roles' shapes. Each backend holds its own (the graph holds values).</summary>
public sealed class CompiledArchitecture
{
    public Architecture Architecture { get; }
    public RoleGraph Graph { get; } = new();
    public IReadOnlyDictionary<string, int> Offsets { get; }
    public int Count { get; }
    /// <summary>d_model, head dim (q and k rows), value dim, d_ff, vocabulary, input length.</summary>
    public int D { get; }
    public int Dq { get; }
    public int Dv { get; }
    public int F { get; }
    public int Vocab { get; }
    public int Length { get; }
    public bool HasPositions { get; }
    public bool HasQkNorm { get; }
    public bool SwiGlu { get; }
    public double Scale { get; }

    public RoleNode Role(string name) => Graph.Roles[name];

    readonly Dictionary<string, RoleNode> parameterNodes;

    /// <summary>An expression in the roles' algebra over the stored parameters and roles, at the given parameter
    /// values. The expression joins this instance's graph, so only a compilation of its own should be handed it
    /// (Architecture.Evaluate makes one).</summary>
    internal Mat EvaluateOnOwnGraph(string expression, ReadOnlySpan<double> parameters, string what)
    {
        if (parameters.Length != Count) throw new AdderException($"{what}: {parameters.Length} parameter values for an architecture of {Count}");
        var node = RoleExpression.Compile(expression, Graph, new Symbols(parameterNodes, Graph), what);
        Graph.Forward(parameters);
        return node.Value;
    }

    internal CompiledArchitecture(Architecture arch)
    {
        Architecture = arch;
        var offsets = new Dictionary<string, int>();
        var parameterNodes = new Dictionary<string, RoleNode>();
        int offset = 0;
        foreach (var p in arch.Parameters)
        {
            offsets[p.Name] = offset;
            parameterNodes[p.Name] = Graph.Add(new RoleNodes.Parameter(offset, p.Rows, p.Cols, p.Name));
            offset += p.Size;
        }
        Offsets = offsets;
        Count = offset;
        this.parameterNodes = parameterNodes;

        AdderException Error(string message) => new($"architecture {Limits.Echo(arch.Name)}: {message}");
        var symbols = new Symbols(parameterNodes, Graph);
        var used = new HashSet<RoleNode>();
        foreach (var (role, expr) in arch.Roles)
        {
            if (!ArchitectureRoles.All.Contains(role))
                throw Error($"unknown role '{Limits.Echo(role)}' (known: {string.Join(", ", ArchitectureRoles.All)})");
            if (Graph.Roles.ContainsKey(role)) throw Error($"role {role} is defined twice");
            if (parameterNodes.ContainsKey(role)) throw Error($"role {role} has the name of a stored parameter");
            Graph.Name(role, RoleExpression.Compile(expr, Graph, symbols, role));
        }

        bool Has(string role) => Graph.Roles.ContainsKey(role);
        RoleNode Need(string role) => Has(role) ? Graph.Roles[role] : throw Error($"role {role} is missing ({ArchitectureRoles.Describe(role)})");
        void Shape(string role, int rows, int cols, string what)
        {
            var n = Need(role);
            if (n.Rows != rows || n.Cols != cols) throw Error($"role {role} is {n.Value.ShapeText}, the block needs {rows}×{cols} ({what})");
        }

        D = arch.DModel;
        Vocab = arch.Format.VocabSize;
        Length = arch.Format.InputLength;
        SwiGlu = arch.Mlp == Architecture.SwiGlu;
        var table = Need(ArchitectureRoles.TokenEmbedding);
        if (table.Rows != Vocab)
            throw Error($"format {arch.Format.Name} needs a vocabulary of {Vocab} tokens, {ArchitectureRoles.TokenEmbedding} has {table.Rows} rows");
        Shape(ArchitectureRoles.TokenEmbedding, Vocab, D, "vocab × d_model");
        HasPositions = Has(ArchitectureRoles.PositionEmbedding);
        if (HasPositions) Shape(ArchitectureRoles.PositionEmbedding, Length, D, $"format {arch.Format.Name}'s input length × d_model");
        foreach (var ln in new[] { ArchitectureRoles.Ln1, ArchitectureRoles.Ln2, ArchitectureRoles.LnFinal }) Shape(ln, D, 1, "d_model");
        Dq = Need(ArchitectureRoles.Q).Rows;
        Shape(ArchitectureRoles.Q, Dq, D, "head dim × d_model");
        Shape(ArchitectureRoles.K, Dq, D, "q's head dim × d_model");
        Dv = Need(ArchitectureRoles.V).Rows;
        Shape(ArchitectureRoles.V, Dv, D, "value dim × d_model");
        Shape(ArchitectureRoles.O, D, Dv, "d_model × v's value dim");
        HasQkNorm = Has(ArchitectureRoles.QNorm) || Has(ArchitectureRoles.KNorm);
        if (HasQkNorm)
        {
            Shape(ArchitectureRoles.QNorm, Dq, 1, "head dim");
            Shape(ArchitectureRoles.KNorm, Dq, 1, "head dim");
        }
        if (arch.RopeTheta is not null && Dq % 2 != 0) throw Error($"RoPE rotates pairs: the head dim must be even, q has {Dq} rows");
        string[] mlpRoles = SwiGlu ? [ArchitectureRoles.MlpGate, ArchitectureRoles.MlpUp, ArchitectureRoles.MlpDown] : [ArchitectureRoles.MlpIn, ArchitectureRoles.MlpOut];
        string[] otherMlp = SwiGlu ? [ArchitectureRoles.MlpIn, ArchitectureRoles.MlpOut] : [ArchitectureRoles.MlpGate, ArchitectureRoles.MlpUp, ArchitectureRoles.MlpDown];
        foreach (var r in otherMlp) if (Has(r)) throw Error($"role {r} is not part of a {arch.Mlp} MLP (it uses {string.Join(", ", mlpRoles)})");
        F = Need(mlpRoles[0]).Rows;
        if (SwiGlu)
        {
            Shape(ArchitectureRoles.MlpGate, F, D, "d_ff × d_model");
            Shape(ArchitectureRoles.MlpUp, F, D, "gate's d_ff × d_model");
            Shape(ArchitectureRoles.MlpDown, D, F, "d_model × d_ff");
        }
        else
        {
            Shape(ArchitectureRoles.MlpIn, F, D, "d_ff × d_model");
            Shape(ArchitectureRoles.MlpOut, D, F, "d_model × d_ff");
        }
        Shape(ArchitectureRoles.Head, Vocab, D, "vocab × d_model");
        Scale = arch.AttentionScale ?? 1.0 / Math.Sqrt(Dq);

        foreach (var p in arch.Parameters)
            if (!symbols.Used.Contains(p.Name)) throw Error($"parameter '{Limits.Echo(p.Name)}' is used by no role");
    }

    sealed class Symbols(Dictionary<string, RoleNode> parameters, RoleGraph graph) : RoleExpression.ISymbols
    {
        public HashSet<string> Used { get; } = [];
        public RoleNode? Resolve(string name)
        {
            if (parameters.TryGetValue(name, out var p)) { Used.Add(name); return p; }
            return graph.Roles.TryGetValue(name, out var r) ? r : null;
        }
    }

    /// <summary>Fills the stored parameters with their inits (normal and uniform from one seeded stream, in the
    /// parameters' order).</summary>
    public void Initialise(Span<float> parameters, int seed)
    {
        var rng = new Random(seed);
        foreach (var p in Architecture.Parameters)
        {
            var view = parameters.Slice(Offsets[p.Name], p.Size);
            for (int i = 0; i < view.Length; i++)
                view[i] = p.Init.Kind switch
                {
                    "normal" => (float)(p.Init.Scale * Gaussian(rng)),
                    "uniform" => (float)(p.Init.Scale * (2 * rng.NextDouble() - 1)),
                    "constant" => (float)p.Init.Scale,
                    _ => (float)p.Init.Values![i],
                };
        }
    }

    static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
