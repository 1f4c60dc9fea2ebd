/// Answering sums: one pair from the command line, or many from a file, batched.
module Adder.Pipeline.Prediction

open System
open System.IO
open Adder.Core

/// Parses "a b" or "a+b" (spaces allowed around the one '+'); the error names the line. "+ 1 2", "1 2+" and
/// "++1 2++" are refused: a '+' must stand between two operands.
let parsePair (lineNumber: int) (line: string) =
    let bad () = fail "line %d: expected two operands ('a b' or 'a+b'), got '%s'" lineNumber (Limits.Echo(line.Trim()))
    let parts =
        if line.Contains '+' then
            let sides = line.Split('+') |> Array.map (fun p -> p.Trim())
            if sides.Length <> 2 || sides |> Array.exists (fun p -> p = "" || p.IndexOfAny [| ' '; '\t' |] >= 0) then bad ()
            sides
        else line.Split([| ' '; '\t' |], StringSplitOptions.RemoveEmptyEntries)
    if parts.Length <> 2 then bad ()
    try Tokens.ParseOperand parts.[0], Tokens.ParseOperand parts.[1]
    with :? AdderException as e -> fail "line %d: %s" lineNumber e.Message

/// Decodes the sums of a batch of pairs with the backend's model 0.
let predictBatch (backend: IBackend) (a: int64[]) (b: int64[]) =
    let output = Array.zeroCreate<int> (a.Length * Tokens.SumDigits)
    backend.Decode(0, ReadOnlySpan(backend.Config.Format.EncodePromptBatch(a, b)), a.Length, Span output)
    Array.init a.Length (fun i -> Evaluation.predictedText (ReadOnlySpan(output, i * Tokens.SumDigits, Tokens.SumDigits)))

/// Streams a pairs file: reads up to batchSize pairs, prints their sums, and goes on, so memory stays
/// bounded whatever the input's size. A line longer than Limits.MaxLineLength is an error found without
/// reading the rest of it; a bad line stops the run (the sums of the batches before it are already printed).
/// Blank lines and lines starting with '#' are skipped.
let predictStream (backend: IBackend) (input: TextReader) (output: TextWriter) (batchSize: int) =
    let a = Array.zeroCreate<int64> batchSize
    let b = Array.zeroCreate<int64> batchSize
    let mutable count = 0
    let mutable total = 0
    let flush () =
        if count > 0 then
            for s in predictBatch backend a.[.. count - 1] b.[.. count - 1] do output.WriteLine s
            output.Flush()
            total <- total + count
            count <- 0
    let line = Text.StringBuilder()
    let mutable lineNumber = 0
    let take () =
        lineNumber <- lineNumber + 1
        let trimmed = line.ToString().Trim()
        line.Clear() |> ignore
        if trimmed.Length > 0 && not (trimmed.StartsWith "#") then
            let x, y = parsePair lineNumber trimmed
            a.[count] <- x
            b.[count] <- y
            count <- count + 1
            if count = batchSize then flush ()
    let buffer = Array.zeroCreate<char> 65536
    let mutable n = input.Read(buffer, 0, buffer.Length)
    while n > 0 do
        for i in 0 .. n - 1 do
            let c = buffer.[i]
            if c = '\n' then take ()
            elif line.Length >= Limits.MaxLineLength then
                fail "line %d is longer than %d characters" (lineNumber + 1) Limits.MaxLineLength
            else line.Append c |> ignore
        n <- input.Read(buffer, 0, buffer.Length)
    if line.Length > 0 then take ()
    flush ()
    total
