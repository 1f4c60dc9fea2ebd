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
