/// Running a seed sweep (Sweep's rules, Shards' files): every seed (of this shard) to the probe step in cohorts
/// of seeds that stand at the same step, then the most promising to the end; a seed whose run fails is
/// reported and left out. Each seed is an ordinary run folder, so the same call continues an interrupted sweep.
module Adder.Pipeline.SeedSweep

open System.IO
open Adder.Core
open Adder.Pipeline.Hyperparameters

type Options =
    { Seeds: int list
      Probe: int
      Keep: int
      /// seeds trained side by side in one backend
      PerLaunch: int
      Shard: Shards.Shard option
      /// a shard's second pass: its probes are in its file, its finalists are finished
      Finishing: bool
      SweepDir: string
      Device: Backends.Device
      Cpu: CpuOptions
      /// a seed's run options, given its saved config.json when its run resumes
      ConfigFor: int -> RunConfig option -> RunConfig
      /// the run's steps (the probe's and the finish's common end)
      Steps: int }

type Outcome =
    | Interrupted
    /// a shard's probe pass done: its probes' file
    | ProbesWritten of string
    /// the sweep (or this shard's part) done: its summary and the file it was written to
    | Finished of Sweep.SeedSummary list * string

/// The seeds' folders grouped into cohorts of at most n that stand at the same step (a cohort trains in lockstep).
let cohorts (n: int) (sweepDir: string) (seeds: int list) =
    let stepOf seed =
        let last = RunFolder.last (RunFolder.ofSeed sweepDir seed)
        if File.Exists last then
            match (Checkpoint.Load last).Metadata.TryGetValue TrainingState.StepKey with
            | true, s -> int s
            | _ -> 0
        else 0
    seeds |> List.groupBy stepOf |> List.collect (fun (_, group) -> List.chunkBySize n group)

/// Runs the sweep; `say` gets a line per event, probeReport and finishReport each training step's progress in
/// the two phases, `signalled` is asked after every step. Returns the outcome and the seeds that failed.
let run (o: Options) (say: string -> unit) (probeReport: Training.Progress -> unit) (finishReport: Training.Progress -> unit)
        (signalled: int -> bool) =
    let mine = match o.Shard with Some s -> Shards.assigned s o.Seeds | None -> o.Seeds
    let runDirOf seed = RunFolder.ofSeed o.SweepDir seed
    let failed = ResizeArray<string>()
    let failure seed (message: string) =
        say (sprintf "seed %-5d failed: %s" seed message)
        failed.Add(sprintf "seed %d: %s" seed message)
    /// Trains one cohort of seeds until the step (or the end); the seeds that completed or stopped, with outcomes.
    let runCohort (cohort: int list) (until: int option) (report: Training.Progress -> unit) =
        let stop step = signalled step || (match until with Some n -> step >= n | None -> false)
        try
            let members: Training.Member list =
                [ for seed in cohort ->
                    let runDir = runDirOf seed
                    let resume = File.Exists(RunFolder.last runDir)
                    // a seed stopped before its first checkpoint left nothing to resume: its files are started again
                    if not resume then
                        for name in [ RunFolder.configName; RunFolder.metricsName; RunFolder.bestName ] do
                            let f = Path.Combine(runDir, name)
                            if File.Exists f then File.Delete f
                    let saved = if resume then Some(Training.readConfig runDir) else None
                    { Config = o.ConfigFor seed saved; RunDir = runDir; Resume = resume } ]
            List.zip cohort (Training.runCohort o.Device o.Cpu members report stop)
            |> List.choose (fun (seed, result) ->
                match result with
                | Ok outcome -> Some(seed, outcome)
                | Error message -> failure seed message; None)
        with :? AdderException as e ->
            for seed in cohort do failure seed e.Message
            []
    // phase 1: every seed (of this shard) to the probe
    let probes = ResizeArray<Sweep.Probe>()
    let mutable stopped = false
    match o.Shard with
    | Some s when o.Finishing ->
        // this shard's probe pass is done: its probes are in its file
        let path = Shards.probeFile o.SweepDir s
        if not (File.Exists path) then fail "%s not found: run the probe pass (--shard %d/%d without --finish) first" path s.Index s.Count
        probes.AddRange(Shards.readProbes path)
    | _ -> ()
    for cohort in cohorts o.PerLaunch o.SweepDir (if o.Finishing then [] else mine) do
        if not stopped then
            for seed, outcome in runCohort cohort (Some o.Probe) probeReport do
                if signalled outcome.LastStep then stopped <- true
                else
                    match Sweep.probeOf seed (Metrics.read (runDirOf seed)) o.Probe with
                    | Some p ->
                        probes.Add p
                        say (sprintf "seed %-5d step %7d  loss %.4f  val exact %6.2f%%" seed p.Step p.Loss (100.0 * p.ValExact))
                    | None -> ()
    let outcome =
        if stopped then Interrupted
        elif o.Shard.IsSome && not o.Finishing then
            let path = Shards.probeFile o.SweepDir o.Shard.Value
            Shards.writeProbes path (List.ofSeq probes)
            ProbesWritten path
        else
            // phase 2: the most promising seeds to the end (a shard: those of the whole sweep's best that are its own)
            let finalists =
                match o.Shard with
                | Some s -> Shards.finalists o.SweepDir o.Seeds s.Count o.Keep |> List.filter (fun p -> List.contains p.Seed mine)
                | None -> Sweep.rank (List.ofSeq probes) |> List.truncate o.Keep
            if o.Steps > o.Probe then
                for cohort in cohorts o.PerLaunch o.SweepDir [ for p in finalists -> p.Seed ] do
                    if not stopped then
                        for p in finalists |> List.filter (fun p -> List.contains p.Seed cohort) do
                            say (sprintf "finishing seed %d (val exact %.2f%%, loss %.4f at step %d)" p.Seed (100.0 * p.ValExact) p.Loss p.Step)
                        for _, outcome in runCohort cohort None finishReport do
                            if not outcome.Completed then stopped <- true
            if stopped then Interrupted
            else
                let summary =
                    [ for p in probes -> Sweep.summarise p (Metrics.read (runDirOf p.Seed)) ]
                    |> Sweep.summaryOrder
                let csv = match o.Shard with Some s -> Shards.summaryFile o.SweepDir s | None -> Path.Combine(o.SweepDir, Sweep.summaryName)
                Sweep.writeSummary csv summary
                Finished(summary, csv)
    outcome, List.ofSeq failed
