/// Run folders are locked while in use and never silently replaced.
module Adder.Tests.RunFolderLockTests

open System.IO
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.TestProcesses

[<Fact>]
let ``a run folder in use is locked; a lock left by a killed run does not block`` () =
    let dir = Path.Combine(tempDir (), "run")
    let first = startRun dir []
    try
        run [ "train"; "--out"; dir; "--steps"; "20"; "--batch"; "48"; "--quiet" ] |> assertOneLineError "in use by another adder process"
        run [ "train"; "--out"; dir; "--resume"; "--stop-after"; "20"; "--quiet" ] |> assertOneLineError "in use by another adder process"
        run [ "finetune"; "-c"; referenceCheckpoint (); "--lr"; "0.001"; "--steps"; "5"; "--seed"; "0"; "--out"; dir ] |> assertOneLineError "in use"
    finally
        first.Kill()   // SIGKILL: the lock file stays behind, its lock released by the kernel
        first.WaitForExit()
    Assert.True(File.Exists(Path.Combine(dir, lockName)))
    let step = int ((Checkpoint.Load(Path.Combine(dir, "last.safetensors"))).Metadata.["step"])
    let r = run [ "train"; "--out"; dir; "--resume"; "--stop-after"; string (step + 5); "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    Assert.False(File.Exists(Path.Combine(dir, lockName)), "the lock file outlived the run")

[<Fact>]
let ``a non-empty folder is refused without --resume and nothing in it changes`` () =
    let root = tempDir ()
    let notes = Path.Combine(root, "mine")
    Directory.CreateDirectory notes |> ignore
    File.WriteAllText(Path.Combine(notes, "notes.txt"), "keep me")
    run [ "train"; "--out"; notes; "--steps"; "5"; "--batch"; "16" ] |> assertOneLineError "is not empty"
    Assert.Equal("keep me", File.ReadAllText(Path.Combine(notes, "notes.txt")))
    Assert.Equal(1, Directory.GetFileSystemEntries(notes).Length)
    // a run folder without last.safetensors (its run ended before the first validation, or was copied)
    let partial = Path.Combine(root, "partial")
    let r = run [ "train"; "--out"; partial; "--steps"; "10"; "--batch"; "16"; "--eval-interval"; "10"; "--quiet" ]
    Assert.Equal(0, r.Code)
    File.Delete(Path.Combine(partial, "last.safetensors"))
    let before = [ for f in [ "best.safetensors"; "config.json"; "metrics.csv" ] -> File.ReadAllBytes(Path.Combine(partial, f)) ]
    run [ "train"; "--out"; partial; "--steps"; "10"; "--batch"; "16"; "--seed"; "5" ] |> assertOneLineError "is not empty"
    let after = [ for f in [ "best.safetensors"; "config.json"; "metrics.csv" ] -> File.ReadAllBytes(Path.Combine(partial, f)) ]
    Assert.Equal<byte[] list>(before, after)
