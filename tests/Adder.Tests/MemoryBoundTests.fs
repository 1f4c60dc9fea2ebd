/// Memory stays bounded: sizes refused before memory grows, a .pt entry that would inflate refused unread, predict --file streamed.
module Adder.Tests.MemoryBoundTests

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Threading.Tasks
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.TestProcesses

[<Fact>]
let ``threads, sweep sizes, model sizes and unbounded inputs are refused before memory grows`` () =
    let dir = tempDir ()
    let ckpt = referenceCheckpoint ()
    refusedWithin 300.0 "--threads 100000 is more than the limit of 256" None [ "eval"; "-c"; ckpt; "--suite"; "random"; "--count"; "1000"; "--threads"; "100000" ]
    refusedWithin 300.0 "at most 10000 seeds" None [ "train"; "--seeds"; "1-1000000000"; "--out"; Path.Combine(dir, "sweep") ]
    refusedWithin 300.0 "model too large" None [ "train"; "--preset"; "wide"; "--n-layer"; "8"; "--d-model"; "512"; "--steps"; "1"; "--out"; Path.Combine(dir, "big") ]
    refusedWithin 300.0 "--count 2000000000 is more than the limit of 10000000" None [ "eval"; "-c"; ckpt; "--suite"; "random"; "--count"; "2000000000" ]
    refusedWithin 300.0 "--batch 2000000000 is more than the limit of 1048576" None [ "train"; "--batch"; "2000000000"; "--steps"; "1"; "--out"; Path.Combine(dir, "batch") ]
    refusedWithin 300.0 "not a regular file" None [ "info"; "/dev/zero" ]
    refusedWithin 300.0 "line 1 is longer than 4096 characters" None [ "predict"; "-c"; ckpt; "--file"; "/dev/zero" ]
    refusedWithin 300.0 "line 2 is longer than 4096 characters" (Some("1 2\n" + String('7', 1_000_000) + "\n")) [ "predict"; "-c"; ckpt; "--file"; "-" ]

[<Fact>]
let ``a .pt whose entry inflates to 1 GiB is refused without inflating it`` () =
    let dir = tempDir ()
    let bomb = Path.Combine(dir, "bomb.pt")
    // best/data/0 should hold 224 bytes; here it inflates to 1 GiB (a file of about 1 MB)
    do
        use source = ZipFile.OpenRead(referenceCheckpoint ())
        use target = ZipFile.Open(bomb, ZipArchiveMode.Create)
        for e in source.Entries do
            use s = target.CreateEntry(e.FullName, CompressionLevel.Optimal).Open()
            if e.FullName = "best/data/0" then
                let zeros = Array.zeroCreate<byte> (1 <<< 20)
                for _ in 1 .. 1024 do s.Write(zeros, 0, zeros.Length)
            else
                use from = e.Open()
                from.CopyTo s
    Assert.True(FileInfo(bomb).Length < (8L <<< 20))
    refusedWithin 300.0 "best/data/0 declares 1073741824 bytes" None [ "info"; bomb ]
    // the same entry with its sizes in the zip rewritten to claim 224 bytes: reading stops at the cap
    let bytes = File.ReadAllBytes bomb
    let lying = Path.Combine(dir, "lying.pt")
    let name = Text.Encoding.ASCII.GetBytes "best/data/0"
    let mutable i = 0
    while i < bytes.Length - 4 do
        let signature = BitConverter.ToUInt32(bytes, i)
        // local file header (sizes at +22) and central directory header (sizes at +24), followed by the name
        let sizeAt, nameAt = if signature = 0x04034b50u then i + 22, i + 30 elif signature = 0x02014b50u then i + 24, i + 46 else -1, -1
        if sizeAt > 0 && nameAt + name.Length <= bytes.Length && bytes.[nameAt .. nameAt + name.Length - 1] = name
           && BitConverter.ToUInt32(bytes, sizeAt) = 1073741824u then
            BitConverter.GetBytes(224u).CopyTo(bytes, sizeAt)
        i <- i + 1
    File.WriteAllBytes(lying, bytes)
    // the zip reader may stop at the claimed size itself (then the tensor reads as zeros) or we stop at the cap:
    // either way memory stays bounded and nothing crashes
    let r, peak = adderMeasured None [ "info"; lying ]
    Assert.True(r.Code = 0 || (r.Code = 1 && r.Err.Contains "lying.pt"), r.Err)
    Assert.True(peak < 300.0, sprintf "peak resident set %.0f MB reading a lying zip entry" peak)

[<Fact>]
let ``predict --file streams: sums come out before the input ends`` () =
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false)
    for a in [ adderDll (); "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ] do info.ArgumentList.Add a
    use p = Process.Start info
    let err = p.StandardError.ReadToEndAsync()
    let sums = new Collections.Concurrent.BlockingCollection<string>()
    let reader =
        Task.Run(fun () ->
            let mutable line = p.StandardOutput.ReadLine()
            while not (isNull line) do
                sums.Add line
                line <- p.StandardOutput.ReadLine()
            sums.CompleteAdding())
    // three batches of input, and the input stays open
    for i in 1 .. 3 * 8192 do p.StandardInput.WriteLine(sprintf "%d %d" i (2 * i))
    p.StandardInput.Flush()
    let mutable first = null
    let answered = sums.TryTake(&first, 30_000)
    if not answered then p.Kill()
    Assert.True(answered, "no sum printed while the input was still open: predict --file holds all input before printing")
    Assert.Equal("3", first)
    p.StandardInput.WriteLine "5+7"
    p.StandardInput.Close()
    Assert.True(reader.Wait 60_000)
    let rest = sums.ToArray()
    Assert.True(p.WaitForExit 60_000)
    Assert.True((p.ExitCode = 0), err.Result)
    Assert.Equal(3 * 8192, rest.Length)   // the first was taken above; the last is 5+7
    Assert.Equal("12", rest.[rest.Length - 1])
    Assert.Equal(string (3 * 3 * 8192), rest.[rest.Length - 2])
