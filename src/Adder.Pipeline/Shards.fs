/// Sweeps split over machines (a Slurm job array, say). A sweep ranks every seed at the probe before it
/// finishes the best --keep, and a shard sees only its own seeds, so a sharded sweep runs in two passes
/// that meet through small CSV files in the sweep's folder:
///   1. `--shard i/n`: shard i takes its seeds to the probe and writes probe-shard-i-of-n.csv;
///   2. `--shard i/n --finish`: every shard reads all n probe files, ranks all seeds exactly as the
///      unsharded sweep does, finishes the kept seeds that are its own and writes sweep-shard-i-of-n.csv;
///   3. `--merge n`: the n shard summaries become sweep.csv.
/// Each seed's run folder goes through the same steps as in the unsharded sweep (to the probe, then on to
/// the end from last.safetensors), so the union of the shards is the unsharded sweep bit for bit.
module Adder.Pipeline.Shards

open System
open System.Globalization
open System.IO
open Adder.Core


/// Shard Index of Count (0 <= Index < Count).
type Shard = { Index: int; Count: int }

/// Parses "i/n", e.g. 0/4 (Slurm's $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT).
let parse (text: string) =
    let bad () = fail "bad --shard '%s' (expected i/n with 0 <= i < n, e.g. 0/4)" (Limits.Echo text)
    match text.Split('/') with
    | [| i; n |] ->
        match Int32.TryParse(i.Trim()), Int32.TryParse(n.Trim()) with
        | (true, i), (true, n) when n >= 1 && i >= 0 && i < n -> { Index = i; Count = n }
        | _ -> bad ()
    | _ -> bad ()

/// The shard that runs the seed at position k of the seed list: k mod n (round robin, so the shards'
/// sizes differ by at most one and neighbouring seeds spread over the machines).
let shardOf (count: int) (position: int) = position % count

/// The seeds shard i of n runs, in the list's order.
let assigned (shard: Shard) (seeds: int list) =
    seeds |> List.indexed |> List.filter (fun (k, _) -> shardOf shard.Count k = shard.Index) |> List.map snd

let probeFile (sweepDir: string) (shard: Shard) = Path.Combine(sweepDir, sprintf "probe-shard-%d-of-%d.csv" shard.Index shard.Count)
let summaryFile (sweepDir: string) (shard: Shard) = Path.Combine(sweepDir, sprintf "sweep-shard-%d-of-%d.csv" shard.Index shard.Count)

let private inv = Files.formatFloat

let readRows (path: string) (header: string) (parse: string[] -> 'T) =
    // capped, regular files only; the last line's newline leaves an empty entry, skipped below
    let lines = SafeFiles.ReadAllText(path, "shard file").Split('\n') |> Array.map (fun l -> l.TrimEnd '\r')
    if lines.Length = 0 || lines.[0] <> header then fail "%s is not a shard file (expected the header %s)" path header
    let row (line: string) =
        try Some(parse (line.Split(','))) with _ -> None
    [ for line in lines |> Array.skip 1 do
        if line <> "" then
            match row line with
            | Some r -> r
            | None -> fail "%s: bad row '%s'" path (Limits.Echo line) ]

let num (s: string) = Double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture)

let private probeHeader = "seed,probe_step,probe_loss,probe_val_exact"

/// probe-shard-i-of-n.csv: one row per seed of the shard that reached the probe, in the seed list's order.
let writeProbes (path: string) (probes: Sweep.Probe list) =
    let lines = probeHeader :: [ for p in probes -> sprintf "%d,%d,%s,%s" p.Seed p.Step (inv p.Loss) (inv p.ValExact) ]
    Files.writeTextAtomic path (String.Join("\n", lines) + "\n")

let readProbes (path: string) : Sweep.Probe list =
    readRows path probeHeader (fun f ->
        if f.Length <> 4 then failwith "fields"
        { Seed = int f.[0]; Step = int f.[1]; Loss = num f.[2]; ValExact = num f.[3] })


/// Reads a summary written by Sweep.writeSummary (a shard's or a whole sweep's).
let readSummary (path: string) : Sweep.SeedSummary list =
    readRows path Sweep.summaryHeader (fun f ->
        if f.Length <> 7 then failwith "fields"
        { Seed = int f.[0]; ProbeStep = int f.[1]; ProbeLoss = num f.[2]; ProbeValExact = num f.[3]
          LastStep = int f.[4]; BestValExact = num f.[5]; BestStep = int f.[6] })

/// The rows of all n shards' files, each checked to belong to its shard under this seed list, in the seed
/// list's order (the order the unsharded sweep holds them in, which decides its ties).
let gather (fileOf: Shard -> string) (read: string -> 'T list) (seedOf: 'T -> int) (what: string) (seeds: int list) (count: int) =
    let position = seeds |> List.indexed |> List.map (fun (k, s) -> s, k) |> dict
    let rows =
        [ for i in 0 .. count - 1 do
            let shard = { Index = i; Count = count }
            let path = fileOf shard
            if not (File.Exists path) then fail "%s not found: %s of shard %d/%d has not finished" path what i count
            for row in read path do
                let seed = seedOf row
                match position.TryGetValue seed with
                | true, k when shardOf count k = i -> yield k, row
                | true, k -> fail "%s holds seed %d, which belongs to shard %d/%d: were the shards run with other --seeds?" path seed (shardOf count k) count
                | _ -> fail "%s holds seed %d, which is not in --seeds: were the shards run with other --seeds?" path seed ]
    match rows |> List.countBy fst |> List.tryFind (fun (_, c) -> c > 1) with
    | Some(k, _) -> fail "seed %d appears twice in the %s files" seeds.[k] what
    | None -> rows |> List.sortBy fst |> List.map snd

/// The seeds the whole sweep finishes: all shards' probes ranked as the unsharded sweep ranks them.
let finalists (sweepDir: string) (seeds: int list) (count: int) (keep: int) =
    let probes = gather (probeFile sweepDir) readProbes (fun (p: Sweep.Probe) -> p.Seed) "the probe pass" seeds count
    Sweep.rank probes |> List.truncate keep

/// sweep.csv from the n shard summaries: the same rows, in the same order, as the unsharded sweep writes.
let merge (sweepDir: string) (seeds: int list) (count: int) =
    let rows = gather (summaryFile sweepDir) readSummary (fun (r: Sweep.SeedSummary) -> r.Seed) "the finish pass" seeds count
    let summary = Sweep.summaryOrder rows
    Sweep.writeSummary (Path.Combine(sweepDir, "sweep.csv")) summary
    summary
