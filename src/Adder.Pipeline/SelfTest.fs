/// The lent-GPU self-test: every check that needs a device, in one process, with one closing line
/// `N passed, N failed`. Each check compares the device backend with the CPU backend (the reference) or with
/// the float64 goldens; the benchmarks at the end print figures and pass when they run.
module Adder.Pipeline.SelfTest

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Adder.Core

type Check = { Name: string; Passed: bool; Detail: string }

/// Creates a backend holding `models` models of a config.
type BackendFactory = ModelConfig -> int -> IBackend

let private encodeFull (a: int64[]) (b: int64[]) =
    let tokens = Array.zeroCreate<int> (a.Length * Tokens.FullLength)
    for i in 0 .. a.Length - 1 do Tokens.EncodeFull(a.[i], b.[i], Span(tokens, i * Tokens.FullLength, Tokens.FullLength))
    tokens

let private encodePrompts (a: int64[]) (b: int64[]) =
    let tokens = Array.zeroCreate<int> (a.Length * Tokens.PromptLength)
    for i in 0 .. a.Length - 1 do Tokens.EncodePrompt(a.[i], b.[i], Span(tokens, i * Tokens.PromptLength, Tokens.PromptLength))
    tokens

/// Pairs whose operands share a digit count uniform in 1..10 (like the training stream's last phase).
let private mixedPairs (seed: uint64) (n: int) =
    let rng = TorchGenerator(seed)
    let a = Array.zeroCreate<int64> n
    let b = Array.zeroCreate<int64> n
    for i in 0 .. n - 1 do
        let digits = int (rng.RandInt(1L, 11L))
        let top = pown 10L digits
        a.[i] <- rng.RandInt(0L, top)
        b.[i] <- rng.RandInt(0L, top)
    a, b

/// ‖x − y‖ / ‖y‖ over a tensor (0 when both are zero).
let private relativeNorm (x: ReadOnlySpan<float32>) (y: ReadOnlySpan<float32>) =
    let mutable diff = 0.0
    let mutable norm = 0.0
    for i in 0 .. x.Length - 1 do
        diff <- diff + (float x.[i] - float y.[i]) ** 2.0
        norm <- norm + float y.[i] ** 2.0
    if norm = 0.0 then sqrt diff else sqrt diff / sqrt norm

/// The worst per-tensor relative error of two flat parameter-shaped buffers, and its tensor.
let private worstTensor (layout: ParameterLayout) (x: float32[]) (y: float32[]) =
    layout.Tensors
    |> Seq.map (fun t -> t.Name, relativeNorm (ReadOnlySpan(x, t.Offset, t.Size)) (ReadOnlySpan(y, t.Offset, t.Size)))
    |> Seq.maxBy snd

let private sci (x: float) = x.ToString("0.00e+00", Globalization.CultureInfo.InvariantCulture)

let private check name (f: unit -> bool * string) =
    try
        let ok, detail = f ()
        { Name = name; Passed = ok; Detail = detail }
    with e -> { Name = name; Passed = false; Detail = sprintf "%s: %s" (e.GetType().Name) (e.Message.Split('\n').[0]) }

let private settings lr = StepSettings(lr, 0.01, 1.0, AdamW.DefaultBeta1, AdamW.DefaultBeta2, AdamW.DefaultEps)

/// Device vs CPU on M models of one config at once: logits, loss and gradient, three training steps.
let private parityChecks (device: BackendFactory) (cpu: BackendFactory) (presetName: string) =
    let config = ModelConfig.Preset presetName
    let models = 3
    let batch = 40   // not a multiple of any block size: partial blocks are exercised
    let inits = [| for m in 0 .. models - 1 -> (Model.Initialised(config, 100 + m)).Parameters |]
    let data = [| for m in 0 .. models - 1 -> mixedPairs (uint64 (7 + m)) batch |]
    let tokens = data |> Array.map (fun (a, b) -> encodeFull a b)
    use dev = device config models
    use ref = cpu config models
    for m in 0 .. models - 1 do
        dev.SetParameters(m, ReadOnlySpan inits.[m])
        ref.SetParameters(m, ReadOnlySpan inits.[m])
        let fresh = OptimizerState(0L, Array.zeroCreate inits.[m].Length, Array.zeroCreate inits.[m].Length)
        dev.SetOptimizer(m, fresh)
        ref.SetOptimizer(m, fresh)
    let n = dev.Layout.Count
    [ check (sprintf "parity %s: logits, %d models" presetName models) (fun () ->
        let vocab = config.VocabSize
        let size = batch * Tokens.InputLength * vocab
        let worst =
            [ for m in 0 .. models - 1 ->
                let x = Array.zeroCreate<float32> size
                let y = Array.zeroCreate<float32> size
                dev.Logits(m, ReadOnlySpan tokens.[m], batch, Span x)
                ref.Logits(m, ReadOnlySpan tokens.[m], batch, Span y)
                let scale = y |> Array.map abs |> Array.max |> float
                (Array.map2 (fun (p: float32) (q: float32) -> abs (float p - float q)) x y |> Array.max) / max scale 1e-30 ]
            |> List.max
        worst <= 1e-4, sprintf "largest |difference| / largest |logit| = %s (limit 1e-4)" (sci worst))
      check (sprintf "parity %s: loss and gradient, %d models" presetName models) (fun () ->
        let results =
            [ for m in 0 .. models - 1 ->
                let gx = Array.zeroCreate<float32> n
                let gy = Array.zeroCreate<float32> n
                let lx = dev.LossAndGradient(m, ReadOnlySpan tokens.[m], batch, Span gx)
                let ly = ref.LossAndGradient(m, ReadOnlySpan tokens.[m], batch, Span gy)
                abs (float lx - float ly) / abs (float ly), worstTensor dev.Layout gx gy ]
        let lossErr = results |> List.map fst |> List.max
        let name, gradErr = results |> List.map snd |> List.maxBy snd
        lossErr <= 1e-4 && gradErr <= 1e-4,
        sprintf "loss rel. error %s, worst tensor %s %s (limits 1e-4)" (sci lossErr) name (sci gradErr))
      check (sprintf "parity %s: 4 training steps (AdamW, clipping, a new batch size), %d models" presetName models) (fun () ->
        let all = Array.concat tokens
        let rx = Array.zeroCreate<StepResult> models
        let ry = Array.zeroCreate<StepResult> models
        let mutable worstLoss = 0.0
        let mutable worstNorm = 0.0
        // the fourth step has another batch size (a CUDA graph is captured again)
        let smaller = 24
        let part = Array.concat [ for t in tokens -> Array.sub t 0 (smaller * Tokens.FullLength) ]
        for step in 0 .. 3 do
            let s = settings (0.02 * float (step + 1) / 4.0)
            let input, size = if step < 3 then all, batch else part, smaller
            dev.TrainStep(ReadOnlySpan input, size, &s, Span rx)
            ref.TrainStep(ReadOnlySpan input, size, &s, Span ry)
            for m in 0 .. models - 1 do
                worstLoss <- max worstLoss (abs (float rx.[m].Loss - float ry.[m].Loss) / abs (float ry.[m].Loss))
                worstNorm <- max worstNorm (abs (rx.[m].GradNorm - ry.[m].GradNorm) / ry.[m].GradNorm)
        let name, worstParam =
            [ for m in 0 .. models - 1 ->
                let px = Array.zeroCreate<float32> n
                let py = Array.zeroCreate<float32> n
                dev.GetParameters(m, Span px)
                ref.GetParameters(m, Span py)
                worstTensor dev.Layout px py ]
            |> List.maxBy snd
        worstLoss <= 1e-4 && worstNorm <= 1e-4 && worstParam <= 1e-4,
        sprintf "loss %s, grad norm %s, worst tensor %s %s (limits 1e-4)" (sci worstLoss) (sci worstNorm) name (sci worstParam)) ]

/// Grokfast-EMA on the device against the CPU: two filtered steps, the CPU's state (weights, moments, average)
/// handed to the device as a resumed run's, two more; the weights and the averages must agree.
let private grokfastCheck (device: BackendFactory) (cpu: BackendFactory) =
    check "parity 311p: 4 training steps with Grokfast-EMA (alpha 0.9, lambda 0.5), resumed after 2, 3 models" (fun () ->
        let config = ModelConfig.Preset311
        let models, batch = 3, 40
        use dev = device config models
        use ref = cpu config models
        let n = dev.Layout.Count
        for m in 0 .. models - 1 do
            let p = (Model.Initialised(config, 200 + m)).Parameters
            dev.SetParameters(m, ReadOnlySpan p)
            ref.SetParameters(m, ReadOnlySpan p)
            let fresh = OptimizerState(0L, Array.zeroCreate n, Array.zeroCreate n)
            dev.SetOptimizer(m, fresh)
            ref.SetOptimizer(m, fresh)
        let tokens = Array.concat [ for m in 0 .. models - 1 -> mixedPairs (uint64 (30 + m)) batch ||> encodeFull ]
        let results = Array.zeroCreate<StepResult> models
        for step in 0 .. 3 do
            let s = StepSettings(0.01, 0.01, 1.0, AdamW.DefaultBeta1, AdamW.DefaultBeta2, AdamW.DefaultEps, 0.9, 0.5)
            if step = 2 then
                for m in 0 .. models - 1 do
                    let p = Array.zeroCreate<float32> n
                    ref.GetParameters(m, Span p)
                    dev.SetParameters(m, ReadOnlySpan p)
                    dev.SetOptimizer(m, ref.GetOptimizer m)
            dev.TrainStep(ReadOnlySpan tokens, batch, &s, Span results)
            ref.TrainStep(ReadOnlySpan tokens, batch, &s, Span results)
        let worst =
            [ for m in 0 .. models - 1 do
                let px, py = Array.zeroCreate<float32> n, Array.zeroCreate<float32> n
                dev.GetParameters(m, Span px)
                ref.GetParameters(m, Span py)
                yield "weights", worstTensor dev.Layout px py
                let ex, ey = (dev.GetOptimizer m).GrokfastEma, (ref.GetOptimizer m).GrokfastEma
                if isNull ex || isNull ey then yield "average", (if isNull ex = isNull ey then ("", 0.0) else ("missing", infinity))
                else yield "average", worstTensor dev.Layout ex ey ]
            |> List.maxBy (fun (_, (_, e)) -> e)
        let what, (tensor, err) = worst
        err <= 1e-4, sprintf "worst: %s of %s %s (limit 1e-4)" what tensor (sci err))

let private goldenParameters (layout: ParameterLayout) (pars: JsonElement) = Golden.parameters layout pars "golden"

let private goldenPairs (batch: JsonElement) = Golden.pairs batch "golden"

let private goldenChecks (device: BackendFactory) (sharedDir: string) =
    let load (name: string) = JsonDocument.Parse(File.ReadAllText(Path.Combine(sharedDir, "golden", name))).RootElement
    [ check "golden: loss and gradient (gradcheck_random_init.json)" (fun () ->
        let golden = load "gradcheck_random_init.json"
        use dev = device ModelConfig.Preset311 1
        let p = goldenParameters dev.Layout (golden.GetProperty "params")
        dev.SetParameters(0, ReadOnlySpan p)
        let a, b = goldenPairs (golden.GetProperty "batch")
        let grad = Array.zeroCreate<float32> dev.Layout.Count
        let loss = dev.LossAndGradient(0, ReadOnlySpan(encodeFull a b), a.Length, Span grad)
        let goldenLoss = golden.GetProperty("loss").GetDouble()
        let lossErr = abs (float loss - goldenLoss) / abs goldenLoss
        let grads = golden.GetProperty "grad"
        let name, err =
            dev.Layout.Tensors
            |> Seq.map (fun t ->
                let expected = [| for x in grads.GetProperty(t.Name).EnumerateArray() -> float32 (x.GetDouble()) |]
                t.Name, relativeNorm (ReadOnlySpan(grad, t.Offset, t.Size)) (ReadOnlySpan expected))
            |> Seq.maxBy snd
        lossErr <= 1e-4 && err <= 1e-3, sprintf "loss rel. error %s, worst tensor %s %s (limits 1e-4, 1e-3)" (sci lossErr) name (sci err))
      check "golden: 3-step trajectory (trajectory_3steps.json)" (fun () ->
        let golden = load "trajectory_3steps.json"
        let hp = golden.GetProperty "hyperparameters"
        let num (name: string) = hp.GetProperty(name).GetDouble()
        use dev = device ModelConfig.Preset311 1
        let p0 = goldenParameters dev.Layout (golden.GetProperty "params_initial")
        dev.SetParameters(0, ReadOnlySpan p0)
        dev.SetOptimizer(0, OptimizerState(0L, Array.zeroCreate p0.Length, Array.zeroCreate p0.Length))
        let batches = [| for b in golden.GetProperty("batches").EnumerateArray() -> goldenPairs b |]
        let results = Array.zeroCreate<StepResult> 1
        let mutable worst = 0.0
        let mutable worstLoss = 0.0
        golden.GetProperty("steps").EnumerateArray() |> Seq.iteri (fun i step ->
            let a, b = batches.[i]
            let lr = LrSchedule.At(i, hp.GetProperty("total_steps").GetInt32(), num "lr", hp.GetProperty("warmup").GetInt32(), num "floor")
            let s = StepSettings(lr, num "weight_decay", num "clip", num "beta1", num "beta2", num "eps")
            dev.TrainStep(ReadOnlySpan(encodeFull a b), a.Length, &s, Span results)
            worstLoss <- max worstLoss (abs (float results.[0].Loss - step.GetProperty("loss_before_update").GetDouble()))
            let expected = goldenParameters dev.Layout (step.GetProperty "params_after")
            let got = Array.zeroCreate<float32> p0.Length
            dev.GetParameters(0, Span got)
            worst <- max worst (Array.map2 (fun (x: float32) (y: float32) -> abs (float x - float y)) got expected |> Array.max))
        worst <= 1e-5 && worstLoss <= 1e-4, sprintf "largest parameter difference %s (limit 1e-5), loss %s" (sci worst) (sci worstLoss)) ]

/// The published checkpoint on the reference suite through the device backend's greedy decoding.
let private referenceSuiteCheck (device: BackendFactory) (sharedDir: string) =
    check "published checkpoint, reference suite: 99,999 / 100,000" (fun () ->
        let model = (Checkpoint.Load(Path.Combine(sharedDir, "reference", "best_311p_s34.pt"))).Model
        use dev = device model.Config 1
        dev.SetParameters(0, ReadOnlySpan model.Parameters)
        let sets = Evaluation.referenceSets ()
        let watch = Stopwatch.StartNew()
        let results = [ for name, a, b in sets -> Evaluation.evaluateSet dev 0 name a b ]
        let seconds = watch.Elapsed.TotalSeconds
        let total = Evaluation.total results
        let where = total.Failures |> List.map (fun f -> f.Set) |> String.concat ", "
        total.Errors = 1 && where = "seed 100",
        sprintf "%d / %d correct, errors on: %s; %.3f s wall (ten sets, incl. transfers)" (total.Examples - total.Errors) total.Examples where seconds)

/// Trains seed 36 for `steps` steps on both backends with the published recipe's first steps; the loss
/// curves (means over windows of 250 steps) must track.
let private curveCheck (device: BackendFactory) (cpu: BackendFactory) (steps: int) =
    check (sprintf "%d-step training run, seed 36: device loss curve tracks the CPU's" steps) (fun () ->
        let config = ModelConfig.Preset311
        let curve (factory: BackendFactory) =
            use backend = factory config 1
            let init = (Model.Initialised(config, 36)).Parameters
            backend.SetParameters(0, ReadOnlySpan init)
            backend.SetOptimizer(0, OptimizerState(0L, Array.zeroCreate init.Length, Array.zeroCreate init.Length))
            let sampler = Batches.sampler 36 (Batches.holdout 36) Curriculum.Base
            let batch = 512
            let a = Array.zeroCreate<int64> batch
            let b = Array.zeroCreate<int64> batch
            let results = Array.zeroCreate<StepResult> 1
            let losses = Array.zeroCreate<float> steps
            let watch = Stopwatch.StartNew()
            for step in 0 .. steps - 1 do
                sampler.NextBatch(step, Span a, Span b)
                let s = settings (LrSchedule.At(step, 162_000, 0.02, 1350, 0.1))
                backend.TrainStep(ReadOnlySpan(encodeFull a b), batch, &s, Span results)
                losses.[step] <- float results.[0].Loss
            losses |> Array.chunkBySize 250 |> Array.map Array.average, watch.Elapsed.TotalSeconds
        let onDevice, tDevice = curve device
        let onCpu, tCpu = curve cpu
        let worst = Array.map2 (fun (x: float) (y: float) -> abs (x - y) / y) onDevice onCpu |> Array.max
        let show (xs: float[]) = xs |> Array.map (sprintf "%.4f") |> String.concat " "
        worst <= 0.05,
        sprintf "window means device [%s] cpu [%s]; worst rel. gap %.3f (limit 0.05); %.1f s device, %.1f s cpu"
            (show onDevice) (show onCpu) worst tDevice tCpu)

/// The same steps twice on the device give the same weights bit for bit (fixed reduction orders).
let private determinismCheck (device: BackendFactory) =
    check "determinism: 20 steps of 4 models twice, identical weights" (fun () ->
        let config = ModelConfig.Preset311
        let run () =
            use dev = device config 4
            for m in 0 .. 3 do
                let p = (Model.Initialised(config, m)).Parameters
                dev.SetParameters(m, ReadOnlySpan p)
                dev.SetOptimizer(m, OptimizerState(0L, Array.zeroCreate p.Length, Array.zeroCreate p.Length))
            let tokens = Array.concat [ for m in 0 .. 3 -> let a, b = mixedPairs (uint64 (50 + m)) 512 in encodeFull a b ]
            let results = Array.zeroCreate<StepResult> 4
            for step in 0 .. 19 do
                let s = settings 0.02
                dev.TrainStep(ReadOnlySpan tokens, 512, &s, Span results)
            [| for m in 0 .. 3 ->
                let p = Array.zeroCreate<float32> dev.Layout.Count
                dev.GetParameters(m, Span p)
                p |]
        let x = run ()
        let y = run ()
        let same = Array.forall2 (fun (p: float32[]) (q: float32[]) -> ReadOnlySpan(p).SequenceEqual(ReadOnlySpan q)) x y
        same, (if same then "bit-identical" else "weights differ between two identical runs"))

/// cuBLAS through the binding's resolver: a 2×2 product (the library the CUDA backend does not need, but the
/// binding offers; kernels/ABI.md says why the fused kernels beat it here).
let cublasCheck () =
    check "cuBLAS: found by the resolver, Sgemm right" (fun () ->
        // column-major: [1 3; 2 4] · [5 7; 6 8] = [23 31; 34 46]
        let result = Backends.cublasProduct [| 1f; 2f; 3f; 4f |] [| 5f; 6f; 7f; 8f |]
        result = [| 23f; 34f; 31f; 46f |], sprintf "C = %A" result)

/// Runs every check, calling `report` as each finishes; returns them all.
let run (sharedDir: string) (device: BackendFactory) (cpu: BackendFactory) (report: Check -> unit) =
    let checks =
        seq {
            yield! parityChecks device cpu "311p"
            yield! parityChecks device cpu "wide"
            yield grokfastCheck device cpu
            yield! goldenChecks device sharedDir
            yield referenceSuiteCheck device sharedDir
            yield determinismCheck device
            yield curveCheck device cpu 2000
        }
    [ for c in checks ->
        report c
        c ]
