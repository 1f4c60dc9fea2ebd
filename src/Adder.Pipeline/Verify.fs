/// `adder verify`: property-based correctness runs. The property is "the model's greedy sum of a and b is a + b";
/// named FsCheck generators draw the pairs (sampled with a fixed seed into arrays, so the run is reproducible
/// and decodes in large batches at eval speed), and each failure is shrunk with FsCheck's int64 shrinker plus
/// digit-zeroing to the simplest pair found that still fails.
module Adder.Pipeline.Verify

open System
open System.Diagnostics
open FsCheck
open FsCheck.FSharp
open Adder.Core


let maxOperand = Tokens.MaxOperand
let private pow10 = Array.init 11 (fun k -> pown 10L k)

// The generators map a few raw 62-bit draws (FsCheck's Gen.choose64) through plain arithmetic: one draw per
// operand rather than one Gen.bind per choice keeps sampling faster than decoding (the run must go at eval's
// speed). Reducing a 62-bit draw modulo m ≤ 10^10 is uniform up to a relative bias below 2^-28.
let private raw = Gen.choose64 (0L, (1L <<< 62) - 1L)
let private digitOf (x: int64) (i: int) = int ((x / pow10.[i]) % 10L)
let private withDigit (x: int64) (i: int) (d: int) = x + int64 (d - digitOf x i) * pow10.[i]

/// An operand from one draw: its length n uniform in 1..10, then uniform among the n-digit numbers (n = 1 includes 0).
let private ofRandomLength (r: int64) =
    let n = int (r % 10L) + 1
    let low = if n = 1 then 0L else pow10.[n - 1]
    low + (r / 10L) % (pow10.[n] - low)

/// Both operands uniform in [0, 10^10) (two raw draws reduced: ~1.7× faster to sample than Gen.choose64 (0, 10^10 − 1)).
let uniform = Gen.map2 (fun (ra: int64) rb -> ra % pow10.[10], rb % pow10.[10]) raw raw

/// Each operand's length uniform in 1..10 independently, then a uniform value of that length.
let mixedLength = Gen.map2 (fun ra rb -> ofRandomLength ra, ofRandomLength rb) raw raw

let private carryBorn = [| for x in 1 .. 9 do for y in 10 - x .. 9 -> x, y |]

/// A carry born at digit j−1 (a digit pair summing to at least 10) that runs through digits j..k−1, where every
/// pair sums to 9 (a third of the time a is all 9s there, a third b is, else a random split), so the sum
/// crosses 10^k; the other digits are uniform. Digits are indexed from the least significant (0); 2 ≤ k ≤ 10.
let carryChain =
    Gen.map3
        (fun (r: int64) a0 b0 ->
            let k = 2 + int (r % 9L)
            let j = 1 + int ((r / 9L) % int64 (k - 1))
            let style = int ((r / 81L) % 3L)
            let born = carryBorn.[int ((r / 243L) % int64 carryBorn.Length)]
            let split = (r / 243L / int64 carryBorn.Length) % pow10.[10]
            let mutable a = withDigit (a0 % pow10.[10]) (j - 1) (fst born)
            let mutable b = withDigit (b0 % pow10.[10]) (j - 1) (snd born)
            for i in j .. k - 1 do
                let x = match style with 0 -> 9 | 1 -> 0 | _ -> digitOf split i
                a <- withDigit a i x
                b <- withDigit b i (9 - x)
            a, b)
        raw raw raw

/// Every digit pair sums to 9 (no carry anywhere): n uniform in 1..10, a uniform below 10^n, b = 10^n − 1 − a.
let ninePairs =
    Gen.map
        (fun (r: int64) ->
            let n = int (r % 10L) + 1
            let a = (r / 10L) % pow10.[n]
            a, pow10.[n] - 1L - a)
        raw

/// The edge cases, all of them (not sampled): AdderBoard's ten, then every pair of the boundary operands
/// 0, 1, 5, 9, 10^k − 1, 10^k, 10^k + 1 (k = 1..9) and 10^10 − 1, 10^10 − 2.
let edgeCases =
    let boundary =
        [ yield! [ 0L; 1L; 5L; 9L ]   // explicit: beside the yields below, bare values would be dropped
          for k in 1 .. 9 do
              yield pow10.[k] - 1L
              yield pow10.[k]
              yield pow10.[k] + 1L
          yield maxOperand - 1L
          yield maxOperand ]
    Array.append AdderBoard.edgeCases [| for a in boundary do for b in boundary -> a, b |]

/// The generators, a closed set: --generators names them, targeted fine-tuning mines the sampled ones.
type GeneratorKind =
    | Uniform
    | MixedLength
    | CarryChain
    | NinePairs
    | Edge

    member k.Name =
        match k with
        | Uniform -> "uniform"
        | MixedLength -> "mixed-length"
        | CarryChain -> "carry-chain"
        | NinePairs -> "nine-pairs"
        | Edge -> "edge"

type Generator = { Kind: GeneratorKind; Name: string; Description: string; Gen: Gen<int64 * int64> option }

let generators =
    [ Uniform, "both operands uniform 10-digit", Some uniform
      MixedLength, "each operand's length uniform 1..10, then uniform of that length", Some mixedLength
      CarryChain, "a carry running through digit pairs summing to 9 (runs of 9s) across 10^k", Some carryChain
      NinePairs, "every digit pair sums to 9 (b = 10^n - 1 - a)", Some ninePairs
      Edge, sprintf "all %d edge cases (AdderBoard's and boundary operands), not sampled" edgeCases.Length, None ]
    |> List.map (fun (kind, description, gen) -> { Kind = kind; Name = kind.Name; Description = description; Gen = gen })

/// A generator and its index in `generators` (which, with the run's seed, seeds its blocks).
let generator (kind: GeneratorKind) =
    let index = generators |> List.findIndex (fun g -> g.Kind = kind)
    index, generators.[index]

let generatorNames = generators |> List.map (fun g -> g.Name)

let parseGenerators (text: string) =
    let names = text.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries) |> List.ofArray
    if names.IsEmpty then raise (AdderException "--generators is empty")
    [ for n in names ->
        match generators |> List.tryFind (fun g -> g.Name = n) with
        | Some g -> g
        | None -> raise (AdderException(sprintf "unknown generator '%s' (known: %s)" (Limits.Echo n) (String.concat ", " generatorNames))) ]
    |> List.distinctBy (fun g -> g.Name)

/// Wilson score interval for a binomial proportion at 95% (z = 1.96).
let wilson (failures: int) (n: int) =
    if n = 0 then 0.0, 1.0
    else
        let z = 1.959963984540054
        let p = float failures / float n
        let n = float n
        let denominator = 1.0 + z * z / n
        let centre = (p + z * z / (2.0 * n)) / denominator
        let half = z / denominator * sqrt (p * (1.0 - p) / n + z * z / (4.0 * n * n))
        max 0.0 (centre - half), min 1.0 (centre + half)

type Counterexample =
    { A: int64; B: int64; Predicted: string; ShrunkA: int64; ShrunkB: int64; ShrunkExpected: int64; ShrunkPredicted: string; ShrinkSteps: int }

type GeneratorReport =
    { Name: string
      Description: string
      Examples: int
      Failures: int
      ErrorRate: float
      Low95: float
      High95: float
      Counterexamples: Counterexample list }

type Report =
    { Checkpoint: string
      Seed: int64
      Count: int
      Seconds: float
      /// examples sampled and decoded per second (shrinking not counted)
      SumsPerSecond: float
      Generators: GeneratorReport list }

/// Pairs are sampled and decoded in blocks of this many; each block has its own FsCheck seed derived from
/// (run seed, generator, block), so the pairs do not depend on anything but --seed and --count.
let blockSize = 1 <<< 16

let private blockSeed (seed: int64) (generator: int) (block: int) =
    // SplitMix64's finaliser over the three numbers: distinct, well-mixed seeds
    let mutable z = uint64 seed * 0x9E3779B97F4A7C15UL + uint64 generator * 0xBF58476D1CE4E5B9UL + uint64 block * 0x94D049BB133111EBUL
    z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
    z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
    z ^^^ (z >>> 31)

/// The pairs of one block of a sampled generator: its 8 parts of blockSize / 8 pairs are sampled in parallel,
/// each with its own FsCheck seed, so sampling keeps up with decoding on all cores.
let sample (gen: Gen<int64 * int64>) (seed: int64) (generator: int) (block: int) (count: int) =
    let partSize = blockSize / 8
    let parts = (count + partSize - 1) / partSize
    let results = Array.zeroCreate<(int64 * int64)[]> parts
    Threading.Tasks.Parallel.For(0, parts, fun p ->
        let n = min partSize (count - p * partSize)
        results.[p] <- Gen.sampleWithSeed (Rnd(blockSeed seed generator (block * 8 + p))) 100 n gen) |> ignore
    Array.concat results

/// Candidate simpler pairs, simplest first: FsCheck's int64 shrinks of a (b kept), of b (a kept), then each
/// non-zero digit of a or b set to 0. Candidates stay in [0, 10^10).
let shrinkCandidates (a: int64, b: int64) =
    let shrink = ArbMap.defaults |> ArbMap.arbitrary<int64> |> Arb.toShrink
    let digitZeroed (x: int64) = [ for k in 0 .. 9 do if (x / pow10.[k]) % 10L <> 0L then yield x - ((x / pow10.[k]) % 10L) * pow10.[k] ]
    [ for x in shrink a do if x >= 0L then yield x, b
      for y in shrink b do if y >= 0L then yield a, y
      for x in digitZeroed a -> x, b
      for y in digitZeroed b -> a, y ]
    |> List.distinct

/// What is checked: something that returns the pairs it gets wrong, in input order, asked at most Chunk pairs
/// at a time (progress is reported after each).
type Subject = { Failures: (int64 * int64)[] -> Evaluation.Failure list; Chunk: int }

/// The backend's model 0, decoded a whole block at a time.
let ofBackend (backend: IBackend) =
    { Failures =
        fun pairs -> (Evaluation.evaluateSet backend 0 "" (Array.map fst pairs) (Array.map snd pairs)).Failures
      Chunk = blockSize }

/// An AdderBoard submission through Python: a few hundred sums a second, so asked in chunks that keep progress moving.
let ofSubmission (session: Submission.Session) = { Failures = session.Failures; Chunk = 512 }

/// Greedy shrinking: each round decodes all candidates of the current pair in one batch and moves to the first
/// that still fails; stops when none fails (or after maxRounds). Only passing pairs are remembered: a failing
/// candidate passed over in one round may be the way on from a later one. Every move makes a or b smaller, so
/// it ends.
let shrinkFailure (subject: Subject) (a: int64, b: int64) (predicted: string) =
    let maxRounds = 200
    let passed = Collections.Generic.HashSet<int64 * int64>()
    let rec go (pair: int64 * int64) (pred: string) (steps: int) =
        if steps >= maxRounds then pair, pred, steps
        else
            let candidates = shrinkCandidates pair |> List.filter (passed.Contains >> not) |> Array.ofList
            if candidates.Length = 0 then pair, pred, steps
            else
                let failed = subject.Failures candidates
                let failing = Collections.Generic.HashSet<int64 * int64>([ for f in failed -> f.A, f.B ])
                for c in candidates do if not (failing.Contains c) then passed.Add c |> ignore
                // Failures come in input order, so the first is the simplest candidate that fails
                match failed with
                | f :: _ -> go (f.A, f.B) f.Predicted (steps + 1)
                | [] -> pair, pred, steps
    let (sa, sb), sp, steps = go (a, b) predicted 0
    { A = a; B = b; Predicted = predicted; ShrunkA = sa; ShrunkB = sb; ShrunkExpected = sa + sb; ShrunkPredicted = sp; ShrinkSteps = steps }

/// Runs the property over each generator: count examples each (the edge cases: all of them), decoded in blocks;
/// the first maxShown failures of each generator are shrunk. progress gets (generator, done, total) per block.
let run (checkpointName: string) (subject: Subject) (selected: Generator list) (count: int) (seed: int64) (maxShown: int)
        (progress: string -> int -> int -> unit) =
    if count <= 0 then raise (AdderException(sprintf "--count must be positive, got %d" count))
    let watch = Stopwatch.StartNew()
    let mutable decoded = 0L
    let mutable decodeSeconds = 0.0   // sampling and decoding, not shrinking
    let reports =
        [ for g in selected ->
            let index = fst (generator g.Kind)
            let failures = ResizeArray<int64 * int64 * string>()
            let mutable failureCount = 0
            let total = match g.Gen with Some _ -> count | None -> edgeCases.Length
            let blocks = (total + blockSize - 1) / blockSize
            let pairsOf (block: int) =
                let first = block * blockSize
                let n = min blockSize (total - first)
                match g.Gen with
                | Some gen -> sample gen seed index block n
                | None -> edgeCases.[first .. first + n - 1]
            // the next block is sampled while this one decodes (its seed depends only on its number)
            let mutable next = Threading.Tasks.Task.Run(fun () -> pairsOf 0)
            let mutable doneCount = 0
            let t = Stopwatch.StartNew()
            for block in 0 .. blocks - 1 do
                let pairs = next.Result
                if block + 1 < blocks then next <- Threading.Tasks.Task.Run(fun () -> pairsOf (block + 1))
                for first in 0 .. subject.Chunk .. pairs.Length - 1 do
                    let chunk = pairs.[first .. min pairs.Length (first + subject.Chunk) - 1]
                    let failed = subject.Failures chunk
                    decoded <- decoded + int64 chunk.Length
                    failureCount <- failureCount + failed.Length
                    for f in failed do
                        if failures.Count < maxShown then failures.Add(f.A, f.B, f.Predicted)
                    doneCount <- doneCount + chunk.Length
                    progress g.Name doneCount total
            decodeSeconds <- decodeSeconds + t.Elapsed.TotalSeconds
            let low, high = wilson failureCount total
            { Name = g.Name
              Description = g.Description
              Examples = total
              Failures = failureCount
              ErrorRate = float failureCount / float total
              Low95 = low
              High95 = high
              Counterexamples = [ for a, b, p in failures -> shrinkFailure subject (a, b) p ] } ]
    { Checkpoint = checkpointName
      Seed = seed
      Count = count
      Seconds = watch.Elapsed.TotalSeconds
      SumsPerSecond = if decodeSeconds > 0.0 then float decoded / decodeSeconds else 0.0
      Generators = reports }
