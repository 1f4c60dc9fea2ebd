/// Outputs: written through what the output path is (a device, a FIFO, a link), a failed write an error and never "wrote", standard output full or closed an error, a killed run's temporaries cleaned up.
module Adder.Tests.AtomicWriteTests

open System
open System.Diagnostics
open System.IO
open System.Threading.Tasks
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.TestProcesses

[<Fact>]
let ``--json and -o write through a device node, a FIFO and symbolic links instead of replacing them`` () =
    let dir = tempDir ()
    // a device node made here (mknod c 1 3 is /dev/null): written through, still a device afterwards
    let node = Path.Combine(dir, "mynull")
    if sh (sprintf "mknod '%s' c 1 3" node) = 0 then
        let r = evalTo node
        Assert.True((r.Code = 0), r.Err)
        Assert.Equal(Device, kind node)
    // a symbolic link to /dev/null: the link stays a link (the system file is only written to)
    let toNull = Path.Combine(dir, "to-null")
    File.CreateSymbolicLink(toNull, "/dev/null") |> ignore
    Assert.Equal(0, (evalTo toNull).Code)
    Assert.Equal(Symlink, kind toNull)
    // a relative link to a regular file: the target is replaced atomically, the link stays
    let target = Path.Combine(dir, "target.json")
    File.WriteAllText(target, "old")
    let link = Path.Combine(dir, "link.json")
    File.CreateSymbolicLink(link, "target.json") |> ignore
    Assert.Equal(0, (evalTo link).Code)
    Assert.Equal(Symlink, kind link)
    Assert.Contains("\"total\"", File.ReadAllText target)
    // a dangling link: its target is created
    let dangling = Path.Combine(dir, "dangling.json")
    File.CreateSymbolicLink(dangling, "created.json") |> ignore
    Assert.Equal(0, (evalTo dangling).Code)
    Assert.Contains("\"total\"", File.ReadAllText(Path.Combine(dir, "created.json")))
    // a FIFO: the reader gets the whole checkpoint
    let fifo = Path.Combine(dir, "fifo")
    Assert.Equal(0, sh (sprintf "mkfifo '%s'" fifo))
    let reader = Task.Run(fun () -> use s = new FileStream(fifo, FileMode.Open, FileAccess.Read) in use m = new MemoryStream() in s.CopyTo m; m.ToArray())
    let r = run [ "convert"; referenceCheckpoint (); "-o"; fifo ]
    Assert.True((r.Code = 0), r.Err)
    Assert.True(reader.Wait 30_000, "the FIFO's reader got nothing")
    Assert.Equal(Device, kind fifo)
    let copy = Path.Combine(dir, "from-fifo.safetensors")
    File.WriteAllBytes(copy, reader.Result)
    Assert.Equal(311, (Checkpoint.Load copy).Model.Layout.Count)

[<Fact>]
let ``a write that fails (a link to /dev/full) is an error, never "wrote", and the link stays`` () =
    let dir = tempDir ()
    let full = Path.Combine(dir, "to-full")
    File.CreateSymbolicLink(full, "/dev/full") |> ignore
    let r = run [ "convert"; referenceCheckpoint (); "-o"; full ]
    r |> assertOneLineError "No space left on device"
    Assert.Equal(1, r.Code)
    Assert.DoesNotContain("wrote", r.Out)
    Assert.Equal(Symlink, kind full)
    let r = evalTo full
    r |> assertOneLineError "No space left on device"
    Assert.DoesNotContain("report written", r.Out)
    Assert.Equal(Symlink, kind full)

[<Fact>]
let ``temporaries left by a killed adder are removed when the same file is written again`` () =
    let dir = tempDir ()
    // a process id that does not run now
    let dead = Seq.initInfinite (fun i -> 4_000_000 - i) |> Seq.find (fun pid -> not (Directory.Exists(sprintf "/proc/%d" pid)))
    let stale = Path.Combine(dir, sprintf ".report.json.adder-tmp-%d-0123abcd" dead)
    let live = Path.Combine(dir, sprintf ".report.json.adder-tmp-%d-4567cdef" Environment.ProcessId)
    let other = Path.Combine(dir, sprintf ".other.json.adder-tmp-%d-89ab" dead)
    for f in [ stale; live; other ] do File.WriteAllText(f, "partial")
    Assert.Equal(0, (evalTo (Path.Combine(dir, "report.json"))).Code)
    Assert.False(File.Exists stale, "a dead process's temporary was kept")
    Assert.True(File.Exists live, "a running process's temporary was removed")
    Assert.True(File.Exists other, "another file's temporary was removed")
