/// Every backend present keeps the same argument rules (Core's BackendContract): a count of 0 does nothing,
/// a buffer of another length than its verb's layout and a model index out of range are refused alike.
module Adder.Tests.BackendContractTests

open System
open Xunit
open Adder.Core
open Adder.Pipeline

let private configs () =
    [ for device in Backends.available () do
        yield device, ModelConfig.Preset311
        // architectures run on the CPU's general backend only (CUDA refuses them in one line)
        if device = Backends.Cpu then yield device, Architectures.preset "36p" ]

let private throws<'E when 'E :> exn> (what: string) (f: unit -> unit) =
    let e = Record.Exception(fun () -> f ())
    Assert.True((match e with :? 'E -> true | _ -> false), sprintf "%s: expected %s, got %O" what typeof<'E>.Name e)

[<Fact>]
let ``every backend does nothing for a count of 0 and refuses wrong lengths and model indices alike`` () =
    for device, config in configs () do
        use backend = Backends.create device config 2 CpuOptions.Default
        let name = sprintf "%s %s" (Backends.deviceName device) (config.Describe())
        let format = config.Format
        let p = backend.Layout.Count
        let a, b = [| 12L; 7L |], [| 30L; 9_999_999_999L |]
        let prompts = format.EncodePromptBatch(a, b)
        let full = format.EncodeFullBatch(a, b)
        let vocab = format.VocabSize
        // count 0: nothing to do, nothing raised
        backend.Decode(0, ReadOnlySpan<int>([||]), 0, Span<int>([||]))
        backend.Logits(1, ReadOnlySpan<int>([||]), 0, Span<float32>([||]))
        // the right lengths work
        backend.Decode(1, ReadOnlySpan prompts, 2, Span(Array.zeroCreate<int> (2 * Tokens.SumDigits)))
        backend.Logits(0, ReadOnlySpan full, 2, Span(Array.zeroCreate<float32> (2 * format.InputLength * vocab)))
        backend.LossAndGradient(0, ReadOnlySpan full, 2, Span(Array.zeroCreate<float32> p)) |> ignore
        // one value short or one too many: refused
        for delta in [ -1; 1 ] do
            throws<ArgumentException> (name + " decode output") (fun () -> backend.Decode(0, ReadOnlySpan prompts, 2, Span(Array.zeroCreate<int> (2 * Tokens.SumDigits + delta))))
            throws<ArgumentException> (name + " decode prompts") (fun () -> backend.Decode(0, ReadOnlySpan(Array.append prompts [| 0; 0 |]).Slice(0, prompts.Length + delta), 2, Span(Array.zeroCreate<int> (2 * Tokens.SumDigits))))
            throws<ArgumentException> (name + " logits") (fun () -> backend.Logits(0, ReadOnlySpan full, 2, Span(Array.zeroCreate<float32> (2 * format.InputLength * vocab + delta))))
            throws<ArgumentException> (name + " gradient") (fun () -> backend.LossAndGradient(0, ReadOnlySpan full, 2, Span(Array.zeroCreate<float32> (p + delta))) |> ignore)
            throws<ArgumentException> (name + " parameters") (fun () -> backend.SetParameters(0, ReadOnlySpan(Array.zeroCreate<float32> (p + delta))))
            throws<ArgumentException> (name + " get parameters") (fun () -> backend.GetParameters(0, Span(Array.zeroCreate<float32> (p + delta))))
            throws<ArgumentException> (name + " train tokens") (fun () ->
                let settings = StepSettings(1e-3, 0.0, 1.0, 0.9, 0.99, 1e-8)
                let tokens = Array.concat [ full; full; [| 0 |] ]
                backend.TrainStep(ReadOnlySpan(tokens, 0, 2 * full.Length + delta), 2, &settings, Span(Array.zeroCreate<StepResult> 2)))
        // model indices outside 0 .. Models−1, a batch of 0 and a negative count
        for m in [ -1; 2 ] do
            throws<ArgumentOutOfRangeException> (name + " decode model") (fun () -> backend.Decode(m, ReadOnlySpan prompts, 2, Span(Array.zeroCreate<int> (2 * Tokens.SumDigits))))
            throws<ArgumentOutOfRangeException> (name + " parameters model") (fun () -> backend.SetParameters(m, ReadOnlySpan(Array.zeroCreate<float32> p)))
            throws<ArgumentOutOfRangeException> (name + " loss model") (fun () -> backend.LossAndGradient(m, ReadOnlySpan full, 2, Span(Array.zeroCreate<float32> p)) |> ignore)
        throws<ArgumentOutOfRangeException> (name + " batch 0") (fun () -> backend.LossAndGradient(0, ReadOnlySpan<int>([||]), 0, Span(Array.zeroCreate<float32> p)) |> ignore)
        throws<ArgumentOutOfRangeException> (name + " count -1") (fun () -> backend.Decode(0, ReadOnlySpan<int>([||]), -1, Span<int>([||])))
