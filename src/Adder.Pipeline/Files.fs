/// Writing outputs so that a failure never leaves a half-written file behind (Core's AtomicFile), and the
/// one JSON convention of the files the tool writes: snake_case keys, indented.
module Adder.Pipeline.Files

open System.Text.Json
open Adder.Core

let writeAtomic (path: string) (write: System.IO.Stream -> unit) = AtomicFile.Write(path, System.Action<System.IO.Stream> write)

let writeTextAtomic (path: string) (text: string) = AtomicFile.WriteText(path, text)

/// The one text form of a real number in the files the tool writes (CSV, metadata): the shortest text that
/// parses back to the same double, in the invariant culture, so values survive a file bit for bit.
let formatFloat (x: float) = x.ToString("R", System.Globalization.CultureInfo.InvariantCulture)

let jsonOptions = JsonSerializerOptions(WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower)

let writeJsonAtomic (path: string) (value: 'T) =
    writeTextAtomic path (JsonSerializer.Serialize(value, jsonOptions) + "\n")
