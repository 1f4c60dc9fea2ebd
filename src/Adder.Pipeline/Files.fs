/// Writing outputs so that a failure never leaves a half-written file behind (Core's AtomicFile), and the
/// one JSON convention of the files the tool writes: snake_case keys, indented.
module Adder.Pipeline.Files

open System.Text.Json
open Adder.Core

let writeAtomic (path: string) (write: System.IO.Stream -> unit) = AtomicFile.Write(path, System.Action<System.IO.Stream> write)

let writeTextAtomic (path: string) (text: string) = AtomicFile.WriteText(path, text)

let jsonOptions = JsonSerializerOptions(WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower)

let writeJsonAtomic (path: string) (value: 'T) =
    writeTextAtomic path (JsonSerializer.Serialize(value, jsonOptions) + "\n")
