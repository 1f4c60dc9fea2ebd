namespace Adder.Core.Cpu;

/// <summary>The generic one-layer block over an architecture's effective matrices (its roles), one sequence at
/// a time:
/// <code>
///   x0 = token_embedding[tok] (+ position_embedding[t])
///   h1 = rms(x0, ln1);  q = Q·h1, k = K·h1, v = V·h1
///   q', k' = rope_t(rms(q, q_norm)), rope_t(rms(k, k_norm))     (each step only where the architecture has it)
///   x1 = x0 + O · Σ_j softmax_j(scale · q'·k'_j) v_j             (causal)
///   x2 = x1 + mlp(rms(x1, ln2))     gelu: out·gelu(in·h)   swiglu: down·(silu(gate·h) ⊙ up·h)
///   logits = head · rms(x2, ln_final)
/// </code>
/// The workspace keeps every position's activations, so Forward is also greedy decoding's KV cache.</summary>
public sealed class GeneralBlock
{
    readonly CompiledArchitecture arch;
    readonly int D, Dq, Dv, F, Vocab, L;
    readonly bool positions, qkNorm, swiglu;
    readonly double? rope;
    readonly double[] ropeTable;
    readonly double scale, eps, qkEps;

    public GeneralBlock(CompiledArchitecture arch)
    {
        this.arch = arch;
        (D, Dq, Dv, F, Vocab, L) = (arch.D, arch.Dq, arch.Dv, arch.F, arch.Vocab, arch.Length);
        (positions, qkNorm, swiglu, scale) = (arch.HasPositions, arch.HasQkNorm, arch.SwiGlu, arch.Scale);
        rope = arch.Architecture.RopeTheta;
        ropeTable = rope is { } theta ? GeneralLayers.RopeTable(L, Dq, theta) : [];
        eps = arch.Architecture.NormEps;
        qkEps = arch.Architecture.QkNormEps;
    }

    /// <summary>The roles' effective matrices as one block reads them (views of the graph's values or of a
    /// gradient accumulator with the same layout).</summary>
    public sealed class RoleSet
    {
        public readonly double[] Emb, Pos, Ln1, Ln2, LnF, Q, K, V, QN, KN, O, In, Out, Gate, Up, Down, Head;
        public RoleSet(CompiledArchitecture a, Func<string, int, double[]> get)
        {
            double[] Get(string role, int size, bool present = true) => present ? get(role, size) : [];
            Emb = Get(ArchitectureRoles.TokenEmbedding, a.Vocab * a.D);
            Pos = Get(ArchitectureRoles.PositionEmbedding, a.Length * a.D, a.HasPositions);
            Ln1 = Get(ArchitectureRoles.Ln1, a.D); Ln2 = Get(ArchitectureRoles.Ln2, a.D); LnF = Get(ArchitectureRoles.LnFinal, a.D);
            Q = Get(ArchitectureRoles.Q, a.Dq * a.D); K = Get(ArchitectureRoles.K, a.Dq * a.D); V = Get(ArchitectureRoles.V, a.Dv * a.D);
            QN = Get(ArchitectureRoles.QNorm, a.Dq, a.HasQkNorm); KN = Get(ArchitectureRoles.KNorm, a.Dq, a.HasQkNorm);
            O = Get(ArchitectureRoles.O, a.D * a.Dv);
            In = Get(ArchitectureRoles.MlpIn, a.F * a.D, !a.SwiGlu); Out = Get(ArchitectureRoles.MlpOut, a.D * a.F, !a.SwiGlu);
            Gate = Get(ArchitectureRoles.MlpGate, a.F * a.D, a.SwiGlu); Up = Get(ArchitectureRoles.MlpUp, a.F * a.D, a.SwiGlu);
            Down = Get(ArchitectureRoles.MlpDown, a.D * a.F, a.SwiGlu);
            Head = Get(ArchitectureRoles.Head, a.Vocab * a.D);
        }

        /// <summary>The graph's current values.</summary>
        public static RoleSet Values(CompiledArchitecture a) => new(a, (role, _) => a.Role(role).Value.Data);
        /// <summary>Zeroed accumulators of the same shapes.</summary>
        public static RoleSet Zeros(CompiledArchitecture a) => new(a, (_, size) => new double[size]);

        public IEnumerable<(string Role, double[] Data)> Named(CompiledArchitecture a)
        {
            foreach (var role in a.Graph.Roles.Keys) yield return (role, Field(role));
        }

        double[] Field(string role) => role switch
        {
            ArchitectureRoles.TokenEmbedding => Emb, ArchitectureRoles.PositionEmbedding => Pos,
            ArchitectureRoles.Ln1 => Ln1, ArchitectureRoles.Ln2 => Ln2, ArchitectureRoles.LnFinal => LnF,
            ArchitectureRoles.Q => Q, ArchitectureRoles.K => K, ArchitectureRoles.V => V,
            ArchitectureRoles.QNorm => QN, ArchitectureRoles.KNorm => KN, ArchitectureRoles.O => O,
            ArchitectureRoles.MlpIn => In, ArchitectureRoles.MlpOut => Out, ArchitectureRoles.MlpGate => Gate,
            ArchitectureRoles.MlpUp => Up, ArchitectureRoles.MlpDown => Down, ArchitectureRoles.Head => Head,
            _ => throw new ArgumentException(role),
        };

        public void Clear() { foreach (var f in All()) Array.Clear(f); }
        public void AddTo(RoleSet target) { var t = target.All().ToArray(); int i = 0; foreach (var f in All()) { var g = t[i++]; for (int k = 0; k < f.Length; k++) g[k] += f[k]; } }
        IEnumerable<double[]> All() => [Emb, Pos, Ln1, Ln2, LnF, Q, K, V, QN, KN, O, In, Out, Gate, Up, Down, Head];
    }

    /// <summary>One sequence's activations, [position][dim] each.</summary>
    public sealed class Workspace
    {
        public readonly int[] Tokens;
        public readonly double[] X0, H1, R1, Q, K, V, Qn, Kn, Rq, Rk, Qr, Kr, P, Att, X1, H2, R2, U, U2, G, X2, H3, R3, Logits;
        // backward scratch
        public readonly double[] DX1, DQr, DKr, DV, DAtt;

        public Workspace(GeneralBlock b)
        {
            int L = b.L;
            Tokens = new int[L + 1];
            X0 = new double[L * b.D]; H1 = new double[L * b.D]; R1 = new double[L];
            Q = new double[L * b.Dq]; K = new double[L * b.Dq]; V = new double[L * b.Dv];
            Qn = new double[L * b.Dq]; Kn = new double[L * b.Dq]; Rq = new double[L]; Rk = new double[L];
            Qr = new double[L * b.Dq]; Kr = new double[L * b.Dq];
            P = new double[L * L]; Att = new double[L * b.Dv];
            X1 = new double[L * b.D]; H2 = new double[L * b.D]; R2 = new double[L];
            U = new double[L * b.F]; U2 = new double[L * b.F]; G = new double[L * b.F];
            X2 = new double[L * b.D]; H3 = new double[L * b.D]; R3 = new double[L];
            Logits = new double[L * b.Vocab];
            DX1 = new double[L * b.D]; DQr = new double[L * b.Dq]; DKr = new double[L * b.Dq]; DV = new double[L * b.Dv]; DAtt = new double[L * b.Dv];
        }
    }

    public Workspace NewWorkspace() => new(this);

    static Span<double> Row(double[] a, int t, int n) => a.AsSpan(t * n, n);

    /// <summary>Position t of the sequence in ws.Tokens, with positions 0..t−1 already computed; writes its logits.</summary>
    public void ForwardPosition(RoleSet r, Workspace ws, int t)
    {
        int tok = ws.Tokens[t];
        var x0 = Row(ws.X0, t, D);
        for (int i = 0; i < D; i++) x0[i] = r.Emb[tok * D + i] + (positions ? r.Pos[t * D + i] : 0);
        var h1 = Row(ws.H1, t, D);
        ws.R1[t] = GeneralLayers.RmsNorm(x0, r.Ln1, eps, h1);
        var q = Row(ws.Q, t, Dq); var k = Row(ws.K, t, Dq); var v = Row(ws.V, t, Dv);
        GeneralLayers.MatVec(r.Q, h1, q);
        GeneralLayers.MatVec(r.K, h1, k);
        GeneralLayers.MatVec(r.V, h1, v);
        var qn = Row(ws.Qn, t, Dq); var kn = Row(ws.Kn, t, Dq);
        if (qkNorm)
        {
            ws.Rq[t] = GeneralLayers.RmsNorm(q, r.QN, qkEps, qn);
            ws.Rk[t] = GeneralLayers.RmsNorm(k, r.KN, qkEps, kn);
        }
        else { q.CopyTo(qn); k.CopyTo(kn); }
        var qr = Row(ws.Qr, t, Dq); var kr = Row(ws.Kr, t, Dq);
        qn.CopyTo(qr); kn.CopyTo(kr);
        if (rope is not null) { GeneralLayers.Rope(qr, t, ropeTable); GeneralLayers.Rope(kr, t, ropeTable); }
        var att = Row(ws.Att, t, Dv);
        GeneralLayers.Attention(qr, ws.Kr, ws.V, t, scale, Row(ws.P, t, L), att);
        var x1 = Row(ws.X1, t, D);
        GeneralLayers.MatVec(r.O, att, x1);
        for (int i = 0; i < D; i++) x1[i] += x0[i];
        var h2 = Row(ws.H2, t, D);
        ws.R2[t] = GeneralLayers.RmsNorm(x1, r.Ln2, eps, h2);
        var u = Row(ws.U, t, F); var u2 = Row(ws.U2, t, F); var g = Row(ws.G, t, F);
        Span<double> m = stackalloc double[D];
        if (swiglu)
        {
            GeneralLayers.MatVec(r.Gate, h2, u);
            GeneralLayers.MatVec(r.Up, h2, u2);
            for (int i = 0; i < F; i++) g[i] = GeneralLayers.Silu(u[i]) * u2[i];
            GeneralLayers.MatVec(r.Down, g, m);
        }
        else
        {
            GeneralLayers.MatVec(r.In, h2, u);
            for (int i = 0; i < F; i++) g[i] = GeneralLayers.Gelu(u[i]);
            GeneralLayers.MatVec(r.Out, g, m);
        }
        var x2 = Row(ws.X2, t, D);
        for (int i = 0; i < D; i++) x2[i] = x1[i] + m[i];
        var h3 = Row(ws.H3, t, D);
        ws.R3[t] = GeneralLayers.RmsNorm(x2, r.LnF, eps, h3);
        GeneralLayers.MatVec(r.Head, h3, Row(ws.Logits, t, Vocab));
    }

    /// <summary>Forward over the sequence's first `count` positions, then its loss over the format's scored
    /// positions, each term weighted by `weight`; the backward adds into the role gradients dr.</summary>
    public double LossAndBackward(RoleSet r, Workspace ws, int first, int scored, double weight, RoleSet dr)
    {
        int T = L;
        for (int t = 0; t < T; t++) ForwardPosition(r, ws, t);
        double loss = 0;
        Array.Clear(ws.DX1); Array.Clear(ws.DQr); Array.Clear(ws.DKr); Array.Clear(ws.DV);
        Span<double> dlogits = stackalloc double[Vocab];
        Span<double> dh3 = stackalloc double[D], dx2 = stackalloc double[D], dh2 = stackalloc double[D];
        Span<double> dg = stackalloc double[F], du = stackalloc double[F], du2 = stackalloc double[F];
        // the head, the final norm and the MLP are per position
        for (int t = first; t < first + scored; t++)
        {
            loss += GeneralLayers.CrossEntropy(Row(ws.Logits, t, Vocab), ws.Tokens[t + 1], weight, dlogits);
            dh3.Clear();
            GeneralLayers.MatVecBackward(r.Head, Row(ws.H3, t, D), dlogits, dr.Head, dh3);
            dx2.Clear();
            GeneralLayers.RmsNormBackward(Row(ws.X2, t, D), r.LnF, ws.R3[t], dh3, dr.LnF, dx2);
            var dx1 = Row(ws.DX1, t, D);
            dx2.CopyTo(dx1);
            dg.Clear(); dh2.Clear();
            var h2 = Row(ws.H2, t, D); var u = Row(ws.U, t, F); var u2 = Row(ws.U2, t, F);
            if (swiglu)
            {
                GeneralLayers.MatVecBackward(r.Down, Row(ws.G, t, F), dx2, dr.Down, dg);
                for (int i = 0; i < F; i++)
                {
                    du[i] = dg[i] * u2[i] * GeneralLayers.SiluGrad(u[i]);
                    du2[i] = dg[i] * GeneralLayers.Silu(u[i]);
                }
                GeneralLayers.MatVecBackward(r.Gate, h2, du, dr.Gate, dh2);
                GeneralLayers.MatVecBackward(r.Up, h2, du2, dr.Up, dh2);
            }
            else
            {
                GeneralLayers.MatVecBackward(r.Out, Row(ws.G, t, F), dx2, dr.Out, dg);
                for (int i = 0; i < F; i++) du[i] = dg[i] * GeneralLayers.GeluGrad(u[i]);
                GeneralLayers.MatVecBackward(r.In, h2, du, dr.In, dh2);
            }
            GeneralLayers.RmsNormBackward(Row(ws.X1, t, D), r.Ln2, ws.R2[t], dh2, dr.Ln2, dx1);
        }
        // attention: query t reaches keys and values 0..t, so every position's dx1 is needed first
        int last = first + scored;
        for (int t = 0; t < last; t++)
        {
            var dAtt = Row(ws.DAtt, t, Dv);
            dAtt.Clear();
            GeneralLayers.MatVecBackward(r.O, Row(ws.Att, t, Dv), Row(ws.DX1, t, D), dr.O, dAtt);
            GeneralLayers.AttentionBackward(Row(ws.Qr, t, Dq), ws.Kr, ws.V, t, scale, Row(ws.P, t, L), dAtt, Row(ws.DQr, t, Dq), ws.DKr, ws.DV);
        }
        Span<double> dq = stackalloc double[Dq], dk = stackalloc double[Dq], dh1 = stackalloc double[D], dx0 = stackalloc double[D];
        for (int t = 0; t < last; t++)
        {
            var dqr = Row(ws.DQr, t, Dq); var dkr = Row(ws.DKr, t, Dq);
            if (rope is not null) { GeneralLayers.Rope(dqr, t, ropeTable, inverse: true); GeneralLayers.Rope(dkr, t, ropeTable, inverse: true); }
            if (qkNorm)
            {
                dq.Clear(); dk.Clear();
                GeneralLayers.RmsNormBackward(Row(ws.Q, t, Dq), r.QN, ws.Rq[t], dqr, dr.QN, dq);
                GeneralLayers.RmsNormBackward(Row(ws.K, t, Dq), r.KN, ws.Rk[t], dkr, dr.KN, dk);
            }
            else { dqr.CopyTo(dq); dkr.CopyTo(dk); }
            var h1 = Row(ws.H1, t, D);
            dh1.Clear();
            GeneralLayers.MatVecBackward(r.Q, h1, dq, dr.Q, dh1);
            GeneralLayers.MatVecBackward(r.K, h1, dk, dr.K, dh1);
            GeneralLayers.MatVecBackward(r.V, h1, Row(ws.DV, t, Dv), dr.V, dh1);
            Row(ws.DX1, t, D).CopyTo(dx0);
            GeneralLayers.RmsNormBackward(Row(ws.X0, t, D), r.Ln1, ws.R1[t], dh1, dr.Ln1, dx0);
            int tok = ws.Tokens[t];
            for (int i = 0; i < D; i++)
            {
                dr.Emb[tok * D + i] += dx0[i];
                if (positions) dr.Pos[t * D + i] += dx0[i];
            }
        }
        return loss;
    }
}
