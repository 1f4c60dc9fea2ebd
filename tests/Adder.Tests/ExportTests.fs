/// adder export (pt, adderboard) checked by our own reader and by a real PyTorch (Debian's python3-torch, see
/// scripts/install-python-torch.sh): tests/python holds a SPEC model of our own, AdderBoard's verification
/// protocol and the checks PyTorch runs. The PyTorch tests skip only when /usr/bin/python3 cannot import torch.
module Adder.Tests.ExportTests

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Text.Json
open Xunit
open Adder.Core
open Adder.Core.Cpu
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests

let python = "/usr/bin/python3"
let pythonDir = Path.Combine(repoRoot, "tests", "python")
let shipped name = Path.Combine(repoRoot, "models", name)

let runProcess (file: string) (args: string list) (workDir: string) =
    let info = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
                                WorkingDirectory = workDir)
    for a in args do info.ArgumentList.Add a
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    p.WaitForExit()
    p.ExitCode, out.Result, err.Result

let torchAvailable =
    lazy
        (File.Exists python
         && (try let code, _, _ = runProcess python [ "-c"; "import torch" ] repoRoot in code = 0 with _ -> false))

let requireTorch () =
    if not torchAvailable.Value then missingTool (sprintf "PyTorch for %s (scripts/install-python-torch.sh)" python)
    Skip.IfNot(torchAvailable.Value, sprintf "PyTorch is not installed for %s (scripts/install-python-torch.sh installs it)" python)

/// Runs tests/python/torch_checks.py and parses the JSON object it prints.
let torchCheck (args: string list) =
    let code, out, err = runProcess python ("torch_checks.py" :: args) pythonDir
    if code <> 0 then failwithf "torch_checks.py %A failed (%d):\n%s" args code err
    JsonDocument.Parse(out).RootElement.Clone()

let exportTo (dir: string) (checkpoint: string) (format: string) (name: string) =
    let output = Path.Combine(dir, name)
    let r = run [ "export"; "-c"; checkpoint; "--format"; format; "-o"; output ]
    Assert.True((r.Code = 0), sprintf "export failed: %s" r.Err)
    output

/// Adder's own count on the AdderBoard suite, from `adder eval --suite adderboard`.
let adderboardCount (checkpoint: string) =
    let r = run [ "eval"; "-c"; checkpoint; "--suite"; "adderboard" ]
    Assert.Equal(0, r.Code)
    let line = r.Out.Split('\n') |> Array.find (fun l -> l.Contains " / 10010 correct")
    int (line.Split(' ').[0])

[<Fact>]
let ``the published checkpoint exported to pt reads back to identical weights, config and facts`` () =
    let dir = tempDir ()
    let pt = exportTo dir (referenceCheckpoint ()) "pt" "exported.pt"
    let original = Checkpoint.Load(referenceCheckpoint ())
    let back = Checkpoint.Load pt
    Assert.Equal(original.Model.Config, back.Model.Config)
    Assert.Equal<float32[]>(original.Model.Parameters, back.Model.Parameters)
    Assert.Equal("9000", back.Metadata.["step"])
    Assert.Equal("1", back.Metadata.["val_exact"])
    Assert.Equal("311", back.Metadata.["params"])
    // the published layout: one top folder, data.pkl first, byteorder, data/<key>, version; stored, 64-byte aligned
    use zip = ZipFile.OpenRead pt
    let names = [ for e in zip.Entries -> e.FullName ]
    Assert.Equal("exported/data.pkl", names.Head)
    Assert.Contains("exported/byteorder", names)
    Assert.Contains("exported/version", names)
    Assert.Equal(15, names |> List.filter (fun n -> n.StartsWith "exported/data/") |> List.length)   // lm_head shares key 0
    let bytes = File.ReadAllBytes pt
    for e in zip.Entries do
        Assert.Equal(e.Length, e.CompressedLength)
        // local header: 30 bytes + name + extra; the data starts at a multiple of 64
        let offset = int (typeof<ZipArchiveEntry>.GetProperty("OffsetOfLocalHeader", Reflection.BindingFlags.NonPublic ||| Reflection.BindingFlags.Instance).GetValue e :?> int64)
        let nameLength = int (BitConverter.ToUInt16(bytes, offset + 26))
        let extraLength = int (BitConverter.ToUInt16(bytes, offset + 28))
        Assert.Equal(0, (offset + 30 + nameLength + extraLength) % 64)

[<Fact>]
let ``every shipped config round-trips through pt bit for bit`` () =
    let dir = tempDir ()
    for name in [ "adder-311p-s36-targeted.safetensors"; "adder-303p-s36-targeted.safetensors"; "adder-295p-s36-targeted.safetensors"; "adder-271p-s36-targeted.safetensors"; "adder-311p-s36.safetensors"; "adder-912p-s1.safetensors" ] do
        let pt = exportTo dir (shipped name) "pt" (name + ".pt")
        Assert.Equal<float32[]>((Checkpoint.Load(shipped name)).Model.Parameters, (Checkpoint.Load pt).Model.Parameters)
    // a LayerNorm, two-layer, separate-QKV, mixed-rank config too
    let config = ModelConfig(NLayer = 2, DModel = 6, NHead = 3, DFf = 10, PosRank = 0, QkvRank = 2, AttnOutRank = 0, FfnRank = 3,
                             UseRmsNorm = false, TieQkv = TieModes.None)
    let model = Model.Initialised(config, 5)
    let path = Path.Combine(dir, "odd.pt")
    Files.writeAtomic path (fun s -> PtWriter.Write(s, model, PtWriter.Facts(7L, Nullable()), "odd"))
    let back = Checkpoint.Load path
    Assert.Equal(config, back.Model.Config)
    Assert.Equal<float32[]>(model.Parameters, back.Model.Parameters)
    Assert.Equal("None", back.Metadata.["val_exact"])

/// Pairs for logit comparisons: AdderBoard's edge cases and its first 40 random pairs.
let private logitPairs () = Array.append AdderBoard.edgeCases (AdderBoard.randomPairs () |> Array.truncate 40)

let private adderLogits (model: Model) (pairs: (int64 * int64)[]) =
    use backend = new CpuBackend(model.Config)
    backend.SetParameters(0, ReadOnlySpan model.Parameters)
    let logits = Array.zeroCreate<float32> (pairs.Length * Tokens.InputLength * model.Config.VocabSize)
    backend.Logits(0, ReadOnlySpan(Tokens.EncodeFullBatch(Array.map fst pairs, Array.map snd pairs)), pairs.Length, Span logits)
    logits |> Array.map float

let private torchLogits (dir: string) (checkpoint: string) (pairs: (int64 * int64)[]) =
    let pairsFile = Path.Combine(dir, "pairs.json")
    File.WriteAllText(pairsFile, JsonSerializer.Serialize(pairs |> Array.map (fun (a, b) -> [| a; b |])))
    let e = torchCheck [ "logits"; checkpoint; pairsFile ]
    [| for x in e.GetProperty("logits").EnumerateArray() -> x.GetDouble() |]

[<SkippableFact>]
let ``PyTorch loads the exported pt as the published file and its SPEC model gives Adder's logits`` () =
    requireTorch ()
    let dir = tempDir ()
    let pt = exportTo dir (referenceCheckpoint ()) "pt" "published.pt"
    let e = torchCheck [ "inspect"; pt ]
    Assert.Equal("OrderedDict", e.GetProperty("type").GetString())
    Assert.True(e.GetProperty("tied").GetBoolean(), "lm_head.weight must share token_emb.weight's storage")
    Assert.Equal("lm_head.weight", [ for k in e.GetProperty("keys").EnumerateArray() -> k.GetString() ] |> List.last)
    Assert.Equal(0.0, e.GetProperty("model_config").GetProperty("dropout").GetDouble())
    Assert.Equal("shareA_tieKV", e.GetProperty("model_config").GetProperty("tie_qkv").GetString())
    Assert.Equal(9000, e.GetProperty("step").GetInt32())
    Assert.Equal(1.0, e.GetProperty("val_exact").GetDouble())
    Assert.Equal(311, e.GetProperty("params").GetInt32())
    let pairs = logitPairs ()
    let ours = adderLogits (Checkpoint.Load pt).Model pairs
    let theirs = torchLogits dir pt pairs
    Assert.Equal(pairs.Length * 33 * 14, theirs.Length)
    let err = relativeError ours theirs
    Assert.True(err <= 1e-4, sprintf "relative error %g" err)
    // round trip: .pt -> ours (safetensors) -> .pt gives PyTorch the same logits as the published file itself
    let st = Path.Combine(dir, "ours.safetensors")
    Assert.Equal(0, (run [ "convert"; pt; "-o"; st ]).Code)
    let again = exportTo dir st "pt" "again.pt"
    Assert.Equal<float[]>(torchLogits dir (referenceCheckpoint ()) pairs, torchLogits dir again pairs)

[<SkippableFact>]
let ``a multi-head full-rank model (912p) exported to pt gives Adder's logits in PyTorch`` () =
    requireTorch ()
    let dir = tempDir ()
    let pt = exportTo dir (shipped "adder-912p-s1.safetensors") "pt" "m912.pt"
    let pairs = logitPairs ()
    let err = relativeError (adderLogits (Checkpoint.Load pt).Model pairs) (torchLogits dir pt pairs)
    Assert.True(err <= 1e-4, sprintf "relative error %g" err)

[<SkippableFact>]
let ``shipped models score in PyTorch what adder eval --suite adderboard reports (pt and safetensors)`` () =
    requireTorch ()
    let dir = tempDir ()
    for name in [ "adder-311p-s36-targeted.safetensors"; "adder-311p-s36.safetensors"; "adder-912p-s1.safetensors" ] do
        let expected = adderboardCount (shipped name)
        let pt = exportTo dir (shipped name) "pt" (name + ".pt")
        for file in [ pt; shipped name ] do
            let e = torchCheck [ "count"; file ]
            Assert.Equal(10010, e.GetProperty("total").GetInt32())
            Assert.True((expected = e.GetProperty("correct").GetInt32()), sprintf "%s: adder %d, PyTorch %d" file expected (e.GetProperty("correct").GetInt32()))
    // the published checkpoint: 10,010 / 10,010 both ways
    Assert.Equal(10010, adderboardCount (referenceCheckpoint ()))
    Assert.Equal(10010, (torchCheck [ "count"; referenceCheckpoint () ]).GetProperty("correct").GetInt32())

[<SkippableFact>]
let ``the exported AdderBoard file passes AdderBoard's verification with adder eval's count`` () =
    requireTorch ()
    let dir = tempDir ()
    let checkpoint = shipped "adder-311p-s36.safetensors"
    let submission = exportTo dir checkpoint "adderboard" "submission.py"
    let code, out, err = runProcess python [ Path.Combine(pythonDir, "verify.py"); submission ] dir
    Assert.True((code = 0), err)
    let expected = adderboardCount checkpoint
    Assert.Contains(sprintf "Results: %d/10010 correct" expected, out)
    Assert.Contains("311 parameters", out)
    Assert.Contains("QUALIFIED", out)

[<SkippableFact>]
let ``AdderBoard files of other configs build and add (912p: two heads, full rank, separate QKV)`` () =
    requireTorch ()
    let dir = tempDir ()
    let submission = exportTo dir (shipped "adder-912p-s1.safetensors") "adderboard" "s912.py"
    let code, out, err = runProcess python [ submission; "9999999999"; "1" ] dir
    Assert.True((code = 0), err)
    Assert.Contains("(912 parameters): 9999999999 + 1 = 10000000000", out)
    // a LayerNorm, two-layer, mixed-rank model with random weights: the file's model gives Adder's logits
    let config = ModelConfig(NLayer = 2, DModel = 6, NHead = 3, DFf = 10, PosRank = 0, QkvRank = 2, AttnOutRank = 0, FfnRank = 3,
                             UseRmsNorm = false, TieQkv = TieModes.None)
    let model = Model.Initialised(config, 5)
    for i in 0 .. model.Parameters.Length - 1 do model.Parameters.[i] <- model.Parameters.[i] * 20f   // make it far from uniform
    let ptPath = Path.Combine(dir, "odd.pt")
    Files.writeAtomic ptPath (fun s -> PtWriter.Write(s, model, PtWriter.Facts(0L, Nullable()), "odd"))
    let pyPath = Path.Combine(dir, "odd.py")
    AdderBoardExport.write model { Name = "odd"; Author = "test"; Architecture = "x"; Tricks = [] } pyPath
    let pairs = logitPairs ()
    let ours = adderLogits model pairs
    Assert.True(relativeError ours (torchLogits dir ptPath pairs) <= 1e-4)
    // the submission's own forward on the same 33-token inputs
    let script =
        "import sys, json, importlib.util, torch; sys.path.insert(0, sys.argv[3]); import spec_model\n" +
        "s = importlib.util.spec_from_file_location('sub', sys.argv[1]); m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n" +
        "model, meta = m.build_model(); pairs = [tuple(p) for p in json.load(open(sys.argv[2]))]\n" +
        "with torch.no_grad(): print(json.dumps(model(spec_model.full_inputs(pairs)).double().flatten().tolist()))"
    let pairsFile = Path.Combine(dir, "pairs.json")
    File.WriteAllText(pairsFile, JsonSerializer.Serialize(pairs |> Array.map (fun (a, b) -> [| a; b |])))
    let code, out, err = runProcess python [ "-c"; script; pyPath; pairsFile; pythonDir ] dir
    Assert.True((code = 0), err)
    let theirs = JsonSerializer.Deserialize<float[]> out
    let e = relativeError ours theirs
    Assert.True(e <= 1e-4, sprintf "relative error %g" e)

[<SkippableFact>]
let ``README's PyTorch snippet runs as written`` () =
    requireTorch ()
    let readme = File.ReadAllText(Path.Combine(repoRoot, "README.md"))
    let marker = "<!-- snippet: load-safetensors (run by ExportTests) -->"
    let start = readme.IndexOf marker
    Assert.True(start >= 0, "README lacks the snippet marker")
    let codeStart = readme.IndexOf("```python\n", start) + "```python\n".Length
    let code = readme.Substring(codeStart, readme.IndexOf("```", codeStart) - codeStart)
    let c, out, err = runProcess python [ "-c"; code ] repoRoot
    Assert.True((c = 0), err)
    Assert.Contains("311 parameters, d_model 4", out)
