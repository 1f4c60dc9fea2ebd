/// The training commands: train, finetune, plot.
module Adder.Cli.Commands

open System
open System.IO
open Argu
open Adder.Core
open Adder.Pipeline
open Adder.Pipeline.Training
open Adder.Cli.Arguments

let private fail fmt = Printf.kprintf (fun s -> raise (AdderException s)) fmt

/// 2.00e-02 rather than .NET's 2.00e-002.
let sci (x: float) = x.ToString("0.00e+00", Globalization.CultureInfo.InvariantCulture)

let private formatSpan (t: TimeSpan) =
    if t.TotalHours >= 1.0 then sprintf "%dh%02dm" (int t.TotalHours) t.Minutes
    elif t.TotalMinutes >= 1.0 then sprintf "%dm%02ds" (int t.TotalMinutes) t.Seconds
    else sprintf "%ds" (int t.TotalSeconds)

/// Live progress: a status line rewritten in place on a terminal, one line per validation always.
let private reporter (quiet: bool) =
    let live = not quiet && not Console.IsOutputRedirected
    let mutable lastDraw = DateTime.MinValue
    fun (p: Progress) ->
        let eta =
            if p.StepsPerSecond > 0.0 then formatSpan (TimeSpan.FromSeconds(float (p.Steps - p.Step) / p.StepsPerSecond)) else "?"
        let line =
            sprintf "step %d/%d  loss %.4f  lr %s  |g| %.3f  %.0f steps/s  ETA %s  best val %.2f%%" p.Step p.Steps p.Loss (sci p.Lr)
                p.GradNorm p.StepsPerSecond eta (100.0 * max p.BestValExact 0.0)
        match p.ValExact with
        | Some e ->
            if live then Console.Write("\r" + String(' ', Console.WindowWidth - 1) + "\r")
            printfn "step %7d  loss %.5f  val exact %6.2f%%  token acc %6.2f%%  lr %s  %.0f steps/s  %s elapsed" p.Step p.Loss
                (100.0 * e) (100.0 * p.ValTokenAccuracy.Value) (sci p.Lr) p.StepsPerSecond (formatSpan p.Elapsed)
        | None when live && (DateTime.UtcNow - lastDraw).TotalMilliseconds > 250.0 ->
            lastDraw <- DateTime.UtcNow
            let width = max 20 (Console.WindowWidth - 1)
            Console.Write("\r" + (if line.Length > width then line.Substring(0, width) else line.PadRight width))
        | None -> ()

// Registrations must stay reachable: a collected registration stops handling its signal.
let mutable private signalRegistrations: Runtime.InteropServices.PosixSignalRegistration list = []

/// Ctrl-C, SIGTERM or reaching --stop-after stops the run after the current step and saves last.safetensors.
/// A second signal is not cancelled, so it ends the process at once.
let private cancellation (stopAfter: int option) =
    let requested = ref 0
    let onSignal (context: Runtime.InteropServices.PosixSignalContext) =
        if Threading.Interlocked.Exchange(&requested.contents, 1) = 0 then
            context.Cancel <- true
            eprintfn "\ninterrupt (%O): saving last.safetensors after this step (signal again to abort)" context.Signal
    signalRegistrations <-
        [ for signal in [ Runtime.InteropServices.PosixSignal.SIGINT; Runtime.InteropServices.PosixSignal.SIGTERM ] ->
              Runtime.InteropServices.PosixSignalRegistration.Create(signal, onSignal) ]
    fun step -> Threading.Volatile.Read(&requested.contents) = 1 || (match stopAfter with Some n -> step >= n | None -> false)

let private execute (config: RunConfig) (runDir: string) (resume: bool) (quiet: bool) (stopAfter: int option) =
    printfn "%s %s -> %s" config.Kind (config.Model.Describe()) runDir
    printfn "steps %d, batch %d, lr %g, warm-up %d, floor %g, weight decay %g, clip %g, seed %d, curriculum %s" config.Steps config.Batch
        config.Lr config.Warmup config.Floor config.WeightDecay config.Clip config.Seed (curriculumText config.Curriculum)
    stopAfter |> Option.iter (fun n -> if n < 1 then fail "--stop-after must be at least 1")
    let outcome = Training.run config runDir resume (reporter quiet) (cancellation stopAfter)
    if outcome.Completed then
        printfn "done: %d steps; best validation exact match %.2f%% at step %d" outcome.LastStep (100.0 * outcome.BestValExact) outcome.BestStep
        printfn "best: %s" (Path.Combine(runDir, "best.safetensors"))
        0
    elif stopAfter |> Option.exists (fun n -> outcome.LastStep >= n) then
        // the stop was asked for: a success, unlike an interrupt
        printfn "stopped at step %d as --stop-after asked; continue with --resume --out %s" outcome.LastStep runDir
        0
    else
        printfn "stopped at step %d; continue with --resume --out %s" outcome.LastStep runDir
        130

/// --resume continues a run with the options in its config.json: options left out are taken from there, and
/// one given with a different value is an error (it would silently change the run).
let private checkResume (saved: RunConfig) (config: RunConfig) =
    let fields (c: RunConfig) =
        [ "model", c.Model.Describe(); "--seed", string c.Seed; "--init-seed", string c.InitSeed; "--steps", string c.Steps
          "--batch", string c.Batch; "--lr", string c.Lr; "--warmup", string c.Warmup; "--floor", string c.Floor
          "--weight-decay", string c.WeightDecay; "--clip", string c.Clip; "--eval-interval", string c.EvalInterval
          "--curriculum", curriculumText c.Curriculum; "--beta1", string c.Beta1; "--beta2", string c.Beta2; "--eps", string c.Eps ]
    match List.zip (fields saved) (fields config) |> List.tryFind (fun ((_, was), (_, now)) -> was <> now) with
    | Some((name, was), (_, now)) ->
        fail "--resume: %s %s differs from the run's %s in config.json; leave it out to continue the run as it was" name now was
    | None -> ()

let private readSaved (resume: bool) (runDir: string) = if resume then Some(Training.readConfig runDir) else None

/// The run's options: given ones, else the resumed run's (saved), else the published recipe's.
/// seedOverride is a sweep's seed for this run.
let private trainConfig (args: ParseResults<TrainArgs>) (saved: RunConfig option) (seedOverride: int option) =
    let pick (option: Quotations.Expr<'T -> TrainArgs>) (fromSaved: RunConfig -> 'T) (published: 'T) =
        args.GetResult(option, match saved with Some c -> fromSaved c | None -> published)
    let shape =
        match args.TryGetResult TrainArgs.Preset, saved with
        | Some name, _ -> ModelConfig.Preset name
        | None, Some c -> c.Model
        | None, None -> ModelConfig.Preset "311p"
    let model =
        ModelConfig(
            NLayer = args.GetResult(TrainArgs.N_Layer, shape.NLayer),
            DModel = args.GetResult(TrainArgs.D_Model, shape.DModel),
            NHead = args.GetResult(TrainArgs.N_Head, shape.NHead),
            DFf = args.GetResult(TrainArgs.D_Ff, shape.DFf),
            PosRank = args.GetResult(TrainArgs.Pos_Rank, shape.PosRank),
            QkvRank = args.GetResult(TrainArgs.Qkv_Rank, shape.QkvRank),
            AttnOutRank = args.GetResult(TrainArgs.Attn_Out_Rank, shape.AttnOutRank),
            FfnRank = args.GetResult(TrainArgs.Ffn_Rank, shape.FfnRank),
            UseRmsNorm = (shape.UseRmsNorm && not (args.Contains TrainArgs.Layernorm)),
            TieQkv = args.GetResult(TrainArgs.Tie_Qkv, shape.TieQkv))
    let seed = match seedOverride with Some s -> s | None -> pick <@ TrainArgs.Seed @> (fun c -> c.Seed) 34
    let config =
        { Kind = "train"
          Model = model.Validate()
          StartCheckpoint = None
          Seed = seed
          InitSeed = pick <@ TrainArgs.Init_Seed @> (fun c -> c.InitSeed) seed
          Steps = pick <@ TrainArgs.Steps @> (fun c -> c.Steps) 162_000
          Batch = pick <@ TrainArgs.Batch @> (fun c -> c.Batch) 512
          Lr = pick <@ TrainArgs.Lr @> (fun c -> c.Lr) 0.02
          Warmup = pick <@ TrainArgs.Warmup @> (fun c -> c.Warmup) 1350
          Floor = pick <@ TrainArgs.Floor @> (fun c -> c.Floor) 0.1
          WeightDecay = pick <@ TrainArgs.Weight_Decay @> (fun c -> c.WeightDecay) 0.01
          Clip = pick <@ TrainArgs.Clip @> (fun c -> c.Clip) 1.0
          EvalInterval = pick <@ TrainArgs.Eval_Interval @> (fun c -> c.EvalInterval) 1000
          Curriculum =
            match args.TryGetResult TrainArgs.Curriculum, saved with
            | Some text, _ -> parseCurriculum text
            | None, Some c -> c.Curriculum
            | None, None -> baseCurriculum
          Beta1 = pick <@ TrainArgs.Beta1 @> (fun c -> c.Beta1) AdamW.DefaultBeta1
          Beta2 = pick <@ TrainArgs.Beta2 @> (fun c -> c.Beta2) AdamW.DefaultBeta2
          Eps = pick <@ TrainArgs.Eps @> (fun c -> c.Eps) AdamW.DefaultEps
          Threads = max 0 (args.GetResult(TrainArgs.Threads, 0)) }
    saved |> Option.iter (fun c -> checkResume c config)
    config

/// adder train --seeds LIST: every seed to --probe steps, then the --keep best to the end (see Sweep).
let private sweep (args: ParseResults<TrainArgs>) =
    for flag, given in [ "--seed", args.Contains TrainArgs.Seed; "--resume", args.Contains TrainArgs.Resume; "--stop-after", args.Contains TrainArgs.Stop_After ] do
        if given then fail "%s does not go with --seeds (a sweep always continues the runs it finds)" flag
    let seeds = Sweep.parseSeeds (args.GetResult TrainArgs.Seeds)
    let probe = args.GetResult(TrainArgs.Probe, 30_000)
    let keep = args.GetResult(TrainArgs.Keep, 2)
    if probe < 1 then fail "--probe must be at least 1"
    if keep < 0 then fail "--keep must not be negative"
    let sweepDir = args.GetResult(TrainArgs.Out, Path.Combine("runs", sprintf "sweep-%s" (args.GetResult(TrainArgs.Preset, "311p"))))
    if String.IsNullOrWhiteSpace sweepDir then fail "--out: the path is empty"
    if File.Exists sweepDir then fail "--out %s is a file, not a folder" sweepDir
    try Directory.CreateDirectory sweepDir |> ignore
    with :? IOException | :? UnauthorizedAccessException | :? ArgumentException as e -> fail "cannot create sweep folder %s: %s" sweepDir e.Message
    // one sweep at a time in a folder (each seed's run folder is locked by its run as well)
    use _lock = SafeFiles.LockFolder sweepDir
    let first = trainConfig args None (Some seeds.Head)
    printfn "sweep of %d seeds -> %s: each to step %d, then the best %d to step %d" seeds.Length sweepDir probe keep first.Steps
    printfn "%s; batch %d, lr %g, warm-up %d, floor %g, curriculum %s" (first.Model.Describe()) first.Batch first.Lr first.Warmup
        first.Floor (curriculumText first.Curriculum)
    let signalled = cancellation None
    let interrupted () =
        printfn "interrupted: run the same command again to continue the sweep"
        130
    let runSeed (seed: int) (until: int option) (report: Progress -> unit) =
        let runDir = Path.Combine(sweepDir, sprintf "s%d" seed)
        let resume = File.Exists(Path.Combine(runDir, "last.safetensors"))
        // a seed stopped before its first checkpoint left nothing to resume: its files are started again
        if not resume then
            for name in [ "config.json"; "metrics.csv"; "best.safetensors" ] do
                let f = Path.Combine(runDir, name)
                if File.Exists f then File.Delete f
        let config = trainConfig args (readSaved resume runDir) (Some seed)
        let stop step = signalled step || (match until with Some n -> step >= n | None -> false)
        runDir, Training.run config runDir resume report stop
    // phase 1: every seed to the probe
    let probes = ResizeArray<Sweep.Probe>()
    let mutable stopped = false
    // a seed whose run fails (it diverged, say) is reported and left out; the sweep goes on
    let failed = ResizeArray<string>()
    for seed in seeds do
        if not stopped then
            try
                let runDir, outcome = runSeed seed (Some probe) ignore
                if signalled outcome.LastStep then stopped <- true
                else
                    match Sweep.probeOf seed (Sweep.readMetrics runDir) probe with
                    | Some p ->
                        probes.Add p
                        printfn "seed %-5d step %7d  loss %.4f  val exact %6.2f%%" seed p.Step p.Loss (100.0 * p.ValExact)
                    | None -> ()
            with :? AdderException as e ->
                printfn "seed %-5d failed: %s" seed e.Message
                failed.Add(sprintf "seed %d: %s" seed e.Message)
    if stopped then interrupted ()
    else
        // phase 2: the most promising seeds to the end
        let finalists = Sweep.rank (List.ofSeq probes) |> List.truncate keep
        for p in finalists do
            if not stopped && first.Steps > probe then
                printfn "finishing seed %d (val exact %.2f%%, loss %.4f at step %d)" p.Seed (100.0 * p.ValExact) p.Loss p.Step
                try
                    let _, outcome = runSeed p.Seed None (reporter (args.Contains TrainArgs.Quiet))
                    if not outcome.Completed then stopped <- true
                with :? AdderException as e ->
                    printfn "seed %-5d failed: %s" p.Seed e.Message
                    failed.Add(sprintf "seed %d: %s" p.Seed e.Message)
        if stopped then interrupted ()
        else
            let summary =
                [ for p in probes -> Sweep.summarise p (Sweep.readMetrics (Path.Combine(sweepDir, sprintf "s%d" p.Seed))) ]
                |> Sweep.summaryOrder
            printfn ""
            printfn "%-6s %10s %10s %12s %10s %12s %10s" "seed" "probe" "loss" "val exact" "last step" "best val" "at step"
            for r in summary do
                printfn "%-6d %10d %10.4f %11.2f%% %10d %11.2f%% %10d" r.Seed r.ProbeStep r.ProbeLoss (100.0 * r.ProbeValExact) r.LastStep
                    (100.0 * r.BestValExact) r.BestStep
            let csv = Path.Combine(sweepDir, "sweep.csv")
            Sweep.writeSummary csv summary
            printfn "summary: %s; best checkpoints: %s" csv (Path.Combine(sweepDir, "s<seed>", "best.safetensors"))
            if failed.Count = 0 then 0
            else
                eprintfn "%d of %d seeds failed (left out of the summary); first: %s" failed.Count seeds.Length failed.[0]
                1

let train (args: ParseResults<TrainArgs>) =
    if args.Contains TrainArgs.Seeds then sweep args
    else
        for flag, given in [ "--probe", args.Contains TrainArgs.Probe; "--keep", args.Contains TrainArgs.Keep ] do
            if given then fail "%s applies to a sweep (--seeds) only" flag
        let runDir =
            args.GetResult(TrainArgs.Out, Path.Combine("runs", sprintf "%s-s%d" (args.GetResult(TrainArgs.Preset, "311p")) (args.GetResult(TrainArgs.Seed, 34))))
        let resume = args.Contains TrainArgs.Resume
        let config = trainConfig args (readSaved resume runDir) None
        execute config runDir resume (args.Contains TrainArgs.Quiet) (args.TryGetResult TrainArgs.Stop_After)

let finetune (args: ParseResults<FinetuneArgs>) =
    let checkpoint = args.GetResult FinetuneArgs.Checkpoint
    let start = Checkpoint.Load checkpoint
    let lr = args.GetResult FinetuneArgs.Lr
    let seed = args.GetResult FinetuneArgs.Seed
    let name = Path.GetFileNameWithoutExtension checkpoint
    let runDir = args.GetResult(FinetuneArgs.Out, Path.Combine("runs", sprintf "ft-%s-lr%g-s%d" name lr seed))
    let resume = args.Contains FinetuneArgs.Resume
    let saved = readSaved resume runDir
    let pick (option: Quotations.Expr<'T -> FinetuneArgs>) (fromSaved: RunConfig -> 'T) (published: 'T) =
        args.GetResult(option, match saved with Some c -> fromSaved c | None -> published)
    let config =
        { Kind = "finetune"
          Model = start.Model.Config
          StartCheckpoint = Some(Path.GetFullPath checkpoint)
          Seed = seed
          InitSeed = seed
          Steps = args.GetResult FinetuneArgs.Steps
          Batch = pick <@ FinetuneArgs.Batch @> (fun c -> c.Batch) 512
          Lr = lr
          Warmup = pick <@ FinetuneArgs.Warmup @> (fun c -> c.Warmup) 500
          Floor = pick <@ FinetuneArgs.Floor @> (fun c -> c.Floor) 0.01
          WeightDecay = pick <@ FinetuneArgs.Weight_Decay @> (fun c -> c.WeightDecay) 0.01
          Clip = pick <@ FinetuneArgs.Clip @> (fun c -> c.Clip) 1.0
          EvalInterval = pick <@ FinetuneArgs.Eval_Interval @> (fun c -> c.EvalInterval) 500
          Curriculum = fullCurriculum
          Beta1 = pick <@ FinetuneArgs.Beta1 @> (fun c -> c.Beta1) AdamW.DefaultBeta1
          Beta2 = pick <@ FinetuneArgs.Beta2 @> (fun c -> c.Beta2) AdamW.DefaultBeta2
          Eps = pick <@ FinetuneArgs.Eps @> (fun c -> c.Eps) AdamW.DefaultEps
          Threads = max 0 (args.GetResult(FinetuneArgs.Threads, 0)) }
    saved |> Option.iter (fun c -> checkResume c config)
    execute config runDir resume (args.Contains FinetuneArgs.Quiet) (args.TryGetResult FinetuneArgs.Stop_After)

let plot (args: ParseResults<PlotArgs>) =
    let runDir = args.GetResult PlotArgs.Run
    if not (Directory.Exists runDir) then fail "run folder not found: %s" runDir
    let output = args.GetResult(PlotArgs.Output, Path.Combine(runDir, "curves.png"))
    Plotting.plot runDir output
    printfn "wrote %s" output
    0
