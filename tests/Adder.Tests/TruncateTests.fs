/// SVD rank truncation (adder truncate): products kept where the rank allows, the 275p count, the CLI.
module Adder.Tests.TruncateTests

open System
open System.IO
open Xunit
open FsCheck
open FsCheck.FSharp
open FsCheck.Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Pipeline.Truncate
open Adder.Tests.Shared
open Adder.Tests.CliTests

/// rows×cols row-major block of a flat buffer as a float[,].
let private block (p: float32[]) (offset: int) (rows: int) (cols: int) = Array2D.init rows cols (fun i j -> float p.[offset + i * cols + j])

let private mul (a: float[,]) (b: float[,]) =
    Array2D.init (Array2D.length1 a) (Array2D.length2 b) (fun i j ->
        Seq.sum (seq { for t in 0 .. Array2D.length2 a - 1 -> a.[i, t] * b.[t, j] }))

let private transpose (a: float[,]) = Array2D.init (Array2D.length2 a) (Array2D.length1 a) (fun i j -> a.[j, i])

/// Every map of a model as an in×out matrix, by name: what truncation must keep (plain loops, independent
/// of Truncate's own code).
let private products (m: Model) =
    let p = m.Parameters
    let lin (lv: LinearView) = if lv.LowRank then mul (block p lv.A lv.In lv.Rank) (block p lv.B lv.Rank lv.Out) else transpose (block p lv.W lv.Out lv.In)
    let l = m.Layout
    let pos = if l.Position.LowRank then lin l.Position else block p l.Position.W l.Position.In l.Position.Out
    [ yield "pos", pos
      for i, b in Array.indexed l.Blocks do
          if b.SharedA then
              let d = m.Config.DModel
              let a = block p b.QkvA d b.QkvRank
              yield sprintf "%d.q" i, mul a (block p b.Bq b.QkvRank d)
              yield sprintf "%d.kv" i, mul a (block p b.Bkv b.QkvRank d)
          else
              yield! [ sprintf "%d.q" i, lin b.Q; sprintf "%d.k" i, lin b.K; sprintf "%d.v" i, lin b.V ]
          yield! [ sprintf "%d.proj" i, lin b.Proj; sprintf "%d.fc1" i, lin b.Fc1; sprintf "%d.fc2" i, lin b.Fc2 ] ]

let private maxDiff (a: float[,]) (b: float[,]) =
    Seq.max (seq { for i in 0 .. Array2D.length1 a - 1 do for j in 0 .. Array2D.length2 a - 1 -> abs (a.[i, j] - b.[i, j]) })

let private assertSameProducts (tolerance: float) (a: Model) (b: Model) =
    for (name, x), (_, y) in List.zip (products a) (products b) do
        let scale = max 1.0 (Seq.max (seq { for v in Seq.cast<float> x -> abs v }))
        Assert.True(maxDiff x y <= tolerance * scale, sprintf "%s: products differ by %g" name (maxDiff x y))

/// The published 311p's layout with random weights of a typical trained size.
let private random311 (seed: int) =
    let m = Model(ModelConfig.Preset311)
    let rng = Random seed
    for i in 0 .. m.Parameters.Length - 1 do m.Parameters.[i] <- float32 (rng.NextDouble() * 4.0 - 2.0)
    m

[<Fact>]
let ``truncating every family to its own rank reproduces every product`` () =
    let m = random311 1
    let t, reports = truncate m (parseRanks "pos=3,qkv=3,attn_out=3,ffn=3")
    Assert.Equal(m.Config, t.Config)
    Assert.Equal(5, reports.Length)   // pos, the joint qkv, proj, fc1, fc2
    assertSameProducts 1e-5 m t

[<Fact>]
let ``separate q k v and full matrices: the same rank keeps the products, and full matrices factorise`` () =
    let config = ModelConfig(DModel = 8, DFf = 16, NHead = 2, PosRank = 0, QkvRank = 4, AttnOutRank = 0, FfnRank = 0, TieQkv = TieModes.None)
    let m = Model.Initialised(config, 3)
    let t, _ = truncate m (parseRanks "qkv=4,pos=8,attn_out=8,ffn=8")
    Assert.Equal(8, t.Config.PosRank)
    Assert.Equal(8, t.Config.FfnRank)
    assertSameProducts 1e-5 m t

[<Fact>]
let ``a rank-3 pair whose third singular value is 0 keeps its product at rank 2`` () =
    let m = random311 2
    let p = m.Parameters
    let l = m.Layout
    let b = l.Blocks.[0]
    // column 2 of each A = column 0 − column 1: the products have rank 2
    let degenerate (offset: int) (rows: int) =
        for i in 0 .. rows - 1 do p.[offset + i * 3 + 2] <- p.[offset + i * 3] - p.[offset + i * 3 + 1]
    degenerate b.QkvA 4
    degenerate b.Fc1.A 4
    degenerate b.Fc2.A 8
    let t, reports = truncate m (parseRanks "qkv=2,ffn=2")
    Assert.Equal(275, t.Layout.Count)
    for r in reports do Assert.True(r.Singular.[2] < 1e-5 * r.Singular.[0], sprintf "%s: third singular value %g" r.Name r.Singular.[2])
    assertSameProducts 1e-5 m t

[<Fact>]
let ``qkv and ffn ranks 2 make the 275p preset`` () =
    let c = truncatedConfig ModelConfig.Preset311 (parseRanks "qkv=2,ffn=2")
    Assert.Equal(ModelConfig.Preset "275p", c)
    Assert.Equal(275, ParameterLayout(c).Count)

[<Property(MaxTest = 100)>]
let ``the top-k factors of a product of rank k give it back`` (seed: int) (PositiveInt k) (PositiveInt rows) (PositiveInt cols) =
    let k, rows, cols = 1 + k % 4, k % 4 + 1 + rows % 6, k % 4 + 1 + cols % 9
    let rng = Random seed
    let a = MathNet.Numerics.LinearAlgebra.Matrix<float>.Build.Dense(rows, k, fun _ _ -> rng.NextDouble() - 0.5)
    let b = MathNet.Numerics.LinearAlgebra.Matrix<float>.Build.Dense(k, cols, fun _ _ -> rng.NextDouble() - 0.5)
    let product = a * b
    let a', b', singular = factor product k
    (a' * b' - product).FrobeniusNorm() <= 1e-9 * max 1.0 (product.FrobeniusNorm())
    && singular |> Array.pairwise |> Array.forall (fun (x, y) -> x >= y)

[<Theory>]
[<InlineData("qkv")>]
[<InlineData("qkv=0")>]
[<InlineData("qkv=2,qkv=1")>]
[<InlineData("mlp=2")>]
[<InlineData("")>]
let ``bad ranks are refused`` (text: string) =
    Assert.Throws<AdderException>(fun () -> parseRanks text |> ignore) |> ignore

[<Fact>]
let ``the truncated published checkpoint decodes; at its own ranks it keeps the published accuracy`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "275p.safetensors")
    let r = run [ "truncate"; "-c"; referenceCheckpoint (); "--ranks"; "qkv=2,ffn=2"; "-o"; out ]
    Assert.True((r.Code = 0), r.Err)
    Assert.Contains("311 -> 275 parameters", r.Out)
    Assert.Contains("unique parameters: 275", (run [ "info"; out ]).Out)
    let r = run [ "eval"; "-c"; out; "--suite"; "random"; "--count"; "500" ]
    Assert.Equal(0, r.Code)
    Assert.Contains("/ 500 correct", r.Out)
    // the same ranks: only float32 rounding changes, so the published 99,999 / 100,000 stays
    let same = Path.Combine(dir, "311p.safetensors")
    Assert.Equal(0, (run [ "truncate"; "-c"; referenceCheckpoint (); "--ranks"; "pos=3,qkv=3,attn_out=3,ffn=3"; "-o"; same ]).Code)
    Assert.Contains("99999 / 100000 correct", (run [ "eval"; "-c"; same ]).Out)
    run [ "truncate"; "-c"; referenceCheckpoint (); "--ranks"; "ffn=4"; "-o"; out ] |> assertOneLineError "can only lower it"
    run [ "truncate"; "-c"; referenceCheckpoint (); "--ranks"; "ffn=two"; "-o"; out ] |> assertOneLineError "bad --ranks"
    run [ "truncate"; "-c"; referenceCheckpoint (); "--ranks"; "ffn=2"; "-o"; Path.Combine(dir, "no", "x.safetensors") ]
    |> assertOneLineError "output folder does not exist"
    Directory.Delete(dir, true)

[<Fact>]
let ``train --preset 275p trains the 275-parameter shape`` () =
    let dir = tempDir ()
    let r = run [ "train"; "--preset"; "275p"; "--steps"; "4"; "--eval-interval"; "4"; "--batch"; "16"; "--quiet"; "--out"; dir ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Contains("unique parameters: 275", (run [ "info"; Path.Combine(dir, "best.safetensors") ]).Out)
    Directory.Delete(dir, true)
