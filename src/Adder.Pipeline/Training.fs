/// Training runs and fine-tuning rounds (SPEC sections 6 and 7) through a backend (IBackend). The loop trains
/// a cohort: several seeds with the same options but the seed, in lockstep, one model each in one backend;
/// each seed has its own run folder, holdout, data stream, validation and checkpoints. A single run is a
/// cohort of one.
module Adder.Pipeline.Training

open System
open System.Diagnostics
open System.IO
open Adder.Core
open Adder.Pipeline.Hyperparameters

/// The options of the run in runDir, from its config.json: what --resume continues with.
let readConfig (runDir: string) =
    let path = RunFolder.config runDir
    if not (File.Exists path) then fail "nothing to resume: %s not found" path
    ofJson (SafeFiles.ReadAllText(path, "run config")) path

/// What the caller sees while a run goes on (Member: the seed's index in its cohort).
type Progress =
    { Member: int; Members: int; Seed: int
      Step: int; Steps: int; Loss: float; Lr: float; GradNorm: float; StepsPerSecond: float
      ValExact: float option; ValTokenAccuracy: float option; BestValExact: float; Elapsed: TimeSpan
      /// at a validation of a run that keeps a moving average of its weights: the average's exact match
      EmaValExact: float option }

type Outcome = { Completed: bool; LastStep: int; BestValExact: float; BestStep: int }

/// One seed of a cohort: its options, its run folder, whether it continues from last.safetensors.
type Member = { Config: RunConfig; RunDir: string; Resume: bool }

/// last.safetensors' keys for the moving average's best validation (the average itself is its own tensor).
let private emaBestKey, emaBestStepKey = "ema_best_val_exact", "ema_best_step"

/// A member's state during the run.
type private Seat(m: Member, index: int, parameterCount: int, format: TokenFormat) =
    let config = m.Config
    let holdout = Batches.holdout config.Seed
    let valA = holdout.Validation |> Array.map (fun p -> p.A)
    let valB = holdout.Validation |> Array.map (fun p -> p.B)
    member val Member = m
    member val Index = index
    member val ValA = valA
    member val ValB = valB
    member val ValPrompts = format.EncodePromptBatch(valA, valB)
    member val Sampler = Batches.sampler config.Seed holdout config.Curriculum
    member val Parameters = Array.zeroCreate<float32> parameterCount
    member val BestVal = -1.0 with get, set
    member val BestStep = -1 with get, set
    member val SavedStep = -1 with get, set
    member val LossSum = 0.0 with get, set
    member val LossCount = 0 with get, set
    /// The run's seconds before this process (from last.safetensors): elapsed_s goes on over a resume.
    member val ElapsedBefore = 0.0 with get, set
    member val GradNorm = 0.0 with get, set
    member val Failure: string option = None with get, set
    /// The weights' moving average (null when the run keeps none) and its best validation so far.
    member val Ema: float32[] = null with get, set
    member val BestEmaVal = -1.0 with get, set
    member val BestEmaStep = -1 with get, set
    member _.LastPath = RunFolder.last m.RunDir
    member _.BestPath = RunFolder.best m.RunDir

/// Everything but the seeds must agree: one backend trains the cohort in lockstep.
let private checkCohort (members: Member list) =
    match members with
    | [] -> invalidArg "members" "an empty cohort"
    | first :: rest ->
        for m in rest do
            let same (c: RunConfig) = { c with Seed = 0; InitSeed = 0 }
            if same m.Config <> same first.Config || m.Config.Model <> first.Config.Model then
                fail "a cohort's runs must have the same options but the seed (seed %d differs from seed %d)" m.Config.Seed first.Config.Seed
        first.Config

/// Creates and locks a member's folder, refusing one that cannot hold this run; nothing in it is written yet.
/// The lock (SafeFiles.LockFolder) is held until the run ends: a second adder on the folder is refused.
let private claim (m: Member) =
    if String.IsNullOrWhiteSpace m.RunDir then fail "--out: the path is empty"
    if File.Exists m.RunDir then fail "--out %s is a file, not a run folder" m.RunDir
    try Directory.CreateDirectory m.RunDir |> ignore
    with :? IOException | :? UnauthorizedAccessException | :? ArgumentException as e -> fail "cannot create run folder %s: %s" m.RunDir e.Message
    let lock = SafeFiles.LockFolder m.RunDir
    try
        if not m.Resume && File.Exists(RunFolder.last m.RunDir) then
            fail "run folder %s already holds a run (last.safetensors); use --resume to continue it or choose another --out" m.RunDir
        if not m.Resume && SafeFiles.HoldsFiles m.RunDir then
            fail "run folder %s is not empty; a new run starts in a new or empty folder (--resume continues a run)" m.RunDir
        lock
    with _ ->
        lock.Dispose()
        reraise ()

/// Reads or writes a member's start: parameters, optimizer state and step.
let private start (seat: Seat) =
    let m = seat.Member
    let config = m.Config
    if m.Resume then
        if not (File.Exists seat.LastPath) then fail "nothing to resume: %s not found" seat.LastPath
        let last = Checkpoint.Load seat.LastPath
        if last.Model.Config <> config.Model then
            fail "--resume: the run's model (%s) differs from the options (%s)" (last.Model.Config.Describe()) (config.Model.Describe())
        let optimizer = last.Optimizer |> Option.ofObj |> Option.defaultWith (fun () -> fail "--resume: %s has no optimizer state" seat.LastPath)
        let state = TrainingState.ReadFrom(last.Metadata, seat.LastPath, config.Steps)
        seat.BestVal <- state.BestValExact
        seat.BestStep <- state.BestStep
        seat.SavedStep <- state.Step
        seat.LossSum <- state.LossSum
        seat.LossCount <- state.LossCount
        seat.ElapsedBefore <- state.ElapsedSeconds
        try seat.Sampler.SetState state.SamplerState
        with :? AdderException -> fail "--resume: %s has a bad '%s' (%d words)" seat.LastPath TrainingState.SamplerStateKey state.SamplerState.Length
        if config.Ema > 0.0 then
            if isNull last.WeightsEma then fail "--resume: %s holds no moving average of the weights, and the run keeps one (ema %g)" seat.LastPath config.Ema
            seat.Ema <- Array.copy last.WeightsEma
            let number (key: string) fallback = match last.Metadata.TryGetValue key with | true, v -> Double.Parse(v, Globalization.CultureInfo.InvariantCulture) | _ -> fallback
            seat.BestEmaVal <- number emaBestKey -1.0
            seat.BestEmaStep <- int (number emaBestStepKey -1.0)
        Metrics.truncateAfter m.RunDir state.Step
        last.Model.Parameters, optimizer, state.Step
    else
        let model =
            match config.StartCheckpoint with
            | Some path ->
                let start = Checkpoint.Load path
                if start.Model.Config <> config.Model then fail "checkpoint %s has config %s" path (start.Model.Config.Describe())
                start.Model
            | None -> Model.Initialised(config.Model, config.InitSeed)
        Files.writeTextAtomic (RunFolder.config m.RunDir) (toJson config + "\n")
        Files.writeTextAtomic (Metrics.pathIn m.RunDir) (Metrics.header + "\n")
        if config.Ema > 0.0 then seat.Ema <- Array.copy model.Parameters
        model.Parameters, OptimizerState(0L, Array.zeroCreate model.Layout.Count, Array.zeroCreate model.Layout.Count), 0

/// Changes a member's batch after the sampler drew it (Batches.BatchMix: member index, step, a, b).
type BatchMix = Batches.BatchMix

let noMix = Batches.noMix

/// The cohort's loop, its folders claimed, in a backend holding one model a member.
let private train (backend: IBackend) (emaBackend: IBackend option) (config: RunConfig) (members: Member list) (mix: BatchMix)
        (report: Progress -> unit) (stop: int -> bool) =
    let count = ParameterLayout(config.Model).Count
    let seats = members |> List.mapi (fun i m -> Seat(m, i, count, config.Model.Format)) |> Array.ofList
    let starts = seats |> Array.map start
    let startStep = let _, _, s = starts.[0] in s
    for seat, (_, _, s) in Array.zip seats starts do
        if s <> startStep then
            fail "a cohort's runs must be at the same step (seed %d is at %d, seed %d at %d)" seat.Member.Config.Seed s seats.[0].Member.Config.Seed startStep
    for seat, (parameters, optimizer, _) in Array.zip seats starts do
        backend.SetParameters(seat.Index, parameters)
        backend.SetOptimizer(seat.Index, optimizer)
        Array.blit parameters 0 seat.Parameters 0 count
    let metrics = seats |> Array.map (fun seat -> new StreamWriter(Metrics.pathIn seat.Member.RunDir, true))
    try
        let mix = Batches.withCarryMix config.CarryMix config.Curriculum (seats |> Array.map (fun s -> s.Member.Config.Seed)) mix
        let streams = Batches.Streams(config.Model.Format, seats |> Array.map (fun s -> s.Sampler), config.Batch, mix)
        // two token buffers: a step trains on one while the next step's batches are drawn into the other
        let tokens = Array.init 2 (fun _ -> Array.zeroCreate<int> streams.TokenCount)
        let mutable current = 0
        // the batches in tokens.[current] are step `step`'s, drawn while the step before trained
        let mutable ahead = false
        let results = Array.zeroCreate<StepResult> seats.Length
        let watch = Stopwatch.StartNew()
        let logEvery = max 1 (min 100 config.EvalInterval)
        let mutable lr = 0.0
        let mutable step = startStep
        let mutable stepsSinceRate = 0
        let rateWatch = Stopwatch.StartNew()
        let mutable rate = 0.0
        let live (seat: Seat) = seat.Failure.IsNone

        /// Saves weights (the seat's, or its average) with the run's metadata; a training checkpoint adds the
        /// state a resume needs.
        let saveWeights (weights: float32[]) (seat: Seat) (path: string) (valExact: float) (extra: (string * string) list) (training: bool) =
            let meta = Collections.Generic.Dictionary<string, string>()
            for k, v in metadata seat.Member.Config @ [ "step", string step; "val_exact", Files.formatFloat valExact ] @ extra do meta.[k] <- v
            if training then
                let samplerState = if ahead then streams.StateBeforeDraw seat.Index else seat.Sampler.GetState()
                TrainingState(step, seat.BestVal, seat.BestStep, samplerState, seat.LossSum, seat.LossCount,
                              seat.ElapsedBefore + watch.Elapsed.TotalSeconds).WriteTo(meta)
            let optimizer = if training then backend.GetOptimizer seat.Index else null
            let average = if training && not (isNull seat.Ema) then Array.copy seat.Ema else null
            Checkpoint(Model(config.Model, Array.copy weights), meta, optimizer, average).Save path
        let save (seat: Seat) = saveWeights seat.Parameters seat
        let saveLast (seat: Seat) =
            if live seat then
                seat.SavedStep <- step
                backend.GetParameters(seat.Index, Span seat.Parameters)
                let averageState =
                    if isNull seat.Ema then []
                    else [ emaBestKey, Files.formatFloat seat.BestEmaVal; emaBestStepKey, string seat.BestEmaStep ]
                save seat seat.LastPath (max seat.BestVal 0.0) averageState true
        // the average follows the weights after every step: ema ← d·ema + (1 − d)·w
        let emaDecay = float32 config.Ema
        let updateAverage (seat: Seat) =
            backend.GetParameters(seat.Index, Span seat.Parameters)
            let w, ema = seat.Parameters, seat.Ema
            for i in 0 .. ema.Length - 1 do ema.[i] <- emaDecay * ema.[i] + (1.0f - emaDecay) * w.[i]

        // a resumed run already at its stop point (a sweep's probe, --stop-after) does not take another step
        let mutable cancelled = step < config.Steps && stop step
        let decayScale = config.DecayScales.PerElement backend.Layout
        while step < config.Steps && not cancelled do
            lr <- LrSchedule.At(step, config.Steps, config.Lr, config.Warmup, config.Floor)
            if not ahead then streams.Draw(tokens.[current], step)
            // The next step's batches are drawn on other cores while the backend trains this one (a GPU step leaves
            // the host idle, and drawing even one model's batch is a good part of a GPU step: BENCHMARKS).
            let next, nextStep = 1 - current, step + 1
            let drawing = if nextStep < config.Steps then Threading.Tasks.Task.Run(fun () -> streams.Draw(tokens.[next], nextStep)) else null
            let decay = config.WeightDecay * config.WeightDecayCuts.Factor(seats.[0].BestVal)
            let settings = StepSettings(lr, decay, config.Clip, config.Beta1, config.Beta2, config.Eps,
                                        config.GrokfastAlpha, config.GrokfastLambda, decayScale)
            try backend.TrainStep(ReadOnlySpan tokens.[current], config.Batch, &settings, Span results)
            finally
                // the step's own error is the one to report; the draw is waited for either way
                if not (isNull drawing) then (try drawing.Wait() with _ -> ())
            if not (isNull drawing) then drawing.GetAwaiter().GetResult()   // the draw's error, if it failed
            ahead <- not (isNull drawing)
            if ahead then current <- next
            step <- step + 1
            stepsSinceRate <- stepsSinceRate + 1
            for seat in seats |> Array.filter live do
                let r = results.[seat.Index]
                if not (Single.IsFinite r.Loss) then
                    metrics.[seat.Index].Flush()
                    let saved = if seat.SavedStep >= 0 then sprintf "last.safetensors holds step %d" seat.SavedStep else "nothing was saved"
                    seat.Failure <- Some(sprintf "step %d: the loss is %g, the run diverged (lower --lr?); %s" step r.Loss saved)
                else
                    seat.LossSum <- seat.LossSum + float r.Loss
                    seat.LossCount <- seat.LossCount + 1
                    seat.GradNorm <- r.GradNorm
                    if not (isNull seat.Ema) then updateAverage seat
            // a cohort whose runs have all diverged has nothing left to train
            if not (Array.exists live seats) then cancelled <- true
            let isEval = step % config.EvalInterval = 0 || step = config.Steps
            if step % logEvery = 0 || isEval then
                if rateWatch.Elapsed.TotalSeconds > 0.5 then
                    rate <- float stepsSinceRate / rateWatch.Elapsed.TotalSeconds
                    stepsSinceRate <- 0
                    rateWatch.Restart()
                for seat in seats |> Array.filter live do
                    let meanLoss = seat.LossSum / float seat.LossCount
                    let valExact, valTok =
                        if isEval then
                            backend.GetParameters(seat.Index, Span seat.Parameters)
                            let r = Evaluation.evaluatePrompts backend seat.Index "validation" seat.ValA seat.ValB seat.ValPrompts
                            Some r.ExactMatch, Some r.TokenAccuracy
                        else None, None
                    match valExact, valTok with
                    | Some e, Some t when e > seat.BestVal ->
                        seat.BestVal <- e
                        seat.BestStep <- step
                        save seat seat.BestPath e [ "val_token_acc", Files.formatFloat t ] false
                    | _ -> ()
                    // the average validated beside the weights, in a backend of its own; its best kept as ema.safetensors
                    let emaVal =
                        match emaBackend with
                        | Some averages when isEval ->
                            averages.SetParameters(seat.Index, ReadOnlySpan seat.Ema)
                            let r = Evaluation.evaluatePrompts averages seat.Index "validation" seat.ValA seat.ValB seat.ValPrompts
                            if r.ExactMatch > seat.BestEmaVal then
                                seat.BestEmaVal <- r.ExactMatch
                                seat.BestEmaStep <- step
                                saveWeights seat.Ema seat (RunFolder.ema seat.Member.RunDir) r.ExactMatch
                                    [ "val_token_acc", Files.formatFloat r.TokenAccuracy; "weights", "ema" ] false
                            Some r.ExactMatch
                        | _ -> None
                    let row: Metrics.Row = { Step = step; Loss = meanLoss; Lr = lr; GradNorm = seat.GradNorm; ValExact = valExact
                                             ValTokenAccuracy = valTok; ElapsedSeconds = seat.ElapsedBefore + watch.Elapsed.TotalSeconds }
                    metrics.[seat.Index].WriteLine(Metrics.format row)
                    // the window is closed before last.safetensors is written, so the checkpoint holds an empty one
                    // (a stop between rows saves the partial window, and the resumed run completes it)
                    seat.LossSum <- 0.0
                    seat.LossCount <- 0
                    if isEval then
                        metrics.[seat.Index].Flush()
                        saveLast seat
                    report { Member = seat.Index; Members = seats.Length; Seed = seat.Member.Config.Seed
                             Step = step; Steps = config.Steps; Loss = meanLoss; Lr = lr; GradNorm = seat.GradNorm; StepsPerSecond = rate
                             ValExact = valExact; ValTokenAccuracy = valTok; BestValExact = seat.BestVal
                             Elapsed = TimeSpan.FromSeconds seat.ElapsedBefore + watch.Elapsed; EmaValExact = emaVal }
            if step < config.Steps && not cancelled && stop step then cancelled <- true
        if cancelled then for seat in seats do saveLast seat
        [ for seat in seats ->
            match seat.Failure with
            | Some message -> Error message
            | None -> Ok { Completed = not cancelled; LastStep = step; BestValExact = seat.BestVal; BestStep = seat.BestStep } ]
    finally
        for w in metrics do w.Dispose()

/// Refuses, in one line, options that `models` runs of `config` cannot take side by side: weight-decay cuts (one
/// StepSettings serves the whole cohort, and a cut follows each run's own validation). Asked before any folder.
let checkCohortOptions (config: RunConfig) (models: int) =
    if config.WeightDecayCuts.Active && models > 1 then
        fail "--weight-decay-cuts needs one model a launch (--models-per-launch 1), since each run's decay follows its own validation"

/// Refuses, in one line, `models` runs of `config` side by side whose estimated memory is more than the limit:
/// the CPU backend's buffers (twice with a weights' average), the token buffers, each run's holdout and validation prompts, and `other` bytes (a
/// targeted run's failures); and per-parameter decay off the CPU. A caller that makes folders asks before making any.
let checkMemory (device: Backends.Device) (cpu: CpuOptions) (config: RunConfig) (models: int) (other: int64) =
    if config.DecayScales.Active && device <> Backends.Cpu then fail "%s" WeightDecayScales.CpuOnly
    let holdout = Limits.HoldoutBytes(Batches.validationPairs, Batches.testPairs, config.Model.Format.PromptLength, config.Batch)
    let onCpu = device = Backends.Cpu
    // a run that keeps the weights' average validates it in a second backend of the same size
    let averages = if config.Ema > 0.0 && onCpu then Limits.BackendBytes(config.Model, models, cpu.Threads) else 0L
    Limits.CheckRunMemory(config.Model, onCpu, models, cpu.Threads, config.Batch, holdout, other + averages)

/// Trains (or resumes) a cohort in one backend of `device` holding its members' models. `report` is called
/// after every logged step of every member; `stop` is asked after every step (with the number of steps done):
/// when it says yes, each member's last.safetensors is written and its outcome says the run is incomplete.
/// A member whose loss stops being finite fails (its Error names the step and what was saved); the others go on.
let runCohortMixing (device: Backends.Device) (cpu: CpuOptions) (members: Member list) (mix: BatchMix) (report: Progress -> unit) (stop: int -> bool) =
    let members = members |> List.map (fun m -> { m with Config = validate m.Config })
    let config = checkCohort members
    // refused before any folder is touched or any model allocated
    checkCohortOptions config members.Length
    checkMemory device cpu config members.Length 0L
    // the backend too (no CUDA device, a config the kernels do not support: one line, no folder touched)
    use backend = Backends.create device config.Model members.Length cpu
    // a second backend validates the weights' averages, so the training state is never touched for it
    use averages = if config.Ema > 0.0 then Backends.create device config.Model members.Length cpu else null
    // every folder is claimed before any is written, so a refused member leaves the others untouched
    let locks = ResizeArray<IDisposable>()
    try
        for m in members do locks.Add(claim m)
        train backend (Option.ofObj averages) config members mix report stop
    finally
        for l in locks do l.Dispose()

let runCohort device cpu members report stop = runCohortMixing device cpu members noMix report stop

/// One run: a cohort of one; a diverged run ends with its error.
let runMixing (device: Backends.Device) (cpu: CpuOptions) (config: RunConfig) (runDir: string) (resume: bool) (mix: BatchMix) (report: Progress -> unit) (stop: int -> bool) =
    match runCohortMixing device cpu [ { Config = config; RunDir = runDir; Resume = resume } ] mix report stop with
    | [ Ok outcome ] -> outcome
    | [ Error message ] -> fail "%s" message
    | _ -> failwith "one run, one outcome"

let run device cpu config runDir resume report stop = runMixing device cpu config runDir resume noMix report stop
