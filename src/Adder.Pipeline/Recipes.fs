/// `adder train --recipe FILE`: a model and stages, each stage a run whose options are the run hyperparameters
/// (Hyperparameters.all, by their config.json names) and which starts from the previous stage's best or last
/// checkpoint with a fresh optimizer. A recipe file:
///   { "architecture": "62p" (a preset) or { … an architecture … }, "seed": 1,
///     "stages": [ { "name": "base", "steps": 200000, "lr": 0.01, "floor": 0.1, "batch": 128, … },
///                 { "name": "polish", "optimizer": "adam", "start": "best", "lr": 0.001, "floor": 0, … } ] }
/// The first stage takes `adder train`'s defaults, later ones `adder finetune`'s; "optimizer": "adam" is AdamW
/// without weight decay (torch's Adam). Every stage is checked before any folder is made.
module Adder.Pipeline.Recipes

open System
open System.IO
open System.Text.Json
open Adder.Core
open Adder.Pipeline.Hyperparameters

type Stage = { Name: string; Config: RunConfig; Start: string }

type Recipe = { Model: ModelConfig; Stages: Stage list }

let private recipeKeys = [ "architecture"; "seed"; "stages" ]
let private stageOwnKeys = [ "name"; "start"; "optimizer" ]

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
    let model =
        match root.TryGetProperty "architecture" with
        | true, v when v.ValueKind = JsonValueKind.String -> Architectures.preset (v.GetString())
        | true, v when v.ValueKind = JsonValueKind.Object -> ModelConfig.Of(Architecture.FromJson(v.GetRawText(), source))
        | true, _ -> bad "'architecture' is a preset name or an architecture object"
        | _ -> bad "the recipe has no 'architecture'"
    let seed =
        match root.TryGetProperty "seed" with
        | true, v when v.ValueKind = JsonValueKind.Number && v.TryGetInt32() |> fst && v.GetInt32() >= 0 -> v.GetInt32()
        | true, _ -> bad "'seed' must be a non-negative integer"
        | _ -> (defaults "train" model).Seed
    let stages =
        match root.TryGetProperty "stages" with
        | true, v when v.ValueKind = JsonValueKind.Array && v.GetArrayLength() > 0 -> [ for s in v.EnumerateArray() -> s ]
        | _ -> bad "the recipe needs a non-empty 'stages' list"
    let names = Collections.Generic.HashSet<string>()
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
            if start <> "best" && start <> "last" then bad "%s: start '%s' is neither best nor last" where (Limits.Echo start)
            let optimizer = str "optimizer" "adamw"
            let kind = if i = 0 then "train" else "finetune"
            let config = { defaults kind model with Seed = seed; InitSeed = seed }
            let config =
                try
                    all |> List.fold (fun c h -> match s.TryGetProperty h.Name with | true, v -> h.Set c (h.Read v) | _ -> c) config
                with
                | :? AdderException as e -> bad "%s: %s" where e.Message
                | :? InvalidOperationException | :? FormatException -> bad "%s: a value has the wrong type" where
            let config =
                match optimizer with
                | "adamw" -> config
                | "adam" ->
                    if config.WeightDecay <> 0.0 && (fst (s.TryGetProperty "weight_decay")) then bad "%s: adam has no weight decay (use adamw)" where
                    { config with WeightDecay = 0.0 }
                | other -> bad "%s: unknown optimizer '%s' (known: adamw, adam)" where (Limits.Echo other)
            let config = try validate config with :? AdderException as e -> bad "%s: %s" where e.Message
            { Name = name; Config = config; Start = start })
    { Model = model; Stages = stages }

let load (path: string) = parse (SafeFiles.ReadAllText(path, "recipe")) path

/// Runs the stages in order; each starts from the one before (its best or last checkpoint). A stage whose folder
/// holds a run already is resumed (a finished one ends at once), so the same command continues a recipe.
let run (device: Backends.Device) (cpu: CpuOptions) (recipe: Recipe) (outDir: string) (announce: int -> Stage -> string -> unit)
        (report: Training.Progress -> unit) (stop: int -> bool) =
    Directory.CreateDirectory outDir |> ignore
    let rec go (i: int) (previous: (string * Stage) option) (stages: Stage list) (done': (Stage * string * Training.Outcome) list) =
        match stages with
        | [] -> List.rev done'
        | stage :: rest ->
            let dir = stageDir outDir i stage
            let config =
                match previous with
                | None -> stage.Config
                | Some(prevDir, _) -> { stage.Config with StartCheckpoint = Some(Path.GetFullPath(Path.Combine(prevDir, stage.Start + ".safetensors"))) }
            let resume = File.Exists(RunFolder.last dir)
            announce i stage dir
            let outcome = Training.run device cpu config dir resume report stop
            let done' = (stage, dir, outcome) :: done'
            // an interrupted stage ends the recipe here; the same command continues it
            if outcome.Completed then go (i + 1) (Some(dir, stage)) rest done' else List.rev done'
    go 0 None recipe.Stages []
