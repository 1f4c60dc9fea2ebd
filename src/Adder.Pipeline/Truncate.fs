/// SVD rank truncation: a smaller model from a trained one, as a start for retraining (the 275p
/// AdderBoard entry is the 311p with qkv and ffn ranks cut to 2).
///
/// A factorised map y = x·A·B (A in×r, B r×out) is the matrix P = A·B (in×out). With P = U·S·Vᵀ and the
/// singular values sorted, the best rank-k approximation of P (Eckart–Young, in the Frobenius and spectral
/// norms) is U_k·S_k·V_kᵀ, which we store as A' = U_k·S_k^½ (in×k), B' = S_k^½·V_kᵀ (k×out): the scale split
/// evenly between the factors. A full matrix (rank 0, stored out×in like torch's Linear) is P = Wᵀ and can be
/// factorised the same way.
///
/// shareA_tieKV attention shares A between the query and the tied key/value: q = n·A·Bq, k = v = n·A·Bkv.
/// Truncating A·Bq and A·Bkv one by one would give two different A'; instead the pair is one map
/// n ↦ [q | kv] = n·A·[Bq | Bkv], the matrix M = [A·Bq | A·Bkv] (d × 2d). Its SVD M = U·S·Vᵀ gives
/// A' = U_k·S_k^½ (d×k) and [Bq' | Bkv'] = S_k^½·V_kᵀ (k × 2d), split into its first d columns (Bq') and last
/// d (Bkv'): A'·[Bq' | Bkv'] is the best rank-k approximation of M, so of both products at once.
module Adder.Pipeline.Truncate

open System
open MathNet.Numerics.LinearAlgebra
open Adder.Core


/// The factorised matrix families of a config, with the reference's option names.
type Family =
    | Pos
    | Qkv
    | AttnOut
    | Ffn

let familyName =
    function
    | Pos -> "pos"
    | Qkv -> "qkv"
    | AttnOut -> "attn_out"
    | Ffn -> "ffn"

let private families = [ Pos; Qkv; AttnOut; Ffn ]

/// Parses "qkv=2,ffn=2" (families pos, qkv, attn_out, ffn; ranks at least 1).
let parseRanks (text: string) =
    let bad () = fail "bad --ranks '%s' (expected FAMILY=RANK,..., e.g. qkv=2,ffn=2; families: pos, qkv, attn_out, ffn)" (Limits.Echo text)
    let parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
    if parts.Length = 0 then bad ()
    let ranks =
        [ for part in parts ->
            match part.Split('=') with
            | [| name; rank |] ->
                let family = families |> List.tryFind (fun f -> familyName f = name.Trim().ToLowerInvariant())
                match family, Int32.TryParse(rank.Trim()) with
                | Some f, (true, r) when r >= 1 -> f, r
                | Some f, (true, r) -> fail "--ranks: %s=%d (a rank must be at least 1)" (familyName f) r
                | _ -> bad ()
            | _ -> bad () ]
    match ranks |> List.countBy fst |> List.tryFind (fun (_, c) -> c > 1) with
    | Some(f, _) -> fail "--ranks names %s twice" (familyName f)
    | None -> Map.ofList ranks

let private rankOf (c: ModelConfig) =
    function
    | Pos -> c.PosRank
    | Qkv -> c.QkvRank
    | AttnOut -> c.AttnOutRank
    | Ffn -> c.FfnRank

/// The config with the given families' ranks replaced.
let truncatedConfig (c: ModelConfig) (ranks: Map<Family, int>) =
    let r f = ranks |> Map.tryFind f |> Option.defaultValue (rankOf c f)
    ModelConfig(
        NLayer = c.NLayer, DModel = c.DModel, NHead = c.NHead, DFf = c.DFf, MaxSeqLen = c.MaxSeqLen, VocabSize = c.VocabSize,
        PosRank = r Pos, QkvRank = r Qkv, AttnOutRank = r AttnOut, FfnRank = r Ffn, UseRmsNorm = c.UseRmsNorm, TieQkv = c.TieQkv)
        .Validate()

/// A matrix of a model as a map in×out: a low-rank pair's product A·B, or a full matrix's Wᵀ
/// (pos_emb.weight is stored in×out already, like nn.Embedding).
let private product (p: float32[]) (lv: LinearView) (storedInByOut: bool) =
    let get offset (rows: int) (cols: int) = Matrix<float>.Build.Dense(rows, cols, fun i j -> float p.[offset + i * cols + j])
    if lv.LowRank then get lv.A lv.In lv.Rank * get lv.B lv.Rank lv.Out
    elif storedInByOut then get lv.W lv.In lv.Out
    else (get lv.W lv.Out lv.In).Transpose()

/// One truncated matrix: what it was called, its old and new rank and its singular values.
type Report = { Name: string; From: int; To: int; Singular: float[] }

/// The top-k factors of P: A' = U_k·S_k^½ (in×k), B' = S_k^½·V_kᵀ (k×out), and P's singular values.
let factor (P: Matrix<float>) (k: int) =
    let svd = P.Svd(true)
    let s = svd.S.ToArray()
    // MathNet returns them sorted, largest first; sort anyway, so k always keeps the largest
    let order = [| 0 .. s.Length - 1 |] |> Array.sortBy (fun i -> -s.[i])
    let a = Matrix<float>.Build.Dense(P.RowCount, k, fun i j -> svd.U.[i, order.[j]] * sqrt s.[order.[j]])
    let b = Matrix<float>.Build.Dense(k, P.ColumnCount, fun i j -> sqrt s.[order.[i]] * svd.VT.[order.[i], j])
    a, b, Array.map (fun i -> s.[i]) order

let private write (p: float32[]) (offset: int) (m: Matrix<float>) =
    for i in 0 .. m.RowCount - 1 do
        for j in 0 .. m.ColumnCount - 1 do
            p.[offset + i * m.ColumnCount + j] <- float32 m.[i, j]

/// The model with the given families' ranks lowered (or a full family factorised), and what was done.
let truncate (source: Model) (ranks: Map<Family, int>) =
    if not (isNull source.Config.General) then
        fail "truncate cuts the seed family's factorised ranks; architecture %s has none to cut" source.Config.General.Name
    let config = source.Config
    let target = Model(truncatedConfig config ranks)
    let src, dst = source.Layout, target.Layout
    // everything that keeps its name and shape is copied; the truncated families are overwritten below
    for t in dst.Tensors do
        if src.Contains t.Name && src.[t.Name].Shape = t.Shape then
            source.Tensor(t.Name).CopyTo(target.Tensor(t.Name))
    let reports = ResizeArray<Report>()
    for KeyValue(family, k) in ranks do
        let old = rankOf config family
        let check (name: string) (inDim: int) (outDim: int) =
            if old > 0 && k > old then fail "--ranks %s=%d: %s has rank %d; truncation can only lower it" (familyName family) k name old
            if old = 0 && k > min inDim outDim then fail "--ranks %s=%d: %s is %d×%d, so its rank is at most %d" (familyName family) k name inDim outDim (min inDim outDim)
        let single (name: string) (s: LinearView) (d: LinearView) (storedInByOut: bool) =
            check name s.In s.Out
            let a, b, singular = factor (product source.Parameters s storedInByOut) k
            write target.Parameters d.A a
            write target.Parameters d.B b
            reports.Add { Name = name; From = old; To = k; Singular = singular }
        match family with
        | Pos -> single "pos_emb" src.Position dst.Position true
        | Qkv | AttnOut | Ffn ->
            for l in 0 .. config.NLayer - 1 do
                let s, d = src.Blocks.[l], dst.Blocks.[l]
                let name = sprintf "blocks.%d." l
                match family with
                | Qkv when s.SharedA ->
                    // the joint SVD of [A·Bq | A·Bkv] (see the top of this file)
                    let dm = config.DModel
                    check (name + "attn.qkv") dm (2 * dm)
                    let get offset (rows: int) (cols: int) = Matrix<float>.Build.Dense(rows, cols, fun i j -> float source.Parameters.[offset + i * cols + j])
                    let A = get s.QkvA dm s.QkvRank
                    let M = A * get s.Bq s.QkvRank dm |> fun q -> q.Append(A * get s.Bkv s.QkvRank dm)
                    let a, b, singular = factor M k
                    write target.Parameters d.QkvA a
                    write target.Parameters d.Bq (b.SubMatrix(0, k, 0, dm))
                    write target.Parameters d.Bkv (b.SubMatrix(0, k, dm, dm))
                    reports.Add { Name = name + "attn.qkv"; From = old; To = k; Singular = singular }
                | Qkv ->
                    single (name + "attn.q") s.Q d.Q false
                    single (name + "attn.k") s.K d.K false
                    single (name + "attn.v") s.V d.V false
                | AttnOut -> single (name + "attn.proj") s.Proj d.Proj false
                | Ffn ->
                    single (name + "mlp.fc1") s.Fc1 d.Fc1 false
                    single (name + "mlp.fc2") s.Fc2 d.Fc2 false
                | Pos -> ()
    target, List.ofSeq reports
