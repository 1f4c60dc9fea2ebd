/// The weights' moving average (--ema, a recipe stage's "ema"): it follows the weights without changing them,
/// is saved in last.safetensors for an exact resume, validated, and its best kept as ema.safetensors.
module Adder.Tests.EmaTests

open System.IO
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests

let private config steps ema =
    { Hyperparameters.defaults Hyperparameters.Train (Architectures.preset "36p") with
        Seed = 5; InitSeed = 5; Steps = steps; Batch = 16; Warmup = 1; EvalInterval = 1; Ema = ema }

let private last (dir: string) = Checkpoint.Load(RunFolder.last dir)

[<Fact>]
let ``the average is d·average + (1 − d)·weights after every step, leaves training alone, and resumes exactly`` () =
    let root = tempDir ()
    let train (name: string) (c: Hyperparameters.RunConfig) (resume: bool) (stop: int -> bool) =
        let dir = Path.Combine(root, name)
        Training.run Backends.Cpu CpuOptions.Default c dir resume ignore stop |> ignore
        dir
    // the weights after steps 1, 2 and 3 of the same 3-step run without an average (stopped there)
    let plain = [| for k in 1 .. 3 -> (last (train (sprintf "plain-%d" k) (config 3 0.0) false (fun step -> step >= k))).Model.Parameters |]
    let weightsAt k = plain.[k - 1]
    let initial = (Model.Initialised((config 3 0.0).Model, 5)).Parameters
    let d = 0.9f
    let expected = Array.copy initial
    for k in 1 .. 3 do
        let w = weightsAt k
        for i in 0 .. expected.Length - 1 do expected.[i] <- d * expected.[i] + (1.0f - d) * w.[i]
    let withAverage = train "ema" (config 3 0.9) false (fun _ -> false)
    let saved = last withAverage
    Assert.Equal<float32[]>(expected, saved.WeightsEma)
    Assert.Equal<float32[]>(weightsAt 3, saved.Model.Parameters)   // the weights themselves are unchanged
    // validated and kept: ema.safetensors holds the average at its best validation
    let kept = Checkpoint.Load(RunFolder.ema withAverage)
    Assert.Equal("ema", kept.Metadata.["weights"])
    Assert.True(kept.Metadata.ContainsKey "val_exact")
    // stopped after step 2 and resumed: the same average
    let cut = train "cut" (config 3 0.9) false (fun step -> step >= 2)
    Assert.Equal("2", (last cut).Metadata.["step"])
    train "cut" (config 3 0.9) true (fun _ -> false) |> ignore
    Assert.Equal<float32[]>(expected, (last cut).WeightsEma)
    // a run without one saves none
    Assert.Null((last (Path.Combine(root, "plain-3"))).WeightsEma)
    Assert.False(File.Exists(RunFolder.ema (Path.Combine(root, "plain-3"))))

[<Fact>]
let ``--ema is an option of train and finetune, a recipe stage may start from the stage before's average`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "run")
    let r = run [ "train"; "--preset"; "36p"; "--steps"; "20"; "--batch"; "16"; "--warmup"; "2"; "--eval-interval"; "10"; "--ema"; "0.95"; "--out"; out; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Matches(@"val exact +[0-9.]+%  ema +[0-9.]+%", r.Out)   // the average validated on every validation line
    Assert.True(File.Exists(RunFolder.ema out))
    assertOneLineError "--ema must be in [0, 1)" (run [ "train"; "--preset"; "36p"; "--ema"; "1"; "--out"; Path.Combine(dir, "bad") ])
    let recipe = Path.Combine(dir, "recipe.json")
    File.WriteAllText(recipe, """{ "architecture": "36p", "stages": [ { "steps": 20, "batch": 16, "warmup": 2, "eval_interval": 10, "ema": 0.9 },
                                  { "start": "ema", "steps": 10, "batch": 16, "warmup": 1, "eval_interval": 10 } ] }""")
    let r = run [ "train"; "--recipe"; recipe; "--out"; Path.Combine(dir, "recipe"); "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Contains(Path.Combine(dir, "recipe", "stage-1-1", "ema.safetensors"), File.ReadAllText(Path.Combine(dir, "recipe", "stage-2-2", "config.json")))
    File.WriteAllText(recipe, """{ "architecture": "36p", "stages": [ { "steps": 20 }, { "start": "ema", "steps": 10 } ] }""")
    assertOneLineError "keeps no moving average" (run [ "train"; "--recipe"; recipe; "--out"; Path.Combine(dir, "refused") ])
