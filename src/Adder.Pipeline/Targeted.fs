/// Targeted fine-tuning (`adder finetune --targeted`): round after round, mine the model's failures from fresh
/// random sums (verify's generators: uniform, mixed lengths, carry chains, nine-pairs) and fine-tune with a
/// share of every batch drawn from the failures found so far. After a round, its best and last checkpoints are
/// mined on the next fresh sums and the one with fewer failures goes on: a validation set of 5,000 pairs is
/// saturated long before the rare failures are gone, so fresh sums are the better judge. Stops after the
/// round budget or when a mining pass finds no failure.
module Adder.Pipeline.Targeted

open System
open System.Globalization
open System.IO
open Adder.Core

/// The generators mined (verify's, each sampled with the round's mining seed).
let miningGenerators = [ "uniform"; "mixed-length"; "carry-chain"; "nine-pairs" ]

/// A generator's mining pass: every failure counted (Found), the first keptPerGenerator of them kept.
type Mined = { Generator: string; Examples: int; Found: int; Failures: (int64 * int64)[] }

/// Failures a mining pass keeps of each generator: together at most the pool's size, whatever --mine is.
let keptPerGenerator = Limits.MaxFailurePool / miningGenerators.Length

/// Round r's mining seed: far from the small seeds a user gives `adder verify --seed`, so a verify run
/// afterwards checks the model on sums that mining did not see.
let miningSeed (seed: int) (round: int) = 0x5EED_0000_0000L + int64 seed * 1_000L + int64 round

/// Decodes `count` fresh pairs of each mining generator with the backend's model 0; returns each generator's
/// failing pairs, less those `excluded` (held-out pairs never enter training): all of them counted, the first
/// keptPerGenerator kept (a uniform sample: the pairs are drawn at random).
let mine (backend: IBackend) (count: int) (seed: int64) (excluded: int64 * int64 -> bool) =
    [ for name in miningGenerators ->
        let index = Verify.generators |> List.findIndex (fun g -> g.Name = name)
        let gen = (Verify.generators.[index]).Gen |> Option.get
        let failures = ResizeArray<int64 * int64>()
        let mutable found = 0
        for block in 0 .. (count - 1) / Verify.blockSize do
            let pairs = Verify.sample gen seed index block (min Verify.blockSize (count - block * Verify.blockSize))
            let result = Evaluation.evaluateSet backend 0 name (Array.map fst pairs) (Array.map snd pairs)
            for f in result.Failures do
                if not (excluded (f.A, f.B)) then
                    found <- found + 1
                    if failures.Count < keptPerGenerator then failures.Add((f.A, f.B))
        { Generator = name; Examples = count; Found = found; Failures = failures.ToArray() } ]

let private splitMix (x: uint64) =
    let mutable z = x + 0x9E3779B97F4A7C15UL
    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    z ^^^ (z >>> 31)

/// The first round(fraction · batch) pairs of each batch are replaced by pool pairs, chosen by a generator
/// seeded with (seed, step): the same batches on any machine, and a function of the step alone.
let mixer (pool: (int64 * int64)[]) (fraction: float) (seed: int) : Training.BatchMix =
    fun _ step a b ->
        if pool.Length > 0 then
            let k = min a.Length (int (Math.Round(fraction * float a.Length)))
            let mutable state = splitMix (uint64 seed * 0x100000001B3UL + uint64 step)
            for i in 0 .. k - 1 do
                state <- splitMix state
                let x, y = pool.[int (state % uint64 pool.Length)]
                a.[i] <- x
                b.[i] <- y

type Settings =
    { /// the round's fine-tuning options (kind finetune; its seed gives the holdout and the data stream)
      Round: Hyperparameters.RunConfig
      Rounds: int
      /// fresh pairs per mining generator per pass
      Mine: int
      /// share of each batch drawn from the failures
      Mix: float }

type RoundReport =
    { Round: int
      /// "start" (the mining pass before round 1), else which checkpoint of the round went on: best or last
      Kept: string
      Checkpoint: string
      /// failures per mining generator, of Settings.Mine pairs each
      Failures: (string * int) list
      /// failures in the pool after this pass (at most Limits.MaxFailurePool)
      Pool: int
      BestValExact: float }

let csvHeader = "round,kept,checkpoint," + String.Join(",", miningGenerators |> List.map (fun g -> g + "_failures")) + ",examples_per_generator,pool,best_val_exact"

let private csvRow (mine: int) (r: RoundReport) =
    let inv (x: float) = x.ToString("R", CultureInfo.InvariantCulture)
    String.Join(",", [ string r.Round; r.Kept; r.Checkpoint ] @ (r.Failures |> List.map (snd >> string)) @ [ string mine; string r.Pool; inv r.BestValExact ])

/// Pairs a targeted run must never train on: its own validation and test pairs and the reference suite's
/// (Evaluation.referenceSets: the test parts of the ten reference holdouts).
let private heldOutCount = Batches.validationPairs + Batches.testPairs + Holdout.ReferenceSuiteSeeds.Length * Batches.testPairs

let private heldOut (seed: int) =
    let set = Collections.Generic.HashSet<int64 * int64>()
    let add (h: Holdout) = for p in Array.append h.Validation h.Test do set.Add((p.A, p.B)) |> ignore
    add (Batches.holdout seed)
    for _, a, b in Evaluation.referenceSets () do
        for i in 0 .. a.Length - 1 do set.Add((a.[i], b.[i])) |> ignore
    fun pair -> set.Contains pair

/// Runs the rounds into outDir (round-1, round-2, ... are ordinary fine-tuning run folders; targeted.csv the
/// rounds' table; best.safetensors the model that went on from the last round). `say` gets a line per event.
/// Returns the rounds' reports and whether it ran to its end (false: `stop` interrupted a round).
let run (device: Backends.Device) (cpu: CpuOptions) (settings: Settings) (start: string) (outDir: string)
        (say: string -> unit) (report: Training.Progress -> unit) (stop: int -> bool) =
    if settings.Rounds < 1 then fail "--rounds must be at least 1, got %d" settings.Rounds
    if settings.Mine < 1 || settings.Mine > Limits.MaxEvalCount then fail "--mine must be in 1..%d, got %d" Limits.MaxEvalCount settings.Mine
    if not (settings.Mix > 0.0 && settings.Mix < 1.0) then fail "--mix must be in (0, 1), got %g" settings.Mix
    // the round's run with the failures beside it, refused before the folder is made
    Training.checkMemory device cpu settings.Round 1 (Limits.FailurePoolBytes heldOutCount)
    if File.Exists outDir then fail "--out %s is a file, not a folder" outDir
    if Directory.Exists outDir && SafeFiles.HoldsFiles outDir then
        fail "--out %s is not empty; a targeted fine-tune starts in a new or empty folder" outDir
    try Directory.CreateDirectory outDir |> ignore
    with :? IOException | :? UnauthorizedAccessException | :? ArgumentException as e -> fail "cannot create folder %s: %s" outDir e.Message
    let config = settings.Round
    let excluded = heldOut config.Seed
    let csv = Path.Combine(outDir, "targeted.csv")
    let rows = ResizeArray<string>([ csvHeader ])
    let reports = ResizeArray<RoundReport>()
    let pool = Collections.Generic.Queue<int64 * int64>()
    let inPool = Collections.Generic.HashSet<int64 * int64>()
    let mineWith (checkpoint: string) (round: int) =
        let model = (Checkpoint.Load checkpoint).Model
        use backend = Backends.create device model.Config 1 cpu
        backend.SetParameters(0, model.Parameters)
        mine backend settings.Mine (miningSeed config.Seed round) excluded
    let failureCounts (mined: Mined list) = [ for m in mined -> m.Generator, m.Found ]
    let total (mined: Mined list) = mined |> List.sumBy (fun m -> m.Found)
    let describe (mined: Mined list) =
        let counts = String.Join(", ", [ for m in mined -> sprintf "%s %d" m.Generator m.Found ])
        if mined |> List.exists (fun m -> m.Found > m.Failures.Length) then
            sprintf "%s (the first %d of a generator's failures kept for the pool)" counts keptPerGenerator
        else counts
    let record (r: RoundReport) =
        reports.Add r
        rows.Add(csvRow settings.Mine r)
        Files.writeTextAtomic csv (String.Join("\n", rows) + "\n")
    // the newest failures are the current model's: beyond the limit the oldest leave
    let addToPool (mined: Mined list) =
        for m in mined do
            for p in m.Failures do
                if inPool.Add p then
                    pool.Enqueue p
                    if pool.Count > Limits.MaxFailurePool then inPool.Remove(pool.Dequeue()) |> ignore

    let mutable current = Path.GetFullPath start
    let mutable mined = mineWith current 0
    say (sprintf "start %s: failures in %d fresh sums per generator: %s" start settings.Mine (describe mined))
    addToPool mined
    record { Round = 0; Kept = "start"; Checkpoint = current; Failures = failureCounts mined; Pool = pool.Count; BestValExact = nan }
    let mutable round = 1
    let mutable interrupted = false
    while round <= settings.Rounds && total mined > 0 && not interrupted do
        let roundDir = Path.Combine(outDir, sprintf "round-%d" round)
        let roundConfig = { config with StartCheckpoint = Some current }
        say (sprintf "round %d: fine-tuning from %s with %d mined failures, %.0f%% of each batch" round current pool.Count (100.0 * settings.Mix))
        let outcome = Training.runMixing device cpu roundConfig roundDir false (mixer (pool.ToArray()) settings.Mix config.Seed) report stop
        if not outcome.Completed then interrupted <- true
        else
            // the round's best and last, judged on the next round's fresh sums
            let best, last = Path.Combine(roundDir, "best.safetensors"), Path.Combine(roundDir, "last.safetensors")
            let minedBest, minedLast = mineWith best round, mineWith last round
            let kept, path, m = if total minedLast < total minedBest then "last", last, minedLast else "best", best, minedBest
            say (sprintf "round %d: best (step %d) %d failures, last %d; %s goes on: %s" round outcome.BestStep (total minedBest) (total minedLast) kept (describe m))
            current <- path
            mined <- m
            addToPool mined
            record { Round = round; Kept = kept; Checkpoint = current; Failures = failureCounts mined; Pool = pool.Count; BestValExact = outcome.BestValExact }
            round <- round + 1
    if not interrupted then
        let chosen = Checkpoint.Load current
        let meta = Collections.Generic.Dictionary<string, string>(chosen.Metadata)
        meta.["targeted_rounds"] <- string (round - 1)
        meta.["targeted_mine"] <- string settings.Mine
        meta.["targeted_mix"] <- settings.Mix.ToString("R", CultureInfo.InvariantCulture)
        meta.["targeted_source"] <- Path.GetRelativePath(outDir, current)
        Checkpoint(chosen.Model, meta).Save(Path.Combine(outDir, "best.safetensors"))
        if total mined = 0 then say (sprintf "no failure in %d fresh sums per generator: done" settings.Mine)
    List.ofSeq reports, not interrupted
