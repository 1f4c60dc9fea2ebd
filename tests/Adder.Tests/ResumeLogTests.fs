/// A stopped and resumed run logs what a straight run logs: metrics.csv, elapsed time, the row in progress; --stop-after is a success.
module Adder.Tests.ResumeLogTests

open System
open System.IO
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.TestProcesses

[<Fact>]
let ``metrics.csv after --stop-after 1234 and --resume equals a straight run's, elapsed_s going on`` () =
    let root = tempDir ()
    let args (dir: string) = [ "train"; "--out"; dir; "--steps"; "1400"; "--batch"; "16"; "--eval-interval"; "700"; "--warmup"; "50"; "--quiet"; "--seed"; "3" ]
    let straight = Path.Combine(root, "straight")
    Assert.Equal(0, (run (args straight)).Code)
    let split = Path.Combine(root, "split")
    Assert.True((let c = (run (args split @ [ "--stop-after"; "1234" ])).Code in c = 0 || c = 130))
    let r = run [ "train"; "--out"; split; "--resume"; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    let rows dir = File.ReadAllLines(Path.Combine(dir, "metrics.csv")) |> Array.skip 1 |> Array.map (fun l -> l.Split(','))
    let a, b = rows straight, rows split
    Assert.Equal(14, a.Length)
    // every column but elapsed_s: step, loss, lr, grad_norm, val_exact, val_token_acc
    Assert.Equal<string[]>(a |> Array.map (fun f -> String.Join(",", f.[0..5])), b |> Array.map (fun f -> String.Join(",", f.[0..5])))
    let elapsed = b |> Array.map (fun f -> float f.[6])
    Assert.True(elapsed |> Array.pairwise |> Array.forall (fun (x, y) -> y >= x), sprintf "elapsed_s restarted: %A" elapsed)

[<Fact>]
let ``--stop-after is a success (exit 0) that says how to continue`` () =
    let dir = Path.Combine(tempDir (), "run")
    let r = run [ "train"; "--out"; dir; "--steps"; "40"; "--batch"; "16"; "--quiet"; "--stop-after"; "7" ]
    Assert.Equal(0, r.Code)
    Assert.Contains("stopped at step 7 as --stop-after asked; continue with --resume", r.Out)

[<Fact>]
let ``last.safetensors holds the row in progress and the elapsed time; convert --weights-only drops them with the rest of the state`` () =
    let dir = stoppedRun ()   // stopped at step 13 of a run that logs every 20 steps: a window of 13 steps in progress
    let last = Checkpoint.Load(Path.Combine(dir, "last.safetensors"))
    Assert.Equal("13", last.Metadata.[TrainingState.StepKey])
    Assert.Equal("13", last.Metadata.[TrainingState.LossCountKey])
    Assert.True(float last.Metadata.[TrainingState.LossSumKey] > 0.0)
    Assert.True(float last.Metadata.[TrainingState.ElapsedKey] > 0.0)
    let out = Path.Combine(dir, "weights.safetensors")
    Assert.Equal(0, (run [ "convert"; Path.Combine(dir, "last.safetensors"); "-o"; out; "--weights-only" ]).Code)
    let weights = Checkpoint.Load out
    for key in TrainingState.Keys do
        if key <> TrainingState.StepKey then Assert.False(weights.Metadata.ContainsKey key, sprintf "%s kept" key)
    Assert.Null(weights.Optimizer)
