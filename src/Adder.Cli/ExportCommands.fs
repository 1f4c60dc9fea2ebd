/// The export and verify commands.
module Adder.Cli.ExportCommands

open System
open System.IO
open Argu
open Adder.Core
open Adder.Pipeline
open Adder.Cli.Arguments
open Adder.Cli.CommandLine


/// An output path must name a file in an existing folder, and not the checkpoint being read (links followed).
let private checkOutput (flag: string) (output: string) (checkpoint: string) =
    SafeFiles.CheckNotAnInput(output, flag, checkpoint, "the checkpoint")
    if Directory.Exists output then fail "%s %s is a folder; give a file name" flag output
    let dir = Path.GetDirectoryName(Path.GetFullPath output)
    if not (Directory.Exists dir) then fail "output folder does not exist: %s" dir

let export (args: ParseResults<ExportArgs>) =
    let input = args.GetResult ExportArgs.Checkpoint
    let output = args.GetResult ExportArgs.Output
    let format = args.GetResult ExportArgs.Format
    if format = Pt then
        for flag, given in [ "--name", args.Contains ExportArgs.Name; "--author", args.Contains ExportArgs.Author; "--tricks", args.Contains ExportArgs.Tricks ] do
            if given then misuse "%s applies to --format adderboard only" flag
    checkOutput "-o" output input
    let ckpt = Checkpoint.Load input
    let model = ckpt.Model
    match format with
    | Pt ->
        PtExport.write ckpt output
        printfn "wrote %s: PyTorch checkpoint, %d parameters (%s)" output model.Layout.Count (model.Config.Describe())
    | Adderboard ->
        let tricks =
            match args.TryGetResult ExportArgs.Tricks with
            | Some text -> text.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> List.ofArray
            | None -> AdderBoardExport.defaultTricks model.Config
        let metadata: AdderBoardExport.Metadata =
            { Name = args.GetResult(ExportArgs.Name, Path.GetFileNameWithoutExtension input)
              Author = args.GetResult(ExportArgs.Author, "adder")
              Architecture = AdderBoardExport.architecture model.Config
              Tricks = tricks }
        AdderBoardExport.write model metadata output
        printfn "wrote %s: AdderBoard submission '%s', %d unique parameters (%s)" output metadata.Name model.Layout.Count
            (model.Config.Describe())
    0

let private percent (x: float) = sprintf "%.4f%%" (100.0 * x)

/// Progress on stderr: at most every 2 s, so short runs print nothing; rewritten in place on a terminal.
let private progressReporter () =
    let watch = Diagnostics.Stopwatch.StartNew()
    let mutable last = 0.0
    let live = not Console.IsErrorRedirected
    fun (name: string) (doneCount: int) (total: int) ->
        let now = watch.Elapsed.TotalSeconds
        if now - last >= 2.0 || (doneCount = total && last > 0.0) then
            last <- now
            let line = sprintf "verify %s: %d / %d (%.0f s)" name doneCount total now
            if live then eprintf "\r%s%s" line (if doneCount = total then "\n" else "") else eprintfn "%s" line

type private VerifyOptions =
    { Count: int; Seed: int64; Selected: Verify.Generator list; Show: int; MaxRate: float option; Json: string option }

/// The options both kinds of verify share, checked before any work (the output against the input it would name).
let private verifyOptions (input: string) (defaultCount: int) (args: ParseResults<VerifyArgs>) =
    let count = args.GetResult(VerifyArgs.Count, defaultCount)
    if count < 1 then fail "--count must be at least 1, got %d" count
    let selected =
        match args.TryGetResult VerifyArgs.Generators with
        | Some text -> Verify.parseGenerators text
        | None -> Verify.generators
    let show = args.GetResult(VerifyArgs.Show_Failures, 5)
    if show < 0 then fail "--show-failures must not be negative"
    let maxRate = args.TryGetResult VerifyArgs.Max_Error_Rate
    maxRate |> Option.iter (fun r -> if Double.IsNaN r || r < 0.0 || r > 1.0 then fail "--max-error-rate must be a fraction in [0, 1], got %g" r)
    let json = args.TryGetResult VerifyArgs.Json
    json |> Option.iter (fun p -> checkOutput "--json" p input)
    { Count = count; Seed = args.GetResult(VerifyArgs.Seed, 0L); Selected = selected; Show = show; MaxRate = maxRate; Json = json }

let private verifyReport (input: string) (subject: Verify.Subject) (o: VerifyOptions) =
    let report = Verify.run input subject o.Selected o.Count o.Seed o.Show (progressReporter ())
    printfn ""
    printfn "%-14s %9s %9s %11s  %s" "generator" "examples" "failures" "error rate" "95% interval (Wilson)"
    for g in report.Generators do
        printfn "%-14s %9d %9d %11s  [%s, %s]" g.Name g.Examples g.Failures (percent g.ErrorRate) (percent g.Low95) (percent g.High95)
    printfn ""
    printfn "%d sums sampled and decoded at %.0f sums/s; %.2f s in all (shrinking included)"
        (report.Generators |> List.sumBy (fun g -> g.Examples)) report.SumsPerSecond report.Seconds
    for g in report.Generators do
        if not g.Counterexamples.IsEmpty then
            printfn ""
            printfn "%s: %d failure%s; shrunk counterexamples%s:" g.Name g.Failures (if g.Failures = 1 then "" else "s")
                (if g.Failures > g.Counterexamples.Length then sprintf " (first %d)" g.Counterexamples.Length else "")
            // several failures often shrink to the same pair: print each shrunk pair once, with what it came from
            for (a, b), group in g.Counterexamples |> List.groupBy (fun c -> c.ShrunkA, c.ShrunkB) do
                let c = group.Head
                printfn "  %d + %d = %d, model says %s   (shrunk in %d steps from %d + %d, model said %s%s)" a b c.ShrunkExpected
                    c.ShrunkPredicted c.ShrinkSteps c.A c.B c.Predicted
                    (if group.Length > 1 then sprintf "; and %d more failures shrink to it" (group.Length - 1) else "")
    o.Json |> Option.iter (fun p -> Files.writeJsonAtomic p report; printfn "report written to %s" p)
    match o.MaxRate with
    | Some limit ->
        match report.Generators |> List.tryFind (fun g -> g.ErrorRate > limit) with
        | Some g ->
            eprintfn "adder: verify failed: %s error rate %s exceeds --max-error-rate %s" g.Name (percent g.ErrorRate) (percent limit)
            1
        | None -> 0
    | None -> 0

let verify (path: string) (args: ParseResults<VerifyArgs>) =
    let o = verifyOptions path 100_000 args
    let model = (Checkpoint.Load path).Model
    printfn "checkpoint %s: %d parameters, %s" path model.Layout.Count (model.Config.Describe())
    printfn "property: greedy decoding gives a + b; seed %d, %d examples per sampled generator" o.Seed o.Count
    use backend =
        let device, cpu = Commands.launchOf None (args.TryGetResult VerifyArgs.Threads)
        Backends.create device model.Config 1 cpu
    backend.SetParameters(0, ReadOnlySpan model.Parameters)
    verifyReport path (Verify.ofBackend backend) o

let verifySubmission (file: string) (args: ParseResults<VerifyArgs>) =
    let o = verifyOptions file 2_000 args
    let workers = args.GetResult(VerifyArgs.Threads, Environment.ProcessorCount)
    use session = new Submission.Session(args.GetResult(VerifyArgs.Python, "python3"), file, workers)
    let m = session.Metadata
    printfn "submission %s, built in %d Python worker%s: '%s' by %s, %s unique parameters; %s" file workers
        (if workers = 1 then "" else "s") m.Name m.Author m.Params m.Architecture
    printfn "property: add(model, a, b) returns a + b; seed %d, %d examples per sampled generator" o.Seed o.Count
    verifyReport file (Verify.ofSubmission session) o
