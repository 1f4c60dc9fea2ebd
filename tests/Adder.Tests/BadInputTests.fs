/// Bad input ends in a one-line error and exit 1, never an internal error: options, paths, resumes, checkpoints, golden files, pairs, plots, and what the error quotes.
module Adder.Tests.BadInputTests

open System
open System.IO
open System.IO.Compression
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.TestProcesses

[<Fact>]
let ``standard output on /dev/full or closed is a one-line error, exit 1`` () =
    let r = adderShell ">/dev/full" [ "predict"; "-c"; referenceCheckpoint (); "1"; "2" ]
    r |> assertOneLineError "standard output"
    Assert.Equal(1, r.Code)
    let r = adderShell ">&-" [ "predict"; "-c"; referenceCheckpoint (); "1"; "2" ]
    r |> assertOneLineError "standard output"
    Assert.Equal(1, r.Code)

[<Fact>]
let ``infinite hyperparameters, empty and impossible paths, an empty metrics file: one-line errors, exit 1`` () =
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
let ``a resume whose metadata is bad, or whose step lies outside the run, is refused`` () =
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
let ``check-gradients refuses an empty batch and a golden of another norm or shape`` () =
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

[<Fact>]
let ``pairs with a stray '+' are refused`` () =
    for line in [ "++1 2++"; "+ 1 2"; "1 2+"; "1++2"; "1 + 2 + 3"; "1 2 3" ] do
        adder (Some(line + "\n")) [ "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ] |> exit1 "line 1: expected two operands"
    let r = adder (Some "1 + 2\n3+4\n5 6\n") [ "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ]
    Assert.Equal<string[]>([| "3"; "7"; "11" |], r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries))

[<Fact>]
let ``a .pt of another byte order, and safetensors of another format, are refused`` () =
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
let ``plot refuses NaN losses, and a config number beyond int is reported exactly`` () =
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

[<Fact>]
let ``errors quote at most a few characters of an operand and say what is wrong`` () =
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
