/// Every hyperparameter of a run, defined once: its name (config.json key; the option is --name with
/// dashes), description, defaults, validation, and where it lives in RunConfig. The table below drives the
/// CLI's options and usage, config.json, the --resume check and the checkpoint metadata; a new hyperparameter
/// is a RunConfig field and a row here, plus its Argu case (Adder.Cli/Arguments.fs).
module Adder.Pipeline.Hyperparameters

open System
open System.Globalization
open System.Text.Json
open System.Text.Json.Nodes
open Adder.Core

/// A run: what `adder train` or `adder finetune` was asked to do. config.json holds it.
/// What a run is: training from an initialisation, or fine-tuning from a checkpoint (each kind has its defaults).
type RunKind =
    | Train
    | Finetune

    /// As config.json, the checkpoint metadata and the command line name it.
    member k.Name = match k with Train -> "train" | Finetune -> "finetune"

    static member Parse(text: string) =
        match text with
        | "train" -> Train
        | "finetune" -> Finetune
        | other -> raise (Adder.Core.AdderException(sprintf "run kind '%s' is neither train nor finetune" (Adder.Core.Limits.Echo other)))

type RunConfig =
    { Kind: RunKind
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
      Curriculum: Curriculum
      Beta1: float
      Beta2: float
      Eps: float
      GrokfastAlpha: float
      GrokfastLambda: float
      CarryMix: CarryMix
      WeightDecayCuts: WeightDecayCuts
      DecayScales: WeightDecayScales
      /// decay of the weights' moving average (0: none)
      Ema: float }

type Value =
    | Int of int
    | Float of float
    | Text of string

let text (v: Value) =
    match v with
    | Int i -> string i
    | Float x -> (Files.formatFloat x).ToLowerInvariant()   // 1e-08, not 1E-08
    | Text s -> s

type Hyperparameter =
    { Name: string
      Description: string
      /// Per kind; None: the option is required, or derived (init_seed follows seed).
      Default: RunKind -> Value option
      Get: RunConfig -> Value
      /// Checks the value and returns the config with it; a bad value fails naming the option.
      Set: RunConfig -> Value -> RunConfig
      Read: JsonElement -> Value
      Write: Value -> JsonNode }

let option (name: string) = "--" + name.Replace('_', '-')

let private byKind (train: 'T option) (finetune: 'T option) (wrap: 'T -> Value) =
    fun kind -> (match kind with Finetune -> finetune | Train -> train) |> Option.map wrap

let private int name description train finetune (ok: int -> bool, rule: string) (get: RunConfig -> int) set =
    { Name = name; Description = description; Default = byKind train finetune Int; Get = get >> Int
      Set = fun c v -> match v with
                       | Int x when ok x -> set c x
                       | _ -> fail "%s %s" (option name) rule
      Read = fun e -> Int(e.GetInt32())
      Write = fun v -> JsonValue.Create(match v with Int x -> x | _ -> 0) }

let private float name description train finetune (ok: float -> bool, rule: string) (get: RunConfig -> float) set =
    { Name = name; Description = description; Default = byKind train finetune Float; Get = get >> Float
      Set = fun c v -> match v with
                       // a config.json edited by hand can hold what the command line refuses
                       | Float x when not (Double.IsFinite x) -> fail "%s must be a finite number, got %s" (option name) (text v)
                       | Float x when ok x -> set c x
                       | Int x when ok (double x) -> set c (double x)
                       | _ -> fail "%s %s" (option name) rule
      Read = fun e -> Float(e.GetDouble())
      Write = fun v -> JsonValue.Create(match v with Float x -> x | Int x -> double x | _ -> 0.0) }

/// A hyperparameter written as text (a spec its type parses); `set` parses and stores it.
let private spec name description (train: string) (finetune: string) (get: RunConfig -> obj) (set: RunConfig -> string -> RunConfig) =
    { Name = name; Description = description; Default = byKind (Some train) (Some finetune) Text
      Get = fun c -> Text(string (get c))
      Set = fun c v -> match v with
                       | Text s -> set c s
                       | _ -> fail "%s must be text" (option name)
      Read = fun e -> Text(e.GetString())
      Write = fun v -> JsonValue.Create(text v) }

let private atLeast n = (fun x -> x >= n), sprintf "must be at least %d" n
let private positive = (fun x -> x > 0.0), "must be positive"
let private notNegative = (fun (x: float) -> x >= 0.0), "must not be negative"
let private unitOpen = (fun x -> x >= 0.0 && x < 1.0), "must be in [0, 1)"

/// The table. Order: as config.json and the resume check list them.
let all: Hyperparameter list =
    [ int "seed" "run seed: holdout(5000, 10000, seed) reserved and validated on, data stream seed + 1337" (Some 34) None (atLeast 0)
          (fun c -> c.Seed) (fun c x -> { c with Seed = x })
      int "init_seed" "seed of the initial weights (default: the run seed)" None None (atLeast 0)
          (fun c -> c.InitSeed) (fun c x -> { c with InitSeed = x })
      int "steps" "total steps" (Some 162_000) None (atLeast 1) (fun c -> c.Steps) (fun c x -> { c with Steps = x })
      int "batch" "batch size" (Some 512) (Some 512) (atLeast 1) (fun c -> c.Batch) (fun c x -> { c with Batch = x })
      float "lr" "peak learning rate" (Some 0.02) None positive (fun c -> c.Lr) (fun c x -> { c with Lr = x })
      int "warmup" "warm-up steps" (Some 1350) (Some 500) (atLeast 0) (fun c -> c.Warmup) (fun c x -> { c with Warmup = x })
      float "floor" "final lr as a fraction of the peak" (Some 0.1) (Some 0.01) ((fun x -> x >= 0.0 && x <= 1.0), "must be in [0, 1]")
          (fun c -> c.Floor) (fun c x -> { c with Floor = x })
      float "weight_decay" "AdamW weight decay" (Some 0.01) (Some 0.01) notNegative (fun c -> c.WeightDecay) (fun c x -> { c with WeightDecay = x })
      float "clip" "gradient clipping global norm" (Some 1.0) (Some 1.0) positive (fun c -> c.Clip) (fun c x -> { c with Clip = x })
      int "eval_interval" "validate every N steps" (Some 1000) (Some 500) (atLeast 1) (fun c -> c.EvalInterval) (fun c x -> { c with EvalInterval = x })
      spec "curriculum" "phases 'step:min-max,...' (digit counts: a count drawn, then the operands below 10^count) or 'step:low..high,...' (operands uniform on a value range)"
          (string Curriculum.Base) (string Curriculum.Full) (fun c -> box c.Curriculum) (fun c x -> { c with Curriculum = Curriculum.Parse x })
      float "beta1" "AdamW beta1" (Some AdamW.DefaultBeta1) (Some AdamW.DefaultBeta1) unitOpen (fun c -> c.Beta1) (fun c x -> { c with Beta1 = x })
      float "beta2" "AdamW beta2" (Some AdamW.DefaultBeta2) (Some AdamW.DefaultBeta2) unitOpen (fun c -> c.Beta2) (fun c x -> { c with Beta2 = x })
      float "eps" "AdamW epsilon" (Some AdamW.DefaultEps) (Some AdamW.DefaultEps) positive (fun c -> c.Eps) (fun c x -> { c with Eps = x })
      float "grokfast_alpha" "Grokfast-EMA: the gradient average's decay" (Some Grokfast.DefaultAlpha) (Some Grokfast.DefaultAlpha) unitOpen
          (fun c -> c.GrokfastAlpha) (fun c x -> { c with GrokfastAlpha = x })
      float "grokfast_lambda" "Grokfast-EMA: how much of the average is added to the gradient (0: off, the published recipe; on --device cuda checked on the CPU harness, not yet on a GPU)"
          (Some Grokfast.DefaultLambda) (Some Grokfast.DefaultLambda) notNegative (fun c -> c.GrokfastLambda) (fun c x -> { c with GrokfastLambda = x })
      float "carry_mix" "carry-mix: the probability that an example is replaced by a carry pattern (single, chain, place, boundary; 0: off)"
          (Some 0.0) (Some 0.0) ((fun x -> x >= 0.0 && x <= 1.0), "must be in [0, 1]")
          (fun c -> c.CarryMix.Probability) (fun c x -> { c with CarryMix = CarryMix(x, c.CarryMix.FadeStart, c.CarryMix.FadeEnd) })
      int "carry_mix_fade_start" "carry-mix: the step from which its probability falls linearly" (Some 0) (Some 0) (atLeast 0)
          (fun c -> c.CarryMix.FadeStart) (fun c x -> { c with CarryMix = CarryMix(c.CarryMix.Probability, x, c.CarryMix.FadeEnd) })
      int "carry_mix_fade_end" "carry-mix: the step at which its probability reaches 0 (at or after the fade's start)" (Some 0) (Some 0) (atLeast 0)
          (fun c -> c.CarryMix.FadeEnd) (fun c x -> { c with CarryMix = CarryMix(c.CarryMix.Probability, c.CarryMix.FadeStart, x) })
      spec "weight_decay_cuts" "adaptive weight decay: 'THRESHOLD:FACTOR,...': the decay is multiplied by FACTOR once the best validation exact match exceeds THRESHOLD (a fraction; the 44p's recipe: 0.01:0.1,0.05:0.01); empty: off"
          "" "" (fun c -> box c.WeightDecayCuts) (fun c x -> { c with WeightDecayCuts = WeightDecayCuts.Parse x })
      spec "decay_scales" "per-parameter weight decay: 'PARAMETER:FACTOR,...': each named stored parameter decays FACTOR times as fast as the rest (CPU backend; e.g. a large factor fades a term out); empty: every parameter alike"
          "" "" (fun c -> box c.DecayScales) (fun c x -> { c with DecayScales = WeightDecayScales.Parse x })
      float "ema" "an exponential moving average of the weights, this its decay per step (e.g. 0.999; 0: none): validated beside the weights, its best kept as ema.safetensors"
          (Some 0.0) (Some 0.0) unitOpen (fun c -> c.Ema) (fun c x -> { c with Ema = x }) ]

let tryFind (name: string) = all |> List.tryFind (fun h -> h.Name = name)

let find (name: string) =
    match tryFind name with
    | Some h -> h
    | None -> invalidArg "name" (sprintf "no hyperparameter '%s'" name)

/// An option's usage line for a kind of run: the description and the kind's default.
let usage (kind: RunKind) (name: string) =
    let h = find name
    match h.Default kind with
    | Some v -> sprintf "%s (default %s)" h.Description (text v)
    | None -> h.Description

/// A kind's defaults for model (seed-derived init_seed; required options get placeholders the caller must set).
let defaults (kind: RunKind) (model: ModelConfig) =
    let blank =
        { Kind = kind; Model = model; StartCheckpoint = None; Seed = 0; InitSeed = 0; Steps = 1; Batch = 1; Lr = 1.0
          Warmup = 0; Floor = 0.0; WeightDecay = 0.0; Clip = 1.0; EvalInterval = 1; Curriculum = Curriculum.Full
          Beta1 = AdamW.DefaultBeta1; Beta2 = AdamW.DefaultBeta2; Eps = AdamW.DefaultEps
          GrokfastAlpha = Grokfast.DefaultAlpha; GrokfastLambda = Grokfast.DefaultLambda; CarryMix = CarryMix.Off
          WeightDecayCuts = WeightDecayCuts.None; DecayScales = WeightDecayScales.None; Ema = 0.0 }
    let c = all |> List.fold (fun c h -> match h.Default kind with Some v -> h.Set c v | None -> c) blank
    { c with InitSeed = c.Seed }

/// Checks every value (a config.json edited by hand goes through the same rules as the options) and the
/// limits that keep a run's memory bounded (Limits; the backend's own size is checked where it is created).
let validate (c: RunConfig) =
    for h in all do h.Set c (h.Get c) |> ignore
    // the batch's operands and tokens are held in full
    if c.Batch > Limits.MaxBatch then fail "--batch %d is more than the limit of %d" c.Batch Limits.MaxBatch
    // a fade that ends before it starts (each value alone is fine)
    if c.CarryMix.Active then c.CarryMix.Validate() |> ignore
    c.Model.Validate() |> ignore
    // names the model's own parameters, and no factor that flips a sign at the peak lr
    if c.DecayScales.Active then c.DecayScales.Check(ParameterLayout c.Model, c.Lr, c.WeightDecay)
    c

/// What a run's options leave out without being wrong, one line each, for a warning as the run starts: the
/// curriculum's phases that start at or after its last step (so their digit counts are never trained on),
/// and a warm-up longer than the run (its lr never reaches --lr).
let shortfalls (c: RunConfig) =
    let reached, unreached = c.Curriculum.Phases |> Array.partition (fun p -> p.Start < c.Steps)
    let phase (p: CurriculumPhase) = string p
    let widest (phases: CurriculumPhase[]) = phases |> Array.map (fun p -> p.MaxDigits) |> Array.fold max 0
    [ if unreached.Length > 0 then
          let never =
              if widest unreached > widest reached then
                  sprintf ": the run never trains on operands of more than %d digits" (widest reached)
              else ""
          yield sprintf "--steps %d ends before the curriculum's phase%s %s starts (--curriculum %O)%s" c.Steps
                    (if unreached.Length = 1 then "" else "s") (unreached |> Array.map phase |> String.concat ", ") c.Curriculum never
      if c.Warmup > c.Steps then
          yield sprintf "--warmup %d is longer than --steps %d: the learning rate never reaches --lr %s" c.Warmup c.Steps (text (Float c.Lr)) ]

let toJson (c: RunConfig) =
    let o = JsonObject()
    o.["kind"] <- JsonValue.Create c.Kind.Name
    o.["model_config"] <- JsonNode.Parse(ConfigJson.Write c.Model)
    o.["start_checkpoint"] <- (match c.StartCheckpoint with Some p -> JsonValue.Create p :> JsonNode | None -> null)
    for h in all do o.[h.Name] <- h.Write(h.Get c)
    o.ToJsonString(JsonSerializerOptions(WriteIndented = true))

/// A run's config.json. A key the file lacks takes the kind's default (files written before beta1, beta2 and
/// eps were options used torch's); keys this version does not know (e.g. the old "threads") are ignored.
let ofJson (json: string) (path: string) =
    try
        let o = JsonDocument.Parse(json).RootElement
        let kind = RunKind.Parse(o.GetProperty("kind").GetString())
        let start =
            { defaults kind (ConfigJson.Read(o.GetProperty("model_config").GetRawText(), path)) with
                StartCheckpoint =
                    match o.TryGetProperty "start_checkpoint" with
                    | true, v when v.ValueKind = JsonValueKind.String -> Some(v.GetString())
                    | _ -> None }
        all |> List.fold (fun c h -> match o.TryGetProperty h.Name with | true, v -> h.Set c (h.Read v) | _ -> c) start
    with
    | :? AdderException as e -> fail "%s: %s" path e.Message
    | e -> fail "%s is not a run's config (%s)" path e.Message

/// --resume: a given option whose value differs from the run's config.json is an error (it would silently
/// change the run); the model's shape likewise.
let checkResume (saved: RunConfig) (config: RunConfig) =
    if saved.Model <> config.Model then
        fail "--resume: model %s differs from the run's %s in config.json; leave it out to continue the run as it was"
            (config.Model.Describe()) (saved.Model.Describe())
    for h in all do
        let was, now = h.Get saved, h.Get config
        // the lr schedule spans the whole run, so more steps would change the steps already taken
        if was <> now && h.Name = "steps" then
            fail "--resume: --steps %s differs from the run's %s, and the lr schedule spans the run's steps; to train it further, start a new run from it: adder finetune -c RUN/last.safetensors --steps N --lr LR (or a recipe's next stage)"
                (text now) (text was)
        if was <> now then
            fail "--resume: %s %s differs from the run's %s in config.json; leave it out to continue the run as it was"
                (option h.Name) (text now) (text was)

/// What a checkpoint's metadata says about the run that wrote it.
let metadata (c: RunConfig) = ("kind", c.Kind.Name) :: [ for h in all -> h.Name, text (h.Get c) ]
