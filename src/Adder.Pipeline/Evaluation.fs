/// Exact-match evaluation of a model on held-out sums (SPEC sections 3 and 5).
module Adder.Pipeline.Evaluation

open System
open System.Diagnostics
open Adder.Core

type Failure = { Set: string; A: int64; B: int64; Expected: int64; Predicted: string }

type SetResult =
    { Name: string
      Examples: int
      Errors: int
      ExactMatch: float
      TokenAccuracy: float
      Failures: Failure list }

type Report =
    { Checkpoint: string
      Suite: string
      Sets: SetResult list
      Total: SetResult
      Seconds: float }

/// The model's answer as text: its 11 reversed tokens read back most significant first, leading zeros dropped.
let predictedText (tokens: ReadOnlySpan<int>) =
    let value = Tokens.DecodeReversedSum tokens
    if value >= 0L then string value
    else
        let names = Array.zeroCreate<string> tokens.Length
        for i in 0 .. tokens.Length - 1 do names.[tokens.Length - 1 - i] <- Tokens.Name tokens.[i]
        String.Join("", names)

/// Greedy-decodes every pair with one of the backend's models and scores it: exact match on all 11 digits,
/// token accuracy per digit. prompts: the pairs' prompts (Tokens.EncodePromptBatch), kept by a caller that
/// decodes the same set again (a run's validation set).
let evaluatePrompts (backend: IBackend) (model: int) (name: string) (a: int64[]) (b: int64[]) (prompts: int[]) =
    let n = a.Length
    let output = Array.zeroCreate<int> (n * Tokens.SumDigits)
    if n > 0 then backend.Decode(model, ReadOnlySpan prompts, n, Span output)
    let mutable errors = 0
    let mutable correctDigits = 0L
    let failures = ResizeArray()
    for i in 0 .. n - 1 do
        let tokens = ReadOnlySpan(output, i * Tokens.SumDigits, Tokens.SumDigits)
        // nearly every answer is right: one pass reads it back; only a wrong one is scored digit by digit
        if Tokens.DecodeReversedSum tokens = a.[i] + b.[i] then correctDigits <- correctDigits + int64 Tokens.SumDigits
        else
            let mutable sum = a.[i] + b.[i]
            for k in 0 .. Tokens.SumDigits - 1 do
                if tokens.[k] = int (sum % 10L) then correctDigits <- correctDigits + 1L
                sum <- sum / 10L
            errors <- errors + 1
            failures.Add { Set = name; A = a.[i]; B = b.[i]; Expected = a.[i] + b.[i]; Predicted = predictedText tokens }
    { Name = name
      Examples = n
      Errors = errors
      ExactMatch = if n = 0 then 0.0 else float (n - errors) / float n
      TokenAccuracy = if n = 0 then 0.0 else float correctDigits / float (int64 n * int64 Tokens.SumDigits)
      Failures = List.ofSeq failures }

let evaluateSet (backend: IBackend) (model: int) (name: string) (a: int64[]) (b: int64[]) =
    evaluatePrompts backend model name a b (backend.Config.Format.EncodePromptBatch(a, b))

let total (sets: SetResult list) =
    let examples = sets |> List.sumBy (fun s -> s.Examples)
    let errors = sets |> List.sumBy (fun s -> s.Errors)
    let digits = sets |> List.sumBy (fun s -> s.TokenAccuracy * float s.Examples)
    { Name = "total"
      Examples = examples
      Errors = errors
      ExactMatch = if examples = 0 then 0.0 else float (examples - errors) / float examples
      TokenAccuracy = if examples = 0 then 0.0 else digits / float examples
      Failures = sets |> List.collect (fun s -> s.Failures) }

/// The reference suite: the TEST part of holdout(5000, 10000, s) for the ten published seeds.
let referenceSets () =
    [ for seed in Holdout.ReferenceSuiteSeeds ->
        let split = Batches.holdout seed
        sprintf "seed %d" seed, split.Test |> Array.map (fun p -> p.A), split.Test |> Array.map (fun p -> p.B) ]

/// Uniform random pairs in [0, 10^10) from the torch-compatible generator.
let randomSet (count: int) (seed: int64) =
    if count <= 0 then fail "--count must be positive, got %d" count
    if count > Limits.MaxEvalCount then fail "--count %d is more than the limit of %d" count Limits.MaxEvalCount
    let rng = TorchGenerator(uint64 seed)
    let a = Array.zeroCreate<int64> count
    let b = Array.zeroCreate<int64> count
    for i in 0 .. count - 1 do
        a.[i] <- rng.RandInt(0L, Tokens.MaxOperand + 1L)
        b.[i] <- rng.RandInt(0L, Tokens.MaxOperand + 1L)
    [ sprintf "random seed %d" seed, a, b ]

/// Evaluates the backend's model 0 on every set.
let run (checkpointName: string) (suite: string) (backend: IBackend) (sets: (string * int64[] * int64[]) list) =
    let watch = Stopwatch.StartNew()
    let results = [ for name, a, b in sets -> evaluateSet backend 0 name a b ]
    { Checkpoint = checkpointName; Suite = suite; Sets = results; Total = total results; Seconds = watch.Elapsed.TotalSeconds }
