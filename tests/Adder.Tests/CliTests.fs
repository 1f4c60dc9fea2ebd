module Adder.Tests.CliTests

open System
open System.Diagnostics
open System.IO
open Xunit
open Adder.Core
open Adder.Tests.Shared

type Run = { Code: int; Out: string; Err: string }

/// Runs the real `adder` (built beside the tests) as a child process.
let adder (stdin: string option) (args: string list) =
    let dll = Path.Combine(AppContext.BaseDirectory, "adder.dll")
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false)
    info.ArgumentList.Add dll
    for a in args do info.ArgumentList.Add a
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    match stdin with
    | Some text -> p.StandardInput.Write text
    | None -> ()
    p.StandardInput.Close()
    p.WaitForExit()
    { Code = p.ExitCode; Out = out.Result; Err = err.Result }

let run args = adder None args

/// A bad input: non-zero exit, one line on stderr naming the problem, no stack trace.
let assertOneLineError (fragment: string) (r: Run) =
    Assert.NotEqual(0, r.Code)
    let lines = r.Err.Trim().Split('\n')
    Assert.True(lines.Length = 1, sprintf "expected one line on stderr, got:\n%s" r.Err)
    Assert.Contains(fragment, r.Err)
    Assert.DoesNotContain("   at ", r.Err)

[<Fact>]
let ``eval of the published checkpoint scores 99,999 of 100,000 with the error on seed 100`` () =
    let dir = tempDir ()
    let json = Path.Combine(dir, "report.json")
    let r = run [ "eval"; "--checkpoint"; referenceCheckpoint (); "--json"; json ]
    Assert.Equal(0, r.Code)
    Assert.Contains("99999 / 100000 correct", r.Out)
    let failing = r.Out.Split('\n') |> Array.filter (fun l -> l.StartsWith "seed 100 " && l.Contains "9304630660")
    Assert.Single failing |> ignore
    let report = Text.Json.JsonDocument.Parse(File.ReadAllText json).RootElement
    Assert.Equal(1, report.GetProperty("total").GetProperty("errors").GetInt32())

[<Fact>]
let ``random suite and info`` () =
    let r = run [ "eval"; "-c"; referenceCheckpoint (); "--suite"; "random"; "--count"; "3000"; "--seed"; "5" ]
    Assert.Equal(0, r.Code)
    Assert.Contains("random seed 5", r.Out)
    let r = run [ "info"; referenceCheckpoint () ]
    Assert.Equal(0, r.Code)
    Assert.Contains("unique parameters: 311", r.Out)
    Assert.Contains("blocks.0.attn.qkv_Bkv", r.Out)

[<Fact>]
let ``predict adds two operands and a file of pairs`` () =
    let r = run [ "predict"; "-c"; referenceCheckpoint (); "1234567890"; "9876543210" ]
    Assert.Equal(0, r.Code)
    Assert.Equal("11111111100", r.Out.Trim())
    let r = adder (Some "1 2\n# comment\n\n9999999999+9999999999\n 5 + 7 \n") [ "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ]
    Assert.Equal(0, r.Code)
    Assert.Equal<string[]>([| "3"; "19999999998"; "12" |], r.Out.Trim().Split('\n') |> Array.map (fun s -> s.Trim()))

[<Fact>]
let ``convert writes a safetensors that evaluates the same`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "ref.safetensors")
    let r = run [ "convert"; referenceCheckpoint (); "-o"; out ]
    Assert.Equal(0, r.Code)
    let r = run [ "predict"; "-c"; out; "9304630660"; "8594408863" ]
    Assert.Equal("17999039523", r.Out.Trim())   // the published model's one known mistake, kept

[<Fact>]
let ``bad input gives a one-line error and a non-zero exit`` () =
    let ckpt = referenceCheckpoint ()
    let dir = tempDir ()
    let corrupt = Path.Combine(dir, "corrupt.pt")
    File.WriteAllBytes(corrupt, Array.init 100 byte)
    run [ "eval"; "-c"; "/no/such/file.pt" ] |> assertOneLineError "not found"
    run [ "eval"; "-c"; corrupt ] |> assertOneLineError "corrupt.pt"
    let truncated = Path.Combine(dir, "truncated.safetensors")
    let shipped = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "models", "adder-311p-s36.safetensors"))
    File.WriteAllBytes(truncated, shipped.[.. shipped.Length / 2])
    run [ "eval"; "-c"; truncated ] |> assertOneLineError "truncated.safetensors"
    run [ "info"; truncated ] |> assertOneLineError "truncated.safetensors"
    run [ "predict"; "-c"; ckpt; "-5"; "3" ] |> assertOneLineError "negative"
    run [ "predict"; "-c"; ckpt; "12345678901"; "3" ] |> assertOneLineError "more than 10 digits"
    run [ "predict"; "-c"; ckpt; "12x"; "3" ] |> assertOneLineError "not a non-negative integer"
    run [ "predict"; "-c"; ckpt; "1" ] |> assertOneLineError "two operands"
    adder (Some "1 2\n3 -4\n") [ "predict"; "-c"; ckpt; "-f"; "-" ] |> assertOneLineError "line 2"
    run [ "eval"; "--bogus" ] |> assertOneLineError "bogus"
    run [ "frobnicate" ] |> assertOneLineError "frobnicate"
    // closed choices are Argu enums: the error lists them
    run [ "eval"; "-c"; ckpt; "--suite"; "nope" ] |> assertOneLineError "<reference|random|adderboard>"
    run [ "train"; "--device"; "gpu" ] |> assertOneLineError "<cpu|cuda>"
    if not (List.contains Adder.Pipeline.Backends.Cuda (Adder.Pipeline.Backends.available ())) then
        run [ "eval"; "-c"; ckpt; "--device"; "cuda" ] |> assertOneLineError "no CUDA device"
        run [ "selftest"; "--shared"; sharedDir ] |> assertOneLineError "no CUDA device"
    run [ "selftest"; "--device"; "cpu"; "--shared"; dir ] |> assertOneLineError "not found"
    // the self-test's checks run end to end with the CPU standing in for the device (the GPU run's plumbing)
    let st = run [ "selftest"; "--device"; "cpu"; "--shared"; sharedDir ]
    Assert.True((st.Code = 0), st.Out + st.Err)
    Assert.Contains("PASS parity 311p: 4 training steps with Grokfast-EMA", st.Out)
    Assert.Contains("12 passed, 0 failed", st.Out)
    run [ "bench"; "train"; "--models"; "0" ] |> assertOneLineError "--models"
    // bench train reports the step and, apart, the drawing of a step's batches for all its models
    let r = run [ "bench"; "train"; "--models"; "2"; "--batch"; "32"; "--windows"; "1" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Matches(@"2 model\(s\), .*: \d+ steps/s = \d+ model-steps/s", r.Out)
    Assert.Matches(@"drawing a step's batches of 2 model\(s\) .*: [1-9][0-9.]* us", r.Out)
    run [ "bench"; "eval"; "--models"; "2" ] |> assertOneLineError "bench train only"
    run [ "train"; "--steps"; "0"; "--out"; Path.Combine(dir, "r") ] |> assertOneLineError "--steps"
    File.WriteAllText(Path.Combine(dir, "a-file"), "")
    run [ "train"; "--steps"; "10"; "--out"; Path.Combine(dir, "a-file") ] |> assertOneLineError "not a run folder"
    run [ "train"; "--lr"; "1e30"; "--warmup"; "0"; "--steps"; "50"; "--batch"; "32"; "--out"; Path.Combine(dir, "diverges") ]
    |> assertOneLineError "diverged"
    run [ "eval"; "-c"; ckpt; "--json"; dir ] |> assertOneLineError "is a folder"
    // no partial output file when the report cannot be written
    let missing = Path.Combine(dir, "no-such-dir", "r.json")
    run [ "eval"; "-c"; ckpt; "--json"; missing ] |> assertOneLineError "does not exist"
    Assert.False(File.Exists missing)
    let out = Path.Combine(dir, "x.safetensors")
    run [ "convert"; corrupt; "-o"; out ] |> assertOneLineError "corrupt.pt"
    Assert.False(File.Exists out)

[<Fact>]
let ``check-gradients passes on the golden and fails on a wrong one`` () =
    let golden = sharedFile "golden/gradcheck_random_init.json"
    let r = run [ "check-gradients"; "--golden"; golden ]
    Assert.Equal(0, r.Code)
    Assert.Contains("PASS", r.Out)
    // scale one tensor's golden gradient: that tensor must be reported and the command must fail
    let node = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText golden)
    let g = node.["grad"].["blocks.0.mlp.fc1.B"].AsArray()
    for i in 0 .. g.Count - 1 do g.[i] <- Text.Json.Nodes.JsonValue.Create(g.[i].GetValue<float>() * 1.01)
    let bad = Path.Combine(tempDir (), "bad.json")
    File.WriteAllText(bad, node.ToJsonString())
    let r = run [ "check-gradients"; "--golden"; bad ]
    Assert.Equal(1, r.Code)
    Assert.Contains("FAIL", r.Out)

let trainArgs (dir: string) (extra: string list) =
    [ "train"; "--out"; dir; "--steps"; "40"; "--batch"; "48"; "--eval-interval"; "20"; "--warmup"; "5"; "--quiet"; "--seed"; "3" ] @ extra

[<Fact>]
let ``train writes a run folder, and stop plus resume continues bit for bit`` () =
    let root = tempDir ()
    let straight = Path.Combine(root, "straight")
    let r = run (trainArgs straight [])
    Assert.True((r.Code = 0), r.Out + r.Err)
    for f in [ "metrics.csv"; "config.json"; "best.safetensors"; "last.safetensors" ] do
        Assert.True(File.Exists(Path.Combine(straight, f)), f)
    let split = Path.Combine(root, "split")
    let r = run (trainArgs split [ "--stop-after"; "13" ])
    Assert.Equal(0, r.Code)   // the stop was asked for
    Assert.Contains("--resume", r.Out)
    Assert.Equal("13", (Checkpoint.Load(Path.Combine(split, "last.safetensors"))).Metadata.["step"])
    // options that differ from the run's config.json are refused; left out, they come from it
    run [ "train"; "--out"; split; "--resume"; "--lr"; "0.5" ] |> assertOneLineError "--lr 0.5 differs"
    run [ "train"; "--out"; split; "--resume"; "--preset"; "wide" ] |> assertOneLineError "model"
    let r = run [ "train"; "--out"; split; "--resume"; "--quiet"; "--threads"; "1" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    let a = Checkpoint.Load(Path.Combine(straight, "last.safetensors"))
    let b = Checkpoint.Load(Path.Combine(split, "last.safetensors"))
    Assert.Equal<float32[]>(a.Model.Parameters, b.Model.Parameters)
    Assert.Equal<float32[]>(a.Optimizer.M, b.Optimizer.M)
    Assert.Equal(40L, b.Optimizer.Step)
    // a second run into the same folder without --resume is refused
    run (trainArgs split []) |> assertOneLineError "--resume"
    // plot draws a PNG
    let png = Path.Combine(root, "curves.png")
    let r = run [ "plot"; straight; "-o"; png ]
    Assert.Equal(0, r.Code)
    Assert.Equal<byte[]>([| 0x89uy; byte 'P'; byte 'N'; byte 'G' |], (File.ReadAllBytes png).[0..3])

[<Fact>]
let ``finetune starts from a checkpoint with a fresh optimiser`` () =
    let dir = Path.Combine(tempDir (), "ft")
    let r = run [ "finetune"; "-c"; referenceCheckpoint (); "--lr"; "0.0001"; "--steps"; "20"; "--seed"; "17"; "--batch"; "32"; "--eval-interval"; "10"; "--out"; dir; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    let last = Checkpoint.Load(Path.Combine(dir, "last.safetensors"))
    Assert.Equal(20L, last.Optimizer.Step)
    Assert.Equal("finetune", last.Metadata.["kind"])
    // the published model validates near 100% on the round's own holdout
    let best = Checkpoint.Load(Path.Combine(dir, "best.safetensors"))
    Assert.True(Double.Parse(best.Metadata.["val_exact"], Globalization.CultureInfo.InvariantCulture) > 0.99)

[<Fact>]
let ``Ctrl-C (SIGINT) saves last.safetensors and exits 130`` () =
    let dir = Path.Combine(tempDir (), "interrupted")
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for a in [ Path.Combine(AppContext.BaseDirectory, "adder.dll"); "train"; "--out"; dir; "--steps"; "1000000"; "--batch"; "48"; "--eval-interval"; "10"; "--quiet" ] do
        info.ArgumentList.Add a
    use p = Process.Start info
    // wait for the first validation line, then interrupt
    let mutable line = p.StandardOutput.ReadLine()
    // (the header line "steps ..." comes before; the handler is registered by then but wait for real progress)
    while not (isNull line) && not (line.Contains "val exact") do line <- p.StandardOutput.ReadLine()
    Assert.NotNull line
    use kill = Process.Start("kill", [| "-INT"; string p.Id |])
    kill.WaitForExit()
    let rest = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    // bounded: a test runner started in the background without job control (`cmd &` in a script) passes
    // SIGINT on ignored, and the run would go on to its millionth step
    if not (p.WaitForExit 60000) then
        p.Kill true
        Assert.Fail "adder did not stop within 60 s of SIGINT (was the test run started in the background by a shell without job control, which makes SIGINT ignored?)"
    let rest, err = rest.Result, err.Result
    Assert.Equal(130, p.ExitCode)
    Assert.Contains("interrupt", err)
    Assert.Contains("--resume", rest)
    let last = Checkpoint.Load(Path.Combine(dir, "last.safetensors"))
    Assert.True(int last.Metadata.["step"] >= 10)

/// Errors of the total row of an eval report written with --json.
let private evalErrors (args: string list) =
    let json = Path.Combine(tempDir (), "report.json")
    let r = run ([ "eval"; "--json"; json ] @ args)
    Assert.Equal(0, r.Code)
    r, Text.Json.JsonDocument.Parse(File.ReadAllText json).RootElement.GetProperty("total").GetProperty("errors").GetInt32()

[<Fact>]
let ``the shipped models are beside adder and the default is our targeted 311p`` () =
    // measured on the development machine: 0 errors (default, 303p, 295p, 271p, 912p) and 54 (311p-s36) of 100,000 (docs/BENCHMARKS.md)
    let r, errors = evalErrors []
    Assert.Contains("adder-311p-s36-targeted.safetensors: 311 parameters", r.Out)
    Assert.True(errors <= 5, sprintf "default model: %d errors on the reference suite" errors)
    let r, errors = evalErrors [ "-c"; Path.Combine(AppContext.BaseDirectory, "models", "adder-912p-s1.safetensors") ]
    Assert.Contains("912 parameters", r.Out)
    Assert.True(errors <= 5, sprintf "our 912p model: %d errors on the reference suite" errors)
    for size in [ 303; 295; 271 ] do
        let r, errors = evalErrors [ "-c"; Path.Combine(AppContext.BaseDirectory, "models", sprintf "adder-%dp-s36-targeted.safetensors" size) ]
        Assert.Contains(sprintf "%d parameters" size, r.Out)
        Assert.True(errors <= 5, sprintf "our %dp model: %d errors on the reference suite" size errors)
    let r, errors = evalErrors [ "-c"; Path.Combine(AppContext.BaseDirectory, "models", "adder-311p-s36.safetensors") ]
    Assert.Contains("311 parameters", r.Out)
    Assert.True(errors <= 80, sprintf "our 311p model: %d errors on the reference suite" errors)
    let sum = run [ "predict"; "9999999999"; "1" ]
    Assert.Equal(0, sum.Code)
    Assert.Equal("10000000000", sum.Out.Trim())

[<Fact>]
let ``a seed sweep probes every seed, finishes the best, and its runs equal single runs`` () =
    let root = tempDir ()
    let dir = Path.Combine(root, "sweep")
    let sweepArgs = [ "train"; "--seeds"; "1-3,7"; "--probe"; "20"; "--keep"; "1"; "--steps"; "40"; "--batch"; "32"; "--eval-interval"; "10"; "--warmup"; "5"; "--out"; dir; "--quiet" ]
    let r = run sweepArgs
    Assert.True((r.Code = 0), r.Out + r.Err)
    let rows = File.ReadAllLines(Path.Combine(dir, "sweep.csv")) |> Array.skip 1 |> Array.map (fun l -> l.Split(','))
    Assert.Equal<string[]>([| "1"; "2"; "3"; "7" |], rows |> Array.map (fun f -> f.[0]) |> Array.sort)
    // one seed (the lowest probe loss, all at 0% here) went on to step 40, the others stopped at the probe
    let finished = rows |> Array.filter (fun f -> f.[4] = "40")
    Assert.Single finished |> ignore
    Assert.Equal(3, rows |> Array.filter (fun f -> f.[4] = "20") |> Array.length)
    let lowestLoss = rows |> Array.minBy (fun f -> float f.[2])
    Assert.Equal(lowestLoss.[0], finished.[0].[0])
    // probe, stop and resume give exactly the weights of one uninterrupted run of that seed
    let seed = finished.[0].[0]
    let single = Path.Combine(root, "single")
    let r = run [ "train"; "--seed"; seed; "--steps"; "40"; "--batch"; "32"; "--eval-interval"; "10"; "--warmup"; "5"; "--out"; single; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    let a = Checkpoint.Load(Path.Combine(single, "last.safetensors"))
    let b = Checkpoint.Load(Path.Combine(dir, "s" + seed, "last.safetensors"))
    Assert.Equal<float32[]>(a.Model.Parameters, b.Model.Parameters)
    // the same sweep with two seeds side by side in one backend (a cohort) gives the same weights
    let paired = Path.Combine(root, "paired")
    let r = run ((sweepArgs |> List.map (fun a -> if a = dir then paired else a)) @ [ "--models-per-launch"; "2" ])
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.Equal<string>(File.ReadAllText(Path.Combine(dir, "sweep.csv")), File.ReadAllText(Path.Combine(paired, "sweep.csv")))
    let c = Checkpoint.Load(Path.Combine(paired, "s" + seed, "last.safetensors"))
    Assert.Equal<float32[]>(a.Model.Parameters, c.Model.Parameters)
    // running the same command again finds everything done and trains nothing more
    let r = run sweepArgs
    Assert.Equal(0, r.Code)
    Assert.Equal(40L, (Checkpoint.Load(Path.Combine(dir, "s" + seed, "last.safetensors"))).Optimizer.Step)
    // seeds that diverge are reported, left out of the summary, and make the exit code non-zero
    let bad = run [ "train"; "--seeds"; "1-2"; "--lr"; "1e30"; "--warmup"; "0"; "--probe"; "10"; "--steps"; "20"; "--batch"; "32"; "--out"; Path.Combine(root, "diverging") ]
    Assert.Equal(1, bad.Code)
    Assert.Contains("seed 2     failed", bad.Out)
    Assert.Contains("2 of 2 seeds failed", bad.Err)
    // a cohort whose two token buffers would pass 4 GiB is refused in one line, before any folder is made
    let huge = Path.Combine(root, "huge")
    run [ "train"; "--seeds"; "1-16"; "--models-per-launch"; "16"; "--batch"; "1048576"; "--steps"; "1"; "--probe"; "1"; "--out"; huge ]
    |> assertOneLineError "token buffers"
    Assert.False(Directory.Exists huge)
    run [ "train"; "--seeds"; "1-3"; "--seed"; "4" ] |> assertOneLineError "--seed"
    run [ "train"; "--seeds"; "3-1" ] |> assertOneLineError "seed list"
