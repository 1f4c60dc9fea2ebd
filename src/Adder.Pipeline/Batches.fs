/// A cohort's training batches (SPEC section 6): one data stream a model, each with its own sampler, drawn a step at
/// a time into one token buffer [streams][batch][34]. The streams are drawn in parallel: each has its own sampler,
/// pair arrays and slice of the buffer, so the batches do not depend on the thread count.
module Adder.Pipeline.Batches

open System
open System.Threading.Tasks
open Adder.Core

/// Changes a stream's batch after its sampler drew it: (stream index, step, a, b). Targeted fine-tuning (Targeted)
/// mixes mined failures in; a plain run leaves the batch alone. Called from several threads at once.
type BatchMix = int -> int -> int64[] -> int64[] -> unit

let noMix: BatchMix = fun _ _ _ _ -> ()

/// Carry-mix's replacements first (stream i from its run's seed, as wide as the curriculum's phase at the step),
/// then `mix` (targeted fine-tuning's failures).
let withCarryMix (carry: CarryMix) (curriculum: Curriculum) (seeds: int[]) (mix: BatchMix) : BatchMix =
    if not carry.Active then mix
    else
        fun i step a b ->
            let phase = curriculum.At step
            carry.Apply(int64 seeds.[i], step, i, phase.MinDigits, phase.MaxDigits, Span a, Span b)
            mix i step a b

/// A run's reserved pairs (SPEC section 6): 5,000 validation and 10,000 test pairs, drawn from the run's seed.
let validationPairs, testPairs = 5000, 10000

let holdout (seed: int) = Holdout.Build(validationPairs, testPairs, seed)

/// A run's data stream: its sampler, seeded with the run's seed + 1337, never drawing the reserved pairs.
let sampler (seed: int) (reserved: Holdout) (curriculum: Curriculum) = Sampler(int64 seed + 1337L, reserved, curriculum)

/// The data streams of a cohort's runs (one sampler each, in member order) and the pair arrays each draws into.
type Streams(format: TokenFormat, samplers: Sampler[], batch: int, mix: BatchMix) =
    let a = samplers |> Array.map (fun _ -> Array.zeroCreate<int64> batch)
    let b = samplers |> Array.map (fun _ -> Array.zeroCreate<int64> batch)
    let before = samplers |> Array.map (fun _ -> Array.zeroCreate<uint32> Mt19937.StateLength)

    /// The tokens of one step of every stream.
    member _.TokenCount = samplers.Length * batch * format.FullLength

    /// Draws step `step`'s batch of every stream into `into` (stream i's at i·batch·34).
    member _.Draw(into: int[], step: int) =
        let per = batch * format.FullLength
        let one i =
            samplers.[i].GetState(Span before.[i])
            samplers.[i].NextBatch(step, a.[i], b.[i])
            mix i step a.[i] b.[i]
            format.EncodeFullBatch(ReadOnlySpan a.[i], ReadOnlySpan b.[i], Span(into, i * per, per))
        if samplers.Length = 1 then one 0 else Parallel.For(0, samplers.Length, one) |> ignore

    /// Stream i's sampler state before its last draw: what a checkpoint saves when that draw was the next step's,
    /// made ahead while this step trained (a resumed run draws the batch again).
    member _.StateBeforeDraw(i: int) = Array.copy before.[i]
