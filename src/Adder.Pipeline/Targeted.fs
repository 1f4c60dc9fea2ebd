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
open System.Text.Json
open System.Text.Json.Nodes
open Adder.Core

/// Rounds, fresh pairs a generator a mining pass, and the failures' share of a batch, unless given.
let defaultRounds, defaultMine, defaultMix = 3, 200_000, 0.125

/// The generators mined (verify's, each sampled with the round's mining seed).
let miningKinds = [ Verify.Uniform; Verify.MixedLength; Verify.CarryChain; Verify.NinePairs ]

/// Their names, as targeted.csv's columns and the mining report give them.
let miningGenerators = [ for kind in miningKinds -> kind.Name ]

/// A generator's mining pass: every failure counted (Found), the first keptPerGenerator of them kept.
type Mined = { Generator: string; Examples: int; Found: int; Failures: (int64 * int64)[] }

/// Failures a mining pass keeps of each generator: together at most the pool's size, whatever --mine is.
let keptPerGenerator = Limits.MaxFailurePool / miningGenerators.Length

/// Round r's mining seed: far from the small seeds a user gives `adder verify --seed`, so a verify run
/// afterwards checks the model on sums that mining did not see.
let miningSeed (seed: int) (round: int) = 0x5EED_0000_0000L + int64 seed * 1_000L + int64 round

/// A mining pass stopped by an interrupt.
exception MiningStopped

/// Decodes `count` fresh pairs of each mining generator with the backend's model 0; returns each generator's
/// failing pairs, less those `excluded` (held-out pairs never enter training): all of them counted, the first
/// keptPerGenerator kept (a uniform sample: the pairs are drawn at random). `stopped` is asked before each block
/// of pairs (a fraction of a second), and raises MiningStopped when it says yes.
let mine (backend: IBackend) (count: int) (seed: int64) (excluded: int64 * int64 -> bool) (stopped: unit -> bool) =
    [ for kind in miningKinds ->
        let name = kind.Name
        let index, generator = Verify.generator kind
        let gen = generator.Gen |> Option.get
        let failures = ResizeArray<int64 * int64>()
        let mutable found = 0
        for block in 0 .. (count - 1) / Verify.blockSize do
            if stopped () then raise MiningStopped
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
    let inv = Files.formatFloat
    String.Join(",", [ string r.Round; r.Kept; r.Checkpoint ] @ (r.Failures |> List.map (snd >> string)) @ [ string mine; string r.Pool; inv r.BestValExact ])

/// A targeted run's folder: the rounds' table, its options (what --resume continues with) and the failure pool
/// in the order the mixer draws from it, rewritten after each mining pass.
let csvName = "targeted.csv"
let stateName = "targeted.json"
let poolName = "pool.txt"

let private stateJson (settings: Settings) (start: string) =
    let o = JsonObject()
    o.["start"] <- JsonValue.Create start
    o.["rounds"] <- JsonValue.Create settings.Rounds
    o.["mine"] <- JsonValue.Create settings.Mine
    o.["mix"] <- JsonValue.Create settings.Mix
    o.["round_config"] <- JsonNode.Parse(Hyperparameters.toJson settings.Round)
    o.ToJsonString(JsonSerializerOptions(WriteIndented = true)) + "\n"

/// The saved options and start of the run in outDir; a given option that differs from them is refused, as a
/// plain --resume refuses it.
let private checkSaved (outDir: string) (settings: Settings) (start: string) =
    let path = Path.Combine(outDir, stateName)
    if not (File.Exists path) then fail "nothing to resume: %s not found (it is written when a targeted fine-tune starts)" path
    let o =
        try JsonDocument.Parse(SafeFiles.ReadAllText(path, "targeted state")).RootElement
        with :? JsonException as e -> fail "%s is not a targeted run's state (%s)" path e.Message
    try
        let savedStart = o.GetProperty("start").GetString()
        if savedStart <> start then fail "--resume: -c %s is not the checkpoint the targeted run started from (%s)" start savedStart
        for name, now in [ "rounds", settings.Rounds; "mine", settings.Mine ] do
            let was = o.GetProperty(name).GetInt32()
            if was <> now then fail "--resume: --%s %d differs from the targeted run's %d; leave it out to continue the run as it was" name now was
        let was = o.GetProperty("mix").GetDouble()
        if was <> settings.Mix then fail "--resume: --mix %g differs from the targeted run's %g; leave it out to continue the run as it was" settings.Mix was
        Hyperparameters.checkResume (Hyperparameters.ofJson (o.GetProperty("round_config").GetRawText()) path) settings.Round
    with
    | :? Collections.Generic.KeyNotFoundException | :? InvalidOperationException | :? FormatException -> fail "%s is not a targeted run's state" path

let private writePool (outDir: string) (pool: (int64 * int64) seq) =
    Files.writeTextAtomic (Path.Combine(outDir, poolName)) (String.Join("", [ for a, b in pool -> sprintf "%d %d\n" a b ]))

let private readPool (outDir: string) =
    let path = Path.Combine(outDir, poolName)
    if not (File.Exists path) then fail "nothing to resume: %s not found" path
    let lines = SafeFiles.ReadAllText(path, "failure pool").Split('\n', StringSplitOptions.RemoveEmptyEntries)
    if lines.Length > Limits.MaxFailurePool then fail "%s holds %d pairs, more than the pool's %d" path lines.Length Limits.MaxFailurePool
    [| for line in lines ->
        match line.Split(' ') with
        | [| a; b |] ->
            match Int64.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture), Int64.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture) with
            | (true, x), (true, y) when x <= Verify.maxOperand && y <= Verify.maxOperand -> x, y
            | _ -> fail "%s: '%s' is not a pair of operands" path (Limits.Echo line)
        | _ -> fail "%s: '%s' is not a pair of operands" path (Limits.Echo line) |]

/// The rounds done so far, from targeted.csv.
let private readRows (outDir: string) =
    let path = Path.Combine(outDir, csvName)
    if not (File.Exists path) then fail "nothing to resume: %s not found" path
    let lines = SafeFiles.ReadAllText(path, "targeted table").Split('\n', StringSplitOptions.RemoveEmptyEntries)
    if lines.Length < 2 || lines.[0] <> csvHeader then fail "%s is not a targeted run's table; it cannot be resumed" path
    let parse (line: string) =
        let cells = line.Split(',')
        if cells.Length <> 3 + miningGenerators.Length + 3 then fail "%s: a damaged row ('%s'); it cannot be resumed" path (Limits.Echo line)
        try
            { Round = int cells.[0]
              Kept = cells.[1]
              Checkpoint = cells.[2]
              Failures = List.zip miningGenerators [ for i in 3 .. 2 + miningGenerators.Length -> int cells.[i] ]
              Pool = int cells.[cells.Length - 2]
              BestValExact = Double.Parse(cells.[cells.Length - 1], CultureInfo.InvariantCulture) }
        with :? FormatException | :? OverflowException -> fail "%s: a damaged row ('%s'); it cannot be resumed" path (Limits.Echo line)
    let rows = lines.[1..] |> Array.map parse
    rows |> Array.iteri (fun i r -> if r.Round <> i then fail "%s: row %d is round %d; it cannot be resumed" path (i + 1) r.Round)
    List.ofArray lines, List.ofArray rows

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
/// Returns the rounds' reports and whether it ran to its end (false: `stop` interrupted a round). With resume,
/// an interrupted run in outDir goes on (its round resumed from its last.safetensors) as if it had not stopped.
/// `stop` is asked with each round's steps, and with -1 before each block of a mining pass.
let run (device: Backends.Device) (cpu: CpuOptions) (settings: Settings) (start: string) (outDir: string) (resume: bool)
        (say: string -> unit) (report: Training.Progress -> unit) (stop: int -> bool) =
    if settings.Rounds < 1 then fail "--rounds must be at least 1, got %d" settings.Rounds
    if settings.Mine < 1 || settings.Mine > Limits.MaxEvalCount then fail "--mine must be in 1..%d, got %d" Limits.MaxEvalCount settings.Mine
    if not (settings.Mix > 0.0 && settings.Mix < 1.0) then fail "--mix must be in (0, 1), got %g" settings.Mix
    // the round's run with the failures beside it, refused before the folder is made
    Training.checkMemory device cpu settings.Round 1 (Limits.FailurePoolBytes heldOutCount)
    if File.Exists outDir then fail "--out %s is a file, not a folder" outDir
    let start = Path.GetFullPath start
    if resume then
        if not (Directory.Exists outDir) then fail "nothing to resume: folder %s not found" outDir
        checkSaved outDir settings start
    else
        if Directory.Exists outDir && SafeFiles.HoldsFiles outDir then
            fail "--out %s is not empty; a targeted fine-tune starts in a new or empty folder (--resume continues one)" outDir
        try Directory.CreateDirectory outDir |> ignore
        with :? IOException | :? UnauthorizedAccessException | :? ArgumentException as e -> fail "cannot create folder %s: %s" outDir e.Message
    use _lock = SafeFiles.LockFolder outDir
    let config = settings.Round
    let excluded = heldOut config.Seed
    let csv = Path.Combine(outDir, csvName)
    let rows = ResizeArray<string>([ csvHeader ])
    let reports = ResizeArray<RoundReport>()
    let pool = Collections.Generic.Queue<int64 * int64>()
    let inPool = Collections.Generic.HashSet<int64 * int64>()
    /// A mining pass of the checkpoint; None when an interrupt stopped it.
    let mineWith (checkpoint: string) (round: int) =
        let model = (Checkpoint.Load checkpoint).Model
        use backend = Backends.create device model.Config 1 cpu
        backend.SetParameters(0, model.Parameters)
        try Some(mine backend settings.Mine (miningSeed config.Seed round) excluded (fun () -> stop -1))
        with MiningStopped -> None
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
        writePool outDir pool

    let mutable current = start
    let mutable remaining = 0   // failures the last mining pass found: none left ends the run
    let mutable round = 1
    let mutable interrupted = false
    // a run stopped in its first mining pass has its options saved but no round yet: it starts again
    if resume && File.Exists csv then
        let lines, done' = readRows outDir
        rows.Clear()
        rows.AddRange lines
        reports.AddRange done'
        for p in readPool outDir do
            if inPool.Add p then pool.Enqueue p
        let last = List.last done'
        current <- last.Checkpoint
        remaining <- last.Failures |> List.sumBy snd
        round <- last.Round + 1
        say (sprintf "resuming %s after round %d: %d failures in the pool, %s goes on" outDir last.Round pool.Count current)
    else
        Files.writeTextAtomic (Path.Combine(outDir, stateName)) (stateJson settings start)
        match mineWith current 0 with
        | None -> interrupted <- true
        | Some mined ->
            say (sprintf "start %s: failures in %d fresh sums per generator: %s" start settings.Mine (describe mined))
            addToPool mined
            remaining <- total mined
            record { Round = 0; Kept = "start"; Checkpoint = current; Failures = failureCounts mined; Pool = pool.Count; BestValExact = nan }
    while round <= settings.Rounds && remaining > 0 && not interrupted do
        let roundDir = Path.Combine(outDir, sprintf "round-%d" round)
        let roundConfig = { config with StartCheckpoint = Some current }
        // a round stopped part way goes on from its last.safetensors; one stopped before its first save starts again
        let resumeRound = resume && File.Exists(RunFolder.last roundDir)
        if resume && not resumeRound && Directory.Exists roundDir && SafeFiles.HoldsFiles roundDir then
            fail "%s holds files but no last.safetensors, so its round cannot be resumed; remove the folder to run the round again" roundDir
        say (sprintf "round %d: %s from %s with %d mined failures, %.0f%% of each batch" round
                (if resumeRound then "resuming the fine-tune" else "fine-tuning") current pool.Count (100.0 * settings.Mix))
        let outcome = Training.runMixing device cpu roundConfig roundDir resumeRound (mixer (pool.ToArray()) settings.Mix config.Seed) report stop
        if not outcome.Completed then interrupted <- true
        else
            // the round's best and last, judged on the next round's fresh sums
            let best, last = RunFolder.best roundDir, RunFolder.last roundDir
            match mineWith best round with
            | None -> interrupted <- true
            | Some minedBest ->
            match mineWith last round with
            | None -> interrupted <- true
            | Some minedLast ->
                let kept, path, m = if total minedLast < total minedBest then "last", last, minedLast else "best", best, minedBest
                say (sprintf "round %d: best (step %d) %d failures, last %d; %s goes on: %s" round outcome.BestStep (total minedBest) (total minedLast) kept (describe m))
                current <- path
                remaining <- total m
                addToPool m
                record { Round = round; Kept = kept; Checkpoint = current; Failures = failureCounts m; Pool = pool.Count; BestValExact = outcome.BestValExact }
                round <- round + 1
    if not interrupted then
        let chosen = Checkpoint.Load current
        let meta = Collections.Generic.Dictionary<string, string>(chosen.Metadata)
        meta.["targeted_rounds"] <- string (round - 1)
        meta.["targeted_mine"] <- string settings.Mine
        meta.["targeted_mix"] <- Files.formatFloat settings.Mix
        meta.["targeted_source"] <- Path.GetRelativePath(outDir, current)
        Checkpoint(chosen.Model, meta).Save(RunFolder.best outDir)
        if remaining = 0 then say (sprintf "no failure in %d fresh sums per generator: done" settings.Mine)
    List.ofSeq reports, not interrupted
