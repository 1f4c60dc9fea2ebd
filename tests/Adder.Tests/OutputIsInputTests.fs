/// No output of a command may name one of its inputs, however the path spells it (a symbolic link, a linked
/// folder, ..): the command ends with one line and writes nothing.
module Adder.Tests.OutputIsInputTests

open System
open System.IO
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests

let private shipped () = Path.Combine(repoRoot, "models", "adder-311p-s36.safetensors")

/// A folder holding a copy of the shipped 311p, a link to it and a link to the folder itself.
let private setUp () =
    let dir = tempDir ()
    let ckpt = Path.Combine(dir, "m.safetensors")
    File.Copy(shipped (), ckpt)
    File.CreateSymbolicLink(Path.Combine(dir, "link.safetensors"), "m.safetensors") |> ignore
    Directory.CreateSymbolicLink(Path.Combine(dir, "same"), dir) |> ignore
    dir, ckpt

/// Refused in one line, and the folder is as it was: the input's bytes, no output, no temporary file.
let private refusedUnchanged (dir: string) (input: string) (before: byte[]) (r: Run) =
    assertOneLineError "being read; write to another file" r
    Assert.Equal<byte[]>(before, File.ReadAllBytes input)
    let entries = Directory.GetFileSystemEntries dir |> Array.map Path.GetFileName |> Array.sort
    Assert.Empty(entries |> Array.filter (fun e -> e.Contains "adder-tmp"))
    entries

[<Fact>]
let ``eval, verify, convert, truncate and export refuse to write over the checkpoint they read`` () =
    let dir, ckpt = setUp ()
    let before = File.ReadAllBytes ckpt
    let spellings =
        [ ckpt; Path.Combine(dir, "link.safetensors"); Path.Combine(dir, "same", "m.safetensors")
          Path.Combine(dir, "same", "..", Path.GetFileName dir, "m.safetensors") ]
    for output in spellings do
        for args in [ [ "eval"; "-c"; ckpt; "--suite"; "random"; "--count"; "10"; "--json"; output ]
                      [ "verify"; "-c"; ckpt; "--count"; "10"; "--generators"; "uniform"; "--json"; output ]
                      [ "convert"; ckpt; "-o"; output ]
                      [ "truncate"; "-c"; ckpt; "--ranks"; "qkv=2"; "-o"; output ]
                      [ "export"; "-c"; ckpt; "--format"; "pt"; "-o"; output ] ] do
            let entries = refusedUnchanged dir ckpt before (run args)
            Assert.Equal<string[]>([| "link.safetensors"; "m.safetensors"; "same" |], entries)
    // read through the link, written to the file itself: the same file
    refusedUnchanged dir ckpt before (run [ "eval"; "-c"; Path.Combine(dir, "link.safetensors"); "--suite"; "random"; "--count"; "10"; "--json"; ckpt ])
    |> ignore
    // another file is fine
    let r = run [ "eval"; "-c"; ckpt; "--suite"; "random"; "--count"; "10"; "--json"; Path.Combine(dir, "report.json") ]
    Assert.True((r.Code = 0), r.Err)

[<Fact>]
let ``plot refuses to write over the metrics.csv it draws`` () =
    let dir = tempDir ()
    let runDir = Path.Combine(dir, "run")
    Directory.CreateDirectory runDir |> ignore
    let rows =
        [ for step in 100 .. 100 .. 500 ->
            Metrics.format { Step = step; Loss = 1.0 / float step; Lr = 0.01; GradNorm = 0.5; ValExact = Some 0.5
                             ValTokenAccuracy = Some 0.9; ElapsedSeconds = float step } ]
    let metrics = Metrics.pathIn runDir
    File.WriteAllLines(metrics, Metrics.header :: rows)
    let before = File.ReadAllBytes metrics
    Directory.CreateSymbolicLink(Path.Combine(dir, "alias"), runDir) |> ignore
    for output in [ metrics; Path.Combine(dir, "alias", "metrics.csv"); Path.Combine(runDir, ".", "metrics.csv") ] do
        let entries = refusedUnchanged runDir metrics before (run [ "plot"; runDir; "-o"; output ])
        Assert.Equal<string[]>([| "metrics.csv" |], entries)
    // the same run named through the link, drawn to its own file
    refusedUnchanged runDir metrics before (run [ "plot"; Path.Combine(dir, "alias"); "-o"; metrics ]) |> ignore
    let r = run [ "plot"; runDir ]
    Assert.True((r.Code = 0), r.Err)
    Assert.True(File.Exists(Path.Combine(runDir, "curves.png")))

[<Fact>]
let ``ResolvedPath follows links in every part of a path, and keeps a missing part as written`` () =
    let dir = tempDir ()
    Directory.CreateDirectory(Path.Combine(dir, "real")) |> ignore
    Directory.CreateSymbolicLink(Path.Combine(dir, "up"), "real/..") |> ignore
    File.CreateSymbolicLink(Path.Combine(dir, "real", "f"), "../g") |> ignore
    File.CreateSymbolicLink(Path.Combine(dir, "loop"), "loop") |> ignore
    let resolved = SafeFiles.ResolvedPath(Path.Combine(dir, "up", "real", "f"))
    Assert.Equal(SafeFiles.ResolvedPath(Path.Combine(dir, "g")), resolved)
    Assert.EndsWith("/g", resolved)
    Assert.EndsWith("/missing/name", SafeFiles.ResolvedPath(Path.Combine(dir, "missing", "name")))
    Assert.Throws<AdderException>(fun () -> SafeFiles.ResolvedPath(Path.Combine(dir, "loop")) |> ignore) |> ignore
