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

/// The model's answer as a number. A model can answer with tokens that are not digits (an untrained one does):
/// that ends the command with an error naming the pair (where: "line N: " or ""), never a line of raw tokens
/// that a reader of the output would take for a sum.
let private answer (where: string) (a: int64) (b: int64) (tokens: ReadOnlySpan<int>) =
    let value = Tokens.DecodeReversedSum tokens
    if value < 0L then
        fail "%sthe model's answer to %d + %d is not a number: '%s'" where a b (Limits.Echo(Evaluation.predictedText tokens))
    string value

/// Decodes the sums of a batch of pairs with the backend's model 0; where i says where pair i came from.
let predictBatchFrom (backend: IBackend) (a: int64[]) (b: int64[]) (where: int -> string) =
    let output = Array.zeroCreate<int> (a.Length * Tokens.SumDigits)
    backend.Decode(0, ReadOnlySpan(backend.Config.Format.EncodePromptBatch(a, b)), a.Length, Span output)
    Array.init a.Length (fun i -> answer (where i) a.[i] b.[i] (ReadOnlySpan(output, i * Tokens.SumDigits, Tokens.SumDigits)))

let predictBatch (backend: IBackend) (a: int64[]) (b: int64[]) = predictBatchFrom backend a b (fun _ -> "")

/// Streams a pairs file: reads up to batchSize pairs, prints their sums, and goes on, so memory stays
/// bounded whatever the input's size. A line longer than Limits.MaxLineLength is an error found without
/// reading the rest of it; a bad line stops the run (the sums of the batches before it are already printed).
/// Blank lines and lines starting with '#' are skipped. An output that fails (a closed pipe: `| head -1`)
/// ends the stream with an error at once, rather than reading the rest of an input that may never end.
let predictStream (backend: IBackend) (input: TextReader) (output: TextWriter) (batchSize: int) =
    let a = Array.zeroCreate<int64> batchSize
    let b = Array.zeroCreate<int64> batchSize
    let lines = Array.zeroCreate<int> batchSize
    let mutable count = 0
    let mutable total = 0
    let flush () =
        if count > 0 then
            // the whole batch is decoded before any of it is printed: a bad answer stops the output after the batches before it
            let sums = predictBatchFrom backend a.[.. count - 1] b.[.. count - 1] (fun i -> sprintf "line %d: " lines.[i])
            try
                for s in sums do output.WriteLine s
                output.Flush()
            with :? IOException as e -> fail "cannot write the sums: %s" e.Message
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
            lines.[count] <- lineNumber
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
