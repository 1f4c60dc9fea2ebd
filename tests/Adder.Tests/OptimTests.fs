module Adder.Tests.OptimTests

open System
open Xunit
open Adder.Core
open Adder.Tests.Shared

[<Fact>]
let ``schedule: warm-up, cosine and floor at hand-computed points`` () =
    let at step = LrSchedule.At(step, 162000, 0.02, 1350, 0.1)
    Assert.Equal(0.02 / 1350.0, at 0, 15)
    Assert.Equal(0.02 * 675.0 / 1350.0, at 674, 15)
    Assert.Equal(0.02, at 1349, 15)
    Assert.Equal(0.02, at 1350, 15)                               // cos(0) = 1
    Assert.Equal(0.002 + 0.018 * 0.5, at (1350 + 80325), 12)      // half way: cos(π/2) = 0
    Assert.Equal(0.002 + 0.018 * 0.5 * (1.0 + cos (Math.PI * 160649.0 / 160650.0)), at 161999, 15)
    Assert.True(at 161999 > 0.002 && at 161999 < 0.0020001)

[<Fact>]
let ``AdamW: one step against the formula written out by hand`` () =
    let p = [| 1.0f; -2.0f; 0.5f |]
    let g = [| 0.1f; -0.3f; 0.0f |]
    let opt = AdamW(3)
    opt.Update(p.AsSpan(), ReadOnlySpan g, 0.01, 0.1)
    // step 1: m = 0.1 g, v = 0.001 g², m̂ = g, v̂ = g², update = lr · g / (|g| + eps)
    let expected (p0: float) (g: float) =
        let decayed = p0 * (1.0 - 0.01 * 0.1)
        decayed - 0.01 * g / (abs g + 1e-8)
    Assert.Equal(expected 1.0 0.1, float p.[0], 6)
    Assert.Equal(expected -2.0 -0.3, float p.[1], 6)
    Assert.Equal(0.5 * (1.0 - 0.001), float p.[2], 6)             // zero gradient: only the decay
    Assert.Equal(1L, opt.Step)
    // step 2 with the same gradient: m = 0.19 g, v = 0.001999 g²; m̂ = 0.19/0.19 g, v̂ = g² → same update size
    let before = float p.[0]
    opt.Update(p.AsSpan(), ReadOnlySpan g, 0.01, 0.0)
    let m = 0.19 * 0.1 / (1.0 - 0.81)
    let v = 0.001999 * 0.01 / (1.0 - 0.998001)
    Assert.Equal(before - 0.01 * m / (sqrt v + 1e-8), float p.[0], 6)

[<Fact>]
let ``AdamW with other betas and epsilon`` () =
    let p = [| 1.0f |]
    let opt = AdamW(1, Beta1 = 0.5, Beta2 = 0.75, Eps = 0.1)
    opt.Update(p.AsSpan(), ReadOnlySpan [| 0.2f |], 0.01, 0.0)
    // step 1: m̂ = g, v̂ = g², so the step is lr · g / (|g| + eps) whatever the betas
    Assert.Equal(1.0 - 0.01 * 0.2 / (0.2 + 0.1), float p.[0], 6)
    opt.Update(p.AsSpan(), ReadOnlySpan [| 0.2f |], 0.01, 0.0)
    // step 2: m = 0.5·0.1 + 0.5·0.2 = 0.15, m̂ = 0.15 / 0.75 = 0.2; v = 0.75·0.01 + 0.25·0.04 = 0.0175, v̂ = 0.0175 / 0.4375 = 0.04
    Assert.Equal(1.0 - 0.01 * 0.2 / 0.3 - 0.01 * 0.2 / (0.2 + 0.1), float p.[0], 6)

[<Fact>]
let ``clipping scales by max_norm / (norm + 1e-6) only above the limit`` () =
    let g = [| 3.0f; 4.0f |]
    let r = GradClip.Apply(g.AsSpan(), 1.0)
    Assert.Equal(5.0, r.Norm, 6)
    Assert.Equal(1.0 / (5.0 + 1e-6), r.Coefficient, 9)
    Assert.Equal(3.0 / 5.0, float g.[0], 5)
    let small = [| 0.3f; 0.4f |]
    let r = GradClip.Apply(small.AsSpan(), 1.0)
    Assert.Equal(1.0, r.Coefficient)
    Assert.Equal(0.3f, small.[0])

[<Theory; MemberData("All", MemberType = typeof<Devices>)>]
let ``three training steps follow the float64 trajectory golden`` (device: string) =
    let golden = goldenJson "trajectory_3steps.json"
    let hp = golden.GetProperty "hyperparameters"
    let num (name: string) = hp.GetProperty(name).GetDouble()
    let total = hp.GetProperty("total_steps").GetInt32()
    let warmup = hp.GetProperty("warmup").GetInt32()
    let model = modelFromGolden (golden.GetProperty "params_initial")
    use backend = backendOn device model
    backend.SetOptimizer(0, OptimizerState(0L, Array.zeroCreate model.Layout.Count, Array.zeroCreate model.Layout.Count))
    let batches = [| for b in golden.GetProperty("batches").EnumerateArray() -> pairs b |]
    let parameters = Array.zeroCreate<float32> model.Layout.Count
    let results = Array.zeroCreate<StepResult> 1
    golden.GetProperty("steps").EnumerateArray() |> Seq.iteri (fun i step ->
        let a, b = batches.[i]
        let lr = LrSchedule.At(i, total, num "lr", warmup, num "floor")
        Assert.Equal(step.GetProperty("lr").GetDouble(), lr, 12)
        // the backend's own loss and gradient before the step, then the whole step (clip and AdamW inside)
        let loss, grad = lossAndGradient backend a b
        Assert.Equal(step.GetProperty("loss_before_update").GetDouble(), float loss, 4)
        let clip = GradClip.Apply(grad.AsSpan(), num "clip")
        Assert.True(abs (clip.Coefficient - step.GetProperty("clip_coefficient").GetDouble()) < 1e-4)
        let settings = StepSettings(lr, num "weight_decay", num "clip", num "beta1", num "beta2", num "eps")
        backend.TrainStep(ReadOnlySpan(Tokens.EncodeFullBatch(a, b)), a.Length, &settings, Span results)
        Assert.Equal(loss, results.[0].Loss)
        Assert.True(abs (results.[0].GradNorm - step.GetProperty("grad_norm_before_clip").GetDouble()) < 1e-4, sprintf "norm %f" results.[0].GradNorm)
        backend.GetParameters(0, Span parameters)
        let after = step.GetProperty "params_after"
        let expected = modelFromGolden after
        let worst = Array.map2 (fun (x: float32) (y: float32) -> abs (float x - float y)) parameters expected.Parameters |> Array.max
        Assert.True(worst < 1e-5, sprintf "step %d: largest parameter difference %g" i worst))
    Assert.Equal(3L, backend.GetOptimizer(0).Step)
