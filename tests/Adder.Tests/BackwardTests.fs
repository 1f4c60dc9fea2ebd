module Adder.Tests.BackwardTests

open Xunit
open Adder.Core
open Adder.Tests.Shared

[<Theory; MemberData("All", MemberType = typeof<Devices>)>]
let ``loss and gradient match the float64 gradcheck golden`` (device: string) =
    let golden = goldenJson "gradcheck_random_init.json"
    let model = modelFromGolden (golden.GetProperty "params")
    let a, b = pairs (golden.GetProperty "batch")
    use backend = backendOn device model
    let loss, grad = lossAndGradient backend a b
    let expectedLoss = golden.GetProperty("loss").GetDouble()
    Assert.True(abs (float loss - expectedLoss) / expectedLoss < 1e-5, sprintf "loss %f, golden %f" loss expectedLoss)
    let gradients = golden.GetProperty "grad"
    for t in model.Layout.Tensors do
        let expected = floats (gradients.GetProperty t.Name)
        let got = [| for i in 0 .. t.Size - 1 -> float grad.[t.Offset + i] |]
        let err = relativeError got expected
        Assert.True(err < 1e-4, sprintf "%s: relative error %g" t.Name err)
