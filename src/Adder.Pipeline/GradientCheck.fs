/// Compares our loss and backward pass with a golden gradient file (gradcheck_random_init.json's shape).
module Adder.Pipeline.GradientCheck

open System
open System.IO
open System.Text.Json
open Adder.Core

type TensorError = { Name: string; RelativeError: float; Norm: float }
type Result = { Loss: float; GoldenLoss: float; LossRelativeError: float; Tensors: TensorError list; Passed: bool }

let private property (e: JsonElement) (name: string) (path: string) =
    match e.TryGetProperty name with
    | true, v -> v
    | _ -> fail "%s: missing '%s'" path name

let private flatten = Golden.flatten

/// Loads the golden's parameters into a model of its config (311p unless the file says otherwise) and
/// compares the loss and gradient that backendFor's backend computes.
let run (backendFor: ModelConfig -> IBackend) (path: string) =
    if not (File.Exists path) then fail "golden file not found: %s" path
    let root =
        try JsonDocument.Parse(SafeFiles.ReadAllText(path, "golden file")).RootElement
        with :? JsonException as e -> fail "%s: not valid JSON (%s)" path e.Message
    try
        let config =
            match root.TryGetProperty "architecture", root.TryGetProperty "config" with
            | (true, arch), _ when arch.ValueKind = JsonValueKind.String ->
                let name = arch.GetString()
                if not (ArchitecturePresets.IsPreset name) then fail "%s: architecture '%s' is not a preset (known: %s)" path (Limits.Echo name) (String.Join(", ", ArchitecturePresets.Names))
                Architectures.preset name
            | _, (true, c) ->
                let int name fallback = match c.TryGetProperty(name: string) with | true, v -> v.GetInt32() | _ -> fallback
                let d = ModelConfig.Preset311
                ModelConfig(
                    DModel = int "d_model" d.DModel, DFf = int "d_ff" d.DFf, NHead = int "n_head" d.NHead,
                    NLayer = int "n_layer" d.NLayer, PosRank = int "pos_rank" d.PosRank, QkvRank = int "qkv_rank" d.QkvRank,
                    AttnOutRank = int "attn_out_rank" d.AttnOutRank, FfnRank = int "ffn_rank" d.FfnRank,
                    UseRmsNorm =
                        (match c.TryGetProperty "norm" with
                         | true, v when v.GetString() = "rmsnorm" -> true
                         | true, v when v.GetString() = "layernorm" -> false
                         | true, v -> fail "%s: config norm '%s' is neither rmsnorm nor layernorm" path (Limits.Echo(v.ToString()))
                         | _ -> true),
                    TieQkv = (match c.TryGetProperty "tie_qkv" with | true, v -> v.GetString() | _ -> d.TieQkv))
            | _ -> ModelConfig.Preset311
        let config = config.Validate()
        // the backend first: it refuses a config too large for memory before the model is allocated
        use backend = backendFor config
        let model = Model(config)
        (Golden.parameters model.Layout (property root "params" path) path).CopyTo(model.Parameters, 0)
        let batch = property root "batch" path
        let a, b = Golden.pairs batch path
        if a.Length = 0 then fail "%s: the batch is empty" path
        for i in 0 .. a.Length - 1 do
            Tokens.CheckOperand(a.[i], "batch operand a")
            Tokens.CheckOperand(b.[i], "batch operand b")
        let goldenLoss = (property root "loss" path).GetDouble()
        let grads = property root "grad" path
        backend.SetParameters(0, ReadOnlySpan model.Parameters)
        let grad = Array.zeroCreate<float32> model.Layout.Count
        let tokens = backend.Config.Format.EncodeFullBatch(a, b)
        // a golden that lists its tokens checks the format's encoding too
        batch.EnumerateArray() |> Seq.iteri (fun i x ->
            match x.TryGetProperty "tokens" with
            | true, t ->
                let given = [| for v in t.EnumerateArray() -> v.GetInt32() |]
                let ours = tokens.[i * backend.Config.Format.FullLength .. (i + 1) * backend.Config.Format.FullLength - 1]
                if given <> ours then fail "%s: sequence %d's tokens differ from format %s's encoding of %d + %d" path i backend.Config.Format.Name a.[i] b.[i]
            | _ -> ())
        let loss =
            match backend with
            | :? Adder.Core.Cpu.GeneralBackend as general ->
                // an architecture is checked on its float64 reference path, which its float32 lanes are tested against
                // (a trained model's large activations put float32 itself 1e-4 from a float64 golden)
                let grad64 = Array.zeroCreate<float> grad.Length
                let loss = general.LossAndGradient(Array.map float model.Parameters, ReadOnlySpan tokens, a.Length, grad64)
                Array.iteri (fun i g -> grad.[i] <- float32 g) grad64
                loss
            | _ -> float (backend.LossAndGradient(0, ReadOnlySpan tokens, a.Length, Span grad))
        let tensors =
            [ for t in model.Layout.Tensors ->
                let expected = flatten (property grads t.Name path)
                if expected.Length <> t.Size then fail "%s: gradient %s has %d values, expected %d" path t.Name expected.Length t.Size
                let mutable diff = 0.0
                let mutable norm = 0.0
                for i in 0 .. t.Size - 1 do
                    let g = float grad.[t.Offset + i]
                    diff <- diff + (g - expected.[i]) ** 2.0
                    norm <- norm + expected.[i] ** 2.0
                { Name = t.Name; RelativeError = sqrt diff / max (sqrt norm) 1e-30; Norm = sqrt norm } ]
        let lossError = abs (loss - goldenLoss) / max (abs goldenLoss) 1e-30
        { Loss = loss; GoldenLoss = goldenLoss; LossRelativeError = lossError; Tensors = tensors
          Passed = lossError <= 1e-4 && tensors |> List.forall (fun t -> t.RelativeError <= 1e-3) }
    with
    | :? InvalidOperationException as e -> fail "%s: unexpected JSON value (%s)" path e.Message
    | :? FormatException as e -> fail "%s: unexpected JSON value (%s)" path e.Message
