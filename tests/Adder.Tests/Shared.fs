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

/// Builds a 311p model from a golden file's {name: {shape, data}} map, checking every shape.
let modelFromGolden (pars: JsonElement) =
    let model = Model(ModelConfig.Preset311)
    for t in model.Layout.Tensors do
        let e = pars.GetProperty(t.Name)
        // either {shape, data} or a bare list of values
        let data =
            if e.ValueKind = JsonValueKind.Array then floats e
            else
                let shape = [| for x in e.GetProperty("shape").EnumerateArray() -> x.GetInt32() |]
                if shape <> t.Shape then failwithf "golden %s has shape %A, layout says %A" t.Name shape t.Shape
                floats (e.GetProperty "data")
        if data.Length <> t.Size then failwithf "golden %s has %d values, expected %d" t.Name data.Length t.Size
        let view = model.Tensor(t.Name)
        for i in 0 .. data.Length - 1 do view.[i] <- float32 data.[i]
    model

let pairs (batch: JsonElement) =
    let items = [| for x in batch.EnumerateArray() -> x.GetProperty("a").GetInt64(), x.GetProperty("b").GetInt64() |]
    Array.map fst items, Array.map snd items

let relativeError (got: float[]) (expected: float[]) =
    let diff = Array.map2 (fun g e -> (g - e) * (g - e)) got expected |> Array.sum |> sqrt
    let norm = expected |> Array.sumBy (fun e -> e * e) |> sqrt
    diff / max norm 1e-30
