/// Speed measurements: median of several timed windows after a warm-up, with counted FLOPs.
module Adder.Pipeline.Benchmarks

open System
open System.Diagnostics
open Adder.Core

/// Floating-point operations of one sequence's forward pass over `positions` positions, counting a
/// multiply-add as 2 and exp/erf/sqrt/division as 1 (lower bound on the work, not on the instructions).
let rec forwardFlops (c: ModelConfig) (positions: int) (headPositions: int) =
  match c.General with
  | null -> seedForwardFlops c positions headPositions
  | arch ->
    let a = arch.Compile()
    let norm = 4 * a.D + 2
    let qkNorm = if a.HasQkNorm then 2 * (4 * a.Dq + 2) else 0
    let rope = if isNull (box arch.RopeTheta) || not arch.RopeTheta.HasValue then 0 else 6 * a.Dq
    let mlp = if a.SwiGlu then 6 * a.D * a.F + 6 * a.F else 4 * a.D * a.F + 8 * a.F
    let mutable total = 0L
    for t in 0 .. positions - 1 do
        let keys = t + 1
        let attention = 2 * keys * a.Dq + 2 * keys * a.Dv + 4 * keys
        total <- total + int64 (a.D + 3 * norm + 2 * a.D * (2 * a.Dq + a.Dv) + qkNorm + rope + attention + 2 * a.D * a.Dv + mlp + 2 * a.D)
    total + int64 headPositions * int64 (2 * a.Vocab * a.D + 3 * a.Vocab)

and private seedForwardFlops (c: ModelConfig) (positions: int) (headPositions: int) =
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
    3L * forwardFlops c c.Format.InputLength c.Format.ScoredPositions * int64 batch

/// Greedy decoding of one example: 32 positions, the head at 11 of them.
let decodeFlops (c: ModelConfig) = forwardFlops c (c.Format.FirstScoredPosition + Tokens.SumDigits) Tokens.SumDigits

let median (xs: float seq) =
    let a = Seq.toArray xs |> Array.sort
    if a.Length = 0 then nan
    elif a.Length % 2 = 1 then a.[a.Length / 2]
    else (a.[a.Length / 2 - 1] + a.[a.Length / 2]) / 2.0

type TrainBench =
    { StepsPerSecond: float; Windows: float list; FlopsPerStep: int64; Batch: int; Models: int; DrawSeconds: float }

/// Times the backend's training step (loss and gradient, clipping, AdamW) of all the models it holds, each on
/// its own batch of 10-digit pairs (the samplers' batches of step 10,000, every length); and separately the
/// drawing of a step's batches of all the models (samplers and encoding, Batches.Streams, as the training loop:
/// it draws the next step's while the backend trains this one, so a run goes at the slower of the two). A step of
/// M models is M model-steps.
let benchTrain (backend: IBackend) (batch: int) (windows: int) =
    let config = backend.Config
    let models = backend.Models
    let n = backend.Layout.Count
    for m in 0 .. models - 1 do
        backend.SetParameters(m, ReadOnlySpan (Model.Initialised(config, 1 + m)).Parameters)
        backend.SetOptimizer(m, OptimizerState(0L, Array.zeroCreate n, Array.zeroCreate n))
    // the samplers of seeds 1..M, as a sweep's runs make them
    let samplers = Array.init models (fun m -> Batches.sampler (1 + m) (Batches.holdout (1 + m)) Curriculum.Base)
    let streams = Batches.Streams(config.Format, samplers, batch, Batches.noMix)
    let tokens = Array.zeroCreate<int> streams.TokenCount
    let drawStep = 10_000   // Curriculum.Base: every length from 1 to 10 digits
    streams.Draw(tokens, drawStep)
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
    let drawn = Array.zeroCreate<int> streams.TokenCount
    let drawRate = timed (fun () -> streams.Draw(drawn, drawStep)) |> median
    { StepsPerSecond = median rates; Windows = rates; FlopsPerStep = trainStepFlops config batch; Batch = batch; Models = models
      DrawSeconds = 1.0 / drawRate }

type EvalBench = { ExamplesPerSecond: float; SecondsPer100k: float; Windows: float list; FlopsPerExample: int64; EncodeSeconds: float }

/// Times greedy decoding of 100,000 uniform random pairs (the backend's work), and separately the data
/// layer's encoding of their prompts (median of as many windows).
let benchEval (backend: IBackend) (model: Model) (windows: int) =
    backend.SetParameters(0, ReadOnlySpan model.Parameters)
    let n = 100_000
    let rng = TorchGenerator(2UL)
    let a = Array.init n (fun _ -> rng.RandInt(0L, Tokens.MaxOperand + 1L))
    let b = Array.init n (fun _ -> rng.RandInt(0L, Tokens.MaxOperand + 1L))
    let output = Array.zeroCreate<int> (n * Tokens.SumDigits)
    let prompts = model.Config.Format.EncodePromptBatch(a, b)
    let time (work: unit -> unit) =
        for _ in 1 .. 3 do work ()
        [ for _ in 1 .. windows ->
            let watch = Stopwatch.StartNew()
            work ()
            watch.Elapsed.TotalSeconds ]
    let seconds = time (fun () -> backend.Decode(0, ReadOnlySpan prompts, n, Span output))
    let encode = time (fun () -> model.Config.Format.EncodePromptBatch(a, b) |> ignore) |> median
    let med = median seconds
    { ExamplesPerSecond = float n / med; SecondsPer100k = med; Windows = seconds; FlopsPerExample = decodeFlops model.Config
      EncodeSeconds = encode }
