module Adder.Cli.Program

open System
open System.IO
open Argu
open Adder.Core
open Adder.Pipeline
open Adder.Cli.Arguments
open Adder.Cli.CommandLine

/// The project's own model, shipped beside the executable (models/), used when --checkpoint is not given.
let defaultCheckpointName = Defaults.checkpointName

let defaultCheckpoint () =
    let path = Path.Combine(AppContext.BaseDirectory, "models", defaultCheckpointName)
    if File.Exists path then path
    else fail "no checkpoint given and the default %s is not beside the executable: pass --checkpoint FILE (.pt or .safetensors)" defaultCheckpointName

let resolveCheckpoint (given: string option) = given |> Option.defaultWith defaultCheckpoint

let loadModel (path: string) = (Checkpoint.Load path).Model

/// A backend holding one model with these parameters.
let backendFor (device: Backends.Device option) (threads: int option) (model: Model) =
    let device, cpu = Commands.launchOf device threads
    let backend = Backends.create device model.Config 1 cpu
    backend.SetParameters(0, ReadOnlySpan model.Parameters)
    backend

let info (args: ParseResults<InfoArgs>) =
    let show (config: ModelConfig) = for line in Architectures.describe config do printfn "%s" line
    match args.TryGetResult InfoArgs.Checkpoint, args.TryGetResult InfoArgs.Preset, args.TryGetResult InfoArgs.Arch with
    | Some path, None, None ->
        let ckpt = Checkpoint.Load path
        printfn "checkpoint: %s" path
        for KeyValue(k, v) in ckpt.Metadata |> Seq.sortBy (fun kv -> kv.Key) do
            if k <> "model_config" && k <> "format" then printfn "%-11s %s" (k + ":") v
        show ckpt.Model.Config
        ckpt.Optimizer |> Option.ofObj |> Option.iter (fun o -> printfn "optimizer state:   AdamW at step %d" o.Step)
        0
    | None, Some p, None -> show (Architectures.preset (presetName p)); 0
    | None, None, Some file -> show (Architectures.file file); 0
    | _ -> CommandLine.misuse "info takes one of: a checkpoint, --preset P, --arch FILE"

let convert (args: ParseResults<ConvertArgs>) =
    let input = args.GetResult ConvertArgs.Input
    let output = args.GetResult ConvertArgs.Output
    SafeFiles.CheckNotAnInput(output, "-o", input, "the checkpoint")
    SafeFiles.CheckWritable(output, "-o")
    let target =
        match args.TryGetResult ConvertArgs.Preset, args.TryGetResult ConvertArgs.Arch with
        | Some p, None -> Some(Architectures.preset (presetName p))
        | None, Some file -> Some(Architectures.file file)
        | None, None -> None
        | Some _, Some _ -> CommandLine.misuse "convert takes --preset or --arch, not both"
    let loaded = Checkpoint.Load input
    let ckpt =
        match target with
        | Some config ->
            let model, dropped = Architectures.transfer loaded.Model config
            for name, largest in dropped do printfn "dropped %s (largest magnitude %.3g)" name largest
            // the optimiser's moments and the data stream belong to the other layout
            Adder.Core.Checkpoint(model, TrainingState.Without loaded.Metadata)
        | None when args.Contains ConvertArgs.Weights_Only -> Adder.Core.Checkpoint(loaded.Model, TrainingState.Without loaded.Metadata)
        | None -> loaded
    ckpt.Metadata.["converted_from"] <- Path.GetFileName input
    ckpt.Save output
    printfn "wrote %s (%d parameters, %s)" output ckpt.Model.Layout.Count (ckpt.Model.Config.Describe())
    0

let truncate (args: ParseResults<TruncateArgs>) =
    let input = args.GetResult TruncateArgs.Checkpoint
    let output = args.GetResult TruncateArgs.Output
    let ranksText = args.GetResult TruncateArgs.Ranks
    let ranks = Truncate.parseRanks ranksText
    // checked before the work, like convert's -o (an empty path, a folder, a missing folder)
    SafeFiles.CheckNotAnInput(output, "-o", input, "the checkpoint")
    SafeFiles.CheckWritable(output, "-o")
    let source = (Checkpoint.Load input).Model
    let model, reports = Truncate.truncate source ranks
    for r in reports do
        let kept, dropped = Array.splitAt r.To r.Singular
        let norm (s: float[]) = s |> Array.sumBy (fun x -> x * x) |> sqrt
        let show (s: float[]) = s |> Array.map (sprintf "%.4g") |> String.concat " "
        printfn "%-20s rank %s -> %d  singular values %s | %s  (relative error %.3g)" r.Name (if r.From = 0 then "full" else string r.From) r.To
            (show kept) (show dropped) (norm dropped / max (norm r.Singular) 1e-300)
    let metadata = Collections.Generic.Dictionary(dict [ "truncated_from", Path.GetFileName input; "truncated_ranks", ranksText ])
    Adder.Core.Checkpoint(model, metadata).Save output
    printfn "wrote %s: %d -> %d parameters (%s)" output source.Layout.Count model.Layout.Count (model.Config.Describe())
    0

let printReport (report: Evaluation.Report) (showFailures: int) =
    printfn "%-18s %10s %8s %12s %12s" "set" "examples" "errors" "exact match" "token acc"
    for s in report.Sets @ [ report.Total ] do
        if s.Name = "total" then printfn "%s" (String('-', 64))
        printfn "%-18s %10d %8d %11.3f%% %11.4f%%" s.Name s.Examples s.Errors (100.0 * s.ExactMatch) (100.0 * s.TokenAccuracy)
    printfn ""
    printfn "%d / %d correct (%.3f%%) in %.2f s" (report.Total.Examples - report.Total.Errors) report.Total.Examples
        (100.0 * report.Total.ExactMatch) report.Seconds
    let failures = report.Total.Failures
    if not failures.IsEmpty then
        printfn ""
        printfn "failing pairs%s:" (if failures.Length > showFailures then sprintf " (first %d of %d)" showFailures failures.Length else "")
        printfn "%-18s %12s %12s %13s %13s" "set" "a" "b" "expected" "predicted"
        for f in failures |> List.truncate showFailures do
            printfn "%-18s %12d %12d %13d %13s" f.Set f.A f.B f.Expected f.Predicted

let eval (args: ParseResults<EvalArgs>) =
    let path = resolveCheckpoint (args.TryGetResult EvalArgs.Checkpoint)
    let suite = args.GetResult(EvalArgs.Suite, Suite.Reference)
    let showFailures = args.GetResult(EvalArgs.Show_Failures, Defaults.showFailures)
    if showFailures < 0 then fail "--show-failures must not be negative"
    let json = args.TryGetResult EvalArgs.Json
    // checked before the evaluation runs, so a bad path fails at once
    json |> Option.iter (fun p -> SafeFiles.CheckNotAnInput(p, "--json", path, "the checkpoint"); SafeFiles.CheckWritable(p, "--json"))
    let sets =
        match suite with
        | Suite.Reference ->
            if args.Contains EvalArgs.Count || args.Contains EvalArgs.Seed then misuse "--count and --seed apply to --suite random only"
            Evaluation.referenceSets ()
        | Suite.Random -> Evaluation.randomSet (args.GetResult(EvalArgs.Count, Defaults.count)) (args.GetResult(EvalArgs.Seed, 0L))
        | Suite.Adderboard ->
            if args.Contains EvalArgs.Count || args.Contains EvalArgs.Seed then misuse "--count and --seed apply to --suite random only"
            AdderBoard.sets ()
    let model = loadModel path
    printfn "checkpoint %s: %d parameters, %s" path model.Layout.Count (model.Config.Describe())
    use backend = backendFor (args.TryGetResult EvalArgs.Device) (args.TryGetResult EvalArgs.Threads) model
    let suiteName = match suite with Suite.Reference -> "reference" | Suite.Random -> "random" | Suite.Adderboard -> "adderboard"
    let report = Evaluation.run path suiteName backend sets
    printReport report showFailures
    json |> Option.iter (fun p -> Files.writeJsonAtomic p report; printfn "report written to %s" p)
    0

/// Standard output as a file stream on descriptor 1. .NET's console stream drops a write that fails with EPIPE,
/// so once `| head -1` had gone, predict --file would go on reading its input (forever from `yes`) and exit 0;
/// this stream's failed write ends the command.
let private openStandardOutput () =
    new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(nativeint 1, false), FileAccess.Write, 1)

let predict (args: ParseResults<PredictArgs>) =
    let path = resolveCheckpoint (args.TryGetResult PredictArgs.Checkpoint)
    // "predict -- -1 2": Argu passes the "--" on as an operand
    let operands = match args.GetResult(PredictArgs.Operands, []) with "--" :: rest -> rest | all -> all
    match args.TryGetResult PredictArgs.File, operands with
    | Some _, _ :: _ -> misuse "give either two operands or --file, not both"
    | None, [ a; b ] ->
        let a = Tokens.ParseOperand a
        let b = Tokens.ParseOperand b
        use backend = backendFor (args.TryGetResult PredictArgs.Device) (args.TryGetResult PredictArgs.Threads) (loadModel path)
        printfn "%s" (Prediction.predictBatch backend [| a |] [| b |]).[0]
        0
    | None, [] -> misuse "nothing to add: give two operands or --file PAIRS"
    | None, _ -> misuse "expected exactly two operands, got %d" operands.Length
    | Some file, [] ->
        let reader =
            if file = "-" then new StreamReader(Console.OpenStandardInput()) :> TextReader
            else
                match SafeFiles.KindOf(file, true) with
                | SafeFiles.Kind.Missing -> fail "pairs file not found: %s" file
                | SafeFiles.Kind.Directory -> fail "pairs file %s is a folder, not a file" file
                // a FIFO or /dev/stdin is read as a stream like any file
                | _ -> new StreamReader(file) :> TextReader
        use backend = backendFor (args.TryGetResult PredictArgs.Device) (args.TryGetResult PredictArgs.Threads) (loadModel path)
        let out = new StreamWriter(openStandardOutput (), Text.UTF8Encoding(false), 1 <<< 16)
        try
            Prediction.predictStream backend reader out 8192 |> ignore
            0
        finally
            // after a failed write the writer still holds what it could not write: closing it must not raise a
            // second error over the first
            try out.Dispose() with :? IOException -> ()

let bench (args: ParseResults<BenchArgs>) =
    let windows = args.GetResult(BenchArgs.Windows, Defaults.windows)
    if windows < 1 then fail "--windows must be at least 1"
    let config = Architectures.preset (presetName (args.GetResult(BenchArgs.Preset, P311)))
    let models = args.GetResult(BenchArgs.Models, 1)
    if models < 1 then fail "--models must be at least 1"
    if models > 1 && args.GetResult BenchArgs.What = BenchWhat.Eval then misuse "--models applies to bench train only"
    use backend =
        let device, cpu = Commands.launchOf (args.TryGetResult BenchArgs.Device) (args.TryGetResult BenchArgs.Threads)
        Backends.create device config models cpu
    let threads =
        match Commands.launchOf (args.TryGetResult BenchArgs.Device) (args.TryGetResult BenchArgs.Threads) with
        | Backends.Cpu, cpu -> sprintf "%d threads" cpu.WorkerThreads
        | device, _ -> Backends.deviceName device
    printfn "machine: %d logical cores, %s, Vector512 accelerated: %b, .NET %s" Environment.ProcessorCount
        (Runtime.InteropServices.RuntimeInformation.OSDescription) Runtime.Intrinsics.Vector512.IsHardwareAccelerated
        (string Environment.Version)
    match args.GetResult BenchArgs.What with
    | BenchWhat.Train ->
        let batch = args.GetResult(BenchArgs.Batch, Defaults.benchBatch)
        if batch < 1 then fail "--batch must be at least 1"
        if batch > Limits.MaxBatch then fail "--batch %d is more than the limit of %d" batch Limits.MaxBatch
        let r = Benchmarks.benchTrain backend batch windows
        printfn "train %s, batch %d, %d model(s), %s: %.0f steps/s = %.0f model-steps/s (median of %d 1-s windows: %s)"
            (config.Describe()) batch r.Models threads r.StepsPerSecond (r.StepsPerSecond * float r.Models) windows
            (r.Windows |> List.map (sprintf "%.0f") |> String.concat " ")
        printfn "FLOPs per model-step (counted): %.3g -> %.2f GFLOP/s" (float r.FlopsPerStep)
            (float r.FlopsPerStep * r.StepsPerSecond * float r.Models / 1e9)
        printfn "drawing a step's batches of %d model(s) (samplers and encoding, %d cores; a run does it while the backend steps, not in the figure above): %.1f us"
            r.Models Environment.ProcessorCount (r.DrawSeconds * 1e6)
    | BenchWhat.Eval ->
        let r = Benchmarks.benchEval backend (Model.Initialised(config, 1)) windows
        printfn "greedy decode of 100,000 sums, %s: %.3f s (median of %d: %s), %.0f examples/s" threads
            r.SecondsPer100k windows (r.Windows |> List.map (sprintf "%.3f") |> String.concat " ") r.ExamplesPerSecond
        printfn "FLOPs per example (counted): %d -> %.2f GFLOP/s" r.FlopsPerExample (float r.FlopsPerExample * r.ExamplesPerSecond / 1e9)
        printfn "encoding the 100,000 prompts (data layer, not in the figure above): %.4f s" r.EncodeSeconds
    0

/// adder selftest: every check a GPU backend must pass (SelfTest), against the CPU backend and the goldens.
let selftest (args: ParseResults<SelftestArgs>) =
    let device = args.GetResult(SelftestArgs.Device, Backends.Cuda)
    let shared = args.GetResult(SelftestArgs.Shared, Path.Combine("..", "shared"))
    for file in [ "golden/gradcheck_random_init.json"; "golden/trajectory_3steps.json"; "reference/best_311p_s34.pt" ] do
        if not (File.Exists(Path.Combine(shared, file))) then fail "--shared %s: %s not found" shared file
    let _, cpu = Commands.launchOf None (args.TryGetResult SelftestArgs.Threads)
    let onDevice config models = Backends.create device config models cpu
    let reference config models = Backends.create Backends.Cpu config models cpu
    (onDevice ModelConfig.Preset311 1).Dispose()   // no device: the one-line error, before any check
    printfn "self-test of --device %s against the CPU backend and the goldens in %s" (Backends.deviceName device) shared
    let show (c: SelfTest.Check) = printfn "%s %s: %s" (if c.Passed then "PASS" else "FAIL") c.Name c.Detail
    let checks =
        [ if device = Backends.Cuda then
              let c = SelfTest.cublasCheck ()
              show c
              yield c
          yield! SelfTest.run shared onDevice reference show ]
    let failed = checks |> List.filter (fun c -> not c.Passed) |> List.length
    printfn "%d passed, %d failed" (checks.Length - failed) failed
    if failed = 0 then 0 else 1

let checkGradients (args: ParseResults<CheckGradientsArgs>) =
    let device, cpu = Commands.launchOf (args.TryGetResult CheckGradientsArgs.Device) (args.TryGetResult CheckGradientsArgs.Threads)
    let r = GradientCheck.run (fun config -> Backends.create device config 1 cpu) (args.GetResult CheckGradientsArgs.Golden)
    printfn "loss: %.9f golden %.9f (relative error %s)" r.Loss r.GoldenLoss (Commands.sci r.LossRelativeError)
    printfn "%-28s %14s %12s" "tensor" "rel. error" "|g_ref|"
    for t in r.Tensors do printfn "%-28s %14s %12.4f" t.Name (Commands.sci t.RelativeError) t.Norm
    printfn "%s (limits: loss 1e-4, tensors 1e-3)" (if r.Passed then "PASS" else "FAIL")
    if r.Passed then 0 else 1

let run (argv: string[]) =
    let parser = ArgumentParser.Create<AdderArgs>(programName = "adder")
    NumberParsing.checkFloats (NumberParsing.floatOptions typeof<AdderArgs>) argv
    let results = parser.ParseCommandLine(argv, raiseOnUsage = true)
    match results.GetAllResults() with
    | [ Info a ] -> info a
    | [ Convert a ] -> convert a
    | [ Eval a ] -> eval a
    | [ Predict a ] -> predict a
    | [ Export a ] -> ExportCommands.export a
    | [ Verify a ] ->
        match a.TryGetResult VerifyArgs.Submission with
        | Some file ->
            if a.Contains VerifyArgs.Checkpoint then misuse "give -c CHECKPOINT or --submission FILE, not both"
            ExportCommands.verifySubmission file a
        | None ->
            if a.Contains VerifyArgs.Python then misuse "--python goes with --submission"
            ExportCommands.verify (resolveCheckpoint (a.TryGetResult VerifyArgs.Checkpoint)) a
    | [ Train a ] -> Commands.train a
    | [ Finetune a ] -> Commands.finetune a
    | [ Truncate a ] -> truncate a
    | [ Plot a ] -> Commands.plot a
    | [ Bench a ] -> bench a
    | [ Check_Gradients a ] -> checkGradients a
    | [ Selftest a ] -> selftest a
    | [ Version ] -> printfn "adder %s" (string (Reflection.Assembly.GetExecutingAssembly().GetName().Version)); 0
    | [] -> printfn "%s" (parser.PrintUsage()); 2
    | _ -> misuse "give one command"

/// An error as one line of reasonable length, whatever the input it quotes; control characters that got into
/// it (a path holding an ESC, say) are escaped, so the line cannot drive the terminal.
let private oneLine (message: string) =
    let first = Limits.EscapeControls(message.Split('\n').[0].Trim())
    if first.Length <= 300 then first else first.Substring(0, 300) + "…"

/// Argu quotes what it was given in full ("unrecognized argument: '...'"): each quoted text as Limits.Echo
/// shows user text.
let private echoQuoted (message: string) =
    Text.RegularExpressions.Regex.Replace(message, "'([^']*)'", fun m -> "'" + Limits.Echo m.Groups.[1].Value + "'")

[<EntryPoint>]
let main argv =
    try
        StandardOutput.guardConsole ()
        run argv
    with
    | :? ArguParseException as e when e.ErrorCode = ErrorCode.HelpText ->
        printfn "%s" e.Message
        0
    | :? ArguParseException as e ->
        let first = e.Message.Split('\n') |> Array.tryHead |> Option.defaultValue e.Message
        eprintfn "adder: %s (see --help)" (oneLine (echoQuoted (first.Replace("ERROR: ", ""))))
        2
    | CommandLineError message ->
        eprintfn "adder: %s (see --help)" (oneLine message)
        2
    | :? AdderException as e ->
        eprintfn "adder: %s" (oneLine e.Message)
        1
    // standard output closed or full (adder predict 1 2 >/dev/full): a failed write is an error, not a crash
    | StandardOutput.StandardOutputFailed message ->
        eprintfn "adder: cannot write to standard output: %s" (oneLine message)
        1
    | :? IOException as e ->
        eprintfn "adder: I/O error: %s" (oneLine e.Message)
        1
    | e when Environment.GetEnvironmentVariable "ADDER_DEBUG" <> "1" ->
        eprintfn "adder: internal error: %s: %s (set ADDER_DEBUG=1 for details)" (e.GetType().Name) (oneLine e.Message)
        70
