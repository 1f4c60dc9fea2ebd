/// Writing outputs so that a failure never leaves a half-written file behind.
module Adder.Pipeline.Files

open System
open System.IO
open System.Text.Json
open Adder.Core

/// Writes through a temporary file in the same folder, then moves it over the target.
let writeAtomic (path: string) (write: Stream -> unit) =
    let full = Path.GetFullPath path
    let dir = Path.GetDirectoryName full
    if not (Directory.Exists dir) then raise (AdderException(sprintf "output folder does not exist: %s" dir))
    let temp = Path.Combine(dir, sprintf ".%s.tmp-%s" (Path.GetFileName full) (Guid.NewGuid().ToString("N")))
    try
        try
            using (File.Create temp) write
            File.Move(temp, full, true)
        with
        | :? UnauthorizedAccessException | :? IOException as e ->
            raise (AdderException(sprintf "cannot write %s: %s" path e.Message))
    finally
        if File.Exists temp then File.Delete temp

let writeTextAtomic (path: string) (text: string) =
    writeAtomic path (fun s -> let bytes = Text.Encoding.UTF8.GetBytes text in s.Write(bytes, 0, bytes.Length))

let jsonOptions = JsonSerializerOptions(WriteIndented = true)

let writeJsonAtomic (path: string) (value: 'T) =
    writeTextAtomic path (JsonSerializer.Serialize(value, jsonOptions) + "\n")

/// Loads a checkpoint in either format (PyTorch .pt or our safetensors).
let loadCheckpoint (path: string) = Checkpoint.Load path
