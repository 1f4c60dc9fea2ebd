/// Running adder as a child process for the tests that watch it from outside: its peak memory under a heap cap,
/// redirections through bash, what a path is; and the small runs and files those tests start from.
module Adder.Tests.TestProcesses

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Threading
open System.Threading.Tasks
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests

let adderDll () = Path.Combine(AppContext.BaseDirectory, "adder.dll")

/// The peak resident set (VmHWM, kB) of a running process, or 0 once it has gone.
let peakKb (pid: int) =
    try
        File.ReadAllLines(sprintf "/proc/%d/status" pid)
        |> Array.tryFind (fun l -> l.StartsWith "VmHWM:")
        |> Option.map (fun l -> int64 (l.Split([| ' '; '\t' |], StringSplitOptions.RemoveEmptyEntries).[1]))
        |> Option.defaultValue 0L
    with _ -> 0L

/// The managed heap of a child is capped so that a defect cannot take the shared machine's memory: past it
/// the child fails (OutOfMemoryException, "internal error") instead of growing.
let heapCap = "0x40000000"   // 1 GiB

/// Runs adder with a heap cap, polling its peak resident set every 10 ms; returns the run and the peak in MB.
let adderMeasured (stdin: string option) (args: string list) =
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false)
    info.ArgumentList.Add(adderDll ())
    for a in args do info.ArgumentList.Add a
    info.Environment.["DOTNET_GCHeapHardLimit"] <- heapCap
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    let mutable peak = 0L
    let poller = Task.Run(fun () -> while not p.HasExited do (peak <- max peak (peakKb p.Id); Thread.Sleep 10))
    // the child may refuse the input and exit before reading it all (a broken pipe here)
    try
        (match stdin with Some text -> p.StandardInput.Write text | None -> ())
        p.StandardInput.Close()
    with :? IOException -> ()
    if not (p.WaitForExit 120_000) then
        // a runaway child would keep the shared machine busy long after the test
        p.Kill true
        Assert.Fail "adder did not finish within 2 minutes"
    poller.Wait()
    { Code = p.ExitCode; Out = out.Result; Err = err.Result }, float peak / 1024.0

/// Runs adder through bash, for redirections the test runner cannot express (stdout on /dev/full, closed).
let adderShell (redirect: string) (args: string list) =
    let quoted = args |> List.map (fun a -> "'" + a.Replace("'", "'\\''") + "'") |> String.concat " "
    let info = ProcessStartInfo("bash", RedirectStandardError = true, UseShellExecute = false)
    info.ArgumentList.Add "-c"
    info.ArgumentList.Add(sprintf "exec dotnet '%s' %s %s" (adderDll ()) quoted redirect)
    use p = Process.Start info
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    { Code = p.ExitCode; Out = ""; Err = err }

let sh (command: string) =
    use p = Process.Start("bash", [| "-c"; command |])
    p.WaitForExit()
    p.ExitCode

type Kind = Regular | Symlink | Device | Other

/// What a path is, without following a link (stat -c %F).
let kind (path: string) =
    let info = ProcessStartInfo("stat", RedirectStandardOutput = true, UseShellExecute = false)
    for a in [ "-c"; "%F"; path ] do info.ArgumentList.Add a
    use p = Process.Start info
    let text = p.StandardOutput.ReadToEnd().Trim()
    p.WaitForExit()
    match text with
    | "regular file" | "regular empty file" -> Regular
    | "symbolic link" -> Symlink
    | "character special file" | "block special file" | "fifo" -> Device
    | _ -> Other

let lockName = ".adder-lock"

let evalTo (json: string) = run [ "eval"; "-c"; referenceCheckpoint (); "--suite"; "random"; "--count"; "10"; "--json"; json ]

/// A bad input refused with a one-line error, the child's peak resident set under boundMb.
let refusedWithin (boundMb: float) (fragment: string) (stdin: string option) (args: string list) =
    let r, peak = adderMeasured stdin args
    r |> assertOneLineError fragment
    Assert.Equal(1, r.Code)
    Assert.True(peak < boundMb, sprintf "peak resident set %.0f MB, bound %.0f MB (%s)" peak boundMb (String.Join(" ", args)))

/// The published .pt with one zip entry replaced (or dropped when the content is null).
let rewritePt (replace: string -> byte[] option option) (path: string) =
    use source = ZipFile.OpenRead(referenceCheckpoint ())
    use target = ZipFile.Open(path, ZipArchiveMode.Create)
    for e in source.Entries do
        match replace e.FullName with
        | Some None -> ()
        | Some(Some bytes) ->
            use s = target.CreateEntry(e.FullName, CompressionLevel.Optimal).Open()
            s.Write(bytes, 0, bytes.Length)
        | None ->
            use s = target.CreateEntry(e.FullName, CompressionLevel.NoCompression).Open()
            use from = e.Open()
            from.CopyTo s

/// Starts a long training run and waits for its first validation line.
let startRun (dir: string) (extra: string list) =
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for a in [ adderDll (); "train"; "--out"; dir; "--steps"; "1000000"; "--batch"; "48"; "--eval-interval"; "10"; "--quiet" ] @ extra do
        info.ArgumentList.Add a
    let p = Process.Start info
    let mutable line = p.StandardOutput.ReadLine()
    while not (isNull line) && not (line.Contains "val exact") do line <- p.StandardOutput.ReadLine()
    Assert.NotNull line
    p

/// A training run of a few steps to resume from, stopped at step 13.
let stoppedRun () =
    let dir = Path.Combine(tempDir (), "run")
    let r = run [ "train"; "--out"; dir; "--steps"; "40"; "--batch"; "16"; "--eval-interval"; "20"; "--quiet"; "--stop-after"; "13" ]
    Assert.True((r.Code = 0 || r.Code = 130), r.Out + r.Err)   // 130: before --stop-after counted as a success
    dir

/// A finished run of 40 steps (metric rows at 20 and 40).
let shortRun () =
    let dir = Path.Combine(tempDir (), "run")
    let r = run [ "train"; "--out"; dir; "--steps"; "40"; "--batch"; "16"; "--eval-interval"; "20"; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    dir

/// Rewrites one metadata entry of a run's last.safetensors.
let setLastMetadata (dir: string) (key: string) (value: string) =
    let path = Path.Combine(dir, "last.safetensors")
    let last = Checkpoint.Load path
    last.Metadata.[key] <- value
    Checkpoint(last.Model, last.Metadata, last.Optimizer).Save path

let exit1 (fragment: string) (r: Run) =
    r |> assertOneLineError fragment
    Assert.DoesNotContain("internal error", r.Err)
    Assert.Equal(1, r.Code)
