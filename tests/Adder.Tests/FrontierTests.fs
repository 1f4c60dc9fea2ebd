/// The AdderBoard frontier's models in Adder: the MicroAdder 67p imported and scored, the goldens through
/// `adder check-gradients`, every preset training from scratch, and the commands on an architecture.
module Adder.Tests.FrontierTests

open System
open System.IO
open Xunit
open Adder.Core
open Adder.Core.Cpu
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests

let microAdder () = sharedFile "reference/microadder/checkpoint_67p.pt"

[<Fact>]
let ``the MicroAdder 67p imports with the authors' weights and gets 10,010 of 10,010 on AdderBoard's protocol`` () =
    let ckpt = Checkpoint.Load(microAdder ())
    Assert.Equal("67p", ckpt.Model.Config.General.Name)
    Assert.Equal(67, ckpt.Model.Layout.Count)
    // the golden lists the published weights under the same names
    let golden = goldenJson "frontier_67p.json"
    for t in ckpt.Model.Layout.Tensors do
        let expected = ArchitectureTests.flatten (golden.GetProperty("params").GetProperty t.Name)
        Assert.Equal<float[]>(expected |> Array.map (fun x -> float (float32 x)), ckpt.Model.Tensor(t.Name).ToArray() |> Array.map float)
    use backend = Backends.create Backends.Cpu ckpt.Model.Config 1 CpuOptions.Default
    backend.SetParameters(0, ReadOnlySpan ckpt.Model.Parameters)
    let report = Evaluation.run "67p" "adderboard" backend (AdderBoard.sets ())
    Assert.Equal(10_010, report.Total.Examples)
    Assert.Equal(0, report.Total.Errors)

[<Theory>]
[<InlineData("adder-67p-s24.safetensors", 67)>]
[<InlineData("adder-67p-s71046.safetensors", 67)>]
[<InlineData("adder-62p-s10.safetensors", 62)>]
[<InlineData("adder-44p-s13.safetensors", 44)>]
[<InlineData("adder-57p-s777.safetensors", 57)>]
[<InlineData("adder-57p-s39.safetensors", 57)>]
[<InlineData("adder-36p-s5.safetensors", 36)>]
[<InlineData("adder-34p-s5.safetensors", 34)>]
[<InlineData("adder-33p-s5.safetensors", 33)>]
let ``our shipped frontier models, trained by Adder, get 10,010 of 10,010 on AdderBoard's protocol`` (file: string, count: int) =
    let r = run [ "eval"; "-c"; Path.Combine(AppContext.BaseDirectory, "models", file); "--suite"; "adderboard" ]
    Assert.Equal(0, r.Code)
    Assert.Contains(sprintf "%d parameters" count, r.Out)
    Assert.Contains("10010 / 10010 correct", r.Out)

[<Theory>]
[<InlineData("frontier_62p.json")>]
[<InlineData("frontier_36p.json")>]
[<InlineData("frontier_67p.json")>]
let ``golden: adder check-gradients passes on the frontier goldens`` (file: string) =
    let r = run [ "check-gradients"; "--golden"; sharedFile ("golden/" + file) ]
    Assert.True((r.Code = 0), sprintf "exit %d\n%s%s" r.Code r.Out r.Err)
    Assert.Contains("PASS", r.Out)

[<Fact>]
let ``a golden whose tokens disagree with the format's encoding is refused`` () =
    let dir = tempDir ()
    let text = File.ReadAllText(sharedFile "golden/frontier_62p.json")
    // the first sequence's first operand digit: 0, 9, 9, ... becomes 0, 8, 9, ...
    let edited = text.Replace("\"tokens\": [\n    0,\n    9,", "\"tokens\": [\n    0,\n    8,")
    Assert.NotEqual<string>(text, edited)
    let path = Path.Combine(dir, "g.json")
    File.WriteAllText(path, edited)
    assertOneLineError "tokens differ from format lsb10's encoding" (run [ "check-gradients"; "--golden"; path ])

/// Plain AdamW steps of one model at a constant lr on fresh uniform 1..10-digit batches.
let trainFromScratch (preset: string) (steps: int) =
    let config = Architectures.preset preset
    let model = Model.Initialised(config, 1)
    use backend = Backends.create Backends.Cpu config 1 CpuOptions.Default
    backend.SetParameters(0, ReadOnlySpan model.Parameters)
    backend.SetOptimizer(0, OptimizerState(0L, Array.zeroCreate model.Layout.Count, Array.zeroCreate model.Layout.Count))
    let sampler = Batches.sampler 5 (Batches.holdout 5) Curriculum.Full
    let batch = 64
    let a = Array.zeroCreate<int64> batch
    let b = Array.zeroCreate<int64> batch
    let results = Array.zeroCreate<StepResult> 1
    let settings = StepSettings(0.01, 0.0, 1.0, AdamW.DefaultBeta1, AdamW.DefaultBeta2, AdamW.DefaultEps)
    [| for step in 0 .. steps - 1 ->
        sampler.NextBatch(step, a, b)
        backend.TrainStep(ReadOnlySpan(config.Format.EncodeFullBatch(a, b)), batch, &settings, Span results)
        float results.[0].Loss |]

/// The weights after 300 steps of trainFromScratch's schedule, as SHA-256 of their float32 bytes.
let private fingerprintAfter (preset: string) (options: CpuOptions) =
    let config = Architectures.preset preset
    let model = Model.Initialised(config, 1)
    use backend = Backends.create Backends.Cpu config 1 options
    backend.SetParameters(0, ReadOnlySpan model.Parameters)
    backend.SetOptimizer(0, OptimizerState(0L, Array.zeroCreate model.Layout.Count, Array.zeroCreate model.Layout.Count))
    let sampler = Batches.sampler 5 (Batches.holdout 5) Curriculum.Full
    let batch = 128
    let a = Array.zeroCreate<int64> batch
    let b = Array.zeroCreate<int64> batch
    let results = Array.zeroCreate<StepResult> 1
    let settings = StepSettings(0.01, 0.01, 1.0, AdamW.DefaultBeta1, AdamW.DefaultBeta2, AdamW.DefaultEps)
    for step in 0 .. 299 do
        sampler.NextBatch(step, a, b)
        backend.TrainStep(ReadOnlySpan(config.Format.EncodeFullBatch(a, b)), batch, &settings, Span results)
    let weights = Array.zeroCreate<float32> model.Layout.Count
    backend.GetParameters(0, Span weights)
    let bytes = Array.zeroCreate<byte> (weights.Length * 4)
    Buffer.BlockCopy(weights, 0, bytes, 0, bytes.Length)
    Convert.ToHexString(Security.Cryptography.SHA256.HashData bytes).ToLowerInvariant()

/// The general block's training numerics (both token formats, 4- and 5-dim values, one and two threads): pinned
/// like the seed's fingerprint. These are the weights of commit 7432fb7's block too, before its speed-ups,
/// which keep every operation and its order. A change that alters them does so on purpose and says why.
[<Theory>]
[<InlineData("62p", "f12b8d685d93a83fe4b03fe5b3e0b043803d6a94b8e410eeef991f17578b98d4")>]
[<InlineData("67p", "49cf3fee370d15b303d9a207dff5ad2f9da3ba523f1d219ec3cc6546a4a1b5ba")>]
let ``training fingerprint of the general block: 300 steps of the 62p and the 67p, on one thread and on two`` (preset: string, expected: string) =
    let one = fingerprintAfter preset (CpuOptions 1)
    Assert.True((expected = one), sprintf "%s on one thread: %s" preset one)
    let two = fingerprintAfter preset (CpuOptions 2)
    Assert.True((expected = two), sprintf "%s on two threads: %s" preset two)

[<Theory>]
[<InlineData("62p")>]
[<InlineData("44p")>]
[<InlineData("36p")>]
[<InlineData("67p")>]
[<InlineData("57p")>]
let ``every frontier preset learns from scratch: the loss falls over 1,500 steps`` (preset: string) =
    let losses = trainFromScratch preset 1500
    let first = Array.average losses.[0..99]
    let last = Array.average losses.[losses.Length - 100 ..]
    Assert.True(Array.forall Double.IsFinite losses, "a loss is not finite")
    // ln 10 ≈ 2.30 is a uniform guess over the digits; learning the sum's structure goes well below it
    Assert.True(last < 0.8 * first && last < 2.0, sprintf "%s: mean loss %.3f over the first 100 steps, %.3f over the last 100" preset first last)

[<Fact>]
let ``adder train, eval, predict and info on an architecture end to end`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "run")
    let r = run [ "train"; "--preset"; "36p"; "--steps"; "300"; "--batch"; "32"; "--warmup"; "30"; "--eval-interval"; "150"; "--lr"; "0.01"; "--out"; out ]
    Assert.True((r.Code = 0), sprintf "train exit %d\n%s%s" r.Code r.Out r.Err)
    Assert.Contains("architecture 36p (36 parameters", r.Out)
    let best = Path.Combine(out, "best.safetensors")
    let info = run [ "info"; best ]
    Assert.Contains("k                  4×3     rot(attn.key_angle, 4) @ attn.W_q", info.Out)
    Assert.Contains("unique parameters: 36", info.Out)
    let eval = run [ "eval"; "-c"; best; "--suite"; "random"; "--count"; "500" ]
    Assert.True((eval.Code = 0), eval.Err)
    Assert.Contains("500", eval.Out)
    let predict = run [ "predict"; "-c"; microAdder (); "1234567890"; "9876543210" ]
    Assert.Equal("11111111100", predict.Out.Trim())
    // resuming the run continues it (the architecture comes back from config.json and the checkpoint)
    let resumed = run [ "train"; "--steps"; "300"; "--out"; out; "--resume" ]
    Assert.True((resumed.Code = 0), sprintf "resume exit %d\n%s%s" resumed.Code resumed.Out resumed.Err)

[<Fact>]
let ``architecture misuse ends in one line`` () =
    assertOneLineError "change the seed's family only" (run [ "train"; "--preset"; "62p"; "--d-model"; "8"; "--steps"; "10"; "--out"; Path.Combine(tempDir (), "x") ])
    assertOneLineError "the CUDA backend runs the seed's family only" (run [ "eval"; "-c"; microAdder (); "--device"; "cuda" ])
    let dir = tempDir ()
    let bad = Path.Combine(dir, "bad.json")
    File.WriteAllText(bad, (ArchitecturePresets.Load "62p").ToJson().Replace("\"rope_theta\":3", "\"rope_theta\":3,\"n_layers\":2"))
    assertOneLineError "unknown architecture key 'n_layers'" (run [ "info"; "--arch"; bad ])
    assertOneLineError "unknown architecture key 'n_layers'" (run [ "train"; "--arch"; bad; "--steps"; "10"; "--out"; Path.Combine(dir, "r") ])
    Assert.False(Directory.Exists(Path.Combine(dir, "r")), "a refused architecture left a run folder")
    let info = run [ "info"; "--preset"; "67p" ]
    Assert.Contains("unique parameters: 67", info.Out)
