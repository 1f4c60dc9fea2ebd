/// Adaptive weight decay: the factor as the best validation passes each threshold, its text form, and a run
/// whose decay is cut once validation passes (and only then).
module Adder.Tests.WeightDecayCutsTests

open System.IO
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests

[<Fact>]
let ``the decay is multiplied by each cut's factor once the best validation exceeds its threshold`` () =
    let cuts = WeightDecayCuts.Parse "0.01:0.1,0.05:0.01"
    Assert.Equal(1.0, cuts.Factor -1.0)
    Assert.Equal(1.0, cuts.Factor 0.01)
    Assert.Equal(0.1, cuts.Factor 0.02, 12)
    Assert.Equal(0.001, cuts.Factor 0.5, 12)
    Assert.Equal("0.01:0.1,0.05:0.01", string cuts)
    Assert.Equal(cuts, WeightDecayCuts.Parse(string cuts))
    Assert.False((WeightDecayCuts.Parse "").Active)
    for bad in [ "0.05:0.1,0.01:0.1"; "1.5:0.1"; "0.1:2"; "x"; "0.1"; "-0.1:0.5" ] do
        let e = Assert.Throws<AdderException>(fun () -> WeightDecayCuts.Parse bad |> ignore)
        Assert.DoesNotContain("\n", e.Message)

let private finalWeights (dir: string) =
    (Checkpoint.Load(Path.Combine(dir, "last.safetensors"))).Model.Parameters

[<Fact>]
let ``a run's decay is cut after validation passes the threshold, and not before`` () =
    let dir = tempDir ()
    let start = sharedFile "reference/microadder/checkpoint_67p.pt"   // 100% at its first validation
    let finetune name (extra: string list) steps =
        let out = Path.Combine(dir, name)
        let r = run ([ "finetune"; "-c"; start; "--lr"; "0.001"; "--steps"; string steps; "--seed"; "3"; "--batch"; "32"
                       "--warmup"; "0"; "--weight-decay"; "0.5"; "--eval-interval"; "10"; "--quiet"; "--out"; out ] @ extra)
        Assert.True((r.Code = 0), r.Err)
        out
    let plain = finetune "plain" [] 30
    // a factor of 1 changes nothing; a factor of 0 turns the decay off from the first validation (step 10) on
    let unit = finetune "unit" [ "--weight-decay-cuts"; "0.5:1" ] 30
    let off = finetune "off" [ "--weight-decay-cuts"; "0.5:0" ] 30
    Assert.Equal<float32[]>(finalWeights plain, finalWeights unit)
    Assert.NotEqual<float32[]>(finalWeights plain, finalWeights off)
    // up to the first validation both runs are the same run
    let plain10 = finetune "plain10" [] 10
    let off10 = finetune "off10" [ "--weight-decay-cuts"; "0.5:0" ] 10
    Assert.Equal<float32[]>(finalWeights plain10, finalWeights off10)
    Assert.Contains("\"weight_decay_cuts\": \"0.5:0\"", File.ReadAllText(Path.Combine(off, "config.json")))
    // a malformed cut is refused before any folder
    let bad = Path.Combine(dir, "bad")
    assertOneLineError "thresholds must increase" (run [ "train"; "--preset"; "67p"; "--steps"; "10"; "--weight-decay-cuts"; "0.05:0.1,0.01:0.1"; "--out"; bad ])
    Assert.False(Directory.Exists bad)

[<Fact>]
let ``a sweep of several models a launch with weight-decay cuts is refused in one line before any folder`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "sweep")
    assertOneLineError "--weight-decay-cuts needs one model a launch"
        (run [ "train"; "--preset"; "67p"; "--seeds"; "1-2"; "--models-per-launch"; "2"; "--steps"; "10"; "--probe"; "10"
               "--weight-decay-cuts"; "0.5:0"; "--out"; out ])
    Assert.False(Directory.Exists out)
