/// Locates the repository and the shared reference files the tests read (never copied into the repo).
module Adder.Tests.Shared

open System
open System.IO
open System.Text.Json

let repoRoot =
    let rec up (dir: DirectoryInfo) =
        if isNull dir then failwith "could not find Adder.sln above the test binaries"
        elif File.Exists(Path.Combine(dir.FullName, "Adder.sln")) then dir.FullName
        else up dir.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// ../shared beside the checkout, or ADDER_SHARED when set.
let sharedDir =
    match Environment.GetEnvironmentVariable "ADDER_SHARED" with
    | null | "" -> Path.GetFullPath(Path.Combine(repoRoot, "..", "shared"))
    | d -> d

let sharedFile (relative: string) =
    let path = Path.Combine(sharedDir, relative)
    if not (File.Exists path) then failwithf "missing shared file %s (set ADDER_SHARED or place ../shared beside the repo)" path
    path

let referenceCheckpoint () = sharedFile "reference/best_311p_s34.pt"

let goldenJson (name: string) : JsonElement =
    use doc = JsonDocument.Parse(File.ReadAllText(sharedFile ("golden/" + name)))
    doc.RootElement.Clone()

let floats (e: JsonElement) = [| for x in e.EnumerateArray() -> x.GetDouble() |]

let tempDir () =
    let d = Path.Combine(Path.GetTempPath(), "adder-tests-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory d |> ignore
    d

open Adder.Core

/// Builds a 311p model from a golden file's {name: {shape, data}} map, checking every shape (Pipeline's reader).
let modelFromGolden (pars: JsonElement) =
    let model = Model(ModelConfig.Preset311)
    (Adder.Pipeline.Golden.parameters model.Layout pars "golden").CopyTo(model.Parameters, 0)
    model

/// Every backend this machine can run (cpu always; cuda where the build has it and a device exists):
/// the golden tests are theories over these, so a new backend inherits them.
type Devices() =
    static member All: obj[] seq =
        Adder.Pipeline.Backends.available () |> Seq.map (fun d -> [| box (Adder.Pipeline.Backends.deviceName d) |])

/// A backend of that device holding one model with the model's parameters.
let backendOn (device: string) (model: Model) =
    let d = if device = "cuda" then Adder.Pipeline.Backends.Cuda else Adder.Pipeline.Backends.Cpu
    let backend = Adder.Pipeline.Backends.create d model.Config 1 CpuOptions.Default
    backend.SetParameters(0, System.ReadOnlySpan model.Parameters)
    backend

/// Teacher-forced logits [count][33][14] of the backend's model 0.
let logitsOf (backend: IBackend) (a: int64[]) (b: int64[]) =
    let logits = Array.zeroCreate<float32> (a.Length * Tokens.InputLength * Tokens.VocabSize)
    backend.Logits(0, System.ReadOnlySpan(Tokens.EncodeFullBatch(a, b)), a.Length, System.Span logits)
    logits

/// Greedy decoding [count][11] of the backend's model 0.
let decodeOn (backend: IBackend) (a: int64[]) (b: int64[]) =
    let decoded = Array.zeroCreate<int> (a.Length * Tokens.SumDigits)
    backend.Decode(0, System.ReadOnlySpan(Tokens.EncodePromptBatch(a, b)), a.Length, System.Span decoded)
    decoded

/// Loss and gradient of the backend's model 0 on a batch.
let lossAndGradient (backend: IBackend) (a: int64[]) (b: int64[]) =
    let grad = Array.zeroCreate<float32> backend.Layout.Count
    let loss = backend.LossAndGradient(0, System.ReadOnlySpan(Tokens.EncodeFullBatch(a, b)), a.Length, System.Span grad)
    loss, grad

let pairs (batch: JsonElement) = Adder.Pipeline.Golden.pairs batch "golden"

/// Set by scripts/test.sh (the README's test command, so CI): a test that would skip for a missing tool
/// (nvcc, g++, libcuda/libcublas, PyTorch, Slurm) fails instead, since that script installs them all.
let requireTools = System.Environment.GetEnvironmentVariable "ADDER_REQUIRE_TOOLS" = "1"

/// Fails under ADDER_REQUIRE_TOOLS; otherwise returns, and the caller skips with the reason.
let missingTool (reason: string) = if requireTools then failwithf "required tool missing (ADDER_REQUIRE_TOOLS=1): %s" reason

let relativeError (got: float[]) (expected: float[]) =
    let diff = Array.map2 (fun g e -> (g - e) * (g - e)) got expected |> Array.sum |> sqrt
    let norm = expected |> Array.sumBy (fun e -> e * e) |> sqrt
    diff / max norm 1e-30
