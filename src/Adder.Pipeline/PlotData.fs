/// What `adder plot` draws, read from run folders: curves (a run, or runs one after another), where the
/// curriculum's phases start, and where each run of a chain begins. A sweep folder stands for its seeds' runs,
/// side by side; a targeted fine-tune's folder for its rounds and a recipe's for its stages, one after another.
module Adder.Pipeline.PlotData

open System
open System.IO
open System.Text.RegularExpressions
open Adder.Core

type Curve = { Label: string; Steps: float[]; Loss: float[]; ValSteps: float[]; ValExact: float[] }

/// A vertical line: a curriculum phase's start, or the start of a run in a chain.
type Mark = { Step: float; Label: string }

/// One curve is a chain drawn with its boundaries; several are overlaid, one colour each.
type Figure = { Title: string; Curves: Curve list; Phases: Mark list; Boundaries: Mark list }

let private nameOf (dir: string) = Path.GetFileName(Path.GetFullPath(dir).TrimEnd('/'))

/// Subfolders whose names match `pattern` (its group 1 a number), in the order of that number.
let private numbered (dir: string) (pattern: string) =
    [ for d in Directory.GetDirectories dir do
        let m = Regex.Match(Path.GetFileName d, pattern)
        if m.Success then
            match Int32.TryParse m.Groups.[1].Value with
            | true, n -> yield n, d
            | _ -> () ]
    |> List.sortBy fst
    |> List.map snd

/// The run folders a folder stands for, one after another: a targeted fine-tune's rounds (round-1, round-2, …),
/// a recipe's stages (stage-1-NAME, stage-2-NAME, …), or itself.
let partsOf (dir: string) =
    if File.Exists(Path.Combine(dir, Targeted.csvName)) then numbered dir "^round-([0-9]+)$"
    elif File.Exists(Metrics.pathIn dir) || not (Directory.Exists dir) then [ dir ]
    else
        match numbered dir "^stage-([0-9]+)-." with
        | [] -> [ dir ]
        | stages -> stages

/// A sweep folder's runs (s<seed>, by seed), or None for any other folder.
let seedsOf (dir: string) =
    if File.Exists(Metrics.pathIn dir) || not (Directory.Exists dir) then None
    else
        match numbered dir RunFolder.seedPattern |> List.filter (fun d -> File.Exists(Metrics.pathIn d)) with
        | [] -> None
        | seeds -> Some seeds

/// The phases of a run's curriculum (its config.json; none without one) that start inside its steps.
let private phasesOf (runDir: string) (lastStep: int) (offset: int) =
    if not (File.Exists(RunFolder.config runDir)) then []
    else
        [ for p in (Training.readConfig runDir).Curriculum.Phases do
            if p.Start > 0 && p.Start <= lastStep then
                yield { Step = float (p.Start + offset); Label = sprintf "digits %d-%d" p.MinDigits p.MaxDigits } ]

/// The curve of runs one after another (each run's steps follow the previous run's last), the phase starts
/// inside each, and the boundaries where each run after the first begins.
let chain (label: string) (dirs: string list) =
    let runs = dirs |> List.collect partsOf
    let mutable offset = 0
    let rows = ResizeArray<Metrics.Row>()
    let phases = ResizeArray<Mark>()
    let boundaries = ResizeArray<Mark>()
    for i, runDir in List.indexed runs do
        if not (File.Exists(Metrics.pathIn runDir)) then fail "no metrics.csv in %s (is it a run folder?)" runDir
        let own = Metrics.read runDir
        let last = own |> List.fold (fun m r -> max m r.Step) 0
        if i > 0 then boundaries.Add { Step = float offset; Label = nameOf runDir }
        phases.AddRange(phasesOf runDir last offset)
        rows.AddRange(own |> List.map (fun r -> { r with Step = r.Step + offset }))
        offset <- offset + last
    let withVal = rows |> Seq.filter (fun r -> r.ValExact.IsSome) |> Array.ofSeq
    let curve =
        { Label = label
          Steps = rows |> Seq.map (fun r -> float r.Step) |> Array.ofSeq
          Loss = rows |> Seq.map (fun r -> r.Loss) |> Array.ofSeq
          ValSteps = withVal |> Array.map (fun r -> float r.Step)
          ValExact = withVal |> Array.map (fun r -> 100.0 * r.ValExact.Value) }
    curve, List.ofSeq phases, List.ofSeq boundaries

/// The curve of runs one after another (fine-tuning rounds, a recipe's stages, runs given in order).
let curves (dirs: string list) =
    let c, _, _ = chain (String.Join(" + ", dirs |> List.map nameOf)) dirs
    c

/// The figure of `dirs`: one after another, or side by side with `overlay` (each a curve; a sweep folder its
/// seeds'). A sweep folder given alone is drawn side by side.
let figure (dirs: string list) (overlay: bool) =
    let sweeps = dirs |> List.filter (fun d -> (seedsOf d).IsSome)
    let overlay = overlay || (dirs.Length = 1 && sweeps.Length = 1)
    if not overlay && not sweeps.IsEmpty then
        fail "%s is a sweep folder: plot it alone, or its seeds side by side with the other runs with --overlay" sweeps.Head
    if not overlay then
        let title = String.Join(" + ", dirs |> List.map nameOf)
        let c, phases, boundaries = chain title dirs
        { Title = title; Curves = [ c ]; Phases = phases; Boundaries = boundaries }
    else
        let items = dirs |> List.collect (fun d -> match seedsOf d with Some seeds -> seeds | None -> [ d ])
        let chains = [ for d in items -> chain (nameOf d) [ d ] ]
        let title =
            match dirs with
            | [ d ] when sweeps.Length = 1 -> sprintf "%s (%d seeds)" (nameOf d) items.Length
            | _ -> String.Join(", ", dirs |> List.map nameOf)
        { Title = title
          Curves = [ for c, _, _ in chains -> c ]
          // the same phases in every seed of a sweep: each drawn once
          Phases = chains |> List.collect (fun (_, p, _) -> p) |> List.distinct |> List.sortBy (fun m -> m.Step)
          Boundaries = match chains with [ _, _, b ] -> b | _ -> [] }

/// The files a plot of `dirs` reads: every run's metrics.csv and config.json, a targeted fine-tune's targeted.csv.
let inputsOf (dirs: string list) =
    let runs = dirs |> List.collect (fun d -> match seedsOf d with Some seeds -> seeds | None -> [ d ])
    [| for dir in runs do
         let targeted = Path.Combine(dir, Targeted.csvName)
         if File.Exists targeted then yield struct (targeted, "the fine-tune's targeted.csv")
         for run in partsOf dir do
             yield struct (Metrics.pathIn run, "a run's metrics.csv")
             let config = RunFolder.config run
             if File.Exists config then yield struct (config, "a run's config.json") |]
