/// Training runs and fine-tuning rounds (SPEC sections 6 and 7) on the CPU backend.
module Adder.Pipeline.Training

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Text.Json
open Adder.Core
open Adder.Core.Cpu

/// One curriculum phase: from Start on, operands have MinDigits..MaxDigits digits.
type Phase = { Start: int; MinDigits: int; MaxDigits: int }

type RunConfig =
    { Kind: string                  // "train" or "finetune"
      Model: ModelConfig
      StartCheckpoint: string option
      Seed: int
      InitSeed: int
      Steps: int
      Batch: int
      Lr: float
      Warmup: int
      Floor: float
      WeightDecay: float
      Clip: float
      EvalInterval: int
      Curriculum: Phase list
      Beta1: float
      Beta2: float
      Eps: float
      Threads: int }

let baseCurriculum = [ { Start = 0; MinDigits = 1; MaxDigits = 3 }; { Start = 2000; MinDigits = 1; MaxDigits = 6 }; { Start = 7000; MinDigits = 1; MaxDigits = 10 } ]
let fullCurriculum = [ { Start = 0; MinDigits = 1; MaxDigits = 10 } ]

let private fail fmt = Printf.kprintf (fun s -> raise (AdderException s)) fmt

/// Parses "0:1-3,2000:1-6,7000:1-10".
let parseCurriculum (text: string) =
    let phase (part: string) =
        let bad () = fail "bad curriculum phase '%s' (expected STEP:MIN-MAX, e.g. 2000:1-6)" part
        match part.Split(':') with
        | [| start; range |] ->
            match range.Split('-') with
            | [| lo; hi |] ->
                match Int32.TryParse start, Int32.TryParse lo, Int32.TryParse hi with
                | (true, s), (true, l), (true, h) when s >= 0 && l >= 1 && h >= l && h <= 10 -> { Start = s; MinDigits = l; MaxDigits = h }
                | _ -> bad ()
            | _ -> bad ()
        | _ -> bad ()
    let phases = text.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> Array.map phase |> List.ofArray
    match phases with
    | [] -> fail "empty curriculum"
    | first :: _ when first.Start <> 0 -> fail "the curriculum's first phase must start at step 0"
    | _ when phases |> List.pairwise |> List.exists (fun (a, b) -> b.Start <= a.Start) -> fail "curriculum phases must have increasing start steps"
    | _ -> phases

let curriculumText (phases: Phase list) =
    phases |> List.map (fun p -> sprintf "%d:%d-%d" p.Start p.MinDigits p.MaxDigits) |> String.concat ","

let validate (c: RunConfig) =
    // a config.json edited by hand can hold what the command line refuses
    for name, x in [ "--lr", c.Lr; "--floor", c.Floor; "--weight-decay", c.WeightDecay; "--clip", c.Clip; "--beta1", c.Beta1; "--beta2", c.Beta2; "--eps", c.Eps ] do
        if not (Double.IsFinite x) then fail "%s must be a finite number, got %s" name (x.ToString(CultureInfo.InvariantCulture))
    if c.Threads < 0 then fail "--threads must be at least 1"
    Limits.CheckThreads c.Threads
    if c.Steps < 1 then fail "--steps must be at least 1"
    if c.Batch < 1 then fail "--batch must be at least 1"
    if c.Batch > Limits.MaxBatch then fail "--batch %d is more than the limit of %d" c.Batch Limits.MaxBatch
    if not (c.Lr > 0.0) then fail "--lr must be positive"
    if c.Warmup < 0 then fail "--warmup must not be negative"
    if c.Floor < 0.0 || c.Floor > 1.0 then fail "--floor must be in [0, 1]"
    if c.WeightDecay < 0.0 then fail "--weight-decay must not be negative"
    if not (c.Clip > 0.0) then fail "--clip must be positive"
    if c.EvalInterval < 1 then fail "--eval-interval must be at least 1"
    if not (c.Beta1 >= 0.0 && c.Beta1 < 1.0) then fail "--beta1 must be in [0, 1)"
    if not (c.Beta2 >= 0.0 && c.Beta2 < 1.0) then fail "--beta2 must be in [0, 1)"
    if not (c.Eps > 0.0) then fail "--eps must be positive"
    c.Model.Validate() |> ignore
    Limits.CheckBackendMemory(c.Model, c.Threads)
    c

let private configJson (c: RunConfig) =
    let m = c.Model
    let o = Nodes.JsonObject()
    o.["kind"] <- Nodes.JsonValue.Create c.Kind
    o.["model_config"] <- Nodes.JsonNode.Parse(ConfigJson.Write m)
    o.["start_checkpoint"] <- (match c.StartCheckpoint with Some p -> Nodes.JsonValue.Create p :> Nodes.JsonNode | None -> null)
    o.["seed"] <- Nodes.JsonValue.Create c.Seed
    o.["init_seed"] <- Nodes.JsonValue.Create c.InitSeed
    o.["steps"] <- Nodes.JsonValue.Create c.Steps
    o.["batch"] <- Nodes.JsonValue.Create c.Batch
    o.["lr"] <- Nodes.JsonValue.Create c.Lr
    o.["warmup"] <- Nodes.JsonValue.Create c.Warmup
    o.["floor"] <- Nodes.JsonValue.Create c.Floor
    o.["weight_decay"] <- Nodes.JsonValue.Create c.WeightDecay
    o.["clip"] <- Nodes.JsonValue.Create c.Clip
    o.["eval_interval"] <- Nodes.JsonValue.Create c.EvalInterval
    o.["curriculum"] <- Nodes.JsonValue.Create(curriculumText c.Curriculum)
    o.["beta1"] <- Nodes.JsonValue.Create c.Beta1
    o.["beta2"] <- Nodes.JsonValue.Create c.Beta2
    o.["eps"] <- Nodes.JsonValue.Create c.Eps
    o.["threads"] <- Nodes.JsonValue.Create c.Threads
    o.ToJsonString(JsonSerializerOptions(WriteIndented = true))

/// The options of the run in runDir, from its config.json: what --resume continues with.
let readConfig (runDir: string) =
    let path = Path.Combine(runDir, "config.json")
    if not (File.Exists path) then fail "nothing to resume: %s not found" path
    try
        let o = JsonDocument.Parse(SafeFiles.ReadAllText(path, "run config")).RootElement
        let number (name: string) = o.GetProperty(name).GetDouble()
        let integer (name: string) = o.GetProperty(name).GetInt32()
        // files written before beta1/beta2/eps were options used torch's defaults
        let orDefault (name: string) (value: float) = match o.TryGetProperty name with | true, v -> v.GetDouble() | _ -> value
        { Kind = o.GetProperty("kind").GetString()
          Model = ConfigJson.Read(o.GetProperty("model_config").GetRawText(), path)
          StartCheckpoint = (match o.GetProperty("start_checkpoint").ValueKind with JsonValueKind.String -> Some(o.GetProperty("start_checkpoint").GetString()) | _ -> None)
          Seed = integer "seed"
          InitSeed = integer "init_seed"
          Steps = integer "steps"
          Batch = integer "batch"
          Lr = number "lr"
          Warmup = integer "warmup"
          Floor = number "floor"
          WeightDecay = number "weight_decay"
          Clip = number "clip"
          EvalInterval = integer "eval_interval"
          Curriculum = parseCurriculum (o.GetProperty("curriculum").GetString())
          Beta1 = orDefault "beta1" AdamW.DefaultBeta1
          Beta2 = orDefault "beta2" AdamW.DefaultBeta2
          Eps = orDefault "eps" AdamW.DefaultEps
          Threads = integer "threads" }
    with
    | :? AdderException -> reraise ()
    | e -> fail "%s is not a run's config (%s)" path e.Message

/// What the caller sees while a run goes on.
type Progress =
    { Step: int; Steps: int; Loss: float; Lr: float; GradNorm: float; StepsPerSecond: float
      ValExact: float option; ValTokenAccuracy: float option; BestValExact: float; Elapsed: TimeSpan }

type Outcome = { Completed: bool; LastStep: int; BestValExact: float; BestStep: int; RunDir: string }

let private inv (x: float) = x.ToString("R", CultureInfo.InvariantCulture)

/// Exact match and token accuracy on a validation set.
let validateModel (backend: CpuBackend) (parameters: float32[]) (a: int64[]) (b: int64[]) =
    let r = Evaluation.evaluateSet backend parameters "validation" a b
    r.ExactMatch, r.TokenAccuracy

let private saveCheckpoint (path: string) (model: Model) (meta: (string * string) list) (optimizer: OptimizerState option) =
    let ckpt = Checkpoint(model, Collections.Generic.Dictionary(dict meta), Option.toObj optimizer)
    ckpt.Save path

/// Runs (or resumes) a training run in runDir. `report` is called after every logged step; `stop` is
/// asked after every step (with the number of steps done): when it says yes, last.safetensors is written
/// and the outcome says the run is incomplete.
let run (config: RunConfig) (runDir: string) (resume: bool) (report: Progress -> unit) (stop: int -> bool) =
    let config = validate config
    if String.IsNullOrWhiteSpace runDir then fail "--out: the path is empty"
    if File.Exists runDir then fail "--out %s is a file, not a run folder" runDir
    try Directory.CreateDirectory runDir |> ignore
    with :? IOException | :? UnauthorizedAccessException | :? ArgumentException as e -> fail "cannot create run folder %s: %s" runDir e.Message
    // held until the run ends: a second adder on the same folder is refused instead of mixing two runs
    use _lock = SafeFiles.LockFolder runDir
    let lastPath = Path.Combine(runDir, "last.safetensors")
    let bestPath = Path.Combine(runDir, "best.safetensors")
    let metricsPath = Path.Combine(runDir, "metrics.csv")
    let configPath = Path.Combine(runDir, "config.json")
    if not resume && File.Exists lastPath then
        fail "run folder %s already holds a run (last.safetensors); use --resume to continue it or choose another --out" runDir
    if not resume && SafeFiles.HoldsFiles runDir then
        fail "run folder %s is not empty; a new run starts in a new or empty folder (--resume continues a run)" runDir

    let holdout = Holdout.Build(5000, 10000, config.Seed)
    let valA = holdout.Validation |> Array.map (fun p -> p.A)
    let valB = holdout.Validation |> Array.map (fun p -> p.B)
    let phases = config.Curriculum |> List.map (fun p -> CurriculumPhase(p.Start, p.MinDigits, p.MaxDigits)) |> Array.ofList
    let sampler = Sampler(int64 config.Seed + 1337L, holdout, Curriculum(phases))

    let mutable model = Unchecked.defaultof<Model>
    let mutable optimizer = Unchecked.defaultof<AdamW>
    let mutable startStep = 0
    let mutable bestVal = -1.0
    let mutable bestStep = -1
    // the loss average of the metrics row in progress and the run's elapsed time, carried over a resume so the
    // resumed run logs what a straight run logs (metadata written by older versions: an empty window, 0 s)
    let mutable lossSum = 0.0
    let mutable lossCount = 0
    let mutable elapsedBefore = 0.0
    if resume then
        if not (File.Exists lastPath) then fail "nothing to resume: %s not found" lastPath
        let last = Checkpoint.Load lastPath
        if last.Model.Config <> config.Model then fail "--resume: the run's model (%s) differs from the options (%s)" (last.Model.Config.Describe()) (config.Model.Describe())
        if isNull last.Optimizer then fail "--resume: %s has no optimizer state" lastPath
        let get key = match last.Metadata.TryGetValue key with | true, v -> v | _ -> fail "--resume: %s lacks '%s'" lastPath key
        model <- last.Model
        optimizer <- AdamW(last.Optimizer.Step, last.Optimizer.M, last.Optimizer.V, Beta1 = config.Beta1, Beta2 = config.Beta2, Eps = config.Eps)
        let bad key = fail "--resume: %s has a bad '%s' (%s)" lastPath key (Limits.Echo(get key))
        let integer key lo hi = match Int32.TryParse(get key, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture) with | true, v when v >= lo && v <= hi -> v | _ -> bad key
        let real key = match Double.TryParse(get key, NumberStyles.Float, CultureInfo.InvariantCulture) with | true, v when Double.IsFinite v -> v | _ -> bad key
        let optional key fallback parse = if last.Metadata.ContainsKey key then parse key else fallback
        startStep <- integer "step" 0 config.Steps
        bestVal <- real "best_val_exact"
        bestStep <- integer "best_step" -1 startStep
        lossSum <- optional "loss_sum" 0.0 real
        lossCount <- optional "loss_count" 0 (fun k -> integer k 0 startStep)
        elapsedBefore <- optional "elapsed_s" 0.0 real
        try
            let bytes = Convert.FromBase64String(get "sampler_state")
            if bytes.Length = 0 || bytes.Length % 4 <> 0 then bad "sampler_state"
            sampler.SetState(Array.init (bytes.Length / 4) (fun i -> BitConverter.ToUInt32(bytes, 4 * i)))
        with :? FormatException | :? ArgumentException -> bad "sampler_state"
        // drop metric rows the interrupted run logged after its last checkpoint
        if File.Exists metricsPath then
            let keep = SafeFiles.ReadAllText(metricsPath, "metrics file").Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.filter (fun l -> l.StartsWith "step" || (match Int32.TryParse(l.Split(',').[0]) with | true, s -> s <= startStep | _ -> false))
            Files.writeTextAtomic metricsPath (String.Join("\n", keep) + "\n")
    else
        model <-
            match config.StartCheckpoint with
            | Some path ->
                let start = Checkpoint.Load path
                if start.Model.Config <> config.Model then fail "checkpoint %s has config %s" path (start.Model.Config.Describe())
                start.Model
            | None -> Model.Initialised(config.Model, config.InitSeed)
        optimizer <- AdamW(model.Layout.Count, Beta1 = config.Beta1, Beta2 = config.Beta2, Eps = config.Eps)
        Files.writeTextAtomic configPath (configJson config + "\n")
        Files.writeTextAtomic metricsPath "step,loss,lr,grad_norm,val_exact,val_token_acc,elapsed_s\n"

    let backend = CpuBackend(config.Model, config.Threads)
    let p = model.Parameters
    let grad = Array.zeroCreate<float32> p.Length
    let a = Array.zeroCreate<int64> config.Batch
    let b = Array.zeroCreate<int64> config.Batch
    use metrics = new StreamWriter(metricsPath, true)
    let watch = Stopwatch.StartNew()
    let logEvery = max 1 (min 100 config.EvalInterval)
    let mutable gradNorm = 0.0
    let mutable lr = 0.0
    let mutable step = startStep
    let mutable stepsSinceRate = 0
    let rateWatch = Stopwatch.StartNew()
    let mutable rate = 0.0

    let samplerState () =
        let words = sampler.GetState()
        let bytes = Array.zeroCreate<byte> (words.Length * 4)
        words |> Array.iteri (fun i w -> BitConverter.TryWriteBytes(Span(bytes, 4 * i, 4), w) |> ignore)
        Convert.ToBase64String bytes
    let common (valExact: float) =
        [ "kind", config.Kind; "seed", string config.Seed; "step", string step; "val_exact", inv valExact
          "lr", inv config.Lr; "steps", string config.Steps ]
    let mutable savedStep = if resume then startStep else -1
    let saveLast () =
        savedStep <- step
        saveCheckpoint lastPath model
            (common (max bestVal 0.0) @ [ "best_val_exact", inv bestVal; "best_step", string bestStep; "sampler_state", samplerState ()
                                          "loss_sum", inv lossSum; "loss_count", string lossCount; "elapsed_s", inv (elapsedBefore + watch.Elapsed.TotalSeconds) ])
            (Some(OptimizerState(optimizer.Step, optimizer.M, optimizer.V)))

    // a resumed run already at its stop point (a sweep's probe, --stop-after) does not take another step
    let mutable cancelled = step < config.Steps && stop step
    while step < config.Steps && not cancelled do
        lr <- LrSchedule.At(step, config.Steps, config.Lr, config.Warmup, config.Floor)
        sampler.NextBatch(step, a, b)
        let loss = backend.LossAndGradient(p, a, b, config.Batch, grad)
        if not (Single.IsFinite loss) then
            metrics.Flush()
            let saved = if savedStep >= 0 then sprintf "last.safetensors holds step %d" savedStep else "nothing was saved"
            fail "step %d: the loss is %g, the run diverged (lower --lr?); %s" (step + 1) loss saved
        let norm = GradClip.Apply(Span grad, config.Clip).Norm
        optimizer.Update(p, grad, lr, config.WeightDecay)
        step <- step + 1
        lossSum <- lossSum + float loss
        lossCount <- lossCount + 1
        gradNorm <- norm
        stepsSinceRate <- stepsSinceRate + 1
        let isEval = step % config.EvalInterval = 0 || step = config.Steps
        if step % logEvery = 0 || isEval then
            if rateWatch.Elapsed.TotalSeconds > 0.5 then
                rate <- float stepsSinceRate / rateWatch.Elapsed.TotalSeconds
                stepsSinceRate <- 0
                rateWatch.Restart()
            let meanLoss = lossSum / float lossCount
            let valExact, valTok =
                if isEval then
                    let e, t = validateModel backend p valA valB
                    Some e, Some t
                else None, None
            match valExact with
            | Some e when e > bestVal ->
                bestVal <- e
                bestStep <- step
                saveCheckpoint bestPath model (common e @ [ "val_token_acc", inv valTok.Value ]) None
            | _ -> ()
            let opt (x: float option) = match x with Some v -> inv v | None -> ""
            metrics.WriteLine(sprintf "%d,%s,%s,%s,%s,%s,%.1f" step (inv meanLoss) (inv lr) (inv gradNorm) (opt valExact) (opt valTok) (elapsedBefore + watch.Elapsed.TotalSeconds))
            // the window is closed before last.safetensors is written, so the checkpoint holds an empty one
            lossSum <- 0.0
            lossCount <- 0
            if isEval then
                metrics.Flush()
                saveLast ()
            report { Step = step; Steps = config.Steps; Loss = meanLoss; Lr = lr; GradNorm = gradNorm; StepsPerSecond = rate
                     ValExact = valExact; ValTokenAccuracy = valTok; BestValExact = bestVal; Elapsed = TimeSpan.FromSeconds(elapsedBefore) + watch.Elapsed }
        if step < config.Steps && stop step then cancelled <- true
    metrics.Flush()
    if cancelled then saveLast ()
    { Completed = not cancelled; LastStep = step; BestValExact = bestVal; BestStep = bestStep; RunDir = runDir }
