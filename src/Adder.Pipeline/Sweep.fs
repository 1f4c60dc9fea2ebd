/// Seed sweeps: grokking depends on the seed, so train many seeds to a probe step, then take the most
/// promising runs to the end. Each seed is an ordinary run folder (resumable bit for bit), so a sweep that
/// was interrupted continues where it stopped when the same command runs again.
module Adder.Pipeline.Sweep

open System
open System.Globalization
open System.IO
open Adder.Core

/// Parses "1-12,15,20-22" into distinct seeds in the given order.
let parseSeeds (text: string) =
    let part (p: string) =
        let number (s: string) =
            match Int32.TryParse(s.Trim()) with
            | true, n when n >= 0 -> n
            | _ -> fail "bad seed list '%s' (expected e.g. 1-12,15)" (Limits.Echo text)
        match p.Split('-') with
        | [| one |] -> [ number one ]
        | [| lo; hi |] when number lo <= number hi -> [ number lo .. number hi ]
        | _ -> fail "bad seed list '%s' (expected e.g. 1-12,15)" (Limits.Echo text)
    // counted before any list is built: "1-1000000000" must not allocate a billion seeds
    let size (p: string) =
        match p.Split('-') with
        | [| lo; hi |] -> match Int64.TryParse(lo.Trim()), Int64.TryParse(hi.Trim()) with | (true, l), (true, h) -> max 0L (h - l + 1L) | _ -> 1L
        | _ -> 1L
    let parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries)
    let count = parts |> Array.sumBy size
    if count > int64 Limits.MaxSweepSeeds then
        fail "a sweep has at most %d seeds; '%s' has %d" Limits.MaxSweepSeeds (Limits.Echo text) count
    let seeds = parts |> Seq.collect part |> Seq.distinct |> List.ofSeq
    if seeds.IsEmpty then fail "empty seed list"
    seeds

/// How a seed looked at the probe: its best validation exact match so far and its mean loss over the last
/// 1,000 steps logged (the tie-breaker while every seed is still at 0%).
type Probe = { Seed: int; Step: int; Loss: float; ValExact: float }

let probeOf (seed: int) (rows: Metrics.Row list) (probe: int) =
    let upTo = rows |> List.filter (fun r -> r.Step <= probe)
    if upTo.IsEmpty then None
    else
        let last = (List.last upTo).Step
        let recent = upTo |> List.filter (fun r -> r.Step > last - 1000)
        Some { Seed = seed
               Step = last
               Loss = recent |> List.averageBy (fun r -> r.Loss)
               ValExact = upTo |> List.choose (fun r -> r.ValExact) |> List.fold max 0.0 }

/// The seeds to finish: highest validation exact match at the probe, then lowest loss.
let rank (probes: Probe list) = probes |> List.sortBy (fun p -> -p.ValExact, p.Loss)

type SeedSummary =
    { Seed: int; ProbeStep: int; ProbeLoss: float; ProbeValExact: float; LastStep: int; BestValExact: float; BestStep: int }

/// A seed's sweep result from its probe and its run's metrics; best first when sorted with `summaryOrder`.
let summarise (probe: Probe) (rows: Metrics.Row list) =
    let validations = rows |> List.choose (fun r -> r.ValExact |> Option.map (fun v -> v, r.Step))
    let bestVal, bestStep = validations |> List.fold (fun (bv, bs) (v, s) -> if v > bv then (v, s) else (bv, bs)) (-1.0, 0)
    let bestVal = max bestVal 0.0
    { Seed = probe.Seed; ProbeStep = probe.Step; ProbeLoss = probe.Loss; ProbeValExact = probe.ValExact
      LastStep = (if rows.IsEmpty then 0 else (List.last rows).Step); BestValExact = bestVal; BestStep = bestStep }

let summaryOrder (rows: SeedSummary list) = rows |> List.sortBy (fun r -> -r.BestValExact, r.ProbeLoss)

let summaryName = "sweep.csv"

let summaryHeader = "seed,probe_step,probe_loss,probe_val_exact,last_step,best_val_exact,best_step"

/// sweep.csv: one row per seed, best first.
let writeSummary (path: string) (rows: SeedSummary list) =
    let lines =
        summaryHeader
        :: [ for r in rows ->
                sprintf "%d,%d,%s,%s,%d,%s,%d" r.Seed r.ProbeStep (Files.formatFloat r.ProbeLoss) (Files.formatFloat r.ProbeValExact) r.LastStep (Files.formatFloat r.BestValExact) r.BestStep ]
    Files.writeTextAtomic path (String.Join("\n", lines) + "\n")
