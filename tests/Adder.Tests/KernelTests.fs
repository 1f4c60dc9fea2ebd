/// The CUDA kernels (kernels/*.cu) run on the CPU under the fiber harness (kernels/cpu-harness, built with
/// AddressSanitizer and UBSan) against the C# code they mirror, with several models per launch and several
/// blocks per model; and the committed PTX against a fresh nvcc build.
module Adder.Tests.KernelTests

open System
open System.Diagnostics
open System.IO
open Xunit
open Adder.Core
open Adder.Core.Cpu
open Adder.Tests.Shared

// ---- the C# reference: every call into the CPU backend is here, so it can be re-pointed in one place ----

module CpuReference =
    /// The CPU backend (IBackend) holding one model with parameters p.
    let private backend (config: ModelConfig) (p: float32[]) =
        let b = new CpuBackend(config, 1, CpuOptions(2))
        b.SetParameters(0, ReadOnlySpan p)
        b

    /// (mean loss, gradient) of one model on a batch of operand pairs.
    let lossAndGradient (config: ModelConfig) (p: float32[]) (a: int64[]) (b: int64[]) =
        use cpu = backend config p
        let grad = Array.zeroCreate<float32> p.Length
        let loss = cpu.LossAndGradient(0, ReadOnlySpan(Tokens.EncodeFullBatch(a, b)), a.Length, Span grad)
        loss, grad

    /// Teacher-forced logits [count][33][14].
    let logits (config: ModelConfig) (p: float32[]) (a: int64[]) (b: int64[]) =
        use cpu = backend config p
        let out = Array.zeroCreate<float32> (a.Length * Tokens.InputLength * config.VocabSize)
        cpu.Logits(0, ReadOnlySpan(Tokens.EncodeFullBatch(a, b)), a.Length, Span out)
        out

    /// Greedy decoding: [count][11] tokens.
    let decode (config: ModelConfig) (p: float32[]) (a: int64[]) (b: int64[]) =
        use cpu = backend config p
        let out = Array.zeroCreate<int> (a.Length * Tokens.SumDigits)
        cpu.Decode(0, ReadOnlySpan(Tokens.EncodePromptBatch(a, b)), a.Length, Span out)
        out

// ---- the harness and its files of named arrays (kernels/cpu-harness/harness.cpp) ----

type HArray =
    | I of int[]
    | F of float32[]
    | D of float[]
    | L of int64[]

let private writeArrays (path: string) (arrays: (string * HArray) list) =
    use w = new BinaryWriter(File.Create path)
    for name, a in arrays do
        let bytes = Text.Encoding.ASCII.GetBytes(name: string)
        w.Write bytes.Length
        w.Write bytes
        match a with
        | I xs -> w.Write 0; w.Write(int64 xs.Length); for x in xs do w.Write x
        | F xs -> w.Write 1; w.Write(int64 xs.Length); for x in xs do w.Write x
        | D xs -> w.Write 2; w.Write(int64 xs.Length); for x in xs do w.Write x
        | L xs -> w.Write 3; w.Write(int64 xs.Length); for x in xs do w.Write x

let private readArrays (path: string) =
    use r = new BinaryReader(File.OpenRead path)
    let mutable result = Map.empty
    while r.BaseStream.Position < r.BaseStream.Length do
        let name = Text.Encoding.ASCII.GetString(r.ReadBytes(r.ReadInt32()))
        let kind = r.ReadInt32()
        let n = int (r.ReadInt64())
        let a =
            match kind with
            | 0 -> I(Array.init n (fun _ -> r.ReadInt32()))
            | 1 -> F(Array.init n (fun _ -> r.ReadSingle()))
            | 2 -> D(Array.init n (fun _ -> r.ReadDouble()))
            | _ -> L(Array.init n (fun _ -> r.ReadInt64()))
        result <- Map.add name a result
    result

let private onPath (tool: string) =
    (Environment.GetEnvironmentVariable "PATH").Split(':')
    |> Array.exists (fun d -> d <> "" && File.Exists(Path.Combine(d, tool)))

let private run (file: string) (args: string list) =
    let info = ProcessStartInfo(file, args, RedirectStandardOutput = true, RedirectStandardError = true)
    use p = Process.Start info
    let stdout = p.StandardOutput.ReadToEndAsync()
    let stderr = p.StandardError.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, stdout.Result + stderr

/// Built once per test run from the current sources (scripts/build-cpu-harness.sh), so it is never stale.
let private harness =
    lazy
        if not (onPath "g++") then None
        else
            let script = Path.Combine(repoRoot, "scripts", "build-cpu-harness.sh")
            let code, output = run "bash" [ script ]
            if code <> 0 then failwithf "scripts/build-cpu-harness.sh failed:\n%s" output
            Some(Path.Combine(repoRoot, "artifacts", "cpu-harness", "harness"))

/// Where each run's input and CPU-harness output are kept (KERNEL--CASE.in.bin, .cpu.bin): the GPU check
/// (scripts/gpu-kernel-check.sh) replays them on a lent GPU and compares.
let casesDir = Path.Combine(repoRoot, "artifacts", "kernel-cases")

/// Runs one harness kernel; None (and a message) only when g++ is missing.
let private launch (kernel: string) (case: string) (inputs: (string * HArray) list) =
    match harness.Force() with
    | None ->
        missingTool "g++ (the CPU harness of the CUDA kernels)"
        eprintfn "KernelTests: SKIPPED, g++ is not installed (the CPU harness of the CUDA kernels needs it)"
        None
    | Some exe ->
        Directory.CreateDirectory casesDir |> ignore
        let input = Path.Combine(casesDir, sprintf "%s--%s.in.bin" kernel case)
        let output = Path.Combine(casesDir, sprintf "%s--%s.cpu.bin" kernel case)
        writeArrays input inputs
        let code, text = run exe [ kernel; input; output ]
        if code <> 0 then failwithf "harness %s exited %d:\n%s" kernel code text
        Some(readArrays output)

let private floats32 (m: Map<string, HArray>) name = match m.[name] with F xs -> xs | _ -> failwith name
let private ints (m: Map<string, HArray>) name = match m.[name] with I xs -> xs | _ -> failwith name
let private doubles (m: Map<string, HArray>) name = match m.[name] with D xs -> xs | _ -> failwith name
let private longs (m: Map<string, HArray>) name = match m.[name] with L xs -> xs | _ -> failwith name

/// The dims struct of kernels/ABI.md, from the one ParameterLayout.
let dims (layout: ParameterLayout) =
    let c = layout.Config
    let b = layout.Blocks.[0]
    let lin (l: LinearView) = [ l.In; l.Out; l.Rank; l.A; l.B; l.W ]
    [| yield! [ layout.Count; c.DModel; c.NHead; c.DFf; c.VocabSize; c.MaxSeqLen; (if b.SharedA then 1 else 0); layout.TokenEmbedding ]
       yield! lin layout.Position
       yield! [ b.Ln1.Weight; b.QkvA; b.QkvRank; b.Bq; b.Bkv ]
       yield! lin b.Q @ lin b.K @ lin b.V @ lin b.Proj
       yield b.Ln2.Weight
       yield! lin b.Fc1 @ lin b.Fc2
       yield layout.LnF.Weight |]

// ---- inputs ----

/// SPEC initialisation plus uniform noise, so every parameter (norm weights included) matters.
let private randomModel (config: ModelConfig) (seed: int) =
    let model = Model.Initialised(config, seed)
    let rng = Random(seed + 1000)
    Array.map (fun x -> x + float32 ((rng.NextDouble() - 0.5) * 0.6)) model.Parameters

let private publishedModel () = (Checkpoint.Load(referenceCheckpoint ())).Model.Parameters

let private randomPairs (seed: int) (n: int) =
    let rng = Random(seed)
    let operand () = if rng.Next 4 = 0 then rng.NextInt64(1000L) else rng.NextInt64(Tokens.MaxOperand + 1L)
    let pairs = Array.init n (fun _ -> operand (), operand ())
    Array.map fst pairs, Array.map snd pairs

let private fullTokens (a: int64[]) (b: int64[]) = Array.init a.Length (fun i -> Tokens.EncodeFull(a.[i], b.[i])) |> Array.concat

let private promptTokens (a: int64[]) (b: int64[]) =
    Array.init a.Length (fun i ->
        let p = Array.zeroCreate Tokens.PromptLength
        Tokens.EncodePrompt(a.[i], b.[i], Span p)
        p)
    |> Array.concat

/// Largest |got − expected| / max(|expected|, floor·max|expected|) over a tensor: relative, except for the
/// elements far below the tensor's scale, where float summation order alone moves the last digits.
let private worstRelative (floor: float) (got: float32[]) (expected: float32[]) =
    Assert.Equal(expected.Length, got.Length)
    let scale = expected |> Array.map (fun x -> abs (float x)) |> Array.max
    Array.map2 (fun (g: float32) (e: float32) -> abs (float g - float e) / max (abs (float e)) (max (floor * scale) 1e-30)) got expected
    |> Array.max

// ---- the training step: loss and gradient ----

/// kernel: "loss_and_gradient" (adder_train_step) or "rows_loss_and_gradient" (adder_train_rows, whose block is
/// fixed at 8 sequences; `block` is then unused).
let private checkKernelLossAndGradient (kernel: string) (case: string) (config: ModelConfig) (models: float32[][]) (batch: int) (block: int) =
    let layout = ParameterLayout(config)
    let data = Array.init models.Length (fun m -> randomPairs (100 + m) batch)
    let tokens = data |> Array.map (fun (a, b) -> fullTokens a b) |> Array.concat
    let result =
        launch kernel case
            [ "dims", I(dims layout); "models", I [| models.Length |]; "batch", I [| batch |]; "block", I [| block |]
              "params", F(Array.concat models); "tokens", I tokens ]
    match result with
    | None -> ()
    | Some out ->
        let grads, losses = floats32 out "grad", floats32 out "loss"
        for m in 0 .. models.Length - 1 do
            let a, b = data.[m]
            let loss, grad = CpuReference.lossAndGradient config models.[m] a b
            let lossErr = abs (float losses.[m] - float loss) / float loss
            Assert.True(lossErr <= 1e-5, sprintf "model %d: loss %g, CPU %g (relative %g)" m losses.[m] loss lossErr)
            for t in layout.Tensors do
                let got = grads.[m * layout.Count + t.Offset .. m * layout.Count + t.Offset + t.Size - 1]
                let expected = grad.[t.Offset .. t.Offset + t.Size - 1]
                // summed over the batch in another order than the CPU's: relative in norm, and per element
                let err = relativeError (Array.map float got) (Array.map float expected)
                Assert.True(err <= 1e-5, sprintf "model %d, %s: gradient relative error %g" m t.Name err)
                let worst = worstRelative 1e-2 got expected
                Assert.True(worst <= 1e-4, sprintf "model %d, %s: an element's relative error is %g" m t.Name worst)

let private checkLossAndGradient = checkKernelLossAndGradient "loss_and_gradient"

[<Fact>]
let ``train-step kernel: loss and every tensor's gradient match CpuBackend (311p, 3 models, 3 blocks of 64)`` () =
    let c = ModelConfig.Preset311
    checkLossAndGradient "311p" c [| publishedModel (); randomModel c 1; randomModel c 2 |] 150 64

[<Fact>]
let ``train-step kernel: loss and every tensor's gradient match CpuBackend (wide, 2 models, 2 blocks of 32)`` () =
    let c = ModelConfig.Preset "wide"
    checkLossAndGradient "wide" c [| randomModel c 3; randomModel c 4 |] 40 32

[<Fact>]
let ``train-step kernel: low-rank separate q, k, v and a full-rank position table match CpuBackend`` () =
    // the branches neither preset takes: tie none with low ranks, pos_rank 0, head_dim 2, d_ff 32
    let c = ModelConfig(DModel = 6, NHead = 3, DFf = 32, PosRank = 0, QkvRank = 2, AttnOutRank = 8, FfnRank = 5, TieQkv = TieModes.None)
    checkLossAndGradient "lowrank-none" c [| randomModel c 5; randomModel c 6 |] 37 32

[<Fact>]
let ``row train-step kernel: loss and every tensor's gradient match CpuBackend (311p, 3 models, 19 blocks, the last part-full)`` () =
    let c = ModelConfig.Preset311
    Assert.True(Adder.Kernels.AdderDims.RowsFit(ParameterLayout c))
    checkKernelLossAndGradient "rows_loss_and_gradient" "311p" c [| publishedModel (); randomModel c 1; randomModel c 2 |] 150 0

[<Fact>]
let ``row train-step kernel for many blocks (the same step, three blocks an SM on a GPU) matches CpuBackend`` () =
    let c = ModelConfig.Preset311
    checkKernelLossAndGradient "rows_many_loss_and_gradient" "311p" c [| randomModel c 9; publishedModel () |] 70 0

[<Fact>]
let ``the two row kernels write the same partial records bit for bit: a model's step does not depend on which one ran`` () =
    // CudaBackend picks the kernel from the grid's size (one model or many), so without this a seed trained in a
    // sweep of many would not reproduce the same seed trained alone
    let c = ModelConfig.Preset311
    let layout = ParameterLayout c
    let models = [| randomModel c 11; publishedModel () |]
    // 70: the last group part-full; 9: the many kernel's last block has a group with no sequence
    for batch in [ 70; 9 ] do
        let data = Array.init models.Length (fun m -> randomPairs (200 + m) batch)
        let tokens = data |> Array.map (fun (a, b) -> fullTokens a b) |> Array.concat
        let inputs =
            [ "dims", I(dims layout); "models", I [| models.Length |]; "batch", I [| batch |]; "block", I [| 0 |]
              "params", F(Array.concat models); "tokens", I tokens ]
        let case = sprintf "same-%d" batch
        match launch "rows_loss_and_gradient" case inputs, launch "rows_many_loss_and_gradient" case inputs with
        | Some few, Some many ->
            let bits name m = floats32 m name |> Array.map BitConverter.SingleToInt32Bits
            let records = (batch + 3) / 4
            Assert.Equal(models.Length * records * (layout.Count + Tokens.InputLength * c.DModel + 1), (bits "partials" few).Length)
            for name in [ "partials"; "grad"; "loss" ] do
                Assert.True((bits name few = bits name many), sprintf "batch %d: %s differs between the two row kernels" batch name)
        | _ -> ()

[<Fact>]
let ``row train-step kernel: ranks below 3 (qkv 2, ffn 2, pos 1, proj 2) match CpuBackend`` () =
    let c = ModelConfig(QkvRank = 2, FfnRank = 2, PosRank = 1, AttnOutRank = 2)
    Assert.True(Adder.Kernels.AdderDims.RowsFit(ParameterLayout c))
    checkKernelLossAndGradient "rows_loss_and_gradient" "lowrank" c [| randomModel c 3; randomModel c 4 |] 21 0

[<Fact>]
let ``row train-step kernel: the shipped 271p's shape (attn_out rank 1, ffn rank 2) matches CpuBackend`` () =
    let c = ModelConfig(AttnOutRank = 1, FfnRank = 2)
    Assert.True(Adder.Kernels.AdderDims.RowsFit(ParameterLayout c))
    checkKernelLossAndGradient "rows_loss_and_gradient" "271p" c [| randomModel c 7; randomModel c 8 |] 9 0

[<Fact>]
let ``row train-step kernel: configs outside the 311p family are left to the per-sequence kernel`` () =
    for c in [ ModelConfig.Preset "wide"; ModelConfig(PosRank = 0); ModelConfig(FfnRank = 4); ModelConfig(TieQkv = TieModes.None)
               ModelConfig(DFf = 12) ] do
        Assert.False(Adder.Kernels.AdderDims.RowsFit(ParameterLayout c), c.Describe())

// ---- the optimizer: GradClip.Apply + AdamW.Update ----

[<Fact>]
let ``optimizer kernel matches Grokfast, GradClip and AdamW over three steps, one model clipped, one not`` () =
    let config = ModelConfig.Preset311
    let layout = ParameterLayout(config)
    let P, G = layout.Count, layout.Count + config.MaxSeqLen * config.DModel + 1
    let rng = Random(11)
    let gaussian () = float32 (rng.NextDouble() - 0.5)
    let models = [| randomModel config 7; randomModel config 8 |]
    let optimizers = [| AdamW(P); AdamW(5L, Array.init P (fun _ -> gaussian () * 0.01f), Array.init P (fun _ -> abs (gaussian ()) * 1e-4f)) |]
    let mutable pars, ms, vs = Array.concat models, Array.concat [| for o in optimizers -> Array.copy o.M |], Array.concat [| for o in optimizers -> Array.copy o.V |]
    let mutable steps = [| for o in optimizers -> o.Step |]
    // the Grokfast average: model 1's starts non-zero (a resumed run's); the filter runs at the third step only
    let emas = [| Array.zeroCreate<float32> P; Array.init P (fun _ -> gaussian () * 0.01f) |]
    let mutable emaIn = Array.concat emas
    let alpha = 0.9
    for lr, lambda in [ 0.01, 0.0; 0.003, 0.0; 0.005, 0.5 ] do
        // two partial records per model; dPos zero, so the gradient is their float sum. Model 1's is large: clipped.
        let nblk = 2
        let partials =
            Array.init 2 (fun m ->
                Array.init nblk (fun _ ->
                    Array.init G (fun k -> if k < P then gaussian () * (if m = 1 then 3f else 0.02f) elif k = G - 1 then 0.5f else 0f))
                |> Array.concat)
        let settings = StepSettings(lr, 0.01, 1.0, 0.9, 0.999, 1e-8)
        let result =
            launch "optimizer_step" (sprintf "311p-lr%g-grokfast%g" lr lambda)
                [ "dims", I(dims layout); "models", I [| 2 |]; "nblk", I [| nblk |]; "partials", F(Array.concat partials)
                  "settings", D [| settings.Lr; settings.WeightDecay; settings.Clip; settings.Beta1; settings.Beta2; settings.Eps; alpha; lambda |]
                  "params", F pars; "adam_m", F ms; "adam_v", F vs; "step", L steps; "grokfast_ema", F emaIn ]
        match result with
        | None -> ()
        | Some out ->
            for m in 0 .. 1 do
                let grad = Array.init P (fun k -> partials.[m].[k] + partials.[m].[G + k])
                if lambda <> 0.0 then Grokfast.Apply(Span grad, Span emas.[m], alpha, lambda)
                let clip = GradClip.Apply(Span grad, settings.Clip)
                Assert.True((m = 1) = (clip.Coefficient < 1.0), sprintf "model %d: clip coefficient %g" m clip.Coefficient)
                optimizers.[m].Update(Span models.[m], ReadOnlySpan grad, settings.Lr, settings.WeightDecay)
                let norm = (doubles out "norm").[m]
                Assert.True(abs (norm - clip.Norm) <= 1e-12 * clip.Norm, sprintf "model %d: norm %g, CPU %g" m norm clip.Norm)
                Assert.Equal(1.0f, (floats32 out "loss").[m])
                Assert.Equal(optimizers.[m].Step, (longs out "step").[m])
                let slice name = (floats32 out name).[m * P .. m * P + P - 1]
                for name, expected in [ "params", models.[m]; "adam_m", optimizers.[m].M; "adam_v", optimizers.[m].V; "grokfast_ema", emas.[m] ] do
                    let err = worstRelative 1e-3 (slice name) expected
                    Assert.True(err <= 1e-5, sprintf "lr %g, model %d, %s: relative error %g" lr m name err)
            pars <- floats32 out "params"
            ms <- floats32 out "adam_m"
            vs <- floats32 out "adam_v"
            steps <- longs out "step"
            emaIn <- floats32 out "grokfast_ema"

// ---- inference: logits and greedy decoding ----

let private checkLogits (case: string) (config: ModelConfig) (models: float32[][]) (count: int) (block: int) =
    let layout = ParameterLayout(config)
    let data = Array.init models.Length (fun m -> randomPairs (200 + m) count)
    let tokens = data |> Array.map (fun (a, b) -> fullTokens a b) |> Array.concat
    let result =
        launch "logits" case
            [ "dims", I(dims layout); "models", I [| models.Length |]; "count", I [| count |]; "block", I [| block |]
              "params", F(Array.concat models); "tokens", I tokens ]
    match result with
    | None -> ()
    | Some out ->
        let logits = floats32 out "logits"
        let n = count * Tokens.InputLength * config.VocabSize
        for m in 0 .. models.Length - 1 do
            let a, b = data.[m]
            let expected = CpuReference.logits config models.[m] a b
            let err = worstRelative 1e-3 logits.[m * n .. m * n + n - 1] expected
            Assert.True(err <= 1e-5, sprintf "model %d: logits relative error %g" m err)

[<Fact>]
let ``logits kernel matches CpuBackend.Logits (311p published and random, wide random; 3 blocks)`` () =
    checkLogits "311p" ModelConfig.Preset311 [| publishedModel (); randomModel ModelConfig.Preset311 9 |] 70 32
    let wide = ModelConfig.Preset "wide"
    checkLogits "wide" wide [| randomModel wide 10; randomModel wide 11; randomModel wide 12 |] 70 64

let private checkDecode (case: string) (config: ModelConfig) (models: float32[][]) (count: int) (block: int) =
    let layout = ParameterLayout(config)
    let data = Array.init models.Length (fun m -> randomPairs (300 + m) count)
    let prompts = data |> Array.map (fun (a, b) -> promptTokens a b) |> Array.concat
    let result =
        launch "decode" case
            [ "dims", I(dims layout); "models", I [| models.Length |]; "count", I [| count |]; "block", I [| block |]
              "params", F(Array.concat models); "prompts", I prompts ]
    match result with
    | None -> []
    | Some out ->
        let tokens = ints out "out"
        let n = count * Tokens.SumDigits
        [ for m in 0 .. models.Length - 1 do
              let a, b = data.[m]
              let expected = CpuReference.decode config models.[m] a b
              let got = tokens.[m * n .. m * n + n - 1]
              Assert.True((expected = got), sprintf "model %d: %d of %d tokens differ" m (Array.fold2 (fun s x y -> if x <> y then s + 1 else s) 0 expected got) n)
              yield got ]

[<Fact>]
let ``decode kernel gives CpuBackend.Decode's tokens exactly (published checkpoint, 200 sums; random models)`` () =
    let c = ModelConfig.Preset311
    match checkDecode "311p" c [| randomModel c 13; publishedModel () |] 200 64 with
    | [] -> ()
    | results ->
        // the published model gets (nearly) all sums right: the kernel really decodes
        let a, b = randomPairs 301 200
        let right =
            Seq.init 200 (fun i -> Tokens.DecodeReversedSum(ReadOnlySpan(results.[1], i * 11, 11)) = a.[i] + b.[i]) |> Seq.filter id |> Seq.length
        Assert.True(right >= 199, sprintf "published model: %d of 200 sums right" right)
    let wide = ModelConfig.Preset "wide"
    checkDecode "wide" wide [| randomModel wide 14; randomModel wide 15 |] 50 32 |> ignore

// ---- the PTX ----

[<Fact>]
let ``committed PTX equals a fresh nvcc build and ptxas accepts it for sm_90`` () =
    if not (onPath "nvcc") then
        missingTool "nvcc (scripts/install-cuda-toolchain.sh)"
        eprintfn "KernelTests: SKIPPED the PTX staleness check, nvcc is not installed (scripts/install-cuda-toolchain.sh)"
    else
        let dir = tempDir ()
        try
            let code, output = run "bash" [ Path.Combine(repoRoot, "scripts", "build-ptx.sh"); dir ]
            Assert.True((code = 0), sprintf "scripts/build-ptx.sh failed:\n%s" output)
            for name in [ "train_step"; "train_rows"; "optimizer"; "logits"; "decode" ] do
                let committed = Path.Combine(repoRoot, "kernels", "ptx", name + ".ptx")
                Assert.True(File.Exists committed, sprintf "kernels/ptx/%s.ptx is missing" name)
                let fresh = Path.Combine(dir, name + ".ptx")
                if File.ReadAllBytes committed <> File.ReadAllBytes fresh then
                    // the first line that differs, so that a stale file can be told from a build that went wrong
                    let a, b = File.ReadAllLines committed, File.ReadAllLines fresh
                    let i = Seq.zip a b |> Seq.tryFindIndex (fun (x, y) -> x <> y) |> Option.defaultValue (min a.Length b.Length)
                    let line (xs: string[]) = if i < xs.Length then xs.[i] else "(end of file)"
                    failwithf "kernels/ptx/%s.ptx is stale: run scripts/build-ptx.sh (%d and %d lines; line %d: committed '%s', fresh '%s')"
                        name a.Length b.Length (i + 1) (line a) (line b)
                let code, output = run "ptxas" [ "-arch=sm_90"; committed; "-o"; Path.Combine(dir, name + ".cubin") ]
                Assert.True((code = 0), sprintf "ptxas -arch=sm_90 rejects %s.ptx:\n%s" name output)
        finally
            Directory.Delete(dir, true)
