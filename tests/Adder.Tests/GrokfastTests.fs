/// The Grokfast-EMA gradient filter: its arithmetic, and a run that uses it (resume bit for bit).
module Adder.Tests.GrokfastTests

open System.IO
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests


[<Fact>]
let ``Grokfast adds lambda times the gradient's moving average`` () =
    let grad = [| 1.0f; -2.0f |]
    let ema = [| 0.0f; 0.0f |]
    Grokfast.Apply(grad, ema, 0.9, 2.0)
    // h = 0.1 g; g + 2 h = 1.2 g
    Assert.Equal<float32[]>([| 0.1f; -0.2f |], ema)
    Assert.Equal(1.2f, grad.[0], 6)
    let grad2 = [| 1.0f; 0.0f |]
    Grokfast.Apply(grad2, ema, 0.9, 2.0)
    // h = 0.9·0.1 + 0.1·1 = 0.19; g = 1 + 0.38
    Assert.Equal(0.19f, ema.[0], 6)
    Assert.Equal(1.38f, grad2.[0], 6)
    Assert.Equal(-0.18f, ema.[1], 6)
    Assert.Equal(-0.36f, grad2.[1], 6)

[<Fact>]
let ``a Grokfast run changes the trajectory, saves its average, and stop plus resume continues bit for bit`` () =
    let root = tempDir ()
    let plain, straight, split = Path.Combine(root, "plain"), Path.Combine(root, "straight"), Path.Combine(root, "split")
    let gf = [ "--grokfast-lambda"; "0.5"; "--grokfast-alpha"; "0.9" ]
    Assert.Equal(0, (run (trainArgs plain [])).Code)
    let r = run (trainArgs straight gf)
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Equal(0, (run (trainArgs split (gf @ [ "--stop-after"; "13" ]))).Code)
    let saved = Checkpoint.Load(Path.Combine(split, "last.safetensors"))
    Assert.Equal(saved.Model.Layout.Count, saved.Optimizer.GrokfastEma.Length)
    run [ "train"; "--out"; split; "--resume"; "--grokfast-lambda"; "1" ] |> assertOneLineError "--grokfast-lambda 1 differs"
    let r = run [ "train"; "--out"; split; "--resume"; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    let load dir = Checkpoint.Load(Path.Combine(dir, "last.safetensors"))
    Assert.Equal<float32[]>((load straight).Model.Parameters, (load split).Model.Parameters)
    Assert.Equal<float32[]>((load straight).Optimizer.GrokfastEma, (load split).Optimizer.GrokfastEma)
    Assert.NotEqual<float32[]>((load plain).Model.Parameters, (load straight).Model.Parameters)
    // the unfiltered run saves no average (its checkpoints are as before the lever existed)
    Assert.Null((load plain).Optimizer.GrokfastEma)
    // the CUDA kernels have the filter: without a GPU the run ends on the device error, not a Grokfast refusal
    if not (List.contains Adder.Pipeline.Backends.Cuda (Adder.Pipeline.Backends.available ())) then
        let cuda = Path.Combine(root, "cuda")
        let r = run (trainArgs cuda (gf @ [ "--device"; "cuda" ]))
        r |> assertOneLineError "no CUDA device"
        Assert.DoesNotContain("Grokfast", r.Err)
        Assert.False(Directory.Exists cuda)
    run (trainArgs (Path.Combine(root, "bad")) [ "--grokfast-alpha"; "1" ]) |> assertOneLineError "--grokfast-alpha must be in [0, 1)"
    run (trainArgs (Path.Combine(root, "bad")) [ "--grokfast-lambda"; "-1" ]) |> assertOneLineError "--grokfast-lambda must not be negative"
