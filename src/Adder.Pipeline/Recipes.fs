/// `adder train --recipe FILE`: a model and stages, each stage a run whose options are the run hyperparameters
/// (Hyperparameters.all, by their config.json names) and which starts from the previous stage's best or last
/// checkpoint with a fresh optimizer. A recipe file:
///   { "architecture": "62p" (a preset) or { … an architecture … }, "seed": 1,
///     "stages": [ { "name": "base", "steps": 200000, "lr": 0.01, "floor": 0.1, "batch": 128, … },
///                 { "name": "polish", "optimizer": "adam", "start": "best", "lr": 0.001, "floor": 0, … } ] }
/// The first stage takes `adder train`'s defaults, later ones `adder finetune`'s; "optimizer": "adam" is AdamW
/// without weight decay (torch's Adam). A later stage may name an "architecture" of its own: the stage before's
/// checkpoint is moved into it by parameter name (`adder convert --preset`), e.g. to drop a term faded out by
/// "decay_scales". A stage's "stop_below": 0.5 ends the recipe after it when its best validation is below 50%
/// (a sweep then spends the later stages only on seeds worth them). Every stage is checked before any folder is made.
module Adder.Pipeline.Recipes

open System
open System.IO
open System.Text.Json
open Adder.Core
open Adder.Pipeline.Hyperparameters

/// How a stage trains: AdamW steps on fresh batches (Training), an L-BFGS polish on one fixed batch (Lbfgs), or
/// rounds of targeted fine-tuning (Targeted: the stage's options are each round's).
type Method =
    | Gradient
    | Lbfgs of history: int
    | Targeted of rounds: int * mine: int * mix: float

/// A stage; OwnSeed: it sets its own "seed" (a recipe sweep's seed then leaves that stage's data seed alone).
/// Where a stage that moves the weights into an architecture of its own starts the parameters the stage before
/// lacks ("new_parameters"): absent, they are refused; "init": their architecture's init (drawn with the stage's
/// init seed); an object: each named parameter at an expression over the stage before's parameters and roles.
type NewParameters =
    | Refuse
    | AtInit
    | AtExpressions of Map<string, string>

/// StopBelow: the recipe goes past this stage only if the stage's best validation exact match reaches it (a seed
/// that has not learned enough by then is not worth the stages after; a sweep counts it as the recipe's end).
type Stage =
    { Name: string; Config: RunConfig; Start: string; Method: Method; OwnSeed: bool; OwnInitSeed: bool
      NewParameters: NewParameters; StopBelow: float option }

type Recipe = { Model: ModelConfig; Stages: Stage list }

/// How the weights move into a stage's architecture; `initial` gives the new model's init when the stage asks for it.
let private transferOf (newParameters: NewParameters) (initial: unit -> Model) =
    match newParameters with
    | Refuse -> Architectures.Refused
    | AtInit -> Architectures.FromInit(initial ())
    | AtExpressions e -> Architectures.FromExpressions e

let private recipeKeys = [ "architecture"; "seed"; "stages" ]
let private stageOwnKeys = [ "name"; "start"; "optimizer"; "history"; "targeted"; "architecture"; "new_parameters"; "stop_below" ]
let private targetedKeys = [ "rounds"; "mine"; "mix" ]


/// A stage's folder inside the recipe's output folder.
let stageDir (outDir: string) (index: int) (stage: Stage) = Path.Combine(outDir, sprintf "stage-%d-%s" (index + 1) stage.Name)

let parse (text: string) (source: string) =
    let root =
        try JsonDocument.Parse(text).RootElement.Clone()
        with :? JsonException as e -> fail "%s: not valid JSON (%s)" source (e.Message.Split('.').[0])
    let bad fmt = Printf.kprintf (fun s -> fail "%s: %s" source s) fmt
    if root.ValueKind <> JsonValueKind.Object then bad "a recipe is a JSON object"
    for p in root.EnumerateObject() do
        if not (List.contains p.Name recipeKeys) then bad "unknown recipe key '%s' (known: %s)" (Limits.Echo p.Name) (String.Join(", ", recipeKeys))
    let architecture (where: string) (v: JsonElement) =
        match v.ValueKind with
        | JsonValueKind.String -> (try Architectures.preset (v.GetString()) with :? AdderException as e -> bad "%s%s" where e.Message)
        | JsonValueKind.Object -> ModelConfig.Of(Architecture.FromJson(v.GetRawText(), source))
        | _ -> bad "%s'architecture' is a preset name or an architecture object" where
    let model =
        match root.TryGetProperty "architecture" with
        | true, v -> architecture "" v
        | _ -> bad "the recipe has no 'architecture'"
    let seed =
        match root.TryGetProperty "seed" with
        | true, v when v.ValueKind = JsonValueKind.Number && v.TryGetInt32() |> fst && v.GetInt32() >= 0 -> v.GetInt32()
        | true, _ -> bad "'seed' must be a non-negative integer"
        | _ -> (defaults Train model).Seed
    let stages =
        match root.TryGetProperty "stages" with
        | true, v when v.ValueKind = JsonValueKind.Array && v.GetArrayLength() > 0 -> [ for s in v.EnumerateArray() -> s ]
        | _ -> bad "the recipe needs a non-empty 'stages' list"
    let names = Collections.Generic.HashSet<string>()
    // the model each stage trains: the recipe's, until a stage names another
    let mutable current = model
    let stages =
        stages
        |> List.mapi (fun i s ->
            let where = sprintf "stage %d" (i + 1)
            if s.ValueKind <> JsonValueKind.Object then bad "%s is not an object" where
            let known = stageOwnKeys @ [ for h in all -> h.Name ]
            for p in s.EnumerateObject() do
                if not (List.contains p.Name known) then bad "%s: unknown key '%s' (a stage takes %s and the run hyperparameters: adder train --help)" where (Limits.Echo p.Name) (String.Join(", ", stageOwnKeys))
            let str key fallback =
                match s.TryGetProperty(key: string) with
                | true, v when v.ValueKind = JsonValueKind.String -> v.GetString()
                | true, _ -> bad "%s: '%s' is not a string" where key
                | _ -> fallback
            let name = str "name" (sprintf "%d" (i + 1))
            if name = "" || name |> Seq.exists (fun c -> not (Char.IsLetterOrDigit c || c = '-' || c = '_')) then
                bad "%s: name '%s' may hold letters, digits, '-' and '_' only" where (Limits.Echo name)
            if not (names.Add name) then bad "%s: the name '%s' is used twice" where name
            let start = str "start" "best"
            if start <> "best" && start <> "last" && start <> "ema" then bad "%s: start '%s' is not best, last or ema" where (Limits.Echo start)
            let optimizer = str "optimizer" "adamw"
            let kind = if i = 0 then Train else Finetune
            let newParameters =
                match s.TryGetProperty "new_parameters" with
                | false, _ -> Refuse
                | true, _ when not (fst (s.TryGetProperty "architecture")) -> bad "%s: 'new_parameters' belongs to a stage with an 'architecture' of its own" where
                | true, v when v.ValueKind = JsonValueKind.String && v.GetString() = "init" -> AtInit
                | true, v when v.ValueKind = JsonValueKind.Object ->
                    AtExpressions(Map.ofList [ for p in v.EnumerateObject() ->
                                                if p.Value.ValueKind <> JsonValueKind.String then bad "%s: new_parameters '%s' is not an expression (a string)" where (Limits.Echo p.Name)
                                                p.Name, p.Value.GetString() ])
                | true, v ->
                    bad "%s: new_parameters '%s' is neither init nor an object of expressions (the new model's parameters the stage before lacks start at their architecture's init, or at an expression over the stage before's)" where (Limits.Echo(if v.ValueKind = JsonValueKind.String then v.GetString() else v.GetRawText()))
            match s.TryGetProperty "architecture" with
            | true, _ when i = 0 -> bad "%s: the first stage trains the recipe's 'architecture'; a later stage's moves the weights into another" where
            | true, v ->
                let next = architecture (where + ": ") v
                // every parameter of the new model must be in the stage before's, or start as new_parameters says
                // (checked on zero weights: names, shapes and expressions)
                let fresh = transferOf newParameters (fun () -> Model next)
                (try Architectures.transferWith fresh (Model current) next |> ignore with :? AdderException as e -> bad "%s: %s" where e.Message)
                current <- next
            | _ -> ()
            let config = { defaults kind current with Seed = seed; InitSeed = seed }
            let config =
                try
                    all |> List.fold (fun c h -> match s.TryGetProperty h.Name with | true, v -> h.Set c (h.Read v) | _ -> c) config
                with
                | :? AdderException as e -> bad "%s: %s" where e.Message
                | :? InvalidOperationException | :? FormatException -> bad "%s: a value has the wrong type" where
            let history =
                match s.TryGetProperty "history" with
                | true, v when v.ValueKind = JsonValueKind.Number && v.TryGetInt32() |> fst && v.GetInt32() >= 1 -> Some(v.GetInt32())
                | true, _ -> bad "%s: 'history' must be a positive integer" where
                | _ -> None
            if history.IsSome && optimizer <> "lbfgs" then bad "%s: 'history' belongs to optimizer lbfgs" where
            let targeted =
                match s.TryGetProperty "targeted" with
                | true, t when t.ValueKind = JsonValueKind.Object ->
                    for p in t.EnumerateObject() do
                        if not (List.contains p.Name targetedKeys) then
                            bad "%s: unknown targeted key '%s' (known: %s)" where (Limits.Echo p.Name) (String.Join(", ", targetedKeys))
                    let rounds0, mine0, mix0 = Targeted.defaultRounds, Targeted.defaultMine, Targeted.defaultMix
                    let int (key: string) fallback =
                        match t.TryGetProperty key with
                        | true, v when v.ValueKind = JsonValueKind.Number && v.TryGetInt32() |> fst && v.GetInt32() >= 1 -> v.GetInt32()
                        | true, _ -> bad "%s: targeted '%s' must be a positive integer" where key
                        | _ -> fallback
                    let mix =
                        match t.TryGetProperty "mix" with
                        | true, v when v.ValueKind = JsonValueKind.Number && v.GetDouble() > 0.0 && v.GetDouble() < 1.0 -> v.GetDouble()
                        | true, _ -> bad "%s: targeted 'mix' must be in (0, 1)" where
                        | _ -> mix0
                    let mine = int "mine" mine0
                    if mine > Limits.MaxEvalCount then bad "%s: targeted 'mine' must be at most %d" where Limits.MaxEvalCount
                    Some(Targeted(int "rounds" rounds0, mine, mix))
                | true, _ -> bad "%s: 'targeted' is an object of %s" where (String.Join(", ", targetedKeys))
                | _ -> None
            if targeted.IsSome && i = 0 then bad "%s: a targeted stage fine-tunes the stage before's model; it cannot be the first" where
            if targeted.IsSome && optimizer <> "adamw" then bad "%s: a targeted stage's rounds use adamw" where
            let config, method =
                match optimizer with
                | "adamw" when targeted.IsSome -> config, targeted.Value
                | "adamw" -> config, Gradient
                | "adam" ->
                    if config.WeightDecay <> 0.0 && (fst (s.TryGetProperty "weight_decay")) then bad "%s: adam has no weight decay (use adamw)" where
                    { config with WeightDecay = 0.0 }, Gradient
                | "lbfgs" ->
                    if i = 0 then bad "%s: an lbfgs stage polishes the stage before it; it cannot be the first" where
                    config, Lbfgs(defaultArg history 10)
                | other -> bad "%s: unknown optimizer '%s' (known: adamw, adam, lbfgs)" where (Limits.Echo other)
            let config = try validate config with :? AdderException as e -> bad "%s: %s" where e.Message
            let stopBelow =
                match s.TryGetProperty "stop_below" with
                | false, _ -> None
                | true, _ when i = stages.Length - 1 -> bad "%s: 'stop_below' on the last stage changes nothing (it decides whether the stages after run)" where
                | true, v when v.ValueKind = JsonValueKind.Number && v.GetDouble() > 0.0 && v.GetDouble() <= 1.0 -> Some(v.GetDouble())
                | true, _ -> bad "%s: 'stop_below' must be a validation exact match in (0, 1]" where
            { Name = name; Config = config; Start = start; Method = method
              OwnSeed = fst (s.TryGetProperty "seed"); OwnInitSeed = fst (s.TryGetProperty "init_seed"); NewParameters = newParameters
              StopBelow = stopBelow })
    stages |> List.pairwise |> List.iteri (fun i (previous, stage) ->
        match previous.Method with
        | Targeted _ when stage.Start <> "best" -> bad "stage %d starts from the stage before's %s, but a targeted stage leaves its best only" (i + 2) stage.Start
        | Lbfgs _ when stage.Start = "ema" -> bad "stage %d starts from the stage before's ema, but an lbfgs stage keeps none" (i + 2)
        | _ -> ()
        if stage.Start = "ema" && previous.Config.Ema = 0.0 then
            bad "stage %d starts from the stage before's ema, but that stage keeps no moving average (give it \"ema\": 0.999, say)" (i + 2))
    { Model = model; Stages = stages }

let load (path: string) = parse (SafeFiles.ReadAllText(path, "recipe")) path

/// A targeted stage's outcome from its rounds' best validations (the first, the start's mining, has none: NaN).
/// Where no round ran (the start mined clean) its best is the stage before's, and so are its validation and step.
let targetedOutcome (roundVals: float list) (finished: bool) (bestStep: int) (before: Training.Outcome option) : Training.Outcome =
    match roundVals |> List.filter (fun v -> not (Double.IsNaN v)), before with
    | [], Some b when finished -> { Completed = true; LastStep = 0; BestValExact = b.BestValExact; BestStep = b.BestStep }
    | vals, _ -> { Completed = finished; LastStep = roundVals.Length - 1; BestValExact = List.fold max 0.0 vals; BestStep = bestStep }

/// Whether a finished stage ends the recipe: its best validation is below its "stop_below".
let stopsAfter (stage: Stage) (outcome: Training.Outcome) =
    outcome.Completed && (match stage.StopBelow with Some t -> outcome.BestValExact < t | None -> false)

/// Whether a run's stages (as `run` returns them) reached the recipe's end: every stage finished, or a finished
/// stage's "stop_below" ended it.
let reachedEnd (recipe: Recipe) (results: (Stage * string * Training.Outcome) list) =
    match List.tryLast results with
    | Some(stage, _, outcome) -> outcome.Completed && (results.Length = recipe.Stages.Length || stopsAfter stage outcome)
    | None -> false

/// Runs the stages in order; each starts from the one before (its best or last checkpoint). A stage whose folder
/// holds a run already is resumed (a finished one ends at once), so the same command continues a recipe.
let run (device: Backends.Device) (cpu: CpuOptions) (recipe: Recipe) (outDir: string) (announce: int -> Stage -> string -> unit)
        (say: string -> unit) (report: Training.Progress -> unit) (stop: int -> bool) =
    Directory.CreateDirectory outDir |> ignore
    let rec go (i: int) (previous: (string * Stage) option) (stages: Stage list) (done': (Stage * string * Training.Outcome) list) =
        match stages with
        | [] -> List.rev done'
        | stage :: rest ->
            let dir = stageDir outDir i stage
            let config =
                match previous with
                | None -> stage.Config
                | Some(prevDir, prevStage) ->
                    let start = Path.GetFullPath(Path.Combine(prevDir, stage.Start + ".safetensors"))
                    if prevStage.Config.Model = stage.Config.Model then { stage.Config with StartCheckpoint = Some start }
                    else
                        // a stage on another architecture starts from the stage before's weights moved into it
                        let moved = Path.Combine(outDir, sprintf "stage-%d-%s-start.safetensors" (i + 1) stage.Name)
                        let loaded = Checkpoint.Load start
                        let fresh = transferOf stage.NewParameters (fun () -> Model.Initialised(stage.Config.Model, stage.Config.InitSeed))
                        let model, dropped = Architectures.transferWith fresh loaded.Model stage.Config.Model
                        for name, largest in dropped do say (sprintf "stage %d starts without %s (largest magnitude %.3g)" (i + 1) name largest)
                        let before = loaded.Model.Layout.Tensors |> Seq.map (fun t -> t.Name) |> Set.ofSeq
                        for t in model.Layout.Tensors do
                            if not (before.Contains t.Name) then
                                match stage.NewParameters with
                                | AtExpressions e -> say (sprintf "stage %d starts %s at %s" (i + 1) t.Name e.[t.Name])
                                | _ -> say (sprintf "stage %d starts %s at its init" (i + 1) t.Name)
                        Checkpoint(model, TrainingState.Without loaded.Metadata).Save moved
                        { stage.Config with StartCheckpoint = Some(Path.GetFullPath moved) }
            announce i stage dir
            let outcome =
                match stage.Method with
                | Gradient -> Training.run device cpu config dir (File.Exists(RunFolder.last dir)) report stop
                | Lbfgs history -> Lbfgs.polish device cpu config history dir say stop
                | Targeted(rounds, mine, mix) ->
                    let settings: Targeted.Settings = { Round = config; Rounds = rounds; Mine = mine; Mix = mix }
                    let resume = File.Exists(Path.Combine(dir, Targeted.stateName))
                    let reports, finished = Targeted.run device cpu settings config.StartCheckpoint.Value dir resume say report stop
                    let best = if finished then Checkpoint.Load(RunFolder.best dir) else null
                    let bestStep = if isNull best then 0 else int best.Metadata.[TrainingState.StepKey]
                    let before = match done' with (_, _, o) :: _ -> Some o | [] -> None
                    targetedOutcome [ for r in reports -> r.BestValExact ] finished bestStep before
            let done' = (stage, dir, outcome) :: done'
            if stopsAfter stage outcome then
                say (sprintf "stage %d's best validation %.2f%% is below its stop_below %.2f%%: the recipe ends here"
                        (i + 1) (100.0 * outcome.BestValExact) (100.0 * stage.StopBelow.Value))
                List.rev done'
            // an interrupted stage ends the recipe here; the same command continues it
            elif outcome.Completed then go (i + 1) (Some(dir, stage)) rest done'
            else List.rev done'
    go 0 None recipe.Stages []

/// The recipe run with another seed in place of its "seed": the initial weights' seed and every stage's data
/// seed, except where a stage sets its own.
let withSeed (seed: int) (recipe: Recipe) =
    let reseed (s: Stage) =
        { s with
            Config =
                { s.Config with
                    Seed = (if s.OwnSeed then s.Config.Seed else seed)
                    InitSeed = (if s.OwnInitSeed then s.Config.InitSeed else seed) } }
    { recipe with Stages = List.map reseed recipe.Stages }

/// One seed of a recipe sweep: its last stage's best validation, that checkpoint's AdderBoard score (reported,
/// never used to choose), and the training time of all its stages.
type SeedResult =
    { Seed: int; Completed: bool; StagesRun: int; BestValExact: float; BestStep: int; AdderBoardCorrect: int; AdderBoardTotal: int
      Seconds: float; Best: string }

/// A seed's recipe folder inside a recipe sweep's folder.
let seedDir (sweepDir: string) (seed: int) = RunFolder.ofSeed sweepDir seed

let summaryName = "recipe-sweep.csv"

/// A shard's part of the table (adder train --recipe … --shard i/n).
let shardSummary (sweepDir: string) (shard: Shards.Shard) = Path.Combine(sweepDir, sprintf "recipe-sweep-shard-%d-of-%d.csv" shard.Index shard.Count)

let private summaryHeader = "seed,completed,best_val_exact,best_step,adderboard_correct,adderboard_total,train_seconds,stages_run,best"

/// recipe-sweep.csv: a row a seed, in the sweep's order.
let writeSummary (path: string) (rows: SeedResult list) =
    let lines =
        summaryHeader
        :: [ for r in rows ->
                sprintf "%d,%b,%s,%d,%d,%d,%.1f,%d,%s" r.Seed r.Completed (Files.formatFloat r.BestValExact) r.BestStep r.AdderBoardCorrect
                    r.AdderBoardTotal r.Seconds r.StagesRun r.Best ]
    Files.writeTextAtomic path (String.Join("\n", lines) + "\n")

/// Reads a table written by writeSummary (a shard's or a whole recipe sweep's).
let readSummary (path: string) : SeedResult list =
    Shards.readRows path summaryHeader (fun f ->
        if f.Length < 9 then failwith "fields"
        { Seed = int f.[0]; Completed = Boolean.Parse f.[1]; BestValExact = Shards.num f.[2]; BestStep = int f.[3]
          AdderBoardCorrect = int f.[4]; AdderBoardTotal = int f.[5]; Seconds = Shards.num f.[6]; StagesRun = int f.[7]
          Best = String.Join(",", f.[8..]) })

/// recipe-sweep.csv from the n shards' tables: the rows in the seed list's order, as the unsharded sweep writes them.
let merge (sweepDir: string) (seeds: int list) (count: int) =
    let rows = Shards.gather (shardSummary sweepDir) readSummary (fun (r: SeedResult) -> r.Seed) "the recipe sweep" seeds count
    writeSummary (Path.Combine(sweepDir, summaryName)) rows
    rows

/// The AdderBoard protocol's score of a checkpoint: correct of 10,010.
let adderBoardScore (device: Backends.Device) (cpu: CpuOptions) (checkpoint: string) =
    let model = (Checkpoint.Load checkpoint).Model
    use backend = Backends.create device model.Config 1 cpu
    backend.SetParameters(0, ReadOnlySpan model.Parameters)
    let report = Evaluation.run checkpoint "adderboard" backend (AdderBoard.sets ())
    report.Total.Examples - report.Total.Errors, report.Total.Examples

/// Runs the recipe for each seed, one after another, each in sweepDir/s<seed> (resumed where it stopped, a
/// finished seed ending at once, so the same command continues a sweep); `seedDone` gets each seed's result.
/// Returns the seeds' results and whether every seed ran to its end.
let sweep (device: Backends.Device) (cpu: CpuOptions) (recipe: Recipe) (seeds: int list) (sweepDir: string)
        (announce: int -> int -> Stage -> string -> unit) (seedDone: SeedResult -> unit) (say: string -> unit)
        (report: Training.Progress -> unit) (stop: int -> bool) =
    let results = ResizeArray<SeedResult>()
    let mutable interrupted = false
    for seed in seeds do
        if not interrupted then
            let dir = seedDir sweepDir seed
            let stages = run device cpu (withSeed seed recipe) dir (announce seed) say report stop
            if not (reachedEnd recipe stages) then interrupted <- true
            else
                let _, lastDir, outcome = List.last stages
                let best = RunFolder.best lastDir
                let correct, total = adderBoardScore device cpu best
                // a stage's training time: its run's, or a targeted stage's rounds'
                let runSeconds (d: string) = match Metrics.read d with [] -> 0.0 | rows -> (List.last rows).ElapsedSeconds
                let stageSeconds (d: string) =
                    if File.Exists(Path.Combine(d, Targeted.csvName)) then
                        Directory.GetDirectories(d, "round-*") |> Array.sumBy runSeconds
                    else runSeconds d
                let seconds = stages |> List.sumBy (fun (_, d, _) -> stageSeconds d)
                let r =
                    { Seed = seed; Completed = true; StagesRun = stages.Length; BestValExact = outcome.BestValExact; BestStep = outcome.BestStep
                      AdderBoardCorrect = correct; AdderBoardTotal = total; Seconds = seconds; Best = Path.GetRelativePath(sweepDir, best) }
                results.Add r
                seedDone r
    List.ofSeq results, not interrupted
