/// Targeted fine-tuning: the mixer, mining, the rounds in one folder, and resume of an interrupted run.
module Adder.Tests.TargetedTests

open System.Diagnostics
open System.IO
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests

[<Fact>]
let ``the targeted mixer replaces a fixed share of the batch with pool pairs, as a function of the step`` () =
    let pool = [| for i in 1L .. 5L -> i, 100L * i |]
    let mix = Targeted.mixer pool 0.25 7
    let batch step =
        let a, b = Array.create 16 -1L, Array.create 16 -1L
        mix 0 step a b
        a, b
    let a, b = batch 3
    Assert.True(a.[0..3] |> Array.forall (fun x -> x >= 1L && x <= 5L))
    Assert.True(Array.forall2 (fun x y -> y = 100L * x) a.[0..3] b.[0..3])
    Assert.True(a.[4..] |> Array.forall (fun x -> x = -1L))
    Assert.Equal<int64[]>(a, fst (batch 3))
    Assert.True([ 0 .. 20 ] |> List.exists (fun s -> fst (batch s) <> a))

[<Fact>]
let ``mining returns real failures of the model and never a held-out pair`` () =
    let model = (Checkpoint.Load(Path.Combine(repoRoot, "models", "adder-311p-s36.safetensors"))).Model
    use backend = Backends.create Backends.Cpu model.Config 1 CpuOptions.Default
    backend.SetParameters(0, model.Parameters)
    // the shipped base-recipe model fails some mixed-length sums (52 of 20,000)
    let mined = Targeted.mine backend 20_000 (Targeted.miningSeed 0 0) (fun _ -> false) (fun () -> false)
    let failures = mined |> List.collect (fun m -> List.ofArray m.Failures)
    Assert.NotEmpty(failures)
    let a, b = failures |> List.map fst |> Array.ofList, failures |> List.map snd |> Array.ofList
    Assert.Equal(failures.Length, (Evaluation.evaluateSet backend 0 "" a b).Errors)
    let first = failures.Head
    let again = Targeted.mine backend 20_000 (Targeted.miningSeed 0 0) (fun p -> p = first) (fun () -> false)
    Assert.DoesNotContain(first, again |> List.collect (fun m -> List.ofArray m.Failures))
    Assert.Equal(failures.Length - 1, again |> List.sumBy (fun m -> m.Failures.Length))

[<Fact>]
let ``finetune --targeted runs rounds into one folder; its options are refused without it`` () =
    let root = tempDir ()
    let start = Path.Combine(repoRoot, "models", "adder-311p-s36.safetensors")
    let out = Path.Combine(root, "targeted")
    let args = [ "finetune"; "-c"; start; "--lr"; "0.001"; "--steps"; "30"; "--seed"; "0"; "--batch"; "64"; "--warmup"; "5"
                 "--eval-interval"; "15"; "--quiet"; "--out"; out ]
    let r = run (args @ [ "--targeted"; "--rounds"; "2"; "--mine"; "5000"; "--mix"; "0.25" ])
    Assert.True((r.Code = 0), r.Out + r.Err)
    let rows = File.ReadAllLines(Path.Combine(out, "targeted.csv"))
    Assert.Equal(Targeted.csvHeader, rows.[0])
    Assert.StartsWith("0,start,", rows.[1])
    Assert.True(rows.Length >= 3, String.concat "\n" rows)
    Assert.True(File.Exists(Path.Combine(out, "round-1", "metrics.csv")))
    let result = Checkpoint.Load(Path.Combine(out, "best.safetensors"))
    Assert.Equal(ModelConfig.Preset311, result.Model.Config)
    // the round's batches held the mixed-in pairs: the run differs from a plain round with the same options
    let plain = Path.Combine(root, "plain")
    Assert.Equal(0, (run (args |> List.map (fun a -> if a = out then plain else a))).Code)
    Assert.NotEqual<float32[]>((Checkpoint.Load(Path.Combine(plain, "last.safetensors"))).Model.Parameters,
                               (Checkpoint.Load(Path.Combine(out, "round-1", "last.safetensors"))).Model.Parameters)
    // plot draws the rounds one after another, and a base run followed by them
    let png = Path.Combine(root, "rounds.png")
    Assert.Equal(0, (run [ "plot"; out; "-o"; png ]).Code)
    Assert.Equal(0, (run [ "plot"; Path.Combine(out, "round-1"); out; "-o"; Path.Combine(root, "chain.png") ]).Code)
    Assert.Equal<byte[]>([| 0x89uy; byte 'P'; byte 'N'; byte 'G' |], (File.ReadAllBytes png).[0..3])
    let rounds = PlotData.curves [ out ]
    let first = PlotData.curves [ Path.Combine(out, "round-1") ]
    Assert.True(rounds.Steps.Length > first.Steps.Length)
    Assert.Equal(first.Steps.[first.Steps.Length - 1] + first.Steps.[0], rounds.Steps.[first.Steps.Length])
    // a used folder, options without --targeted, --resume and bad shares are one-line errors
    run (args @ [ "--targeted" ]) |> assertOneLineError "not empty"
    run (args @ [ "--rounds"; "2" ]) |> assertOneLineError "--rounds belongs to --targeted"
    run (args @ [ "--targeted"; "--resume" ]) |> assertOneLineError "--resume"
    run (args @ [ "--targeted"; "--mix"; "1.5" ]) |> assertOneLineError "--mix must be in (0, 1)"
    run (args @ [ "--targeted"; "--rounds"; "0" ]) |> assertOneLineError "--rounds must be at least 1"
    run (args @ [ "--targeted"; "--mine"; "0" ]) |> assertOneLineError "--mine must be in 1.."
    let blocked = Path.Combine(root, "file")
    File.WriteAllText(blocked, "x")
    run (args @ [ "--targeted" ] |> List.map (fun a -> if a = out then Path.Combine(blocked, "sub") else a)) |> assertOneLineError "cannot create folder"
    Assert.Equal("x", File.ReadAllText blocked)
    // the targeted run left the used folder as it was
    Assert.Equal<string[]>(rows, File.ReadAllLines(Path.Combine(out, "targeted.csv")))

[<Fact>]
let ``an interrupted targeted fine-tune resumes, its pool kept, to the rounds and result of one that was not`` () =
    let root = tempDir ()
    let start = Path.Combine(repoRoot, "models", "adder-311p-s36.safetensors")
    let model = (Checkpoint.Load start).Model
    let settings: Targeted.Settings =
        { Round =
            { Hyperparameters.defaults Hyperparameters.Finetune model.Config with
                Lr = 0.001; Steps = 30; Seed = 0; Batch = 64; Warmup = 5; EvalInterval = 15; StartCheckpoint = Some start }
          Rounds = 2; Mine = 20_000; Mix = 0.25 }
    let targeted dir resume stop =
        Targeted.run Backends.Cpu CpuOptions.Default settings start dir resume ignore ignore stop
    let whole = Path.Combine(root, "whole")
    let reports, finished = targeted whole false (fun _ -> false)
    Assert.True(finished)
    Assert.Equal(3, reports.Length)   // the start and both rounds: mining found failures after round 1
    // stopped at step 20 of round 2, then resumed
    let cut = Path.Combine(root, "cut")
    let mutable roundsStarted = 0
    let stopInRound2 step =
        if step = 0 then roundsStarted <- roundsStarted + 1
        roundsStarted = 2 && step >= 20
    let _, finishedCut = targeted cut false stopInRound2
    Assert.False(finishedCut)
    Assert.True(File.Exists(Path.Combine(cut, "round-2", "last.safetensors")))
    Assert.False(File.Exists(Path.Combine(cut, "best.safetensors")))
    let resumed, finishedResumed = targeted cut true (fun _ -> false)
    Assert.True(finishedResumed)
    Assert.Equal(3, resumed.Length)
    let table dir = File.ReadAllText(Path.Combine(dir, Targeted.csvName)).Replace(dir, "DIR")
    Assert.Equal(table whole, table cut)
    Assert.Equal<string>(File.ReadAllText(Path.Combine(whole, Targeted.poolName)), File.ReadAllText(Path.Combine(cut, Targeted.poolName)))
    Assert.Equal<float32[]>((Checkpoint.Load(Path.Combine(whole, "best.safetensors"))).Model.Parameters,
                            (Checkpoint.Load(Path.Combine(cut, "best.safetensors"))).Model.Parameters)
    // through the command line: the same command with --resume; a changed option or another start is refused
    let args = [ "finetune"; "-c"; start; "--lr"; "0.001"; "--steps"; "30"; "--seed"; "0"; "--batch"; "64"; "--warmup"; "5"
                 "--eval-interval"; "15"; "--quiet"; "--targeted"; "--rounds"; "2"; "--mine"; "20000"; "--mix"; "0.25"; "--out"; cut; "--resume" ]
    let again = run args
    Assert.True((again.Code = 0), again.Out + again.Err)
    Assert.Contains("resuming", again.Out)
    run (args |> List.map (fun a -> if a = "0.25" then "0.5" else a)) |> assertOneLineError "--mix 0.5 differs from the targeted run's 0.25"
    run (args |> List.map (fun a -> if a = "0.001" then "0.002" else a)) |> assertOneLineError "--lr 0.002 differs"
    run (args |> List.map (fun a -> if a = start then Path.Combine(cut, "best.safetensors") else a)) |> assertOneLineError "is not the checkpoint the targeted run started from"
    run (args |> List.map (fun a -> if a = cut then Path.Combine(root, "none") else a)) |> assertOneLineError "nothing to resume"
    // stopped in a mining pass (stop asked with -1 before each block): in the first one, and in round 1's last
    let inFirst = Path.Combine(root, "in-first-mining")
    let _, finished = targeted inFirst false (fun step -> step = -1)
    Assert.False(finished)
    Assert.False(File.Exists(Path.Combine(inFirst, Targeted.csvName)))
    let mutable trained = false
    let inRound1 = Path.Combine(root, "in-round-1-mining")
    let afterTraining step =
        if step > 0 then trained <- true
        step = -1 && trained
    let _, finished = targeted inRound1 false afterTraining
    Assert.False(finished)
    for dir in [ inFirst; inRound1 ] do
        let _, finished = targeted dir true (fun _ -> false)
        Assert.True(finished)
        Assert.Equal(table whole, table dir)
        Assert.Equal<float32[]>((Checkpoint.Load(Path.Combine(whole, "best.safetensors"))).Model.Parameters,
                                (Checkpoint.Load(Path.Combine(dir, "best.safetensors"))).Model.Parameters)

[<Fact>]
let ``SIGINT during a long mining pass ends a targeted fine-tune within seconds, exit 130`` () =
    let out = Path.Combine(tempDir (), "targeted")
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    // 10 million sums a generator: some 40 s of mining on this machine before the first round
    for a in [ Path.Combine(System.AppContext.BaseDirectory, "adder.dll"); "finetune"; "-c"; Path.Combine(repoRoot, "models", "adder-311p-s36.safetensors")
               "--targeted"; "--lr"; "0.001"; "--steps"; "30"; "--seed"; "0"; "--mine"; "10000000"; "--quiet"; "--out"; out ] do
        info.ArgumentList.Add a
    use p = Process.Start info
    let mutable line = p.StandardOutput.ReadLine()
    while not (isNull line) && not (line.StartsWith "targeted finetune") do line <- p.StandardOutput.ReadLine()
    Assert.NotNull line
    System.Threading.Thread.Sleep 1500   // into the mining pass
    let watch = System.Diagnostics.Stopwatch.StartNew()
    use kill = Process.Start("kill", [| "-INT"; string p.Id |])
    kill.WaitForExit()
    let rest = p.StandardOutput.ReadToEndAsync()
    if not (p.WaitForExit 30000) then
        p.Kill true
        Assert.Fail "adder did not stop within 30 s of SIGINT"
    Assert.Equal(130, p.ExitCode)
    Assert.True(watch.Elapsed.TotalSeconds < 10.0, sprintf "stopped %.1f s after SIGINT" watch.Elapsed.TotalSeconds)
    Assert.Contains("--resume", rest.Result)
