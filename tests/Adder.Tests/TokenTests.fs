module Adder.Tests.TokenTests

open System
open System.Numerics
open Xunit
open FsCheck
open FsCheck.FSharp
open FsCheck.Xunit
open Adder.Core

let operand = Gen.choose64 (0L, Tokens.MaxOperand) |> Arb.fromGen

[<Fact>]
let ``full sequence matches SPEC section 1`` () =
    let full = Tokens.EncodeFull(1234567890L, 9876543210L)
    let expectedPrompt = [| 1;2;3;4;5;6;7;8;9;0; 10; 9;8;7;6;5;4;3;2;1;0; 11 |]
    Assert.Equal<int[]>(expectedPrompt, full.[0..21])
    // 1234567890 + 9876543210 = 11111111100, reversed: 0 0 1 1 1 1 1 1 1 1 1, then EOS
    Assert.Equal<int[]>([| 0;0;1;1;1;1;1;1;1;1;1; 13 |], full.[22..33])

[<Property(MaxTest = 2000)>]
let ``encode then decode gives the BigInteger sum`` () =
    Prop.forAll (Arb.zip (operand, operand)) (fun (a, b) ->
        let full = Tokens.EncodeFull(a, b)
        let decoded = Tokens.DecodeReversedSum(ReadOnlySpan(full, Tokens.PromptLength, Tokens.SumDigits))
        BigInteger decoded = BigInteger a + BigInteger b
        && full.[Tokens.FullLength - 1] = Tokens.Eos
        && Tokens.ParseOperand(string a) = a)

[<Theory>]
[<InlineData("-1")>]
[<InlineData("10000000000")>]
[<InlineData("12a")>]
[<InlineData("")>]
[<InlineData("1.5")>]
let ``bad operands are rejected with a message`` (text: string) =
    let ex = Assert.Throws<AdderException>(fun () -> Tokens.ParseOperand text |> ignore)
    Assert.False(String.IsNullOrWhiteSpace ex.Message)

[<Fact>]
let ``leading zeros and the largest operand are accepted`` () =
    Assert.Equal(Tokens.MaxOperand, Tokens.ParseOperand "9999999999")
    Assert.Equal(42L, Tokens.ParseOperand "000000000042")

[<Property(MaxTest = 2000)>]
let ``encoding matches the digits written out as text, one by one and in batches`` () =
    Prop.forAll (Arb.zip (operand, operand)) (fun (a, b) ->
        let digits (s: string) = [ for c in s -> int c - int '0' ]
        let expected =
            digits (a.ToString "D10") @ [ Tokens.Plus ] @ digits (b.ToString "D10") @ [ Tokens.EqualsSign ]
            @ (digits ((BigInteger a + BigInteger b).ToString "D11") |> List.rev) @ [ Tokens.Eos ]
        let batch = Tokens.EncodeFullBatch([| 7L; a |], [| 5L; b |])
        List.ofArray (Tokens.EncodeFull(a, b)) = expected
        && List.ofArray batch.[34..] = expected
        && List.ofArray (Tokens.EncodePromptBatch([| a |], [| b |])) = List.truncate 22 expected)

[<Fact>]
let ``a large batch (encoded on all cores) equals its examples encoded one by one`` () =
    let rng = Random(5)
    let n = 40_000
    let a = Array.init n (fun _ -> rng.NextInt64(0L, Tokens.MaxOperand + 1L))
    let b = Array.init n (fun _ -> rng.NextInt64(0L, Tokens.MaxOperand + 1L))
    let full = Tokens.EncodeFullBatch(a, b)
    let prompts = Tokens.EncodePromptBatch(a, b)
    for i in 0 .. n - 1 do
        let one = Tokens.EncodeFull(a.[i], b.[i])
        Assert.Equal<int[]>(one, full.[i * 34 .. i * 34 + 33])
        Assert.Equal<int[]>(one.[0..21], prompts.[i * 22 .. i * 22 + 21])
