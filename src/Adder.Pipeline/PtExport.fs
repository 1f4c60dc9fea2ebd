/// `adder export --format pt`: a checkpoint written as the published PyTorch file is laid out (SPEC section 9).
module Adder.Pipeline.PtExport

open System
open System.Globalization
open System.IO
open Adder.Core

let private tryLong (metadata: Collections.Generic.Dictionary<string, string>) key =
    match metadata.TryGetValue key with
    | true, s ->
        match Int64.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture) with
        | true, v -> Some v
        | _ -> None
    | _ -> None

let private tryDouble (metadata: Collections.Generic.Dictionary<string, string>) key =
    match metadata.TryGetValue key with
    | true, s ->
        match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, v -> Some v
        | _ -> None
    | _ -> None

/// step and val_exact as the checkpoint states them (step 0 and val_exact None when it does not).
let facts (ckpt: Checkpoint) =
    PtWriter.Facts(tryLong ckpt.Metadata "step" |> Option.defaultValue 0L,
                   tryDouble ckpt.Metadata "val_exact" |> Option.toNullable)

/// torch names the top folder after the file (its stem); other characters than [A-Za-z0-9_-] become '_'.
let archiveName (path: string) =
    let stem = Path.GetFileNameWithoutExtension path
    let clean = String(stem.ToCharArray() |> Array.map (fun c -> if Char.IsAsciiLetterOrDigit c || c = '_' || c = '-' then c else '_'))
    if clean = "" then "archive" else clean

/// Writes the file through a temporary file (Files.writeAtomic), so a failure leaves no half-written output.
let write (ckpt: Checkpoint) (path: string) =
    Files.writeAtomic path (fun stream -> PtWriter.Write(stream, ckpt.Model, facts ckpt, archiveName path))
