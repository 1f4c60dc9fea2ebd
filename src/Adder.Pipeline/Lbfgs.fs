/// An L-BFGS polish: a recipe stage that minimises the loss on one fixed batch by L-BFGS instead of stepping
/// AdamW on fresh batches. The direction is the two-loop recursion over the last `history` steps (Nocedal &
/// Wright, Algorithm 7.4); each step's length comes from Math.NET's strong-Wolfe line search. An architecture's
/// loss and gradient are taken on its float64 reference path (a line search needs them exact); the seed's family
/// uses its float32 backend. The stage's folder is an ordinary run folder (config.json, metrics.csv, best and last).
module Adder.Pipeline.Lbfgs

open System
open System.IO
open MathNet.Numerics.LinearAlgebra
open MathNet.Numerics.Optimization
open MathNet.Numerics.Optimization.LineSearch
open Adder.Core
open Adder.Pipeline.Hyperparameters

type Iteration = { Iteration: int; Loss: float; GradNorm: float; StepLength: float }

/// Why a minimisation stopped.
type Stop =
    | Iterations
    | GradientVanished
    /// the line search found no step that decreases the loss enough
    | NoStep
    | Interrupted

/// Minimises f (its value and gradient) from x0; onIteration gets each iteration's loss and step, stopped is asked
/// before each. Returns the last point, its loss and why it stopped.
let minimise (f: float[] -> float * float[]) (x0: float[]) (history: int) (iterations: int) (onIteration: Iteration -> unit)
        (stopped: unit -> bool) =
    if history < 1 then fail "lbfgs history must be at least 1, got %d" history
    let build = Vector<float>.Build
    let objective =
        ObjectiveFunction.Gradient(fun (x: Vector<float>) ->
            let loss, grad = f (x.ToArray())
            struct (loss, build.DenseOfArray grad))
    objective.EvaluateAt(build.DenseOfArray x0)
    let mutable current: IObjectiveFunctionEvaluation = objective
    let search = StrongWolfeLineSearch(1e-4, 0.9, 1e-12, 40)
    let s = Collections.Generic.List<Vector<float>>()
    let y = Collections.Generic.List<Vector<float>>()
    let mutable reason = Iterations
    let mutable k = 0
    while k < iterations && reason = Iterations do
        let g = current.Gradient
        if g.L2Norm() < 1e-12 then reason <- GradientVanished
        elif stopped () then reason <- Interrupted
        else
            // two-loop recursion: r = H·g with H the inverse-Hessian estimate from the stored pairs
            let q = g.Clone()
            let rho = Array.init s.Count (fun i -> 1.0 / (y.[i] * s.[i]))
            let alpha = Array.zeroCreate<float> s.Count
            for i in s.Count - 1 .. -1 .. 0 do
                alpha.[i] <- rho.[i] * (s.[i] * q)
                q.Subtract(y.[i].Multiply alpha.[i], q)
            // the initial estimate's scale: the last pair's curvature, or a first step of unit length
            let gamma = if s.Count > 0 then (s.[s.Count - 1] * y.[y.Count - 1]) / (y.[y.Count - 1] * y.[y.Count - 1]) else 1.0 / g.L2Norm()
            let r = q.Multiply gamma
            for i in 0 .. s.Count - 1 do
                let beta = rho.[i] * (y.[i] * r)
                r.Add(s.[i].Multiply(alpha.[i] - beta), r)
            let mutable direction = r.Negate()
            if direction * g >= 0.0 then
                // not a descent direction (rounding): start the history again from the gradient
                s.Clear()
                y.Clear()
                direction <- g.Negate().Divide(g.L2Norm())
            let result =
                try Some(search.FindConformingStep(current, direction, 1.0))
                with :? OptimizationException -> None
            match result with
            | None -> reason <- NoStep
            | Some step ->
                let next = step.FunctionInfoAtMinimum
                let sk = next.Point - current.Point
                let yk = next.Gradient - current.Gradient
                // keep a pair only where it keeps the estimate positive definite
                if sk * yk > 1e-12 * sk.L2Norm() * yk.L2Norm() then
                    s.Add sk
                    y.Add yk
                    if s.Count > history then
                        s.RemoveAt 0
                        y.RemoveAt 0
                current <- next
                k <- k + 1
                onIteration { Iteration = k; Loss = next.Value; GradNorm = next.Gradient.L2Norm(); StepLength = step.FinalStep }
    current.Point.ToArray(), current.Value, reason, k

/// The stage's fixed batch: `config.Batch` pairs of its data stream (its seed, its curriculum's last phase).
let fixedBatch (config: RunConfig) =
    let reserved = Batches.holdout config.Seed
    let sampler = Batches.sampler config.Seed reserved config.Curriculum
    let a = Array.zeroCreate<int64> config.Batch
    let b = Array.zeroCreate<int64> config.Batch
    sampler.NextBatch((Array.last config.Curriculum.Phases).Start, a, b)
    a, b

/// Runs the polish stage in runDir from config.StartCheckpoint: config.Steps iterations at most on the fixed
/// batch. A finished stage (its last.safetensors written) ends at once; an interrupted one saves nothing and runs
/// again from its start (it is deterministic). Returns the run's outcome, as Training's.
let polish (device: Backends.Device) (cpu: CpuOptions) (config: RunConfig) (history: int) (runDir: string)
        (say: string -> unit) (stop: int -> bool) : Training.Outcome =
    let config = validate config
    let last, best = RunFolder.last runDir, RunFolder.best runDir
    if File.Exists last then
        let done' = Checkpoint.Load last
        let step = int done'.Metadata.[TrainingState.StepKey]
        let valExact = float done'.Metadata.["val_exact"]
        { Completed = true; LastStep = step; BestValExact = valExact; BestStep = step }
    else
        let start =
            match config.StartCheckpoint with
            | Some path -> Checkpoint.Load path
            | None -> fail "an lbfgs stage polishes the stage before it; it cannot be the first"
        if start.Model.Config <> config.Model then fail "checkpoint %s has config %s" config.StartCheckpoint.Value (start.Model.Config.Describe())
        Directory.CreateDirectory runDir |> ignore
        use _lock = SafeFiles.LockFolder runDir
        use backend = Backends.create device config.Model 1 cpu
        let a, b = fixedBatch config
        let tokens = config.Model.Format.EncodeFullBatch(a, b)
        let lossAndGradient =
            match backend with
            | :? Adder.Core.Cpu.GeneralBackend as general ->
                fun (x: float[]) ->
                    let grad = Array.zeroCreate<float> x.Length
                    let loss = general.LossAndGradient(x, ReadOnlySpan tokens, config.Batch, grad)
                    loss, grad
            | _ ->
                fun (x: float[]) ->
                    backend.SetParameters(0, ReadOnlySpan(Array.map float32 x))
                    let grad = Array.zeroCreate<float32> x.Length
                    let loss = backend.LossAndGradient(0, ReadOnlySpan tokens, config.Batch, Span grad)
                    float loss, Array.map float grad
        let rows = ResizeArray<Metrics.Row>()
        let watch = Diagnostics.Stopwatch.StartNew()
        let x0 = Array.map float start.Model.Parameters
        let loss0, grad0 = lossAndGradient x0
        say (sprintf "lbfgs: %d pairs fixed, loss %.6f at the start, up to %d iterations, history %d" config.Batch loss0 config.Steps history)
        rows.Add { Step = 0; Loss = loss0; Lr = 0.0; GradNorm = sqrt (Array.sumBy (fun g -> g * g) grad0); ValExact = None; ValTokenAccuracy = None; ElapsedSeconds = 0.0 }
        let onIteration (i: Iteration) =
            rows.Add { Step = i.Iteration; Loss = i.Loss; Lr = i.StepLength; GradNorm = i.GradNorm; ValExact = None; ValTokenAccuracy = None
                       ElapsedSeconds = watch.Elapsed.TotalSeconds }
            if i.Iteration % 10 = 0 then say (sprintf "lbfgs iteration %d: loss %.6f, |g| %.4g, step %.3g" i.Iteration i.Loss i.GradNorm i.StepLength)
        let x, loss, reason, done' = minimise lossAndGradient x0 history config.Steps onIteration (fun () -> stop -1)
        if reason = Interrupted then { Completed = false; LastStep = done'; BestValExact = 0.0; BestStep = 0 }
        else
            let parameters = Array.map float32 x
            backend.SetParameters(0, ReadOnlySpan parameters)
            let holdout = Batches.holdout config.Seed
            let va, vb = holdout.Validation |> Array.map (fun p -> p.A), holdout.Validation |> Array.map (fun p -> p.B)
            let validation = Evaluation.evaluateSet backend 0 "validation" va vb
            let lastRow = rows.[rows.Count - 1]
            rows.[rows.Count - 1] <- { lastRow with ValExact = Some validation.ExactMatch; ValTokenAccuracy = Some validation.TokenAccuracy }
            say (sprintf "lbfgs: %d iterations (%s), loss %.6f -> %.6f, validation exact %.2f%%" done'
                    (match reason with Iterations -> "all" | GradientVanished -> "gradient vanished" | NoStep -> "no further step" | Interrupted -> "")
                    loss0 loss (100.0 * validation.ExactMatch))
            Files.writeTextAtomic (RunFolder.config runDir) (toJson config + "\n")
            Files.writeTextAtomic (Metrics.pathIn runDir) (String.Join("\n", Metrics.header :: [ for r in rows -> Metrics.format r ]) + "\n")
            let meta = Collections.Generic.Dictionary<string, string>()
            for k, v in metadata config @ [ TrainingState.StepKey, string done'; "val_exact", Files.formatFloat validation.ExactMatch
                                            "lbfgs_history", string history; "lbfgs_loss", Files.formatFloat loss ] do
                meta.[k] <- v
            let model = Model(config.Model, parameters)
            Checkpoint(model, meta).Save best
            Checkpoint(model, meta).Save last
            { Completed = true; LastStep = done'; BestValExact = validation.ExactMatch; BestStep = done' }
