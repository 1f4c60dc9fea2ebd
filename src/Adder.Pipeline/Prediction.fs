/// Answering sums: one pair from the command line, or many from a file, batched.
module Adder.Pipeline.Prediction

open System
open System.IO
open Adder.Core

/// Parses "a b" or "a+b" (spaces allowed around '+'); the error names the line.
let parsePair (lineNumber: int) (line: string) =
    let parts =
        line.Split([| ' '; '\t'; '+' |], StringSplitOptions.RemoveEmptyEntries)
    if parts.Length <> 2 then
        fail "line %d: expected two operands ('a b' or 'a+b'), got '%s'" lineNumber (line.Trim())
    try Tokens.ParseOperand parts.[0], Tokens.ParseOperand parts.[1]
    with :? AdderException as e -> fail "line %d: %s" lineNumber e.Message

/// Decodes the sums of a batch of pairs with the backend's model 0.
let predictBatch (backend: IBackend) (a: int64[]) (b: int64[]) =
    let output = Array.zeroCreate<int> (a.Length * Tokens.SumDigits)
    backend.Decode(0, ReadOnlySpan(Tokens.EncodePromptBatch(a, b)), a.Length, Span output)
    Array.init a.Length (fun i -> Evaluation.predictedText (ReadOnlySpan(output, i * Tokens.SumDigits, Tokens.SumDigits)))

/// Reads every pair first (so a bad line stops the run before any answer is printed), then writes one
/// sum per line, decoding in batches. Blank lines and lines starting with '#' are skipped.
let predictStream (backend: IBackend) (input: TextReader) (output: TextWriter) (batchSize: int) =
    let a = ResizeArray<int64>()
    let b = ResizeArray<int64>()
    let mutable lineNumber = 0
    let mutable line = input.ReadLine()
    while not (isNull line) do
        lineNumber <- lineNumber + 1
        let trimmed = line.Trim()
        if trimmed.Length > 0 && not (trimmed.StartsWith "#") then
            let x, y = parsePair lineNumber trimmed
            a.Add x
            b.Add y
        line <- input.ReadLine()
    let a = a.ToArray()
    let b = b.ToArray()
    for start in 0 .. batchSize .. a.Length - 1 do
        let n = min batchSize (a.Length - start)
        for s in predictBatch backend a.[start .. start + n - 1] b.[start .. start + n - 1] do
            output.WriteLine s
    output.Flush()
    a.Length
