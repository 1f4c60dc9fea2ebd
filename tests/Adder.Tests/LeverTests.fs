/// Issue 10's levers: the Grokfast-EMA gradient filter and targeted fine-tuning.
module Adder.Tests.LeverTests

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
    // the shipped base-recipe model fails some mixed-length sums (issue 10: 52 of 20,000)
    let mined = Targeted.mine backend 20_000 (Targeted.miningSeed 0 0) (fun _ -> false)
    let failures = mined |> List.collect (fun m -> List.ofArray m.Failures)
    Assert.NotEmpty(failures)
    let a, b = failures |> List.map fst |> Array.ofList, failures |> List.map snd |> Array.ofList
    Assert.Equal(failures.Length, (Evaluation.evaluateSet backend 0 "" a b).Errors)
    let first = failures.Head
    let again = Targeted.mine backend 20_000 (Targeted.miningSeed 0 0) (fun p -> p = first)
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
