module Adder.Tests.TrainingTests

open System
open System.IO
open System.Security.Cryptography
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Pipeline.Training
open Adder.Tests.Shared

let private config seed = { Hyperparameters.defaults Hyperparameters.Train ModelConfig.Preset311 with Seed = seed; InitSeed = seed; Steps = 200; EvalInterval = 200 }

let private weights (runDir: string) = (Checkpoint.Load(Path.Combine(runDir, "last.safetensors"))).Model.Parameters

let private sha256 (parameters: float32[]) =
    let bytes = Array.zeroCreate<byte> (parameters.Length * 4)
    Buffer.BlockCopy(parameters, 0, bytes, 0, bytes.Length)
    Convert.ToHexString(SHA256.HashData bytes).ToLowerInvariant()

/// The weights after 200 steps of the published recipe (seed 36, 311p, batch 512) on the CPU backend (the same
/// on the commit before the backend seam, d7ecc59). A change
/// that alters training numerics changes this on purpose and says why in its commit.
let fingerprint = "98fa0df5b2d32f88dc630d6c2b925f882738f530e5bbf09e96c58ae4fc8f11c9"

[<Fact>]
let ``training fingerprint: 200 steps of seed 36, and a cohort of two seeds equals their single runs`` () =
    let root = tempDir ()
    let single seed =
        let dir = Path.Combine(root, sprintf "single-%d" seed)
        let outcome = Training.run Backends.Cpu CpuOptions.Default (config seed) dir false ignore (fun _ -> false)
        Assert.True(outcome.Completed)
        weights dir
    let s36 = single 36
    Assert.Equal(fingerprint, sha256 s36)
    // the same two seeds side by side in one backend (what a sweep hands the GPU)
    let members = [ for seed in [ 36; 37 ] -> { Config = config seed; RunDir = Path.Combine(root, sprintf "cohort-%d" seed); Resume = false } ]
    let outcomes = Training.runCohort Backends.Cpu CpuOptions.Default members ignore (fun _ -> false)
    Assert.True(outcomes |> List.forall (function Ok o -> o.Completed | Error _ -> false))
    Assert.Equal<float32[]>(s36, weights (Path.Combine(root, "cohort-36")))
    Assert.Equal<float32[]>(single 37, weights (Path.Combine(root, "cohort-37")))
    // every seed has its own run folder: config, metrics and both checkpoints
    for seed in [ 36; 37 ] do
        for f in [ "config.json"; "metrics.csv"; "best.safetensors"; "last.safetensors" ] do
            Assert.True(File.Exists(Path.Combine(root, sprintf "cohort-%d" seed, f)), f)

[<Fact>]
let ``a cohort refuses runs that differ in more than the seed`` () =
    let root = tempDir ()
    let members =
        [ { Config = config 1; RunDir = Path.Combine(root, "a"); Resume = false }
          { Config = { config 2 with Lr = 0.01 }; RunDir = Path.Combine(root, "b"); Resume = false } ]
    let e = Assert.Throws<AdderException>(fun () -> Training.runCohort Backends.Cpu CpuOptions.Default members ignore (fun _ -> false) |> ignore)
    Assert.Contains("same options but the seed", e.Message)

[<Fact>]
let ``config.json of an older version (with threads, without betas) still resumes`` () =
    let json = """{ "kind": "train", "model_config": {"n_layer":1,"d_model":4,"n_head":1,"d_ff":8,"max_seq_len":33,"vocab_size":14,"pos_rank":3,"qkv_rank":3,"attn_out_rank":3,"ffn_rank":3,"use_rmsnorm":true,"tie_qkv":"shareA_tieKV"},
      "start_checkpoint": null, "seed": 3, "init_seed": 3, "steps": 40, "batch": 48, "lr": 0.02, "warmup": 5, "floor": 0.1,
      "weight_decay": 0.01, "clip": 1.0, "eval_interval": 20, "curriculum": "0:1-3,2000:1-6,7000:1-10", "threads": 2 }"""
    let c = Hyperparameters.ofJson json "config.json"
    Assert.Equal(3, c.Seed)
    Assert.Equal(48, c.Batch)
    Assert.Equal(AdamW.DefaultBeta2, c.Beta2)
    Assert.Equal("0:1-3,2000:1-6,7000:1-10", string c.Curriculum)
    // and what we write reads back the same
    Assert.Equal(c, Hyperparameters.ofJson (Hyperparameters.toJson c) "config.json")
