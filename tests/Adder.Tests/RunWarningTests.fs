/// A run whose options leave something out (a curriculum phase after its last step, a warm-up longer than the
/// run, a sweep's probe at or after the end) says so in one line on stderr as it starts; it is not refused. A resume
/// that would change a finished run's length is refused, naming the way.
module Adder.Tests.RunWarningTests

open System.IO
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests

let private warnings (r: Run) = r.Err.Split('\n') |> Array.filter (fun l -> l.StartsWith "adder: warning: ")

[<Fact>]
let ``a run that ends before the curriculum reaches 10 digits warns once, naming the phase`` () =
    let dir = Path.Combine(tempDir (), "short")
    let r = run [ "train"; "--steps"; "3000"; "--batch"; "8"; "--eval-interval"; "3000"; "--quiet"; "--out"; dir ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    let w = Assert.Single(warnings r)
    Assert.Contains("--steps 3000 ends before the curriculum's phase 7000:1-10 starts", w)
    Assert.Contains("never trains on operands of more than 6 digits", w)
    Assert.Equal(r.Err.Trim(), w.Trim())

[<Fact>]
let ``shortfalls: unreached phases, a warm-up longer than the run, and none for a full run`` () =
    let config = Hyperparameters.defaults Hyperparameters.Train ModelConfig.Preset311
    Assert.Empty(Hyperparameters.shortfalls config)
    Assert.Empty(Hyperparameters.shortfalls { config with Steps = 7001 })
    let early = Hyperparameters.shortfalls { config with Steps = 2000 }
    Assert.Contains("phases 2000:1-6, 7000:1-10 starts", Assert.Single(early))
    Assert.Contains("more than 3 digits", early.Head)
    // a later phase that narrows the digits trains on nothing new: no claim about unseen digits
    let narrowing = { config with Steps = 100; Warmup = 0; Curriculum = Curriculum.Parse "0:1-10,100:5-10" }
    Assert.DoesNotContain("never trains", Assert.Single(Hyperparameters.shortfalls narrowing))
    let warm = Hyperparameters.shortfalls { config with Steps = 10_000; Warmup = 10_001 }
    Assert.Contains("--warmup 10001 is longer than --steps 10000", Assert.Single(warm))

[<Fact>]
let ``a warm-up longer than the run and a sweep probing at its end warn, and the runs go on`` () =
    let root = tempDir ()
    let args = [ "--steps"; "40"; "--batch"; "8"; "--eval-interval"; "20"; "--curriculum"; "0:1-10"; "--quiet" ]
    let r = run ([ "train"; "--warmup"; "50"; "--out"; Path.Combine(root, "warm") ] @ args)
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Contains("--warmup 50 is longer than --steps 40", Assert.Single(warnings r))
    let r = run ([ "train"; "--warmup"; "5"; "--out"; Path.Combine(root, "quiet") ] @ args)
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Empty(warnings r)
    let r = run ([ "train"; "--seeds"; "1-2"; "--probe"; "40"; "--warmup"; "5"; "--out"; Path.Combine(root, "sweep") ] @ args)
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Contains("--probe 40 is not before --steps 40", Assert.Single(warnings r))
    // a run refused at its start ends with its error alone, no warning before it
    File.WriteAllText(Path.Combine(root, "a-file"), "")
    run [ "train"; "--steps"; "10"; "--out"; Path.Combine(root, "a-file") ] |> assertOneLineError "not a run folder"

[<Fact>]
let ``resuming a finished run with more steps is refused in one line that names the way to train it further`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "r")
    let first = run [ "train"; "--preset"; "67p"; "--steps"; "20"; "--batch"; "16"; "--eval-interval"; "10"; "--quiet"; "--out"; out ]
    Assert.True((first.Code = 0), first.Err)
    let r = run [ "train"; "--preset"; "67p"; "--steps"; "40"; "--batch"; "16"; "--eval-interval"; "10"; "--quiet"; "--out"; out; "--resume" ]
    assertOneLineError "adder finetune -c RUN/last.safetensors --steps N" r
    // the way works: a finetune from the finished run's last checkpoint
    let further = run [ "finetune"; "-c"; Path.Combine(out, "last.safetensors"); "--steps"; "20"; "--lr"; "0.001"; "--seed"; "1"
                        "--batch"; "16"; "--eval-interval"; "10"; "--quiet"; "--out"; Path.Combine(dir, "further") ]
    Assert.True((further.Code = 0), further.Err)
