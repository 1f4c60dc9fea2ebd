/// The architecture as one description: presets and their counts, the generic block against the frontier
/// goldens (written independently of this project) and the seed's, every tie against float64 finite
/// differences, and bad architectures refused in one line.
module Adder.Tests.ArchitectureTests

open System
open System.Text.Json
open Xunit
open Adder.Core
open Adder.Core.Cpu
open Adder.Tests.Shared

/// A golden value (a number or nested lists) flattened row-major.
let rec flatten (e: JsonElement) : float[] =
    match e.ValueKind with
    | JsonValueKind.Number -> [| e.GetDouble() |]
    | JsonValueKind.Array -> [| for x in e.EnumerateArray() do yield! flatten x |]
    | JsonValueKind.Object -> flatten (e.GetProperty "data")
    | k -> failwithf "unexpected golden value %A" k

let backendOf (arch: Architecture) = new GeneralBackend(ModelConfig.Of arch, 1, CpuOptions.Default)

/// The stored parameters named in a golden's params map, in the architecture's order.
let parametersFrom (arch: Architecture) (pars: JsonElement) =
    [| for p in arch.Parameters do
         let values = flatten (pars.GetProperty p.Name)
         if values.Length <> p.Size then failwithf "golden %s has %d values, the architecture %d" p.Name values.Length p.Size
         yield! values |]

let goldenTokens (golden: JsonElement) =
    [| for x in golden.GetProperty("batch").EnumerateArray() do for t in x.GetProperty("tokens").EnumerateArray() -> t.GetInt32() |]

[<Fact>]
let ``the presets' unique parameter counts are 311, 62, 44, 36, 67 and 57`` () =
    let counts = [ for name in ArchitecturePresets.Names -> name, (ArchitecturePresets.Load name).Count ]
    Assert.Equal<(string * int) list>([ "311p", 311; "62p", 62; "44p", 44; "36p", 36; "67p", 67; "57p", 57 ], counts)
    // the seed's description has the seed family's tensors, names and shapes
    let seed = ArchitecturePresets.Load "311p"
    let layout = ParameterLayout ModelConfig.Preset311
    Assert.Equal<(string * int[]) list>([ for t in layout.Tensors -> t.Name, t.Shape ], [ for p in seed.Parameters -> p.Name, p.Shape ])

/// The ties BENCHMARKS reports as tried (docs/experiments/) still parse, with the counts it gives them.
[<Theory>]
[<InlineData("33p.json", 33)>]
[<InlineData("34p.json", 34)>]
[<InlineData("34p-rotq.json", 34)>]
[<InlineData("41p.json", 41)>]
[<InlineData("32p-ff1.json", 32)>]
[<InlineData("30p-d2.json", 30)>]
[<InlineData("35p-gelu.json", 35)>]
[<InlineData("35p-gate-up.json", 35)>]
[<InlineData("33p-gate-scale.json", 33)>]
[<InlineData("42p-down-res.json", 42)>]
[<InlineData("41p-gate-res.json", 41)>]
[<InlineData("40p-gate-rank1-res.json", 40)>]
[<InlineData("34p-gate-rank1.json", 34)>]
[<InlineData("33p-gate-rank1-kq.json", 33)>]
[<InlineData("34p-gate-rank1-qn.json", 34)>]
[<InlineData("33p-gate-rank1-qn3.json", 33)>]
let ``the architectures tried in BENCHMARKS have the counts it gives`` (file: string, count: int) =
    let path = IO.Path.Combine(repoRoot, "docs", "experiments", file)
    Assert.Equal(count, Architecture.FromJson(IO.File.ReadAllText path, path).Count)

[<Theory>]
[<InlineData("62p", "frontier_62p.json")>]
[<InlineData("36p", "frontier_36p.json")>]
[<InlineData("67p", "frontier_67p.json")>]
let ``golden: the generic block's loss, every gradient and the logits match the frontier goldens`` (preset: string, file: string) =
    let golden = goldenJson file
    let arch = ArchitecturePresets.Load preset
    Assert.Equal(golden.GetProperty("unique_parameters").GetInt32(), arch.Count)
    let values = parametersFrom arch (golden.GetProperty "params")
    let tokens = goldenTokens golden
    let batch = golden.GetProperty("batch").GetArrayLength()
    use backend = backendOf arch
    // float64 end to end: the reference's own precision
    let grad = Array.zeroCreate<float> values.Length
    let loss = backend.LossAndGradient(values, ReadOnlySpan tokens, batch, grad)
    Assert.True(abs (loss - golden.GetProperty("loss").GetDouble()) < 1e-9, sprintf "loss %.12f, golden %.12f" loss (golden.GetProperty("loss").GetDouble()))
    let g = golden.GetProperty "grad"
    for p in arch.Parameters do
        let offset = (arch.Compile()).Offsets.[p.Name]
        let expected = flatten (g.GetProperty p.Name)
        let got = grad.[offset .. offset + p.Size - 1]
        let err = relativeError got expected
        Assert.True(err < 1e-6, sprintf "%s: relative error %g (got %A, golden %A)" p.Name err got expected)
    // float32 parameters, as a trained model holds them: the loss within float32's reach
    backend.SetParameters(0, ReadOnlySpan(Array.map float32 values))
    let grad32 = Array.zeroCreate<float32> values.Length
    let loss32 = backend.LossAndGradient(0, ReadOnlySpan tokens, batch, Span grad32)
    Assert.True(abs (float loss32 - loss) < 1e-4 * max 1.0 loss, sprintf "float32 loss %g vs %g" loss32 loss)
    let format = arch.Format
    let logits = Array.zeroCreate<float32> (format.InputLength * format.VocabSize)
    backend.Logits(0, ReadOnlySpan(tokens, 0, format.FullLength), 1, Span logits)
    let expected = flatten (golden.GetProperty "logits_sequence_0")
    Assert.Equal(expected.Length, logits.Length)
    let worst = Seq.map2 (fun (x: float32) y -> abs (float x - y) / max 1.0 (abs y)) logits expected |> Seq.max
    Assert.True(worst < 1e-4, sprintf "logits differ by %g" worst)

[<Fact>]
let ``golden: the seed's 311p described as roles gives the seed's golden gradient on the general path`` () =
    let golden = goldenJson "gradcheck_random_init.json"
    let arch = ArchitecturePresets.Load "311p"
    let values = parametersFrom arch (golden.GetProperty "params")
    let a, b = pairs (golden.GetProperty "batch")
    let tokens = Tokens.EncodeFullBatch(a, b)
    use backend = backendOf arch
    let grad = Array.zeroCreate<float> values.Length
    let loss = backend.LossAndGradient(values, ReadOnlySpan tokens, a.Length, grad)
    Assert.True(abs (loss - golden.GetProperty("loss").GetDouble()) < 1e-6, sprintf "loss %g" loss)
    let compiled = arch.Compile()
    for p in arch.Parameters do
        let offset = compiled.Offsets.[p.Name]
        let err = relativeError grad.[offset .. offset + p.Size - 1] (flatten (golden.GetProperty("grad").GetProperty p.Name))
        Assert.True(err < 1e-4, sprintf "%s: relative error %g" p.Name err)

/// Central differences of the float64 loss against the analytic gradient, for every stored parameter.
let finiteDifferenceCheck (arch: Architecture) =
    use backend = backendOf arch
    let format = arch.Format
    let compiled = arch.Compile()
    let values = Array.zeroCreate<float32> compiled.Count
    compiled.Initialise(Span values, 7)
    // random values, not the init: every tie and norm weight off its starting point
    let rng = Random 11
    let values = values |> Array.map (fun v -> float v + 0.3 * (rng.NextDouble() - 0.5))
    let a = [| 9999999999L; 0L; 123456789L; 5000000000L; 31L |]
    let b = [| 1L; 0L; 987654321L; 5000000000L; 9999999969L |]
    let tokens = format.EncodeFullBatch(a, b)
    let grad = Array.zeroCreate<float> values.Length
    backend.LossAndGradient(values, ReadOnlySpan tokens, a.Length, grad) |> ignore
    let h = 1e-6
    let numeric =
        Array.init values.Length (fun i ->
            let shifted (d: float) =
                let v = Array.copy values
                v.[i] <- v.[i] + d
                backend.LossAndGradient(v, ReadOnlySpan tokens, a.Length, Array.zeroCreate v.Length)
            (shifted h - shifted -h) / (2.0 * h))
    for p in arch.Parameters do
        let o = compiled.Offsets.[p.Name]
        let err = relativeError grad.[o .. o + p.Size - 1] numeric.[o .. o + p.Size - 1]
        Assert.True(err < 1e-5, sprintf "%s %s: relative error %g" arch.Name p.Name err)

[<Theory>]
[<InlineData("62p")>]
[<InlineData("44p")>]
[<InlineData("36p")>]
[<InlineData("67p")>]
[<InlineData("57p")>]
let ``every preset's gradient matches float64 central differences`` (preset: string) =
    finiteDifferenceCheck (ArchitecturePresets.Load preset)

/// An architecture file built from a preset with one change.
let edited (preset: string) (edit: Nodes.JsonObject -> unit) =
    let o = Nodes.JsonNode.Parse((ArchitecturePresets.Load preset).ToJson()).AsObject()
    edit o
    o.ToJsonString()

[<Fact>]
let ``ties written as expressions: K = alpha Q, gate = alpha up, V = Q^T rotated, hcat splits — gradients against central differences`` () =
    let json =
        edited "44p" (fun o ->
            let ps = o.["parameters"].AsObject()
            ps.["attn.alpha"] <- Nodes.JsonNode.Parse """{"shape": [1], "init": "constant 0.7"}"""
            ps.["mlp.beta"] <- Nodes.JsonNode.Parse """{"shape": [1], "init": "constant 1.3"}"""
            ps.Remove "mlp.W_gate" |> ignore
            let roles = o.["roles"].AsObject()
            roles.["k"] <- Nodes.JsonValue.Create "attn.alpha * attn.W_q"
            roles.["mlp_gate"] <- Nodes.JsonValue.Create "mlp.beta * mlp.W_up - 0.5 * mlp.W_up"
            roles.["v"] <- Nodes.JsonValue.Create "rot(attn.alpha, 4) @ vcat(slice(attn.W_q, 0, 2, 0, 3), -slice(attn.W_q, 2, 2, 0, 3))")
    let arch = Architecture.FromJson(json, "test")
    Assert.Equal(44 - 6 + 2, arch.Count)
    finiteDifferenceCheck arch

let refusal (json: string) =
    let e = Assert.Throws<AdderException>(fun () -> Architecture.FromJson(json, "arch.json") |> ignore)
    Assert.DoesNotContain("\n", e.Message)
    e.Message

[<Fact>]
let ``bad architectures end in one line naming the problem`` () =
    // RoPE with an odd head dimension
    let odd =
        edited "62p" (fun o ->
            o.["parameters"].["attn.W_q"].["shape"] <- Nodes.JsonNode.Parse "[3, 3]"
            o.["parameters"].["attn.W_k"].["shape"] <- Nodes.JsonNode.Parse "[3, 3]"
            o.["parameters"].["attn.q_norm"].["shape"] <- Nodes.JsonNode.Parse "[3]"
            o.["parameters"].["attn.k_norm"].["shape"] <- Nodes.JsonNode.Parse "[3]")
    Assert.Contains("head dim must be even", refusal odd)
    // a tie to a role or parameter that does not exist
    Assert.Contains("'attn.W_x' is neither", refusal (edited "62p" (fun o -> o.["roles"].["k"] <- Nodes.JsonValue.Create "attn.W_x")))
    Assert.Contains("'v' is neither", refusal (edited "62p" (fun o -> o.["roles"].["k"] <- Nodes.JsonValue.Create "v")))
    // a split that does not add up
    let split = refusal (edited "67p" (fun o -> o.["roles"].["k"] <- Nodes.JsonValue.Create "hcat(zeros(4, 1), q_proj.weight)"))
    Assert.Contains("role q is 4×4, the block needs 4×5", split)
    Assert.Contains("split that does not add up", refusal (edited "67p" (fun o -> o.["roles"].["k"] <- Nodes.JsonValue.Create "hcat(zeros(3, 2), q_proj.weight)")))
    // a format whose vocabulary the token table cannot hold
    Assert.Contains("format seed needs a vocabulary of 14 tokens", refusal (edited "62p" (fun o -> o.["format"] <- Nodes.JsonValue.Create "seed")))
    // unknown keys, roles, functions; an unused parameter; a missing role
    Assert.Contains("unknown architecture key 'n_layers'", refusal (edited "62p" (fun o -> o.["n_layers"] <- Nodes.JsonValue.Create 2)))
    Assert.Contains("unknown role 'gate'", refusal (edited "62p" (fun o -> o.["roles"].["gate"] <- Nodes.JsonValue.Create "mlp.W_gate")))
    Assert.Contains("unknown function 'rotate'", refusal (edited "36p" (fun o -> o.["roles"].["k"] <- Nodes.JsonValue.Create "rotate(attn.key_angle, 4) @ attn.W_q")))
    Assert.Contains("'attn.W_k' is used by no role", refusal (edited "62p" (fun o -> o.["roles"].["v"] <- Nodes.JsonValue.Create "attn.W_q"; o.["roles"].["k"] <- Nodes.JsonValue.Create "attn.W_q")))
    Assert.Contains("role head is missing", refusal (edited "62p" (fun o -> o.["roles"].AsObject().Remove "head" |> ignore)))
    Assert.Contains("unknown token format 'msb'", refusal (edited "62p" (fun o -> o.["format"] <- Nodes.JsonValue.Create "msb")))
    Assert.Contains("not valid JSON", refusal "{ not json")

[<Fact>]
let ``erf and GELU agree with known values to double precision`` () =
    // erf values from tables (Abramowitz and Stegun / mpmath)
    for x, e in [ 0.1, 0.1124629160182849; 0.5, 0.5204998778130465; 1.0, 0.8427007929497149; 2.0, 0.9953222650189527
                  3.5, 0.9999992569016276; 5.0, 0.9999999999984626; -0.7, -0.6778011938374184 ] do
        Assert.True(abs (GeneralLayers.Erf x - e) < 1e-15, sprintf "erf(%g) = %.17g, expected %.17g" x (GeneralLayers.Erf x) e)

[<Fact>]
let ``an architecture survives a checkpoint round trip whole`` () =
    let arch = ArchitecturePresets.Load "36p"
    let model = Model.Initialised(ModelConfig.Of arch, 3)
    let dir = tempDir ()
    let path = IO.Path.Combine(dir, "m.safetensors")
    Checkpoint(model).Save path
    let back = Checkpoint.Load path
    Assert.Equal(ModelConfig.Of arch, back.Model.Config)
    Assert.Equal<float32[]>(model.Parameters, back.Model.Parameters)

[<Theory>]
[<InlineData("62p")>]
[<InlineData("44p")>]
[<InlineData("36p")>]
[<InlineData("67p")>]
[<InlineData("57p")>]
[<InlineData("311p")>]
let ``the float32 lanes that train and decode agree with the float64 reference block`` (preset: string) =
    let arch = ArchitecturePresets.Load preset
    use backend = backendOf arch
    let compiled = arch.Compile()
    let values = Array.zeroCreate<float32> compiled.Count
    compiled.Initialise(Span values, 5)
    let rng = Random 3
    let values = values |> Array.map (fun v -> v + float32 (0.3 * (rng.NextDouble() - 0.5)))
    backend.SetParameters(0, ReadOnlySpan values)
    // 37 sequences: two full chunks of 16 lanes and a part-filled one
    let r = Random 9
    let a = Array.init 37 (fun _ -> r.NextInt64(10_000_000_000L))
    let b = Array.init 37 (fun _ -> r.NextInt64(10_000_000_000L))
    let tokens = arch.Format.EncodeFullBatch(a, b)
    let grad64 = Array.zeroCreate<float> values.Length
    let loss64 = backend.LossAndGradient(Array.map float values, ReadOnlySpan tokens, a.Length, grad64)
    let grad32 = Array.zeroCreate<float32> values.Length
    let loss32 = backend.LossAndGradient(0, ReadOnlySpan tokens, a.Length, Span grad32)
    Assert.True(abs (float loss32 - loss64) < 1e-5 * loss64, sprintf "loss %g (lanes) vs %g (reference)" loss32 loss64)
    let err = relativeError (Array.map float grad32) grad64
    Assert.True(err < 1e-4, sprintf "gradient relative error %g" err)
    // decoding: the lanes' greedy answers are the reference's argmaxes
    let block = GeneralBlock(compiled)
    compiled.Graph.Forward(ReadOnlySpan(Array.map float values))
    let roles = GeneralBlock.RoleSet.Values compiled
    let ws = block.NewWorkspace()
    let prompts = arch.Format.EncodePromptBatch(a, b)
    let decoded = Array.zeroCreate<int> (a.Length * TokenFormat.SumDigits)
    backend.Decode(0, ReadOnlySpan prompts, a.Length, Span decoded)
    let P = arch.Format.PromptLength
    for s in 0 .. a.Length - 1 do
        prompts.AsSpan(s * P, P).CopyTo(Span ws.Tokens)
        for t in 0 .. P - 2 do block.ForwardPosition(roles, ws, t)
        for k in 0 .. TokenFormat.SumDigits - 1 do
            let t = P - 1 + k
            block.ForwardPosition(roles, ws, t)
            let row = ws.Logits.[t * compiled.Vocab .. (t + 1) * compiled.Vocab - 1]
            let best = Array.IndexOf(row, Array.max row)
            let sorted = Array.sortDescending row
            // a near tie may go either way in float32
            if sorted.[0] - sorted.[1] > 1e-3 then Assert.Equal(best, decoded.[s * TokenFormat.SumDigits + k])
            ws.Tokens.[t + 1] <- decoded.[s * TokenFormat.SumDigits + k]

[<Fact>]
let ``a model_config key this version does not know is refused, not dropped`` () =
    let e = Assert.Throws<AdderException>(fun () -> ConfigJson.Read("""{"d_model": 4, "n_heads": 2}""", "ckpt") |> ignore)
    Assert.Contains("unknown model_config key 'n_heads'", e.Message)
    let mixed = Assert.Throws<AdderException>(fun () -> ConfigJson.Read("""{"architecture": {}, "d_model": 4}""", "ckpt") |> ignore)
    Assert.Contains("an architecture and other keys", mixed.Message)
    // every key the seed's config writes reads back
    Assert.Equal(ModelConfig.Preset311, ConfigJson.Read(ConfigJson.Write ModelConfig.Preset311, "ckpt"))
