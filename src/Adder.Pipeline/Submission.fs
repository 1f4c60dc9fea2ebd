/// An AdderBoard submission (one Python file with build_model() and add()) asked for sums through Python, so
/// `adder verify` can check anyone's entry: each worker is a Python process running the embedded driver, which
/// imports the file, builds the model once and answers blocks of pairs on its standard output.
module Adder.Pipeline.Submission

open System
open System.Collections.Concurrent
open System.Diagnostics
open System.IO
open System.Text.Json
open Adder.Core

type Metadata = { Name: string; Author: string; Params: string; Architecture: string }

let private driver = lazy (PythonSource.embedded "submission_driver.py")

/// One Python process. Its stderr (the submission's own prints, a traceback) is kept as its last lines, for
/// the error said when the process stops.
type private Worker(python: string, submission: string) =
    let info =
        ProcessStartInfo(python, RedirectStandardInput = true, RedirectStandardOutput = true,
                         RedirectStandardError = true, UseShellExecute = false)
    do
        info.ArgumentList.Add "-c"
        info.ArgumentList.Add(driver.Force())
        info.ArgumentList.Add submission
        info.Environment.["PYTHONUNBUFFERED"] <- "1"
        info.Environment.["OMP_NUM_THREADS"] <- "1"
    let proc =
        try Process.Start info
        with :? ComponentModel.Win32Exception -> fail "cannot start Python '%s' (give --python PATH)" (Limits.Echo python)
    let stderrTail = ConcurrentQueue<string>()
    do
        proc.ErrorDataReceived.Add(fun e ->
            if not (isNull e.Data) then
                stderrTail.Enqueue e.Data
                while stderrTail.Count > 20 do stderrTail.TryDequeue() |> ignore)
        proc.BeginErrorReadLine()
    let lastError () =
        stderrTail.ToArray() |> Array.rev |> Array.tryFind (fun l -> l.Trim() <> "") |> Option.defaultValue "no message"

    let readLine () =
        match proc.StandardOutput.ReadLine() with
        | null ->
            proc.WaitForExit(2000) |> ignore
            fail "the submission's Python process stopped (%s): %s" (if proc.HasExited then sprintf "exit %d" proc.ExitCode else "output closed") (lastError ())
        | line -> line

    member _.ReadMetadata() =
        let line = readLine ()
        if line.StartsWith "error " then fail "the submission %s could not be loaded: %s" (Limits.Echo submission) (line.Substring 6)
        if not (line.StartsWith "ready ") then fail "the submission's Python process said '%s', not ready" (Limits.Echo line)
        let json = JsonDocument.Parse(line.Substring 6).RootElement
        let field (name: string) = json.GetProperty(name).GetString()
        { Name = field "name"; Author = field "author"; Params = field "params"; Architecture = field "architecture" }

    /// add(model, a, b) for each pair: its integer as text, or "!..." for an exception or a non-integer.
    member _.Answers(pairs: (int64 * int64)[]) =
        let input = proc.StandardInput
        input.Write(string pairs.Length + "\n" + String.Join("\n", [| for a, b in pairs -> sprintf "%d %d" a b |]) + "\n")
        input.Flush()
        Array.init pairs.Length (fun _ -> readLine ())

    interface IDisposable with
        member _.Dispose() =
            try
                if not proc.HasExited then
                    proc.StandardInput.Close()
                    if not (proc.WaitForExit 2000) then proc.Kill true
            with _ -> ()
            proc.Dispose()

/// The submission in `workers` Python processes; Failures asks them for a block of pairs, split evenly.
type Session(python: string, submission: string, workers: int) =
    do
        if not (File.Exists submission) then fail "no submission file %s" (Limits.Echo submission)
        if workers < 1 then fail "--threads must be at least 1, got %d" workers
    let pool = Array.init workers (fun _ -> new Worker(python, Path.GetFullPath submission))
    let metadata =
        try (pool |> Array.map (fun w -> Threading.Tasks.Task.Run(fun () -> w.ReadMetadata())) |> Array.map (fun t -> t.Result)).[0]
        with :? AggregateException as e when (e.InnerException :? AdderException) ->
            for w in pool do (w :> IDisposable).Dispose()
            raise e.InnerException

    member _.Metadata = metadata

    /// The pairs that the submission gets wrong, in input order, with what it answered.
    member _.Failures(pairs: (int64 * int64)[]) : Evaluation.Failure list =
        let part = (pairs.Length + workers - 1) / workers
        let answers =
            pool
            |> Array.mapi (fun i w ->
                let first = min pairs.Length (i * part)
                let chunk = pairs.[first .. min pairs.Length (first + part) - 1]
                Threading.Tasks.Task.Run(fun () -> if chunk.Length = 0 then [||] else w.Answers chunk))
            |> Array.collect (fun t ->
                try t.Result
                with :? AggregateException as e when (e.InnerException :? AdderException) -> raise e.InnerException)
        [ for i in 0 .. pairs.Length - 1 do
            let a, b = pairs.[i]
            if answers.[i] <> string (a + b) then
                yield { Set = ""; A = a; B = b; Expected = a + b; Predicted = answers.[i] } ]

    interface IDisposable with
        member _.Dispose() = for w in pool do (w :> IDisposable).Dispose()
