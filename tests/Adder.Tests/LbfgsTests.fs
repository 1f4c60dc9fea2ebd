/// The L-BFGS polish: the minimiser on a function with a known minimum, and a recipe stage that lowers the
/// loss on its fixed batch.
module Adder.Tests.LbfgsTests

open System
open System.IO
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests

[<Fact>]
let ``L-BFGS finds the minimum of Rosenbrock's function from its classic start`` () =
    let rosenbrock (x: float[]) =
        let a, b = x.[0], x.[1]
        (1.0 - a) ** 2.0 + 100.0 * (b - a * a) ** 2.0, [| -2.0 * (1.0 - a) - 400.0 * a * (b - a * a); 200.0 * (b - a * a) |]
    let losses = ResizeArray<float>()
    let x, loss, _, iterations = Lbfgs.minimise rosenbrock [| -1.2; 1.0 |] 5 200 (fun i -> losses.Add i.Loss) (fun () -> false)
    Assert.InRange(x.[0], 0.9999, 1.0001)
    Assert.InRange(x.[1], 0.9999, 1.0001)
    Assert.True(loss < 1e-8, sprintf "loss %g" loss)
    Assert.True(iterations < 100, sprintf "%d iterations" iterations)
    // the strong-Wolfe line search's sufficient decrease: every iteration lowers the loss
    for i in 1 .. losses.Count - 1 do Assert.True(losses.[i] <= losses.[i - 1], sprintf "iteration %d raised the loss" (i + 1))
    // an interrupt stops it before the next iteration
    let _, _, reason, done' = Lbfgs.minimise rosenbrock [| -1.2; 1.0 |] 5 200 ignore (fun () -> true)
    Assert.Equal(Lbfgs.Interrupted, reason)
    Assert.Equal(0, done')

let private polishRecipe = """{
  "architecture": "36p", "seed": 3,
  "stages": [
    { "name": "base", "steps": 200, "batch": 32, "lr": 0.01, "warmup": 10, "eval_interval": 100, "curriculum": "0:0..999" },
    { "name": "polish", "optimizer": "lbfgs", "history": 8, "steps": 25, "batch": 64, "curriculum": "0:0..999" }
  ] }"""

[<Fact>]
let ``an lbfgs stage lowers the loss on its fixed batch, and the same command again changes nothing`` () =
    let dir = tempDir ()
    let recipe = Path.Combine(dir, "recipe.json")
    File.WriteAllText(recipe, polishRecipe)
    let out = Path.Combine(dir, "run")
    let r = run [ "train"; "--recipe"; recipe; "--out"; out; "--quiet" ]
    Assert.True((r.Code = 0), sprintf "exit %d\n%s%s" r.Code r.Out r.Err)
    Assert.Contains("lbfgs: 64 pairs fixed", r.Out)
    let stage = Path.Combine(out, "stage-2-polish")
    let rows = Metrics.read stage
    Assert.True(rows.Length >= 5, sprintf "%d rows" rows.Length)
    Assert.True((List.last rows).Loss < 0.9 * rows.Head.Loss, sprintf "loss %g -> %g" rows.Head.Loss (List.last rows).Loss)
    Assert.True((List.last rows).ValExact.IsSome)
    // the saved weights give the loss the polish reports, on the stage's fixed batch
    let best = Checkpoint.Load(Path.Combine(stage, "best.safetensors"))
    let config = Training.readConfig stage
    let a, b = Lbfgs.fixedBatch config
    use backend = Backends.create Backends.Cpu best.Model.Config 1 CpuOptions.Default
    let general = backend :?> Adder.Core.Cpu.GeneralBackend
    let grad = Array.zeroCreate<float> best.Model.Layout.Count
    let tokens = best.Model.Config.Format.EncodeFullBatch(a, b)
    let loss = general.LossAndGradient(Array.map float best.Model.Parameters, ReadOnlySpan tokens, a.Length, grad)
    Assert.Equal(float best.Metadata.["lbfgs_loss"], loss, 4)
    // and the stage before gave a higher loss on the same batch
    let before = Checkpoint.Load(Path.Combine(out, "stage-1-base", "best.safetensors"))
    let lossBefore = general.LossAndGradient(Array.map float before.Model.Parameters, ReadOnlySpan tokens, a.Length, grad)
    Assert.True(loss < lossBefore, sprintf "polished %g, before %g" loss lossBefore)
    let again = run [ "train"; "--recipe"; recipe; "--out"; out; "--quiet" ]
    Assert.True((again.Code = 0), again.Err)
    Assert.Equal<float32[]>(best.Model.Parameters, (Checkpoint.Load(Path.Combine(stage, "best.safetensors"))).Model.Parameters)

[<Fact>]
let ``an lbfgs stage that cannot be is refused before any folder`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "run")
    let refused (fragment: string) (text: string) =
        let recipe = Path.Combine(dir, "recipe.json")
        File.WriteAllText(recipe, text)
        assertOneLineError fragment (run [ "train"; "--recipe"; recipe; "--out"; out ])
        Assert.False(Directory.Exists out)
    refused "cannot be the first" """{ "architecture": "36p", "stages": [ { "optimizer": "lbfgs", "steps": 5 } ] }"""
    refused "'history' belongs to optimizer lbfgs" """{ "architecture": "36p", "stages": [ { "steps": 5 }, { "history": 4, "steps": 5 } ] }"""
    refused "'history' must be a positive integer" """{ "architecture": "36p", "stages": [ { "steps": 5 }, { "optimizer": "lbfgs", "history": 0, "steps": 5 } ] }"""
