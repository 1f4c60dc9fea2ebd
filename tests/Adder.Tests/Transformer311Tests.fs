/// The 311p's specialised CPU code (Transformer311) must stay bit-for-bit the generic code (Transformer):
/// training's fingerprint rests on it, and the generic code is what the golden tests check.
module Adder.Tests.Transformer311Tests

open System
open Xunit
open Adder.Core
open Adder.Core.Cpu
open System.Runtime.Intrinsics

let private W = LaneMath.Width

let private bits (v: float32) = BitConverter.SingleToInt32Bits v

/// Every lane of two lane-vector arrays, bit for bit.
let private sameLanes (what: string) (expected: Vector512<float32>[]) (got: Vector512<float32>[]) =
    Assert.Equal(expected.Length, got.Length)
    for i in 0 .. expected.Length - 1 do
        for lane in 0 .. W - 1 do
            if bits expected.[i].[lane] <> bits got.[i].[lane] then
                failwithf "%s[%d] lane %d: generic %.9g, specialised %.9g" what i lane expected.[i].[lane] got.[i].[lane]

/// A random 311p (values spread wider than the initialisation, so every path carries sizeable numbers) and
/// random sums of 1 to 10 digits, `active` real lanes and the rest padding (weight 0), as a training chunk has.
let private chunk (rng: Random) (layout: ParameterLayout) (active: int) =
    let p = Array.init layout.Count (fun _ -> float32 (rng.NextDouble() * 2.0 - 1.0) * 0.8f)
    let a = Activations(layout.Config)
    for lane in 0 .. W - 1 do
        let operand () = rng.NextInt64(0L, pown 10L (rng.Next(1, 11)))
        let full = if lane < active then Tokens.EncodeFull(operand (), operand ()) else Tokens.EncodeFull(0L, 0L)
        for t in 0 .. Tokens.FullLength - 1 do a.Tokens.[t * W + lane] <- full.[t]
    p, a

[<Fact>]
let ``the specialised 311p forward and backward equal the generic code bit for bit`` () =
    let config = ModelConfig.Preset311
    Assert.True(Transformer311.Matches config)
    let layout = ParameterLayout(config)
    let rng = Random(311)
    for trial in 0 .. 5 do
        let p, generic = chunk rng layout (if trial % 2 = 0 then W else 1 + rng.Next(W - 1))
        let special = Activations(config)
        Array.blit generic.Tokens 0 special.Tokens 0 generic.Tokens.Length
        let posTable = Array.zeroCreate<float32> (config.MaxSeqLen * config.DModel)
        let position = layout.Position
        Layers.PositionForward(p, &position, Span posTable)
        for t in 0 .. Tokens.InputLength - 1 do
            Transformer.ForwardPosition(p, layout, posTable, generic, t)
            Transformer311.ForwardPosition(p, layout, posTable, special, t)
        for name, pick in
            [ "X", (fun (a: Activations) -> a.X); "Ln1Hat", (fun a -> a.Ln1Hat); "N1", (fun a -> a.N1); "Ln1Rstd", (fun a -> a.Ln1Rstd)
              "QkvHidden", (fun a -> a.QkvHidden); "Q", (fun a -> a.Q); "K", (fun a -> a.K); "Att", (fun a -> a.Att); "Y", (fun a -> a.Y)
              "ProjHidden", (fun a -> a.ProjHidden); "XMid", (fun a -> a.XMid); "Ln2Hat", (fun a -> a.Ln2Hat); "N2", (fun a -> a.N2)
              "Ln2Rstd", (fun a -> a.Ln2Rstd); "Fc1Hidden", (fun a -> a.Fc1Hidden); "Fc2Hidden", (fun a -> a.Fc2Hidden); "U", (fun a -> a.U)
              "G", (fun a -> a.G); "LnFHat", (fun a -> a.LnFHat); "Z", (fun a -> a.Z); "LnFRstd", (fun a -> a.LnFRstd) ] do
            sameLanes name (pick generic) (pick special)
        // a weight per lane as the backend gives it (0 for padding), and the backward run twice into the same
        // buffers, as a gradient partition sums several chunks
        let w = Array.init W (fun lane -> if rng.Next(4) = 0 then 0f else 1f / float32 (512 * Tokens.ScoredPositions))
        let weight = Vector512.Create<float32>(ReadOnlySpan w)
        let gg, gs = Transformer.Gradients(layout, generic), Transformer.Gradients(layout, special)
        for _ in 1 .. 2 do
            Transformer.Backward(p, layout, generic, gg, weight)
            Transformer311.Backward(p, layout, special, gs, weight)
        sameLanes "Loss" [| gg.Loss |] [| gs.Loss |]
        for tensor in layout.Tensors do
            sameLanes tensor.Name gg.Grad.[tensor.Offset .. tensor.Offset + tensor.Size - 1] gs.Grad.[tensor.Offset .. tensor.Offset + tensor.Size - 1]
        sameLanes "DPos" gg.DPos gs.DPos
        sameLanes "DKeys" gg.DKeys gs.DKeys
        Assert.Equal<int>(Array.map bits gg.DEmbed, Array.map bits gs.DEmbed)
        Assert.True(Vector512.Sum gs.Loss > 0f, "the chunks carry a loss")

[<Fact>]
let ``only the 311p takes the specialised path`` () =
    Assert.True(Transformer311.Matches(ModelConfig.Preset "311p"))
    for name in [ "275p"; "wide" ] do Assert.False(Transformer311.Matches(ModelConfig.Preset name), name)
    Assert.False(Transformer311.Matches(ModelConfig(UseRmsNorm = false)))
