module Adder.Tests.ForwardTests

open System
open Xunit
open Xunit.Abstractions
open FsCheck
open FsCheck.FSharp
open Adder.Core
open Adder.Core.Cpu
open Adder.Tests.Shared

let reference = lazy (Checkpoint.Load(referenceCheckpoint ()).Model)

[<Theory; MemberData("All", MemberType = typeof<Devices>)>]
let ``teacher-forced logits of the published checkpoint match the float64 golden`` (device: string) =
    let golden = goldenJson "reference_logits.json"
    let model = reference.Force()
    let cases = [| for c in golden.GetProperty("cases").EnumerateArray() -> c |]
    let a = cases |> Array.map (fun c -> c.GetProperty("a").GetInt64())
    let b = cases |> Array.map (fun c -> c.GetProperty("b").GetInt64())
    use backend = backendOn device model
    let logits = logitsOf backend a b
    // This checkpoint's logits reach ±190 and its activations are ill-conditioned: rounding only the
    // stage outputs of an exact float64 forward to float32 already moves logits by up to 4.4e-3. So the
    // bound is 1e-4 relative to each row's largest logit (about 1e-2 absolute), and the argmax must agree.
    let mutable worst = 0.0
    let absolute = Collections.Generic.List<float>()
    cases |> Array.iteri (fun i c ->
        let tokens = [| for x in c.GetProperty("input_tokens").EnumerateArray() -> x.GetInt32() |]
        Assert.Equal<int[]>(tokens, (Tokens.EncodeFull(a.[i], b.[i])).[0..32])
        c.GetProperty("logits").EnumerateArray() |> Seq.iteri (fun t row ->
            let expected = [| for x in row.EnumerateArray() -> x.GetDouble() |]
            let got = Array.init 14 (fun v -> float logits.[(i * 33 + t) * 14 + v])
            let scale = expected |> Array.map abs |> Array.max
            let errors = Array.map2 (fun g e -> abs (g - e)) got expected
            absolute.AddRange errors
            let err = Array.max errors
            worst <- max worst (err / scale)
            Assert.Equal(Array.findIndex ((=) (Array.max expected)) expected, Array.findIndex ((=) (Array.max got)) got)))
    Assert.True(worst < 1e-4, sprintf "largest logit difference relative to the row's scale %g" worst)
    // and typically the float32 forward is within the README's "about 1e-4 absolute"
    let median = absolute |> Seq.sort |> Seq.item (absolute.Count / 2)
    Assert.True(median < 1e-4, sprintf "median absolute logit difference %g" median)

[<Theory; MemberData("All", MemberType = typeof<Devices>)>]
let ``a sequence's logits do not depend on its lane or batch`` (device: string) =
    let model = reference.Force()
    use backend = backendOn device model
    let rng = Random(7)
    let a = Array.init 37 (fun _ -> rng.NextInt64(0L, Tokens.MaxOperand + 1L))
    let b = Array.init 37 (fun _ -> rng.NextInt64(0L, Tokens.MaxOperand + 1L))
    let all = logitsOf backend a b
    for i in [ 0; 15; 16; 36 ] do
        let alone = logitsOf backend [| a.[i] |] [| b.[i] |]
        Assert.Equal<float32[]>(alone, all.[i * 33 * 14 .. (i + 1) * 33 * 14 - 1])

[<Theory; MemberData("All", MemberType = typeof<Devices>)>]
let ``greedy decoding with the KV cache equals argmax of the full forward on its own output`` (device: string) =
    // Random weights make many wrong, varied answers, so the check covers more than correct sums.
    let model = Model.Initialised(ModelConfig.Preset311, 3)
    for i in 0 .. model.Parameters.Length - 1 do model.Parameters.[i] <- model.Parameters.[i] * 40.0f
    use backend = backendOn device model
    let rng = Random(11)
    let n = 50
    let a = Array.init n (fun _ -> rng.NextInt64(0L, Tokens.MaxOperand + 1L))
    let b = Array.init n (fun _ -> rng.NextInt64(0L, Tokens.MaxOperand + 1L))
    let decoded = decodeOn backend a b
    Assert.True(decoded |> Array.distinct |> Array.length > 2, "degenerate test: the model always outputs the same token")
    // Re-run teacher-forced over prompt ++ decoded digits (the backend's Logits verb): a forward of positions
    // 0..31 only reads positions ≤ t, so its argmax at 21..31 must reproduce the decoded tokens.
    let tokens = Array.zeroCreate<int> (n * Tokens.FullLength)
    for i in 0 .. n - 1 do
        Tokens.EncodePrompt(a.[i], b.[i], Span(tokens, i * 34, 22))
        for k in 0 .. 10 do tokens.[i * 34 + 22 + k] <- decoded.[i * 11 + k]
    let logits = Array.zeroCreate<float32> (n * 33 * 14)
    backend.Logits(0, ReadOnlySpan tokens, n, Span logits)
    for i in 0 .. n - 1 do
        for t in 21 .. 31 do
            let row = logits.[(i * 33 + t) * 14 .. (i * 33 + t) * 14 + 13]
            // lowest index on ties (SPEC section 3)
            Assert.Equal(decoded.[i * 11 + t - 21], Array.findIndex ((=) (Array.max row)) row)

type PublishedModelProperties(output: ITestOutputHelper) =
    [<Fact>]
    member _.``the published model adds at least 99.99% of 20,000 generated pairs exactly`` () =
        let model = reference.Force()
        let operand = Gen.choose64 (0L, Tokens.MaxOperand)
        let pairs = Gen.zip operand operand |> Gen.arrayOfLength 20_000 |> Gen.sampleWithSeed (Rnd(20261124UL)) 1 1 |> Array.head
        let a = pairs |> Array.map fst
        let b = pairs |> Array.map snd
        use backend = backendOn "cpu" model
        let decoded = decodeOn backend a b
        let correct =
            [| for i in 0 .. a.Length - 1 ->
                let predicted = Tokens.DecodeReversedSum(ReadOnlySpan(decoded, i * 11, 11))
                predicted >= 0L && Numerics.BigInteger predicted = Numerics.BigInteger a.[i] + Numerics.BigInteger b.[i] |]
            |> Array.filter id |> Array.length
        let rate = float correct / float a.Length
        output.WriteLine(sprintf "published model: %d / %d exact (%.4f%%)" correct a.Length (100.0 * rate))
        Assert.True(rate >= 0.9999, sprintf "exact match %.4f%% below 99.99%%" (100.0 * rate))

/// erf in double from its Maclaurin series (|x| < 3) and continued fraction for erfc (beyond), to check
/// the float32 rational approximation independently.
let erfReference (x: float) =
    let ax = abs x
    let value =
        if ax < 3.0 then
            let mutable term = ax
            let mutable sum = ax
            let mutable n = 0
            while abs term > 1e-17 * abs sum do
                n <- n + 1
                term <- -term * ax * ax / float n
                sum <- sum + term / float (2 * n + 1)
            2.0 / sqrt Math.PI * sum
        else
            // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
            let mutable f = ax
            for k in 60 .. -1 .. 1 do f <- ax + (float k / 2.0) / f
            1.0 - exp (-ax * ax) / sqrt Math.PI / f
    if x < 0.0 then -value else value

[<Fact>]
let ``float32 erf and GELU derivative agree with double references`` () =
    let xs = [| for i in -800 .. 800 -> float i / 100.0 |]
    let mutable worstErf = 0.0
    let mutable worstGrad = 0.0
    for x in xs do
        let v = System.Runtime.Intrinsics.Vector512.Create(float32 x)
        worstErf <- max worstErf (abs (float (LaneMath.Erf(v).[0]) - erfReference x))
        let h = 1e-5
        let gelu (u: float) = 0.5 * u * (1.0 + erfReference (u / sqrt 2.0))
        let numeric = (gelu (x + h) - gelu (x - h)) / (2.0 * h)
        worstGrad <- max worstGrad (abs (float (LaneMath.GeluGrad(v).[0]) - numeric))
    Assert.True(worstErf < 5e-7, sprintf "erf error %g" worstErf)
    Assert.True(worstGrad < 5e-6, sprintf "GELU derivative error %g" worstGrad)
