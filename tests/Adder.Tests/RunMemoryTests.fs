/// What a run holds besides the backend is bounded and inside its memory estimate: a targeted fine-tune keeps a
/// bounded share of what it mines, and a sweep cohort's held-out pairs count, so a cohort too large is refused
/// before any folder is made.
module Adder.Tests.RunMemoryTests

open System.IO
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.TestProcesses

/// An untrained 311p: it fails nearly every sum.
let private weakModel () = Model.Initialised(ModelConfig.Preset311, 1)

[<Fact>]
let ``mining a weak model counts every failure but keeps a bounded share of each generator's`` () =
    let model = weakModel ()
    use backend = Backends.create Backends.Cpu model.Config 1 CpuOptions.Default
    backend.SetParameters(0, model.Parameters)
    let count = Targeted.keptPerGenerator + 20_000
    let mined = Targeted.mine backend count (Targeted.miningSeed 0 0) (fun _ -> false) (fun () -> false)
    Assert.True(Targeted.keptPerGenerator * Targeted.miningGenerators.Length <= Limits.MaxFailurePool)
    for m in mined do
        Assert.True(m.Found > Targeted.keptPerGenerator, sprintf "%s: %d failures of %d" m.Generator m.Found count)
        Assert.Equal(Targeted.keptPerGenerator, m.Failures.Length)
    // what is kept is real failures, the first found
    let sample = mined.Head.Failures.[.. 999]
    Assert.Equal(sample.Length, (Evaluation.evaluateSet backend 0 "" (Array.map fst sample) (Array.map snd sample)).Errors)

[<Fact>]
let ``a targeted fine-tune of a weak model says how many failures it keeps, and counts them all`` () =
    let dir = tempDir ()
    let start = Path.Combine(dir, "weak.safetensors")
    Checkpoint(weakModel ()).Save start
    let out = Path.Combine(dir, "targeted")
    let mine = Targeted.keptPerGenerator + 5_000
    let r = run [ "finetune"; "-c"; start; "--targeted"; "--rounds"; "1"; "--mine"; string mine; "--lr"; "0.001"; "--steps"; "20"
                  "--seed"; "0"; "--batch"; "32"; "--warmup"; "5"; "--eval-interval"; "10"; "--quiet"; "--out"; out ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Contains(sprintf "the first %d of a generator's failures kept for the pool" Targeted.keptPerGenerator, r.Out)
    let start = (File.ReadAllLines(Path.Combine(out, "targeted.csv"))).[1].Split(',')
    // uniform's failures (column 4) are all counted; the pool (column 9) holds at most the limit
    Assert.True(int start.[3] > Targeted.keptPerGenerator, start.[3])
    Assert.True(int start.[8] <= Limits.MaxFailurePool, start.[8])

[<Fact>]
let ``a sweep cohort whose held-out pairs pass the memory limit is refused before its folder is made`` () =
    let dir = tempDir ()
    let sweep = Path.Combine(dir, "sweep")
    // 4,000 seeds side by side: token buffers and the CPU backend fit, 4,000 holdouts (about 1.3 MB each) do not
    refusedWithin 300.0 "GiB of it their held-out pairs" None
        [ "train"; "--seeds"; "1-4000"; "--models-per-launch"; "4000"; "--steps"; "10"; "--out"; sweep ]
    Assert.False(Directory.Exists sweep)
    // a single run's estimate holds its holdout too
    let bytes = Limits.HoldoutBytes(Batches.validationPairs, Batches.testPairs, Tokens.PromptLength, 512)
    Assert.InRange(bytes, 1_200_000L, 1_500_000L)

[<Fact>]
let ``README states the pool's bounds as Limits and Targeted hold them`` () =
    let readme = File.ReadAllText(Path.Combine(repoRoot, "README.md"))
    let n (x: int) = x.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)
    Assert.Contains(sprintf "%s in the pool (the newest); of one mining pass the first %s of each generator's" (n Limits.MaxFailurePool) (n Targeted.keptPerGenerator), readme)
