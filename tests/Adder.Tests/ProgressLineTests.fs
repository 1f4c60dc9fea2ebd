/// The live status line of training on terminals of any width, a width of 0 (`script`, some container ptys) too.
module Adder.Tests.ProgressLineTests

open System
open System.Diagnostics
open System.IO
open Xunit
open Adder.Cli
open Adder.Tests.Shared

let private fields =
    [ "step 1200/162000", 0; "loss 0.1234", 2; "lr 2.00e-02", 6; "|g| 0.512", 5; "2100 steps/s", 4; "ETA 1m15s", 1; "best val 12.34%", 3 ]

[<Fact>]
let ``a width of 0 or a narrow one gives a line that fits, keeping the step and the ETA`` () =
    for width in 0 .. 200 do
        let columns = ProgressLine.columns width
        let line = ProgressLine.fit columns fields
        Assert.True(columns >= 1, sprintf "width %d: %d columns" width columns)
        Assert.True(line.Length <= columns, sprintf "width %d: '%s' is longer than %d" width line columns)
        Assert.Equal(columns + 2, (ProgressLine.blank columns).Length)
        if columns >= "step 1200/162000  ETA 1m15s".Length then
            Assert.Contains("step 1200/162000", line)
            Assert.Contains("ETA 1m15s", line)
    // an unknown width (0) is taken as 80 columns
    Assert.Equal(79, ProgressLine.columns 0)
    Assert.Equal("step 1200/162000  ETA 1m15s", ProgressLine.fit 30 fields)
    Assert.Equal("step 1200/162000  loss 0.1234  ETA 1m15s  best val 12.34%", ProgressLine.fit 60 fields)
    Assert.Equal("step", ProgressLine.fit 4 fields)

[<SkippableFact>]
let ``train under script (a pty of width 0) shows its progress and finishes`` () =
    Skip.IfNot(File.Exists "/usr/bin/script", "util-linux's script is not installed")
    let dir = Path.Combine(tempDir (), "run")
    let command =
        sprintf "dotnet '%s' train --out '%s' --steps 200 --batch 32 --eval-interval 100 --warmup 5"
            (Path.Combine(AppContext.BaseDirectory, "adder.dll")) dir
    // without a terminal of its own, script gives the command a pty that reports 0 columns
    let info = ProcessStartInfo("/usr/bin/script", RedirectStandardOutput = true, RedirectStandardError = true,
                                RedirectStandardInput = true, UseShellExecute = false)
    for a in [ "-qec"; command; "/dev/null" ] do info.ArgumentList.Add a
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    p.StandardInput.Close()
    if not (p.WaitForExit 120000) then
        p.Kill true
        Assert.Fail "adder under script did not end within 120 s"
    let text = out.Result + err.Result
    Assert.True((p.ExitCode = 0), text)
    Assert.DoesNotContain("internal error", text)
    Assert.Contains("val exact", text)
    Assert.True(File.Exists(Path.Combine(dir, "last.safetensors")), text)
