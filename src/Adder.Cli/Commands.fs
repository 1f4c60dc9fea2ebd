/// The training commands: train, finetune, plot.
module Adder.Cli.Commands

open System
open System.IO
open Argu
open Adder.Core
open Adder.Pipeline
open Adder.Pipeline.Hyperparameters
open Adder.Pipeline.Training
open Adder.Cli.Arguments
open Adder.Cli.CommandLine

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
        // in display order, each with its importance: on a narrow terminal the step and the ETA stay
        let fields =
            [ sprintf "step %d/%d" p.Step p.Steps, 0
              sprintf "loss %.4f" p.Loss, 2
              sprintf "lr %s" (sci p.Lr), 6
              sprintf "|g| %.3f" p.GradNorm, 5
              sprintf "%.0f steps/s" p.StepsPerSecond, 4
              sprintf "ETA %s" eta, 1
              sprintf "best val %.2f%%" (100.0 * max p.BestValExact 0.0), 3 ]
        let who = if p.Members > 1 then sprintf "seed %-4d " p.Seed else ""
        match p.ValExact with
        | Some e ->
            if live then Console.Write(ProgressLine.blank (ProgressLine.columns (ProgressLine.windowWidth ())))
            let average = match p.EmaValExact with Some v -> sprintf "  ema %6.2f%%" (100.0 * v) | None -> ""
            printfn "%sstep %7d  loss %.5f  val exact %6.2f%%%s  token acc %6.2f%%  lr %s  %.0f steps/s  %s elapsed" who p.Step p.Loss
                (100.0 * e) average (100.0 * p.ValTokenAccuracy.Value) (sci p.Lr) p.StepsPerSecond (formatSpan p.Elapsed)
        | None when live && p.Member = 0 && (DateTime.UtcNow - lastDraw).TotalMilliseconds > 250.0 ->
            lastDraw <- DateTime.UtcNow
            let columns = ProgressLine.columns (ProgressLine.windowWidth ())
            Console.Write("\r" + (ProgressLine.fit columns fields).PadRight columns)
        | None -> ()

let private warn (message: string) = eprintfn "adder: warning: %s" message

/// Wraps reporters so that the first report of any of them prints the warnings first: once a run has really
/// started, so a command refused at its start (a bad folder, a resume that does not match, a shard's missing
/// probes) ends with its one-line error alone.
let private warningsAtStart (warnings: string list) =
    let pending = ref warnings
    fun (report: Progress -> unit) (p: Progress) ->
        for w in pending.Value do warn w
        pending.Value <- []
        report p

// Registrations must stay reachable: a collected registration stops handling its signal.
let mutable private signalRegistrations: Runtime.InteropServices.PosixSignalRegistration list = []

/// Ctrl-C, SIGTERM or reaching --stop-after stops the run after the current step and saves last.safetensors.
/// A second signal is not cancelled, so it ends the process at once.
let private cancellation (stopAfter: int option) =
    let signalled = ref 0
    let requested = ref 0
    let onSignal (context: Runtime.InteropServices.PosixSignalContext) =
        if Threading.Interlocked.Exchange(&signalled.contents, 1) = 0 then
            context.Cancel <- true
            // the notice goes out before the run is told to stop: saving and exiting can outrun it otherwise
            eprintfn "\ninterrupt (%O): saving last.safetensors after this step (signal again to abort)" context.Signal
            Threading.Volatile.Write(&requested.contents, 1)
    signalRegistrations <-
        [ for signal in [ Runtime.InteropServices.PosixSignal.SIGINT; Runtime.InteropServices.PosixSignal.SIGTERM ] ->
              Runtime.InteropServices.PosixSignalRegistration.Create(signal, onSignal) ]
    fun step -> Threading.Volatile.Read(&requested.contents) = 1 || (match stopAfter with Some n -> step >= n | None -> false)

/// Where a run's model math runs: --device, and the CPU's options (threads).
let launchOf (device: Backends.Device option) (threads: int option) =
    let threads =
        match threads with
        | Some t when t < 1 -> fail "--threads must be at least 1, got %d" t
        | Some t -> t
        | None -> 0
    defaultArg device Backends.Cpu, CpuOptions(threads)

let private execute (launch: Backends.Device * CpuOptions) (config: RunConfig) (runDir: string) (resume: bool) (quiet: bool) (stopAfter: int option) =
    printfn "%s %s -> %s" config.Kind.Name (config.Model.Describe()) runDir
    printfn "steps %d, batch %d, lr %g, warm-up %d, floor %g, weight decay %g, clip %g, seed %d, curriculum %O" config.Steps config.Batch
        config.Lr config.Warmup config.Floor config.WeightDecay config.Clip config.Seed config.Curriculum
    stopAfter |> Option.iter (fun n -> if n < 1 then fail "--stop-after must be at least 1")
    let report = warningsAtStart (Hyperparameters.shortfalls config) (reporter quiet)
    let outcome = Training.run (fst launch) (snd launch) config runDir resume report (cancellation stopAfter)
    if outcome.Completed then
        printfn "done: %d steps; best validation exact match %.2f%% at step %d" outcome.LastStep (100.0 * outcome.BestValExact) outcome.BestStep
        printfn "best: %s" (RunFolder.best runDir)
        0
    elif stopAfter |> Option.exists (fun n -> outcome.LastStep >= n) then
        // the stop was asked for: a success, unlike an interrupt
        printfn "stopped at step %d as --stop-after asked; continue with --resume --out %s" outcome.LastStep runDir
        0
    else
        printfn "stopped at step %d; continue with --resume --out %s" outcome.LastStep runDir
        130

let private readSaved (resume: bool) (runDir: string) = if resume then Some(Training.readConfig runDir) else None

/// The hyperparameters given on the command line, applied to config: an Argu case named like a row of
/// Hyperparameters.all (Weight_Decay: weight_decay) sets that row.
let private applyGiven (given: 'Args list) (config: RunConfig) =
    given |> List.fold (fun c (arg: 'Args) ->
        let case, fields = Reflection.FSharpValue.GetUnionFields(box arg, typeof<'Args>)
        match Hyperparameters.tryFind (case.Name.ToLowerInvariant()), fields with
        | Some h, [| :? int as x |] -> h.Set c (Int x)
        | Some h, [| :? float as x |] -> h.Set c (Float x)
        | Some h, [| :? string as x |] -> h.Set c (Text x)
        | _ -> c) config

/// A run's options: given ones, else the resumed run's (saved), else the kind's defaults; init_seed follows
/// the seed unless given or saved. A resumed run refuses a given option that differs from config.json.
let private runConfig (kind: RunKind) (model: ModelConfig) (saved: RunConfig option) (given: 'Args list) (isInitSeed: 'Args -> bool) =
    let start = saved |> Option.defaultWith (fun () -> Hyperparameters.defaults kind model)
    let config = applyGiven given { start with Model = model }
    let config = if saved.IsNone && not (List.exists isInitSeed given) then { config with InitSeed = config.Seed } else config
    saved |> Option.iter (fun s -> checkResume s config)
    config

/// The run's options for `train`; seedOverride is a sweep's seed for this run.
let private trainConfig (args: ParseResults<TrainArgs>) (saved: RunConfig option) (seedOverride: int option) =
    let shape =
        match args.TryGetResult TrainArgs.Arch, args.TryGetResult TrainArgs.Preset, saved with
        | Some _, Some _, _ -> CommandLine.misuse "give --preset or --arch, not both"
        | Some file, None, _ -> Architectures.file file
        | None, Some p, _ -> Architectures.preset (presetName p)
        | None, None, Some c -> c.Model
        | None, None, None -> ModelConfig.Preset311
    let shapeOptions =
        args.GetAllResults()
        |> List.filter (function
            | TrainArgs.N_Layer _ | TrainArgs.D_Model _ | TrainArgs.N_Head _ | TrainArgs.D_Ff _ | TrainArgs.Pos_Rank _ | TrainArgs.Qkv_Rank _
            | TrainArgs.Attn_Out_Rank _ | TrainArgs.Ffn_Rank _ | TrainArgs.Layernorm | TrainArgs.Tie_Qkv _ -> true
            | _ -> false)
    if not (isNull shape.General) && not shapeOptions.IsEmpty then
        CommandLine.misuse "the shape options (--d-model, --qkv-rank, ...) change the seed's family only; architecture %s is changed in its file (adder info --preset %s shows it)" shape.General.Name shape.General.Name
    let model =
      if not (isNull shape.General) then shape else
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
            TieQkv = (match args.TryGetResult TrainArgs.Tie_Qkv with Some t -> tieMode t | None -> shape.TieQkv))
    let given =
        args.GetAllResults()
        |> List.filter (function TrainArgs.Seed _ -> seedOverride.IsNone | _ -> true)
        |> List.append (match seedOverride with Some s -> [ TrainArgs.Seed s ] | None -> [])
    runConfig RunKind.Train (model.Validate()) saved given (function TrainArgs.Init_Seed _ -> true | _ -> false)

let private presetText (args: ParseResults<TrainArgs>) =
    match args.TryGetResult TrainArgs.Arch with
    | Some file -> Path.GetFileNameWithoutExtension file
    | None -> presetName (args.GetResult(TrainArgs.Preset, P311))

/// The sweep's table on the terminal (the rows of sweep.csv).
let private printSummary (summary: Sweep.SeedSummary list) =
    printfn ""
    printfn "%-6s %10s %10s %12s %10s %12s %10s" "seed" "probe" "loss" "val exact" "last step" "best val" "at step"
    for r in summary do
        printfn "%-6d %10d %10.4f %11.2f%% %10d %11.2f%% %10d" r.Seed r.ProbeStep r.ProbeLoss (100.0 * r.ProbeValExact) r.LastStep
            (100.0 * r.BestValExact) r.BestStep

/// A sweep's folder, made if missing, and locked: one sweep at a time in a folder (each seed's run folder is
/// locked by its run as well); the shards of a sharded sweep share the folder by design, so there only the seeds'
/// folders (disjoint per shard) are locked.
let private claimSweepFolder (sweepDir: string) (sharded: bool) =
    if String.IsNullOrWhiteSpace sweepDir then fail "--out: the path is empty"
    if File.Exists sweepDir then fail "--out %s is a file, not a folder" sweepDir
    try Directory.CreateDirectory sweepDir |> ignore
    with :? IOException | :? UnauthorizedAccessException | :? ArgumentException as e -> fail "cannot create sweep folder %s: %s" sweepDir e.Message
    if sharded then { new IDisposable with member _.Dispose() = () } else SafeFiles.LockFolder sweepDir

/// adder train --seeds LIST --merge N: the N shards' summaries in --out into one sweep.csv (see Shards).
let private mergeShards (args: ParseResults<TrainArgs>) =
    let seeds = Sweep.parseSeeds (args.GetResult TrainArgs.Seeds)
    let count = args.GetResult TrainArgs.Merge
    if args.Contains TrainArgs.Shard || args.Contains TrainArgs.Finish then misuse "--merge combines all shards; leave out --shard and --finish"
    if count < 1 then fail "--merge must be at least 1 (the number of shards)"
    let sweepDir = args.GetResult(TrainArgs.Out, Path.Combine("runs", sprintf "sweep-%s" (presetText args)))
    if not (Directory.Exists sweepDir) then fail "sweep folder not found: %s" sweepDir
    let summary = Shards.merge sweepDir seeds count
    printSummary summary
    printfn "summary of %d shards: %s" count (Path.Combine(sweepDir, Sweep.summaryName))
    0

/// adder train --seeds LIST: every seed to --probe steps, then the --keep best to the end (see Sweep). With
/// --models-per-launch N, N seeds at a time train side by side in one backend. With --shard i/n: this shard's
/// seeds only, in two passes (the probe, then --finish; see Shards).
let private sweep (args: ParseResults<TrainArgs>) =
    for flag, given in [ "--seed", args.Contains TrainArgs.Seed; "--resume", args.Contains TrainArgs.Resume; "--stop-after", args.Contains TrainArgs.Stop_After ] do
        if given then misuse "%s does not go with --seeds (a sweep always continues the runs it finds)" flag
    let seeds = Sweep.parseSeeds (args.GetResult TrainArgs.Seeds)
    let probe = args.GetResult(TrainArgs.Probe, Defaults.probe)
    let keep = args.GetResult(TrainArgs.Keep, Defaults.keep)
    let device, cpu = launchOf (args.TryGetResult TrainArgs.Device) (args.TryGetResult TrainArgs.Threads)
    let perLaunch =
        args.GetResult(TrainArgs.Models_Per_Launch, if device = Backends.Cpu then Defaults.modelsPerLaunchCpu else Defaults.modelsPerLaunchCuda)
    if probe < 1 then fail "--probe must be at least 1"
    if keep < 0 then fail "--keep must not be negative"
    if perLaunch < 1 then fail "--models-per-launch must be at least 1"
    let shard = args.TryGetResult TrainArgs.Shard |> Option.map Shards.parse
    let finishing = args.Contains TrainArgs.Finish
    if finishing && shard.IsNone then misuse "--finish goes with --shard i/n (the second pass of a sharded sweep)"
    let mine = match shard with Some s -> Shards.assigned s seeds | None -> seeds
    let first = trainConfig args None (Some seeds.Head)
    // refused before the sweep's folder is made (each cohort's run checks it again)
    Training.checkCohortOptions first (min perLaunch (max 1 mine.Length))
    Training.checkMemory device cpu first (min perLaunch (max 1 mine.Length)) 0L
    let sweepDir = args.GetResult(TrainArgs.Out, Path.Combine("runs", sprintf "sweep-%s" (presetText args)))
    use _lock = claimSweepFolder sweepDir shard.IsSome
    let part =
        match shard with
        | Some s -> sprintf " (shard %d/%d: %d seeds, %s pass)" s.Index s.Count mine.Length (if finishing then "finish" else "probe")
        | None -> ""
    printfn "sweep of %d seeds%s -> %s: each to step %d, then the best %d to step %d" seeds.Length part sweepDir probe keep first.Steps
    printfn "%s; batch %d, lr %g, warm-up %d, floor %g, curriculum %O" (first.Model.Describe()) first.Batch first.Lr first.Warmup
        first.Floor first.Curriculum
    let withWarnings =
        warningsAtStart
            [ if probe >= first.Steps then
                  yield sprintf "--probe %d is not before --steps %d: every seed trains to the end, and --keep chooses none to finish" probe first.Steps
              yield! Hyperparameters.shortfalls first ]
    let options: SeedSweep.Options =
        { Seeds = seeds; Probe = probe; Keep = keep; PerLaunch = perLaunch; Shard = shard; Finishing = finishing
          SweepDir = sweepDir; Device = device; Cpu = cpu; Steps = first.Steps
          ConfigFor = fun seed saved -> trainConfig args saved (Some seed) }
    let outcome, failed =
        SeedSweep.run options (printfn "%s") (withWarnings ignore) (withWarnings (reporter (args.Contains TrainArgs.Quiet))) (cancellation None)
    let failures () =
        if failed.IsEmpty then 0
        else
            eprintfn "%d of %d seeds failed (left out of the summary); first: %s" failed.Length mine.Length failed.Head
            1
    match outcome with
    | SeedSweep.Interrupted ->
        printfn "interrupted: run the same command again to continue the sweep"
        130
    | SeedSweep.ProbesWritten path ->
        printfn "probes: %s; once all %d shards are done, run each again with --finish" path shard.Value.Count
        failures ()
    | SeedSweep.Finished(summary, csv) ->
        printSummary summary
        printfn "summary: %s; best checkpoints: %s" csv (RunFolder.best (Path.Combine(sweepDir, "s<seed>")))
        failures ()

/// A recipe sweep's folder: --out, or runs/<recipe name>-sweep.
let private recipeSweepDir (args: ParseResults<TrainArgs>) (file: string) =
    args.GetResult(TrainArgs.Out, Path.Combine("runs", Path.GetFileNameWithoutExtension file + "-sweep"))

/// How many of a recipe sweep's seeds end exact on AdderBoard's protocol.
let private printExactCount (results: Recipes.SeedResult list) (seeds: int) (csv: string) =
    let exact = results |> List.filter (fun r -> r.AdderBoardCorrect = r.AdderBoardTotal) |> List.length
    printfn "%d of %d seeds done; %d at %d / %d on AdderBoard's protocol (reported, not used to choose); summary: %s"
        results.Length seeds exact AdderBoard.total AdderBoard.total csv

/// `train --recipe FILE --seeds LIST --merge N`: the N shards' recipe-sweep-shard-*-of-N.csv in --out into recipe-sweep.csv.
let private recipeMerge (args: ParseResults<TrainArgs>) (file: string) (seeds: int list) =
    let count = args.GetResult TrainArgs.Merge
    if args.Contains TrainArgs.Shard then misuse "--merge combines all shards; leave out --shard"
    if count < 1 then fail "--merge must be at least 1 (the number of shards)"
    let sweepDir = recipeSweepDir args file
    if not (Directory.Exists sweepDir) then fail "sweep folder not found: %s" sweepDir
    let rows = Recipes.merge sweepDir seeds count
    printExactCount rows seeds.Length (Path.Combine(sweepDir, Recipes.summaryName))
    0

/// `train --recipe FILE --seeds LIST [--shard i/n]`: the recipe for each seed (of this shard) in --out/s<seed>,
/// then recipe-sweep.csv: each seed's last-stage validation and its AdderBoard score (the grok rate).
let private recipeSweep (args: ParseResults<TrainArgs>) (file: string) (recipe: Recipes.Recipe) (seeds: int list)
        (launch: Backends.Device * CpuOptions) announce =
    let shard = args.TryGetResult TrainArgs.Shard |> Option.map Shards.parse
    let mine = match shard with Some s -> Shards.assigned s seeds | None -> seeds
    let sweepDir = recipeSweepDir args file
    use _lock = claimSweepFolder sweepDir shard.IsSome
    printfn "recipe sweep %s: %s, %d stage%s, %d seeds%s -> %s" file (recipe.Model.Describe()) recipe.Stages.Length
        (if recipe.Stages.Length = 1 then "" else "s") mine.Length
        (match shard with Some s -> sprintf " (shard %d/%d of %d)" s.Index s.Count seeds.Length | None -> "") sweepDir
    let announceSeed seed i stage dir =
        if i = 0 then printfn "seed %d:" seed
        announce i stage dir
    let seedDone (r: Recipes.SeedResult) =
        let stopped = if r.StagesRun < recipe.Stages.Length then sprintf " (stopped after stage %d)" r.StagesRun else ""
        printfn "seed %-6d best validation %6.2f%% at step %d%s; AdderBoard %d / %d; %.0f s" r.Seed (100.0 * r.BestValExact) r.BestStep
            stopped r.AdderBoardCorrect r.AdderBoardTotal r.Seconds
    let results, finished =
        Recipes.sweep (fst launch) (snd launch) recipe mine sweepDir announceSeed seedDone (printfn "%s") (reporter (args.Contains TrainArgs.Quiet)) (cancellation None)
    let csv =
        match shard with
        | Some s -> Recipes.shardSummary sweepDir s
        | None -> Path.Combine(sweepDir, Recipes.summaryName)
    Recipes.writeSummary csv results
    printExactCount results mine.Length csv
    if finished then 0
    else
        printfn "interrupted: run the same command again to continue the sweep"
        130

/// `train --recipe FILE`: the stages one after another in --out/stage-K-NAME.
let private recipeOnce (args: ParseResults<TrainArgs>) (file: string) (recipe: Recipes.Recipe) (launch: Backends.Device * CpuOptions) announce =
    let outDir = args.GetResult(TrainArgs.Out, Path.Combine("runs", Path.GetFileNameWithoutExtension file))
    printfn "recipe %s: %s, %d stage%s -> %s" file (recipe.Model.Describe()) recipe.Stages.Length (if recipe.Stages.Length = 1 then "" else "s") outDir
    let results = Recipes.run (fst launch) (snd launch) recipe outDir announce (printfn "%s") (reporter (args.Contains TrainArgs.Quiet)) (cancellation None)
    for stage, dir, outcome in results do
        printfn "stage %s: %s; best validation exact match %.2f%% at step %d (%s)" stage.Name
            (if outcome.Completed then "done" else sprintf "stopped at step %d" outcome.LastStep) (100.0 * outcome.BestValExact) outcome.BestStep dir
    if Recipes.reachedEnd recipe results then
        let _, dir, _ = List.last results
        printfn "best: %s" (RunFolder.best dir)
        0
    else
        printfn "continue with the same command"
        130

/// `train --recipe FILE [--seeds LIST]`: every stage checked first, then one recipe run or a recipe sweep.
let private trainRecipe (args: ParseResults<TrainArgs>) (file: string) =
    for a in args.GetAllResults() do
        match a with
        | TrainArgs.Recipe _ | TrainArgs.Out _ | TrainArgs.Device _ | TrainArgs.Threads _ | TrainArgs.Quiet | TrainArgs.Seeds _ | TrainArgs.Shard _ | TrainArgs.Merge _ -> ()
        | other -> misuse "--recipe sets the model and every stage's options; %s goes in the recipe file" ((string other).Split(' ').[0].ToLowerInvariant().Replace('_', '-') |> sprintf "--%s")
    if args.Contains TrainArgs.Shard && not (args.Contains TrainArgs.Seeds) then misuse "--shard goes with --seeds"
    if args.Contains TrainArgs.Merge && not (args.Contains TrainArgs.Seeds) then misuse "--merge goes with --seeds (the list the shards ran)"
    let recipe = Recipes.load file
    let launch = launchOf (args.TryGetResult TrainArgs.Device) (args.TryGetResult TrainArgs.Threads)
    let announce (i: int) (stage: Recipes.Stage) (dir: string) =
        let c = stage.Config
        match stage.Method with
        | Recipes.Gradient ->
            printfn "stage %d (%s): steps %d, batch %d, lr %g, warm-up %d, floor %g, weight decay %g, curriculum %O, carry-mix %g -> %s"
                (i + 1) stage.Name c.Steps c.Batch c.Lr c.Warmup c.Floor c.WeightDecay c.Curriculum c.CarryMix.Probability dir
        | Recipes.Lbfgs history ->
            printfn "stage %d (%s): L-BFGS polish, up to %d iterations, history %d, on one fixed batch of %d (curriculum %O) -> %s"
                (i + 1) stage.Name c.Steps history c.Batch c.Curriculum dir
        | Recipes.Targeted(rounds, mine, mix) ->
            printfn "stage %d (%s): targeted fine-tuning, up to %d rounds of %d steps (lr %g, batch %d), mining %d pairs a generator, %g of each batch from failures -> %s"
                (i + 1) stage.Name rounds c.Steps c.Lr c.Batch mine mix dir
    match args.TryGetResult TrainArgs.Seeds with
    | Some list when args.Contains TrainArgs.Merge -> recipeMerge args file (Sweep.parseSeeds list)
    | Some list -> recipeSweep args file recipe (Sweep.parseSeeds list) launch announce
    | None -> recipeOnce args file recipe launch announce

let train (args: ParseResults<TrainArgs>) =
    if args.Contains TrainArgs.Recipe then trainRecipe args (args.GetResult TrainArgs.Recipe)
    elif args.Contains TrainArgs.Seeds then
        if args.Contains TrainArgs.Merge then mergeShards args else sweep args
    else
        for flag, given in [ "--probe", args.Contains TrainArgs.Probe; "--keep", args.Contains TrainArgs.Keep
                             "--models-per-launch", args.Contains TrainArgs.Models_Per_Launch; "--shard", args.Contains TrainArgs.Shard
                             "--finish", args.Contains TrainArgs.Finish; "--merge", args.Contains TrainArgs.Merge ] do
            if given then misuse "%s applies to a sweep (--seeds) only" flag
        let launch = launchOf (args.TryGetResult TrainArgs.Device) (args.TryGetResult TrainArgs.Threads)
        let runDir = args.GetResult(TrainArgs.Out, Path.Combine("runs", sprintf "%s-s%d" (presetText args) (args.GetResult(TrainArgs.Seed, (Hyperparameters.defaults RunKind.Train ModelConfig.Preset311).Seed))))
        let resume = args.Contains TrainArgs.Resume
        let config = trainConfig args (readSaved resume runDir) None
        execute launch config runDir resume (args.Contains TrainArgs.Quiet) (args.TryGetResult TrainArgs.Stop_After)

let finetune (args: ParseResults<FinetuneArgs>) =
    let checkpoint = args.GetResult FinetuneArgs.Checkpoint
    let start = Checkpoint.Load checkpoint
    let lr = args.GetResult FinetuneArgs.Lr
    let seed = args.GetResult FinetuneArgs.Seed
    let name = Path.GetFileNameWithoutExtension checkpoint
    let runDir = args.GetResult(FinetuneArgs.Out, Path.Combine("runs", sprintf "ft-%s-lr%g-s%d" name lr seed))
    let resume = args.Contains FinetuneArgs.Resume
    let targeted = args.Contains FinetuneArgs.Targeted
    let launch = launchOf (args.TryGetResult FinetuneArgs.Device) (args.TryGetResult FinetuneArgs.Threads)
    // a targeted run's options are in its targeted.json, checked by Targeted.run
    let saved = if targeted then None else readSaved resume runDir
    let config = runConfig RunKind.Finetune start.Model.Config saved (args.GetAllResults()) (fun _ -> false)
    let config = { config with StartCheckpoint = Some(Path.GetFullPath checkpoint) }
    let targetedOnly = [ "--rounds", args.Contains FinetuneArgs.Rounds; "--mine", args.Contains FinetuneArgs.Mine; "--mix", args.Contains FinetuneArgs.Mix ]
    if not targeted then
        for flag, given in targetedOnly do if given then misuse "%s belongs to --targeted" flag
        execute launch config runDir resume (args.Contains FinetuneArgs.Quiet) (args.TryGetResult FinetuneArgs.Stop_After)
    else
        if args.Contains FinetuneArgs.Stop_After then misuse "--stop-after does not apply to --targeted (use --rounds and --steps)"
        let settings: Targeted.Settings =
            { Round = Hyperparameters.validate config
              Rounds = args.GetResult(FinetuneArgs.Rounds, Defaults.targetedRounds)
              Mine = args.GetResult(FinetuneArgs.Mine, Defaults.targetedMine)
              Mix = args.GetResult(FinetuneArgs.Mix, Defaults.targetedMix) }
        printfn "targeted finetune %s -> %s: up to %d rounds of %d steps (lr %g, seed %d), mining %d pairs per generator, %g of each batch from failures"
            (config.Model.Describe()) runDir settings.Rounds config.Steps config.Lr config.Seed settings.Mine settings.Mix
        let report = warningsAtStart (Hyperparameters.shortfalls config) (reporter (args.Contains FinetuneArgs.Quiet))
        let reports, finished = Targeted.run (fst launch) (snd launch) settings checkpoint runDir resume (printfn "%s") report (cancellation None)
        if finished then
            printfn "rounds: %s; result: %s" (Path.Combine(runDir, Targeted.csvName)) (RunFolder.best runDir)
            0
        else
            printfn "interrupted in round %d; the finished rounds are in %s (%s); the same command with --resume goes on" reports.Length runDir Targeted.csvName
            130

let plot (args: ParseResults<PlotArgs>) =
    let overlay = args.Contains PlotArgs.Overlay
    if overlay && args.Contains PlotArgs.Run then
        misuse "plot: give the folders either one after another (as operands) or side by side (after --overlay), not both"
    let runDirs = if overlay then args.GetResult PlotArgs.Overlay else args.GetResult(PlotArgs.Run, [])
    if runDirs.IsEmpty then misuse "plot: no run folder given"
    for runDir in runDirs do if not (Directory.Exists runDir) then fail "run folder not found: %s" runDir
    let output = args.GetResult(PlotArgs.Output, Path.Combine(runDirs.Head, "curves.png"))
    Plotting.plot runDirs overlay output
    printfn "wrote %s" output
    0
