/// AdderBoard's verification protocol (../shared/reference/ADDERBOARD.md): its 10 edge cases and the 10,000
/// pairs of Python's random.Random(2025), a then b from rng.randint(0, 9999999999).
module Adder.Pipeline.AdderBoard

open Adder.Core

let maxOperand = Tokens.MaxOperand

let edgeCases =
    [| 0L, 0L; 0L, 1L; maxOperand, 0L; maxOperand, 1L; maxOperand, maxOperand; 5_000_000_000L, 5_000_000_000L
       1_111_111_111L, 8_888_888_889L; 1_234_567_890L, 9_876_543_210L; maxOperand, maxOperand; 1L, maxOperand |]

let randomSeed = 2025
let randomCount = 10_000

/// The random pairs exactly as AdderBoard's verify.py draws them.
let randomPairs () =
    let rng = PythonRandom(System.Numerics.BigInteger randomSeed)
    Array.init randomCount (fun _ ->
        let a = rng.RandInt(0L, maxOperand)
        let b = rng.RandInt(0L, maxOperand)
        a, b)

/// The suite as evaluation sets: "edge cases" then "random(2025)".
let sets () =
    let random = randomPairs ()
    [ "edge cases", Array.map fst edgeCases, Array.map snd edgeCases
      sprintf "random(%d)" randomSeed, Array.map fst random, Array.map snd random ]

/// The pairs a submission is checked on.
let total = edgeCases.Length + randomCount
