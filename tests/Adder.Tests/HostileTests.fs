/// Hostile input and faults (issue 12): outputs never clobber what they should not, memory stays bounded,
/// run folders are never silently lost. Each test names the defect (D1-D8) it covers.
module Adder.Tests.HostileTests

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

let private adderDll () = Path.Combine(AppContext.BaseDirectory, "adder.dll")

/// The peak resident set (VmHWM, kB) of a running process, or 0 once it has gone.
let private peakKb (pid: int) =
    try
        File.ReadAllLines(sprintf "/proc/%d/status" pid)
        |> Array.tryFind (fun l -> l.StartsWith "VmHWM:")
        |> Option.map (fun l -> int64 (l.Split([| ' '; '\t' |], StringSplitOptions.RemoveEmptyEntries).[1]))
        |> Option.defaultValue 0L
    with _ -> 0L

/// The managed heap of a child is capped so that a defect cannot take the shared machine's memory: past it
/// the child fails (OutOfMemoryException, "internal error") instead of growing.
let private heapCap = "0x40000000"   // 1 GiB

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
let private adderShell (redirect: string) (args: string list) =
    let quoted = args |> List.map (fun a -> "'" + a.Replace("'", "'\\''") + "'") |> String.concat " "
    let info = ProcessStartInfo("bash", RedirectStandardError = true, UseShellExecute = false)
    info.ArgumentList.Add "-c"
    info.ArgumentList.Add(sprintf "exec dotnet '%s' %s %s" (adderDll ()) quoted redirect)
    use p = Process.Start info
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    { Code = p.ExitCode; Out = ""; Err = err }

let private sh (command: string) =
    use p = Process.Start("bash", [| "-c"; command |])
    p.WaitForExit()
    p.ExitCode

type private Kind = Regular | Symlink | Device | Other

/// What a path is, without following a link (stat -c %F).
let private kind (path: string) =
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

let private lockName = ".adder-lock"

let private evalTo (json: string) = run [ "eval"; "-c"; referenceCheckpoint (); "--suite"; "random"; "--count"; "10"; "--json"; json ]

// ---- D1: the atomic write writes through what the output path is ----

[<Fact>]
let ``D1 --json and -o write through a device node, a FIFO and symbolic links instead of replacing them`` () =
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
let ``D1 a write that fails (a link to /dev/full) is an error, never "wrote", and the link stays`` () =
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
let ``D5 standard output on /dev/full or closed is a one-line error, exit 1`` () =
    let r = adderShell ">/dev/full" [ "predict"; "-c"; referenceCheckpoint (); "1"; "2" ]
    r |> assertOneLineError "standard output"
    Assert.Equal(1, r.Code)
    let r = adderShell ">&-" [ "predict"; "-c"; referenceCheckpoint (); "1"; "2" ]
    r |> assertOneLineError "standard output"
    Assert.Equal(1, r.Code)

// ---- D2: memory stays bounded ----

/// A bad input refused with a one-line error, the child's peak resident set under boundMb.
let refusedWithin (boundMb: float) (fragment: string) (stdin: string option) (args: string list) =
    let r, peak = adderMeasured stdin args
    r |> assertOneLineError fragment
    Assert.Equal(1, r.Code)
    Assert.True(peak < boundMb, sprintf "peak resident set %.0f MB, bound %.0f MB (%s)" peak boundMb (String.Join(" ", args)))

[<Fact>]
let ``D2 threads, sweep sizes, model sizes and unbounded inputs are refused before memory grows`` () =
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

/// The published .pt with one zip entry replaced (or dropped when the content is null).
let private rewritePt (replace: string -> byte[] option option) (path: string) =
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

[<Fact>]
let ``D2 a .pt whose entry inflates to 1 GiB is refused without inflating it`` () =
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
let ``D2 predict --file streams: sums come out before the input ends`` () =
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

// ---- D3: numbers with the invariant culture and no group separators ----

[<Fact>]
let ``D3 a decimal comma or a group separator in a real-valued option is refused`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "r")
    for args in [ [ "--lr"; "0,002" ]; [ "--lr"; "1,5" ]; [ "--lr=0,002" ]; [ "--floor"; "0,1" ]; [ "--lr"; "1,000.5" ]; [ "--eps"; "1e-8x" ] ] do
        let r = run ([ "train"; "--steps"; "1"; "--batch"; "16"; "--out"; out ] @ args)
        r |> assertOneLineError "is not a number"
        Assert.Equal(2, r.Code)
        Assert.False(Directory.Exists out, "a run started with a malformed number")
    run [ "finetune"; "-c"; referenceCheckpoint (); "--lr"; "0,001"; "--steps"; "1"; "--seed"; "0"; "--out"; out ] |> assertOneLineError "--lr: '0,001'"
    // the accepted forms still work and mean what they say
    let r = run [ "train"; "--steps"; "1"; "--batch"; "16"; "--lr"; "2e-3"; "--floor"; ".5"; "--out"; out; "--quiet" ]
    Assert.True((r.Code = 0), r.Err)
    Assert.Contains("lr 0.002,", r.Out)

// ---- D4: run folders are locked and never silently replaced ----

/// Starts a long training run and waits for its first validation line.
let private startRun (dir: string) (extra: string list) =
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for a in [ adderDll (); "train"; "--out"; dir; "--steps"; "1000000"; "--batch"; "48"; "--eval-interval"; "10"; "--quiet" ] @ extra do
        info.ArgumentList.Add a
    let p = Process.Start info
    let mutable line = p.StandardOutput.ReadLine()
    while not (isNull line) && not (line.Contains "val exact") do line <- p.StandardOutput.ReadLine()
    Assert.NotNull line
    p

[<Fact>]
let ``D4 a run folder in use is locked; a lock left by a killed run does not block`` () =
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
let ``D4 a non-empty folder is refused without --resume and nothing in it changes`` () =
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

// ---- D5: one-line errors, exit 1, instead of "internal error" ----

/// A training run of a few steps to resume from, stopped at step 13.
let private stoppedRun () =
    let dir = Path.Combine(tempDir (), "run")
    let r = run [ "train"; "--out"; dir; "--steps"; "40"; "--batch"; "16"; "--eval-interval"; "20"; "--quiet"; "--stop-after"; "13" ]
    Assert.True((r.Code = 0 || r.Code = 130), r.Out + r.Err)   // 130: before --stop-after counted as a success
    dir

/// A finished run of 40 steps (metric rows at 20 and 40).
let private shortRun () =
    let dir = Path.Combine(tempDir (), "run")
    let r = run [ "train"; "--out"; dir; "--steps"; "40"; "--batch"; "16"; "--eval-interval"; "20"; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    dir

/// Rewrites one metadata entry of a run's last.safetensors.
let private setLastMetadata (dir: string) (key: string) (value: string) =
    let path = Path.Combine(dir, "last.safetensors")
    let last = Checkpoint.Load path
    last.Metadata.[key] <- value
    Checkpoint(last.Model, last.Metadata, last.Optimizer).Save path

let private exit1 (fragment: string) (r: Run) =
    r |> assertOneLineError fragment
    Assert.DoesNotContain("internal error", r.Err)
    Assert.Equal(1, r.Code)

[<Fact>]
let ``D5 infinite hyperparameters, empty and impossible paths, an empty metrics file: one-line errors, exit 1`` () =
    let dir = tempDir ()
    let ckpt = referenceCheckpoint ()
    for option in [ "--lr"; "--weight-decay"; "--clip"; "--floor"; "--eps" ] do
        for value in [ "Infinity"; "NaN"; "-Infinity"; "1e400" ] do
            run [ "train"; option; value; "--steps"; "3"; "--batch"; "16"; "--out"; Path.Combine(dir, "inf") ] |> exit1 "must be a finite number"
    run [ "eval"; "-c"; ckpt; "--json"; "" ] |> exit1 "--json: the path is empty"
    run [ "convert"; ckpt; "-o"; "" ] |> exit1 "-o: the path is empty"
    run [ "train"; "--out"; ""; "--steps"; "1"; "--batch"; "16" ] |> exit1 "--out: the path is empty"
    run [ "train"; "--seeds"; "1-2"; "--out"; ""; "--steps"; "1"; "--batch"; "16" ] |> exit1 "--out: the path is empty"
    run [ "train"; "--out"; "/proc/adder-test/run"; "--steps"; "1"; "--batch"; "16" ] |> exit1 "/proc/adder-test"
    run [ "eval"; "-c"; ckpt; "--suite"; "random"; "--count"; "10"; "--json"; "/proc/self/adder.json" ] |> exit1 "adder.json"
    run [ "convert"; ckpt; "-o"; "/proc/self/adder.safetensors" ] |> exit1 "adder.safetensors"
    let empty = Path.Combine(dir, "empty-run")
    Directory.CreateDirectory empty |> ignore
    File.WriteAllText(Path.Combine(empty, "metrics.csv"), "")
    run [ "plot"; empty ] |> exit1 "metrics.csv is empty"
    let run' = shortRun ()
    run [ "plot"; run'; "-o"; "" ] |> exit1 "the path is empty"

[<Fact>]
let ``D5 D6 a resume whose metadata is bad, or whose step lies outside the run, is refused`` () =
    let dir = stoppedRun ()
    let metricsBefore = File.ReadAllText(Path.Combine(dir, "metrics.csv"))
    for key, value, fragment in
        [ "step", "Infinity", "bad 'step'"; "step", "abc", "bad 'step'"; "step", "999999", "bad 'step'"; "step", "-5", "bad 'step'"
          "sampler_state", "not base64!", "bad 'sampler_state'"; "sampler_state", "AAAA", "bad 'sampler_state'"
          "best_val_exact", "x", "bad 'best_val_exact'" ] do
        let saved = File.ReadAllBytes(Path.Combine(dir, "last.safetensors"))
        setLastMetadata dir key value
        run [ "train"; "--out"; dir; "--resume"; "--quiet" ] |> exit1 fragment
        File.WriteAllBytes(Path.Combine(dir, "last.safetensors"), saved)
    Assert.Equal(metricsBefore, File.ReadAllText(Path.Combine(dir, "metrics.csv")))
    // intact, it resumes
    let r = run [ "train"; "--out"; dir; "--resume"; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)

[<Fact>]
let ``D5 D6 check-gradients refuses an empty batch and a golden of another norm or shape`` () =
    let golden = sharedFile "golden/gradcheck_random_init.json"
    let write (edit: Text.Json.Nodes.JsonNode -> unit) =
        let node = Text.Json.Nodes.JsonNode.Parse(File.ReadAllText golden)
        edit node
        let path = Path.Combine(tempDir (), "golden.json")
        File.WriteAllText(path, node.ToJsonString())
        path
    run [ "check-gradients"; "--golden"; write (fun n -> n.["batch"] <- Text.Json.Nodes.JsonArray()) ] |> exit1 "the batch is empty"
    run [ "check-gradients"; "--golden"; write (fun n -> n.["config"].["norm"] <- Text.Json.Nodes.JsonValue.Create "batchnorm") ]
    |> exit1 "norm 'batchnorm'"
    // the same 56 values of token_emb.weight, declared as 4 x 14 instead of 14 x 4
    run [ "check-gradients"; "--golden"; write (fun n -> n.["params"].["token_emb.weight"].["shape"] <- Text.Json.Nodes.JsonArray(Text.Json.Nodes.JsonValue.Create 4, Text.Json.Nodes.JsonValue.Create 14)) ]
    |> exit1 "tensor token_emb.weight has shape [4, 14]"

// ---- D6: bad input accepted ----

[<Fact>]
let ``D6 pairs with a stray '+' are refused`` () =
    for line in [ "++1 2++"; "+ 1 2"; "1 2+"; "1++2"; "1 + 2 + 3"; "1 2 3" ] do
        adder (Some(line + "\n")) [ "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ] |> exit1 "line 1: expected two operands"
    let r = adder (Some "1 + 2\n3+4\n5 6\n") [ "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ]
    Assert.Equal<string[]>([| "3"; "7"; "11" |], r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))

[<Fact>]
let ``D6 a .pt of another byte order, and safetensors of another format, are refused`` () =
    let dir = tempDir ()
    let big = Path.Combine(dir, "big.pt")
    rewritePt (fun n -> if n = "best/byteorder" then Some(Some(Text.Encoding.ASCII.GetBytes "big")) else None) big
    run [ "info"; big ] |> exit1 "byteorder is 'big'"
    let intact = Path.Combine(dir, "intact.pt")
    rewritePt (fun _ -> None) intact
    Assert.Equal(0, (run [ "info"; intact ]).Code)
    let shipped = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "models", "adder-311p-s36.safetensors"))
    let text = Text.Encoding.Latin1.GetString shipped
    Assert.Contains("\"format\":\"adder-1\"", text)
    let other = Path.Combine(dir, "other.safetensors")
    File.WriteAllBytes(other, Text.Encoding.Latin1.GetBytes(text.Replace("\"format\":\"adder-1\"", "\"format\":\"adder-9\"")))
    run [ "info"; other ] |> exit1 "format 'adder-9'"

[<Fact>]
let ``a .pt without a byteorder record (a zip from torch 1.6 to 2.0, 1.13 say) reads as little-endian, the same model`` () =
    let dir = tempDir ()
    let none = Path.Combine(dir, "none.pt")
    rewritePt (fun n -> if n = "best/byteorder" then Some None else None) none
    use zip = ZipFile.OpenRead none
    Assert.DoesNotContain(zip.Entries, fun e -> e.Name = "byteorder")
    let original, read = Checkpoint.Load(referenceCheckpoint ()), Checkpoint.Load none
    Assert.Equal<float32[]>(original.Model.Parameters, read.Model.Parameters)
    Assert.Equal(original.Model.Config, read.Model.Config)
    let r = run [ "eval"; "-c"; none; "--suite"; "random"; "--count"; "1000" ]
    Assert.True((r.Code = 0), r.Err)

[<Fact>]
let ``D6 plot refuses NaN losses, and a config number beyond int is reported exactly`` () =
    let dir = shortRun ()
    let metrics = Path.Combine(dir, "metrics.csv")
    let lines = File.ReadAllLines metrics
    let f = lines.[1].Split(',')
    f.[1] <- "NaN"
    lines.[1] <- String.Join(",", f)
    File.WriteAllLines(metrics, lines)
    run [ "plot"; dir; "-o"; Path.Combine(dir, "c.png") ] |> exit1 "non-finite loss"
    Assert.False(File.Exists(Path.Combine(dir, "c.png")))
    let model = Model(ModelConfig.Preset311)
    let tensors = [ for t in model.Layout.Tensors -> StoredTensor(t.Name, t.Shape, Array.zeroCreate t.Size) ]
    let config = (ConfigJson.Write ModelConfig.Preset311).Replace("\"d_model\":4", "\"d_model\":1099511627776")
    let path = Path.Combine(dir, "huge.safetensors")
    File.WriteAllBytes(path, CheckpointTests.customSafetensors tensors config)
    run [ "info"; path ] |> exit1 "d_model 1099511627776"

// ---- D7: a resumed run logs what a straight run logs ----

[<Fact>]
let ``D7 metrics.csv after --stop-after 1234 and --resume equals a straight run's, elapsed_s going on`` () =
    let root = tempDir ()
    let args (dir: string) = [ "train"; "--out"; dir; "--steps"; "1400"; "--batch"; "16"; "--eval-interval"; "700"; "--warmup"; "50"; "--quiet"; "--seed"; "3" ]
    let straight = Path.Combine(root, "straight")
    Assert.Equal(0, (run (args straight)).Code)
    let split = Path.Combine(root, "split")
    Assert.True((let c = (run (args split @ [ "--stop-after"; "1234" ])).Code in c = 0 || c = 130))
    let r = run [ "train"; "--out"; split; "--resume"; "--quiet" ]
    Assert.True((r.Code = 0), r.Out + r.Err)
    let rows dir = File.ReadAllLines(Path.Combine(dir, "metrics.csv")) |> Array.skip 1 |> Array.map (fun l -> l.Split(','))
    let a, b = rows straight, rows split
    Assert.Equal(14, a.Length)
    // every column but elapsed_s: step, loss, lr, grad_norm, val_exact, val_token_acc
    Assert.Equal<string[]>(a |> Array.map (fun f -> String.Join(",", f.[0..5])), b |> Array.map (fun f -> String.Join(",", f.[0..5])))
    let elapsed = b |> Array.map (fun f -> float f.[6])
    Assert.True(elapsed |> Array.pairwise |> Array.forall (fun (x, y) -> y >= x), sprintf "elapsed_s restarted: %A" elapsed)

// ---- D8: wording, echoes, --stop-after, stale temporaries ----

[<Fact>]
let ``D8 errors quote at most a few characters of an operand and say what is wrong`` () =
    let ckpt = referenceCheckpoint ()
    let huge = String('7', 100_000)   // one argument may hold at most 128 KiB
    let r = run [ "predict"; "-c"; ckpt; huge; "1" ]
    r |> exit1 "more than 10 digits"
    Assert.True(r.Err.Length < 200, sprintf "error of %d characters" r.Err.Length)
    let r = adder (Some("1 " + String('x', 3000) + "\n")) [ "predict"; "-c"; ckpt; "--file"; "-" ]
    r |> exit1 "line 1"
    Assert.True(r.Err.Length < 200, sprintf "error of %d characters" r.Err.Length)
    let r = run [ "eval"; "--" + String('z', 100_000) ]
    Assert.Equal(2, r.Code)
    Assert.True(r.Err.Length < 400, sprintf "error of %d characters" r.Err.Length)
    run [ "predict"; "-c"; ckpt; "--file"; tempDir () ] |> exit1 "is a folder"
    run [ "predict"; "-c"; ckpt; "--"; "-1"; "2" ] |> exit1 "operand '-1' is negative"

[<Fact>]
let ``D8 --stop-after is a success (exit 0) that says how to continue`` () =
    let dir = Path.Combine(tempDir (), "run")
    let r = run [ "train"; "--out"; dir; "--steps"; "40"; "--batch"; "16"; "--quiet"; "--stop-after"; "7" ]
    Assert.Equal(0, r.Code)
    Assert.Contains("stopped at step 7 as --stop-after asked; continue with --resume", r.Out)

[<Fact>]
let ``D8 temporaries left by a killed adder are removed when the same file is written again`` () =
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

[<Fact>]
let ``D7 last.safetensors holds the row in progress and the elapsed time; convert --weights-only drops them with the rest of the state`` () =
    let dir = stoppedRun ()   // stopped at step 13 of a run that logs every 20 steps: a window of 13 steps in progress
    let last = Checkpoint.Load(Path.Combine(dir, "last.safetensors"))
    Assert.Equal("13", last.Metadata.[TrainingState.StepKey])
    Assert.Equal("13", last.Metadata.[TrainingState.LossCountKey])
    Assert.True(float last.Metadata.[TrainingState.LossSumKey] > 0.0)
    Assert.True(float last.Metadata.[TrainingState.ElapsedKey] > 0.0)
    let out = Path.Combine(dir, "weights.safetensors")
    Assert.Equal(0, (run [ "convert"; Path.Combine(dir, "last.safetensors"); "-o"; out; "--weights-only" ]).Code)
    let weights = Checkpoint.Load out
    for key in TrainingState.Keys do
        if key <> TrainingState.StepKey then Assert.False(weights.Metadata.ContainsKey key, sprintf "%s kept" key)
    Assert.Null(weights.Optimizer)
