/// Writing outputs so that a failure never leaves a half-written file behind.
module Adder.Pipeline.Files

open System
open System.IO
open System.Text.Json
open Adder.Core

/// Writes through a temporary file in the target's folder, then moves it over the target; a device, FIFO or
/// standard output is written through instead (SafeFiles.WriteAtomic). A failed write is an AdderException.
let writeAtomic (path: string) (write: Stream -> unit) = SafeFiles.WriteAtomic(path, Action<Stream> write)

let writeTextAtomic (path: string) (text: string) =
    writeAtomic path (fun s -> let bytes = Text.Encoding.UTF8.GetBytes text in s.Write(bytes, 0, bytes.Length))

let jsonOptions = JsonSerializerOptions(WriteIndented = true)

let writeJsonAtomic (path: string) (value: 'T) =
    writeTextAtomic path (JsonSerializer.Serialize(value, jsonOptions) + "\n")

/// Loads a checkpoint in either format (PyTorch .pt or our safetensors).
let loadCheckpoint (path: string) = Checkpoint.Load path
