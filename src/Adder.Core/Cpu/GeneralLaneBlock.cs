using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Adder.Core.Cpu;

/// <summary><see cref="GeneralBlock"/>'s math on 16 sequences at once (one per lane of a Vector512&lt;float&gt;),
/// in float32: what the general backend trains and decodes with. The roles' matrices are scalars broadcast to
/// every lane; their gradients accumulate per lane and are summed across lanes once per partition.
/// GeneralBlock (float64, one sequence) stays the reference the tests hold this to.</summary>
public sealed class GeneralLaneBlock
{
    const int W = LaneMath.Width;
    readonly int D, Dq, Dv, F, Vocab, L;
    readonly bool positions, qkNorm, swiglu, rope;
    readonly float scale, eps, qkEps;
    readonly float[] ropeTable;

    public GeneralLaneBlock(CompiledArchitecture arch)
    {
        (D, Dq, Dv, F, Vocab, L) = (arch.D, arch.Dq, arch.Dv, arch.F, arch.Vocab, arch.Length);
        (positions, qkNorm, swiglu) = (arch.HasPositions, arch.HasQkNorm, arch.SwiGlu);
        scale = (float)arch.Scale;
        eps = (float)arch.Architecture.NormEps;
        qkEps = (float)arch.Architecture.QkNormEps;
        rope = arch.Architecture.RopeTheta is not null;
        ropeTable = rope ? Array.ConvertAll(GeneralLayers.RopeTable(L, Dq, arch.Architecture.RopeTheta!.Value), x => (float)x) : [];
    }

    /// <summary>The roles in float32, for the lanes (views like GeneralBlock.RoleSet's).</summary>
    public sealed class Roles
    {
        public readonly float[] Emb, Pos, Ln1, Ln2, LnF, Q, K, V, QN, KN, O, In, Out, Gate, Up, Down, Head;
        public Roles(GeneralBlock.RoleSet r)
        {
            static float[] F(double[] x) => Array.ConvertAll(x, v => (float)v);
            (Emb, Pos, Ln1, Ln2, LnF) = (F(r.Emb), F(r.Pos), F(r.Ln1), F(r.Ln2), F(r.LnF));
            (Q, K, V, QN, KN, O) = (F(r.Q), F(r.K), F(r.V), F(r.QN), F(r.KN), F(r.O));
            (In, Out, Gate, Up, Down, Head) = (F(r.In), F(r.Out), F(r.Gate), F(r.Up), F(r.Down), F(r.Head));
        }
    }

    /// <summary>Per-lane role gradients, the shapes of Roles.</summary>
    public sealed class Gradients
    {
        public readonly VF[] Emb, Pos, Ln1, Ln2, LnF, Q, K, V, QN, KN, O, In, Out, Gate, Up, Down, Head;
        public Gradients(GeneralBlock.RoleSet shape)
        {
            static VF[] Z(double[] x) => new VF[x.Length];
            (Emb, Pos, Ln1, Ln2, LnF) = (Z(shape.Emb), Z(shape.Pos), Z(shape.Ln1), Z(shape.Ln2), Z(shape.LnF));
            (Q, K, V, QN, KN, O) = (Z(shape.Q), Z(shape.K), Z(shape.V), Z(shape.QN), Z(shape.KN), Z(shape.O));
            (In, Out, Gate, Up, Down, Head) = (Z(shape.In), Z(shape.Out), Z(shape.Gate), Z(shape.Up), Z(shape.Down), Z(shape.Head));
        }
        VF[][] All => [Emb, Pos, Ln1, Ln2, LnF, Q, K, V, QN, KN, O, In, Out, Gate, Up, Down, Head];
        public void Clear() { foreach (var a in All) Array.Clear(a); }

        /// <summary>Adds the lanes' sums into a double-precision role set of the same layout.</summary>
        public void SumInto(GeneralBlock.RoleSet target)
        {
            double[][] t = [target.Emb, target.Pos, target.Ln1, target.Ln2, target.LnF, target.Q, target.K, target.V, target.QN, target.KN,
                            target.O, target.In, target.Out, target.Gate, target.Up, target.Down, target.Head];
            var all = All;
            for (int k = 0; k < all.Length; k++)
                for (int i = 0; i < all[k].Length; i++) t[k][i] += Vector512.Sum(all[k][i]);
        }
    }

    /// <summary>16 sequences' activations, [position][dim] of lane vectors; tokens [position][lane]. The keys,
    /// the values and their gradients are held [dim][position], so that attention's loops run along positions.</summary>
    public sealed class Workspace
    {
        public readonly int[] Tokens;
        public readonly VF[] X0, H1, R1, Q, K, Rq, Rk, Qr, P, Att, X1, H2, R2, U, U2, G, X2, H3, R3, Logits;
        public readonly VF[] KrT, VT;
        public readonly VF[] DX1, DQr, DKrT, DVT;

        public Workspace(GeneralLaneBlock b)
        {
            int L = b.L;
            Tokens = new int[(L + 1) * W];
            X0 = new VF[L * b.D]; H1 = new VF[L * b.D]; R1 = new VF[L];
            Q = new VF[L * b.Dq]; K = new VF[L * b.Dq]; Rq = new VF[L]; Rk = new VF[L];
            Qr = new VF[L * b.Dq]; KrT = new VF[b.Dq * L]; VT = new VF[b.Dv * L]; P = new VF[L * L]; Att = new VF[L * b.Dv];
            X1 = new VF[L * b.D]; H2 = new VF[L * b.D]; R2 = new VF[L];
            U = new VF[L * b.F]; U2 = new VF[L * b.F]; G = new VF[L * b.F];
            X2 = new VF[L * b.D]; H3 = new VF[L * b.D]; R3 = new VF[L]; Logits = new VF[L * b.Vocab];
            DX1 = new VF[L * b.D]; DQr = new VF[L * b.Dq]; DKrT = new VF[b.Dq * L]; DVT = new VF[b.Dv * L];
        }
    }

    public Workspace NewWorkspace() => new(this);

    static Span<VF> Row(VF[] a, int t, int n) => a.AsSpan(t * n, n);

    /// <summary>Positions 0..n-1 of dimension i of a [dim][position] buffer.</summary>
    Span<VF> Along(VF[] a, int i, int n) => a.AsSpan(i * L, n);

    // ---- loops along positions (attention): refs, so no bounds check per element ----

    /// <summary>y[j] = a·x[j] + y[j], one rounding each (x and y of one length).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Axpy(VF a, ReadOnlySpan<VF> x, Span<VF> y)
    {
        if (y.Length != x.Length) throw new ArgumentException("spans of different lengths");
        ref VF xj = ref MemoryMarshal.GetReference(x);
        ref VF yj = ref MemoryMarshal.GetReference(y);
        for (int j = 0; j < x.Length; j++)
        {
            yj = LaneMath.Fma(a, xj, yj);
            xj = ref Unsafe.Add(ref xj, 1);
            yj = ref Unsafe.Add(ref yj, 1);
        }
    }

    /// <summary>p[j] = Σ_i q[i]·k[i][j] summed in order of i, as the Axpy loop does it, for heads of 4 dims
    /// (every preset's): one pass over the positions instead of four.</summary>
    void Scores4(ReadOnlySpan<VF> q, ReadOnlySpan<VF> keys, Span<VF> p)
    {
        if (q.Length != 4 || keys.Length != 4 * L || p.Length > L) throw new ArgumentException("not a 4-dim head");
        VF q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3];
        ref VF k0 = ref MemoryMarshal.GetReference(keys);
        ref VF k1 = ref Unsafe.Add(ref k0, L);
        ref VF k2 = ref Unsafe.Add(ref k0, 2 * L);
        ref VF k3 = ref Unsafe.Add(ref k0, 3 * L);
        ref VF pr = ref MemoryMarshal.GetReference(p);
        for (int j = 0; j < p.Length; j++)
        {
            var s = LaneMath.Fma(q0, Unsafe.Add(ref k0, j), VF.Zero);
            s = LaneMath.Fma(q1, Unsafe.Add(ref k1, j), s);
            s = LaneMath.Fma(q2, Unsafe.Add(ref k2, j), s);
            Unsafe.Add(ref pr, j) = LaneMath.Fma(q3, Unsafe.Add(ref k3, j), s);
        }
    }

    /// <summary>The general loops' normalisation and weighted sum in one pass for 4-dim values: p[j] *= inv,
    /// then att[i] = Σ_j p[j]·v[i][j] in order of j.</summary>
    void NormaliseAndAttend4(VF inv, Span<VF> p, ReadOnlySpan<VF> values, Span<VF> att)
    {
        if (att.Length != 4 || values.Length < 4 * L || p.Length > L) throw new ArgumentException("not 4-dim values");
        VF s0 = VF.Zero, s1 = VF.Zero, s2 = VF.Zero, s3 = VF.Zero;
        ref VF v0 = ref MemoryMarshal.GetReference(values);
        ref VF v1 = ref Unsafe.Add(ref v0, L);
        ref VF v2 = ref Unsafe.Add(ref v0, 2 * L);
        ref VF v3 = ref Unsafe.Add(ref v0, 3 * L);
        ref VF pj = ref MemoryMarshal.GetReference(p);
        for (int j = 0; j < p.Length; j++)
        {
            var w = pj * inv;
            pj = w;
            s0 = LaneMath.Fma(w, v0, s0);
            s1 = LaneMath.Fma(w, v1, s1);
            s2 = LaneMath.Fma(w, v2, s2);
            s3 = LaneMath.Fma(w, v3, s3);
            v0 = ref Unsafe.Add(ref v0, 1); v1 = ref Unsafe.Add(ref v1, 1); v2 = ref Unsafe.Add(ref v2, 1); v3 = ref Unsafe.Add(ref v3, 1);
            pj = ref Unsafe.Add(ref pj, 1);
        }
        att[0] = s0; att[1] = s1; att[2] = s2; att[3] = s3;
    }

    /// <summary>The general loops' values backward in one pass for 4-dim values: dp[j] = Σ_i a[i]·v[i][j] (in
    /// order of i) and dv[i][j] += a[i]·p[j], for j below dp's length.</summary>
    void ValuesBackward4(ReadOnlySpan<VF> a, ReadOnlySpan<VF> p, ReadOnlySpan<VF> values, Span<VF> dvalues, Span<VF> dp)
    {
        if (a.Length != 4 || values.Length < 4 * L || dvalues.Length < 4 * L || p.Length != dp.Length || p.Length > L)
            throw new ArgumentException("not 4-dim values");
        VF a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
        ref VF v0 = ref MemoryMarshal.GetReference(values);
        ref VF v1 = ref Unsafe.Add(ref v0, L);
        ref VF v2 = ref Unsafe.Add(ref v0, 2 * L);
        ref VF v3 = ref Unsafe.Add(ref v0, 3 * L);
        ref VF d0 = ref MemoryMarshal.GetReference(dvalues);
        ref VF d1 = ref Unsafe.Add(ref d0, L);
        ref VF d2 = ref Unsafe.Add(ref d0, 2 * L);
        ref VF d3 = ref Unsafe.Add(ref d0, 3 * L);
        ref VF pj = ref MemoryMarshal.GetReference(p);
        ref VF dpj = ref MemoryMarshal.GetReference(dp);
        for (int j = 0; j < p.Length; j++)
        {
            var s = LaneMath.Fma(a0, v0, VF.Zero);
            s = LaneMath.Fma(a1, v1, s);
            s = LaneMath.Fma(a2, v2, s);
            dpj = LaneMath.Fma(a3, v3, s);
            d0 = LaneMath.Fma(a0, pj, d0);
            d1 = LaneMath.Fma(a1, pj, d1);
            d2 = LaneMath.Fma(a2, pj, d2);
            d3 = LaneMath.Fma(a3, pj, d3);
            v0 = ref Unsafe.Add(ref v0, 1); v1 = ref Unsafe.Add(ref v1, 1); v2 = ref Unsafe.Add(ref v2, 1); v3 = ref Unsafe.Add(ref v3, 1);
            d0 = ref Unsafe.Add(ref d0, 1); d1 = ref Unsafe.Add(ref d1, 1); d2 = ref Unsafe.Add(ref d2, 1); d3 = ref Unsafe.Add(ref d3, 1);
            pj = ref Unsafe.Add(ref pj, 1); dpj = ref Unsafe.Add(ref dpj, 1);
        }
    }

    /// <summary>The general loops' keys backward in one pass for 4-dim heads: dq[i] += Σ_j ds[j]·k[i][j] (in
    /// order of j) and dk[i][j] += q[i]·ds[j], for j below ds's length.</summary>
    void KeysBackward4(ReadOnlySpan<VF> ds, ReadOnlySpan<VF> q, ReadOnlySpan<VF> keys, Span<VF> dkeys, Span<VF> dq)
    {
        if (q.Length != 4 || dq.Length != 4 || keys.Length < 4 * L || dkeys.Length < 4 * L || ds.Length > L)
            throw new ArgumentException("not a 4-dim head");
        VF q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3];
        VF s0 = dq[0], s1 = dq[1], s2 = dq[2], s3 = dq[3];
        ref VF k0 = ref MemoryMarshal.GetReference(keys);
        ref VF k1 = ref Unsafe.Add(ref k0, L);
        ref VF k2 = ref Unsafe.Add(ref k0, 2 * L);
        ref VF k3 = ref Unsafe.Add(ref k0, 3 * L);
        ref VF d0 = ref MemoryMarshal.GetReference(dkeys);
        ref VF d1 = ref Unsafe.Add(ref d0, L);
        ref VF d2 = ref Unsafe.Add(ref d0, 2 * L);
        ref VF d3 = ref Unsafe.Add(ref d0, 3 * L);
        ref VF dsj = ref MemoryMarshal.GetReference(ds);
        for (int j = 0; j < ds.Length; j++)
        {
            var g = dsj;
            s0 = LaneMath.Fma(g, k0, s0);
            s1 = LaneMath.Fma(g, k1, s1);
            s2 = LaneMath.Fma(g, k2, s2);
            s3 = LaneMath.Fma(g, k3, s3);
            d0 = LaneMath.Fma(q0, g, d0);
            d1 = LaneMath.Fma(q1, g, d1);
            d2 = LaneMath.Fma(q2, g, d2);
            d3 = LaneMath.Fma(q3, g, d3);
            k0 = ref Unsafe.Add(ref k0, 1); k1 = ref Unsafe.Add(ref k1, 1); k2 = ref Unsafe.Add(ref k2, 1); k3 = ref Unsafe.Add(ref k3, 1);
            d0 = ref Unsafe.Add(ref d0, 1); d1 = ref Unsafe.Add(ref d1, 1); d2 = ref Unsafe.Add(ref d2, 1); d3 = ref Unsafe.Add(ref d3, 1);
            dsj = ref Unsafe.Add(ref dsj, 1);
        }
        dq[0] = s0; dq[1] = s1; dq[2] = s2; dq[3] = s3;
    }

    /// <summary>acc + Σ_j a[j]·b[j], accumulated in order of j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF Dot(ReadOnlySpan<VF> a, ReadOnlySpan<VF> b, VF acc)
    {
        if (b.Length != a.Length) throw new ArgumentException("spans of different lengths");
        ref VF aj = ref MemoryMarshal.GetReference(a);
        ref VF bj = ref MemoryMarshal.GetReference(b);
        for (int j = 0; j < a.Length; j++)
        {
            acc = LaneMath.Fma(aj, bj, acc);
            aj = ref Unsafe.Add(ref aj, 1);
            bj = ref Unsafe.Add(ref bj, 1);
        }
        return acc;
    }

    // ---- the layers on lanes: the same functions as GeneralLayers, matrices broadcast ----

    // The matrices are a few elements wide: the loops run on refs (lengths checked once), since a bounds check
    // per element costs as much as the multiply-add it guards.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void MatVec(ReadOnlySpan<float> w, ReadOnlySpan<VF> x, Span<VF> y)
    {
        int n = x.Length;
        if (w.Length < y.Length * n) throw new ArgumentException("matrix smaller than its vectors");
        ref float wr = ref MemoryMarshal.GetReference(w);
        ref VF xr = ref MemoryMarshal.GetReference(x);
        ref VF yr = ref MemoryMarshal.GetReference(y);
        for (int o = 0; o < y.Length; o++)
        {
            var s = VF.Zero;
            for (int i = 0; i < n; i++) s = LaneMath.Fma(Unsafe.Add(ref xr, i), Unsafe.Add(ref wr, o * n + i), s);
            Unsafe.Add(ref yr, o) = s;
        }
    }

    static void MatVecBackward(ReadOnlySpan<float> w, ReadOnlySpan<VF> x, ReadOnlySpan<VF> dy, Span<VF> dw, Span<VF> dx)
    {
        int n = x.Length;
        if (w.Length < dy.Length * n || dw.Length < dy.Length * n || dx.Length < n) throw new ArgumentException("matrix smaller than its vectors");
        ref float wr = ref MemoryMarshal.GetReference(w);
        ref VF xr = ref MemoryMarshal.GetReference(x);
        ref VF dwr = ref MemoryMarshal.GetReference(dw);
        ref VF dxr = ref MemoryMarshal.GetReference(dx);
        ref VF dyr = ref MemoryMarshal.GetReference(dy);
        // dx[i] summed over o in order, in a register (not stored and reloaded for every o)
        for (int i = 0; i < n; i++)
        {
            var xi = Unsafe.Add(ref xr, i);
            var acc = Unsafe.Add(ref dxr, i);
            for (int o = 0; o < dy.Length; o++)
            {
                var g = Unsafe.Add(ref dyr, o);
                ref VF dwi = ref Unsafe.Add(ref dwr, o * n + i);
                dwi = LaneMath.Fma(g, xi, dwi);
                acc = LaneMath.Fma(g, Unsafe.Add(ref wr, o * n + i), acc);
            }
            Unsafe.Add(ref dxr, i) = acc;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF RmsNorm(ReadOnlySpan<VF> x, ReadOnlySpan<float> w, float eps, Span<VF> y)
    {
        var ss = VF.Zero;
        for (int i = 0; i < x.Length; i++) ss = LaneMath.Fma(x[i], x[i], ss);
        var r = V.Create(1f) / V.Sqrt(ss * V.Create(1f / x.Length) + V.Create(eps));
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * r * V.Create(w[i]);
        return r;
    }

    static void RmsNormBackward(ReadOnlySpan<VF> x, ReadOnlySpan<float> w, VF r, ReadOnlySpan<VF> dy, Span<VF> dw, Span<VF> dx)
    {
        int n = x.Length;
        var dot = VF.Zero;
        for (int i = 0; i < n; i++)
        {
            dw[i] = LaneMath.Fma(dy[i], x[i] * r, dw[i]);
            dot = LaneMath.Fma(x[i] * V.Create(w[i]), dy[i], dot);
        }
        var k = r * r * r * dot * V.Create(1f / n);
        for (int i = 0; i < n; i++) dx[i] += r * V.Create(w[i]) * dy[i] - k * x[i];
    }

    void Rope(Span<VF> x, int t, bool inverse)
    {
        int n = x.Length;
        for (int i = 0; i < n / 2; i++)
        {
            var c = V.Create(ropeTable[(t * n / 2 + i) * 2]);
            var s = V.Create(ropeTable[(t * n / 2 + i) * 2 + 1] * (inverse ? -1 : 1));
            VF a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * c - b * s;
            x[2 * i + 1] = a * s + b * c;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static VF Sigmoid(VF u) => V.Create(1f) / (V.Create(1f) + LaneMath.Exp(-u));

    /// <summary>Loads 16 sequences (fewer at the end of a batch: the rest repeat the first, weight 0).</summary>
    public static void Load(Workspace ws, ReadOnlySpan<int> sequences, int length, int count)
    {
        for (int lane = 0; lane < W; lane++)
        {
            var s = sequences.Slice((lane < count ? lane : 0) * length, length);
            for (int t = 0; t < length; t++) ws.Tokens[t * W + lane] = s[t];
        }
    }

    /// <summary>All of position t: its key and value, then its query's attention, the MLP and the logits.</summary>
    public void ForwardPosition(Roles r, Workspace ws, int t)
    {
        ForwardKeyValue(r, ws, t);
        ForwardQuery(r, ws, t);
    }

    /// <summary>What later positions read of position t: its embedding, first norm, key and value. In one
    /// layer nothing else of a position feeds another, so a position whose logits are not used needs only this.</summary>
    [SkipLocalsInit]
    public void ForwardKeyValue(Roles r, Workspace ws, int t)
    {
        var x0 = Row(ws.X0, t, D);
        Span<float> gathered = stackalloc float[W];
        for (int i = 0; i < D; i++)
        {
            for (int lane = 0; lane < W; lane++) gathered[lane] = r.Emb[ws.Tokens[t * W + lane] * D + i];
            x0[i] = V.Create<float>(gathered) + (positions ? V.Create(r.Pos[t * D + i]) : VF.Zero);
        }
        var h1 = Row(ws.H1, t, D);
        ws.R1[t] = RmsNorm(x0, r.Ln1, eps, h1);
        var k = Row(ws.K, t, Dq);
        Span<VF> v = stackalloc VF[Dv], kr = stackalloc VF[Dq];
        MatVec(r.K, h1, k); MatVec(r.V, h1, v);
        if (qkNorm) ws.Rk[t] = RmsNorm(k, r.KN, qkEps, kr);
        else k.CopyTo(kr);
        if (rope) Rope(kr, t, false);
        for (int i = 0; i < Dq; i++) ws.KrT[i * L + t] = kr[i];
        for (int i = 0; i < Dv; i++) ws.VT[i * L + t] = v[i];
    }

    /// <summary>Position t's query over the keys and values of positions 0..t (ForwardKeyValue done for them),
    /// the MLP and the logits.</summary>
    [SkipLocalsInit]
    public void ForwardQuery(Roles r, Workspace ws, int t)
    {
        var x0 = Row(ws.X0, t, D);
        var h1 = Row(ws.H1, t, D);
        var q = Row(ws.Q, t, Dq);
        MatVec(r.Q, h1, q);
        var qr = Row(ws.Qr, t, Dq);
        if (qkNorm) ws.Rq[t] = RmsNorm(q, r.QN, qkEps, qr);
        else q.CopyTo(qr);
        if (rope) Rope(qr, t, false);
        // causal attention of query t over keys 0..t: the scores, each summed over i in order
        int n = t + 1;
        var p = ws.P.AsSpan(t * L, n);
        if (Dq == 4) Scores4(qr, ws.KrT.AsSpan(0, 4 * L), p);
        else
        {
            p.Clear();
            for (int i = 0; i < Dq; i++) Axpy(qr[i], Along(ws.KrT, i, n), p);
        }
        var max = V.Create(float.NegativeInfinity);
        // MaxNative: the scores are finite, so the IEEE fix-ups of V.Max (NaN, signed zeros) change nothing
        // each value kept in a register: reading back what was just stored stalls on store forwarding
        for (int j = 0; j < n; j++) { var s = p[j] * V.Create(scale); p[j] = s; max = V.MaxNative(max, s); }
        var sum = VF.Zero;
        for (int j = 0; j < n; j++) { var e = LaneMath.Exp(p[j] - max); p[j] = e; sum += e; }
        var inv = V.Create(1f) / sum;
        var att = Row(ws.Att, t, Dv);
        if (Dv == 4) NormaliseAndAttend4(inv, p, ws.VT, att);
        else
        {
            for (int j = 0; j < n; j++) p[j] *= inv;
            for (int i = 0; i < Dv; i++) att[i] = Dot(p, Along(ws.VT, i, n), VF.Zero);
        }
        var x1 = Row(ws.X1, t, D);
        MatVec(r.O, att, x1);
        for (int i = 0; i < D; i++) x1[i] += x0[i];
        var h2 = Row(ws.H2, t, D);
        ws.R2[t] = RmsNorm(x1, r.Ln2, eps, h2);
        var u = Row(ws.U, t, F); var u2 = Row(ws.U2, t, F); var g = Row(ws.G, t, F);
        Span<VF> m = stackalloc VF[D];
        if (swiglu)
        {
            MatVec(r.Gate, h2, u); MatVec(r.Up, h2, u2);
            for (int i = 0; i < F; i++) g[i] = u[i] * Sigmoid(u[i]) * u2[i];
            MatVec(r.Down, g, m);
        }
        else
        {
            MatVec(r.In, h2, u);
            for (int i = 0; i < F; i++) g[i] = LaneMath.Gelu(u[i]);
            MatVec(r.Out, g, m);
        }
        var x2 = Row(ws.X2, t, D);
        for (int i = 0; i < D; i++) x2[i] = x1[i] + m[i];
        var h3 = Row(ws.H3, t, D);
        ws.R3[t] = RmsNorm(x2, r.LnF, eps, h3);
        MatVec(r.Head, h3, Row(ws.Logits, t, Vocab));
    }

    /// <summary>Forward over all positions, the loss of the scored positions (each lane's terms weighted by
    /// weights[lane]: 0 for padding) and the backward into the per-lane role gradients. Returns the lanes'
    /// summed (weighted) loss.</summary>
    [SkipLocalsInit]
    public double LossAndBackward(Roles r, Workspace ws, int first, int scored, VF weights, Gradients dr)
    {
        int last = first + scored;
        // only the scored positions' queries reach the loss; the others are keys and values
        for (int t = 0; t < first; t++) ForwardKeyValue(r, ws, t);
        for (int t = first; t < last; t++) ForwardPosition(r, ws, t);
        Array.Clear(ws.DX1); Array.Clear(ws.DQr); Array.Clear(ws.DKrT); Array.Clear(ws.DVT);
        Span<VF> dlogits = stackalloc VF[Vocab];
        Span<VF> dh3 = stackalloc VF[D], dx2 = stackalloc VF[D], dh2 = stackalloc VF[D];
        Span<VF> dg = stackalloc VF[F], du = stackalloc VF[F], du2 = stackalloc VF[F];
        Span<float> label = stackalloc float[W];
        var loss = VF.Zero;
        for (int t = first; t < first + scored; t++)
        {
            // cross-entropy per lane against the next token
            var logits = Row(ws.Logits, t, Vocab);
            var max = logits[0];
            for (int c = 1; c < Vocab; c++) max = V.MaxNative(max, logits[c]);
            var sum = VF.Zero;
            for (int c = 0; c < Vocab; c++) { var e = LaneMath.Exp(logits[c] - max); dlogits[c] = e; sum += e; }
            var inv = V.Create(1f) / sum;
            for (int lane = 0; lane < W; lane++) label[lane] = logits[ws.Tokens[(t + 1) * W + lane]][lane];
            loss += weights * (V.Log(sum) + max - V.Create<float>(label));
            for (int c = 0; c < Vocab; c++) dlogits[c] *= inv;
            // each lane's target: one float of the lane vectors, written in place
            var dlogitFloats = MemoryMarshal.Cast<VF, float>(dlogits);
            for (int lane = 0; lane < W; lane++) dlogitFloats[ws.Tokens[(t + 1) * W + lane] * W + lane] -= 1f;
            for (int c = 0; c < Vocab; c++) dlogits[c] *= weights;
            dh3.Clear();
            MatVecBackward(r.Head, Row(ws.H3, t, D), dlogits, dr.Head, dh3);
            dx2.Clear();
            RmsNormBackward(Row(ws.X2, t, D), r.LnF, ws.R3[t], dh3, dr.LnF, dx2);
            var dx1 = Row(ws.DX1, t, D);
            dx2.CopyTo(dx1);
            dg.Clear(); dh2.Clear();
            var h2 = Row(ws.H2, t, D); var u = Row(ws.U, t, F); var u2 = Row(ws.U2, t, F);
            if (swiglu)
            {
                MatVecBackward(r.Down, Row(ws.G, t, F), dx2, dr.Down, dg);
                for (int i = 0; i < F; i++)
                {
                    var s = Sigmoid(u[i]);
                    du[i] = dg[i] * u2[i] * s * (V.Create(1f) + u[i] * (V.Create(1f) - s));
                    du2[i] = dg[i] * u[i] * s;
                }
                MatVecBackward(r.Gate, h2, du, dr.Gate, dh2);
                MatVecBackward(r.Up, h2, du2, dr.Up, dh2);
            }
            else
            {
                MatVecBackward(r.Out, Row(ws.G, t, F), dx2, dr.Out, dg);
                for (int i = 0; i < F; i++) du[i] = dg[i] * LaneMath.GeluGrad(u[i]);
                MatVecBackward(r.In, h2, du, dr.In, dh2);
            }
            RmsNormBackward(Row(ws.X1, t, D), r.Ln2, ws.R2[t], dh2, dr.Ln2, dx1);
        }
        Span<VF> dAtt = stackalloc VF[Dv];
        Span<VF> dp = stackalloc VF[L];
        // queries before the first scored position have no gradient: nothing to add for them
        for (int t = first; t < last; t++)
        {
            dAtt.Clear();
            MatVecBackward(r.O, Row(ws.Att, t, Dv), Row(ws.DX1, t, D), dr.O, dAtt);
            int n = t + 1;
            var p = ws.P.AsSpan(t * L, n);
            var qr = Row(ws.Qr, t, Dq);
            var dqr = Row(ws.DQr, t, Dq);
            // dp[j] = Σ_i dAtt[i]·v_j[i] (in order of i); the values' gradients; then ds_j, held in dp
            var ds = dp[..n];
            if (Dv == 4) ValuesBackward4(dAtt, p, ws.VT, ws.DVT, ds);
            else
            {
                ds.Clear();
                for (int i = 0; i < Dv; i++)
                {
                    Axpy(dAtt[i], Along(ws.VT, i, n), ds);
                    Axpy(dAtt[i], p, Along(ws.DVT, i, n));
                }
            }
            var dot = Dot(p, ds, VF.Zero);
            for (int j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - dot) * V.Create(scale);
            if (Dq == 4) KeysBackward4(ds, qr, ws.KrT, ws.DKrT, dqr);
            else
                for (int i = 0; i < Dq; i++)
                {
                    dqr[i] = Dot(ds, Along(ws.KrT, i, n), dqr[i]);
                    Axpy(qr[i], ds, Along(ws.DKrT, i, n));
                }
        }
        Span<VF> dq = stackalloc VF[Dq], dk = stackalloc VF[Dq], dh1 = stackalloc VF[D], dx0 = stackalloc VF[D];
        Span<VF> dkr = stackalloc VF[Dq], dv = stackalloc VF[Dv];
        for (int t = 0; t < last; t++)
        {
            var dqr = Row(ws.DQr, t, Dq);
            for (int i = 0; i < Dq; i++) dkr[i] = ws.DKrT[i * L + t];
            for (int i = 0; i < Dv; i++) dv[i] = ws.DVT[i * L + t];
            bool query = t >= first;
            if (rope) { if (query) Rope(dqr, t, true); Rope(dkr, t, true); }
            if (qkNorm)
            {
                dq.Clear(); dk.Clear();
                if (query) RmsNormBackward(Row(ws.Q, t, Dq), r.QN, ws.Rq[t], dqr, dr.QN, dq);
                RmsNormBackward(Row(ws.K, t, Dq), r.KN, ws.Rk[t], dkr, dr.KN, dk);
            }
            else { dqr.CopyTo(dq); dkr.CopyTo(dk); }
            var h1 = Row(ws.H1, t, D);
            dh1.Clear();
            if (query) MatVecBackward(r.Q, h1, dq, dr.Q, dh1);
            MatVecBackward(r.K, h1, dk, dr.K, dh1);
            MatVecBackward(r.V, h1, dv, dr.V, dh1);
            Row(ws.DX1, t, D).CopyTo(dx0);
            RmsNormBackward(Row(ws.X0, t, D), r.Ln1, ws.R1[t], dh1, dr.Ln1, dx0);
            if (positions) for (int i = 0; i < D; i++) dr.Pos[t * D + i] += dx0[i];
            // each lane's token row of the table gets its own lane's gradient: every row adds the lanes whose
            // token it is and +0 elsewhere (which leaves a sum unchanged: the sums start at +0, never at -0)
            var tokens = Vector512.Create<int>(ws.Tokens.AsSpan(t * W, W));
            for (int v = 0; v < Vocab; v++)
            {
                var mine = Vector512.Equals(tokens, Vector512.Create(v)).AsSingle();
                for (int i = 0; i < D; i++) dr.Emb[v * D + i] += dx0[i] & mine;
            }
        }
        return V.Sum(loss);
    }
}
