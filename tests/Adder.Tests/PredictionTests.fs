/// adder predict never prints an answer that is not a number: a model decoding other tokens is an error naming the pair.
module Adder.Tests.PredictionTests

open System
open System.IO
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests

/// An untrained model and a pair it answers with a token that is not a digit.
let private nonDigitAnswer () =
    let pairs = [| 0L, 0L; 1L, 2L; 1234567890L, 9876543210L; 9999999999L, 9999999999L; 5L, 5000000000L |]
    seq {
        for seed in 0 .. 200 do
            let model = Model.Initialised(ModelConfig.Preset311, seed)
            use backend = backendOn "cpu" model
            let decoded = decodeOn backend (Array.map fst pairs) (Array.map snd pairs)
            for i in 0 .. pairs.Length - 1 do
                if decoded.[i * Tokens.SumDigits .. (i + 1) * Tokens.SumDigits - 1] |> Array.exists (fun t -> t > 9) then
                    yield model, pairs.[i] }
    |> Seq.head

[<Fact>]
let ``predict ends with a one-line error naming the pair when the answer is not a number`` () =
    let model, (a, b) = nonDigitAnswer ()
    let ckpt = Path.Combine(tempDir (), "untrained.safetensors")
    Checkpoint(model, Collections.Generic.Dictionary()).Save ckpt
    let r = run [ "predict"; "-c"; ckpt; string a; string b ]
    Assert.Equal(1, r.Code)
    assertOneLineError (sprintf "the model's answer to %d + %d is not a number" a b) r
    Assert.Equal("", r.Out)
    // in a file: the error names the line; the batches before it were printed, the bad one is not
    let r = adder (Some(sprintf "# pairs\n%d %d\n" a b)) [ "predict"; "-c"; ckpt; "--file"; "-" ]
    Assert.Equal(1, r.Code)
    assertOneLineError (sprintf "line 2: the model's answer to %d + %d is not a number" a b) r
    Assert.Equal("", r.Out)
