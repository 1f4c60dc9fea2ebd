/// Speed measurements: median of several timed windows after a warm-up, with counted FLOPs.
module Adder.Pipeline.Benchmarks

open System
open System.Diagnostics
open Adder.Core

/// Floating-point operations of one sequence's forward pass over `positions` positions, counting a
/// multiply-add as 2 and exp/erf/sqrt/division as 1 (lower bound on the work, not on the instructions).
let forwardFlops (c: ModelConfig) (positions: int) (headPositions: int) =
    let linear inDim outDim rank = if rank > 0 then 2 * (inDim * rank + rank * outDim) else 2 * inDim * outDim
    let d, f = c.DModel, c.DFf
    let norm = 4 * d + 2
    let qkv =
        if c.TieQkv = TieModes.ShareATieKV then 2 * (d * c.QkvRank + 2 * c.QkvRank * d)
        else 3 * linear d d c.QkvRank
    let mutable total = 0L
    for t in 0 .. positions - 1 do
        let keys = t + 1
        let attention = 4 * keys * d + 4 * keys * c.NHead // scores, weighted values; max, exp, sum, scale
        let block = norm + qkv + attention + linear d d c.AttnOutRank + d + norm + linear d f c.FfnRank + 8 * f + linear f d c.FfnRank + d
        total <- total + int64 (d + c.NLayer * block + norm)
    total + int64 headPositions * int64 (2 * c.VocabSize * d + 3 * c.VocabSize)

/// A training step: forward over 33 positions with the head at 12, backward ≈ twice the forward.
let trainStepFlops (c: ModelConfig) (batch: int) =
    3L * forwardFlops c Tokens.InputLength Tokens.ScoredPositions * int64 batch

/// Greedy decoding of one example: 32 positions, the head at 11 of them.
let decodeFlops (c: ModelConfig) = forwardFlops c (Tokens.FirstScoredPosition + Tokens.SumDigits) Tokens.SumDigits

let median (xs: float seq) =
    let a = Seq.toArray xs |> Array.sort
    if a.Length = 0 then nan
    elif a.Length % 2 = 1 then a.[a.Length / 2]
    else (a.[a.Length / 2 - 1] + a.[a.Length / 2]) / 2.0

type TrainBench =
    { StepsPerSecond: float; Windows: float list; FlopsPerStep: int64; Batch: int; Models: int; EncodeSeconds: float }

/// Times the backend's training step (loss and gradient, clipping, AdamW) of all the models it holds, each on
/// its own batch of random 10-digit pairs; and separately the data layer's encoding of one model's batch (a
/// training run does both; a GPU sweep of many models is bounded by the slower of the two). A step of M models
/// is M model-steps.
let benchTrain (backend: IBackend) (batch: int) (windows: int) =
    let config = backend.Config
    let models = backend.Models
    let n = backend.Layout.Count
    for m in 0 .. models - 1 do
        backend.SetParameters(m, ReadOnlySpan (Model.Initialised(config, 1 + m)).Parameters)
        backend.SetOptimizer(m, OptimizerState(0L, Array.zeroCreate n, Array.zeroCreate n))
    let rng = TorchGenerator(1UL)
    let pairs () =
        Array.init batch (fun _ -> rng.RandInt(0L, 10_000_000_000L)), Array.init batch (fun _ -> rng.RandInt(0L, 10_000_000_000L))
    let a, b = pairs ()
    let tokens = Array.zeroCreate<int> (models * batch * Tokens.FullLength)
    for m in 0 .. models - 1 do
        let a, b = if m = 0 then a, b else pairs ()
        Tokens.EncodeFullBatch(a, b, Span(tokens, m * batch * Tokens.FullLength, batch * Tokens.FullLength))
    let results = Array.zeroCreate<StepResult> models
    let settings = StepSettings(1e-3, 0.01, 1.0, AdamW.DefaultBeta1, AdamW.DefaultBeta2, AdamW.DefaultEps)
    let step () = backend.TrainStep(ReadOnlySpan tokens, batch, &settings, Span results)
    // warm-up: JIT tiers, caches, thread pool, the CUDA graph's capture
    let warm = Stopwatch.StartNew()
    while warm.Elapsed.TotalSeconds < 2.0 do step ()
    let timed (work: unit -> unit) =
        [ for _ in 1 .. windows ->
            let watch = Stopwatch.StartNew()
            let mutable steps = 0
            while watch.Elapsed.TotalSeconds < 1.0 do
                work ()
                steps <- steps + 1
            float steps / watch.Elapsed.TotalSeconds ]
    let rates = timed step
    let one = Array.zeroCreate<int> (batch * Tokens.FullLength)
    let encodeRate = timed (fun () -> Tokens.EncodeFullBatch(a, b, Span one)) |> median
    { StepsPerSecond = median rates; Windows = rates; FlopsPerStep = trainStepFlops config batch; Batch = batch; Models = models
      EncodeSeconds = 1.0 / encodeRate }

type EvalBench = { ExamplesPerSecond: float; SecondsPer100k: float; Windows: float list; FlopsPerExample: int64; EncodeSeconds: float }

/// Times greedy decoding of 100,000 uniform random pairs (the backend's work), and separately the data
/// layer's encoding of their prompts (median of as many windows).
let benchEval (backend: IBackend) (model: Model) (windows: int) =
    backend.SetParameters(0, ReadOnlySpan model.Parameters)
    let n = 100_000
    let rng = TorchGenerator(2UL)
    let a = Array.init n (fun _ -> rng.RandInt(0L, 10_000_000_000L))
    let b = Array.init n (fun _ -> rng.RandInt(0L, 10_000_000_000L))
    let output = Array.zeroCreate<int> (n * Tokens.SumDigits)
    let prompts = Tokens.EncodePromptBatch(a, b)
    let time (work: unit -> unit) =
        for _ in 1 .. 3 do work ()
        [ for _ in 1 .. windows ->
            let watch = Stopwatch.StartNew()
            work ()
            watch.Elapsed.TotalSeconds ]
    let seconds = time (fun () -> backend.Decode(0, ReadOnlySpan prompts, n, Span output))
    let encode = time (fun () -> Tokens.EncodePromptBatch(a, b) |> ignore) |> median
    let med = median seconds
    { ExamplesPerSecond = float n / med; SecondsPer100k = med; Windows = seconds; FlopsPerExample = decodeFlops model.Config
      EncodeSeconds = encode }
