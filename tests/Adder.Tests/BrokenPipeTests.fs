/// A closed standard output ends adder predict --file: `yes '1 2' | adder predict --file - | head -1` ends.
module Adder.Tests.BrokenPipeTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open Xunit
open Adder.Tests.Shared

[<Fact>]
let ``predict --file ends with a one-line error, exit 1, once its standard output is closed`` () =
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false)
    for a in [ Path.Combine(AppContext.BaseDirectory, "adder.dll"); "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ] do
        info.ArgumentList.Add a
    use p = Process.Start info
    let err = p.StandardError.ReadToEndAsync()
    // an endless input, like `yes '1 2'`: written until adder stops reading
    use stop = new CancellationTokenSource()
    let feeder =
        Tasks.Task.Run(fun () ->
            let chunk = String.replicate 1024 "1 2\n"
            try
                while not stop.IsCancellationRequested do p.StandardInput.Write chunk
            with :? IOException | :? ObjectDisposedException -> ())
    // the first sum, then the reader goes away, as head -1 does
    Assert.Equal("3", p.StandardOutput.ReadLine())
    p.StandardOutput.BaseStream.Close()
    let ended = p.WaitForExit 60000
    stop.Cancel()
    if not ended then p.Kill true
    Assert.True(ended, "adder predict --file went on after its standard output was closed")
    feeder.Wait(10000) |> ignore
    let err = err.Result
    Assert.Equal(1, p.ExitCode)
    let lines = err.Trim().Split('\n')
    Assert.True(lines.Length = 1, sprintf "expected one line on stderr, got:\n%s" err)
    Assert.Contains("cannot write the sums", err)
    Assert.DoesNotContain("   at ", err)
