/// `adder export --format adderboard` of architectures, checked by a real PyTorch: the MicroAdder 67p's
/// submission QUALIFIED by the verification protocol, and every golden's logits reproduced by the exported file.
module Adder.Tests.ArchitectureExportTests

open System
open System.IO
open System.Text.Json
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.ExportTests

[<SkippableFact>]
let ``the exported MicroAdder 67p submission is QUALIFIED at 10,010 of 10,010`` () =
    requireTorch ()
    let dir = tempDir ()
    let submission = exportTo dir (sharedFile "reference/microadder/checkpoint_67p.pt") "adderboard" "microadder_67p.py"
    let code, out, err = runProcess python [ Path.Combine(pythonDir, "verify.py"); submission ] dir
    Assert.True((code = 0), sprintf "verify.py exited %d:\n%s\n%s" code out err)
    Assert.Contains("67 parameters", out)
    Assert.Contains("Results: 10010/10010 correct (100.00%)", out)
    Assert.Contains("QUALIFIED", out)

[<SkippableTheory>]
[<InlineData("62p", "frontier_62p.json")>]
[<InlineData("36p", "frontier_36p.json")>]
[<InlineData("67p", "frontier_67p.json")>]
let ``golden: an exported architecture's PyTorch forward gives the golden logits and its unique count`` (preset: string, file: string) =
    requireTorch ()
    let golden = goldenJson file
    let arch = ArchitecturePresets.Load preset
    let values = ArchitectureTests.parametersFrom arch (golden.GetProperty "params")
    let model = Model(ModelConfig.Of arch, Array.map float32 values)
    let dir = tempDir ()
    let checkpoint = Path.Combine(dir, preset + ".safetensors")
    Checkpoint(model).Save checkpoint
    let submission = exportTo dir checkpoint "adderboard" (preset + ".py")
    let tokens = ArchitectureTests.goldenTokens golden |> Array.take arch.Format.InputLength
    let code, out, err = runProcess python [ Path.Combine(pythonDir, "submission_logits.py"); submission; JsonSerializer.Serialize tokens ] dir
    Assert.True((code = 0), sprintf "submission_logits.py exited %d:\n%s" code err)
    let result = JsonDocument.Parse(out).RootElement
    Assert.Equal(arch.Count, result.GetProperty("unique").GetInt32())
    Assert.Equal(arch.Count, result.GetProperty("metadata").GetProperty("params").GetInt32())
    let got = ArchitectureTests.flatten (result.GetProperty "logits")
    let expected = ArchitectureTests.flatten (golden.GetProperty "logits_sequence_0")
    Assert.Equal(expected.Length, got.Length)
    let worst = Array.map2 (fun (g: float) e -> abs (g - e) / max 1.0 (abs e)) got expected |> Array.max
    Assert.True(worst < 1e-4, sprintf "%s: the exported forward's logits differ from the golden's by %g" preset worst)

[<Fact>]
let ``export --format pt of an architecture: its stored parameters by name and its description, read back as the same model`` () =
    let dir = tempDir ()
    let source = sharedFile "reference/microadder/checkpoint_67p.pt"
    let pt = exportTo dir source "pt" "microadder_67p.pt"
    let back = Checkpoint.Load pt
    let original = Checkpoint.Load source
    Assert.Equal(original.Model.Config, back.Model.Config)
    Assert.Equal<float32[]>(original.Model.Parameters, back.Model.Parameters)
    Assert.Contains("10010 / 10010 correct", (run [ "eval"; "-c"; pt; "--suite"; "adderboard" ]).Out)

[<SkippableFact>]
let ``torch.load reads an architecture's .pt: the stored parameters' names and shapes, and the architecture as JSON`` () =
    requireTorch ()
    let dir = tempDir ()
    let pt = exportTo dir (Path.Combine(repoRoot, "models", "adder-67p-s24.safetensors")) "pt" "adder_67p.pt"
    let e = torchCheck [ "inspect"; pt ]
    let model = (Checkpoint.Load pt).Model
    let keys = [ for k in e.GetProperty("keys").EnumerateArray() -> k.GetString() ]
    Assert.Equal<string list>([ for t in model.Layout.Tensors -> t.Name ], keys)
    for t in model.Layout.Tensors do
        Assert.Equal<int[]>(t.Shape, [| for d in e.GetProperty("shapes").GetProperty(t.Name).EnumerateArray() -> d.GetInt32() |])
    let described = e.GetProperty("model_config").GetProperty("architecture").GetString()
    Assert.Equal(model.Config.General, Architecture.FromJson(described, "torch"))
    Assert.Equal(67, e.GetProperty("params").GetInt32())

/// The 67p's weights rewritten by torch in the layout of the authors' later package (their 57p's layout).
let packageCheckpoint (variant: string) =
    let dir = tempDir ()
    let out = Path.Combine(dir, variant + ".pt")
    let script = Path.Combine(pythonDir, "microadder_package_checkpoint.py")
    let code, _, err = runProcess python [ script; sharedFile "reference/microadder/checkpoint_67p.pt"; out; variant ] dir
    Assert.True((code = 0), sprintf "microadder_package_checkpoint.py exited %d:\n%s" code err)
    out

[<SkippableFact>]
let ``a MicroAdder package checkpoint imports as the same model as the research code's, and as the 57p when fc2 is the head`` () =
    requireTorch ()
    let research = (Checkpoint.Load(sharedFile "reference/microadder/checkpoint_67p.pt")).Model
    let package67 = (Checkpoint.Load(packageCheckpoint "67p")).Model
    Assert.Equal(research.Config, package67.Config)
    Assert.Equal<float32[]>(research.Parameters, package67.Parameters)
    let tied = (Checkpoint.Load(packageCheckpoint "57p")).Model
    Assert.Equal("57p", tied.Config.General.Name)
    Assert.Equal(57, tied.Layout.Count)
    Assert.False(tied.Layout.Contains "fc2.weight")
    for t in tied.Layout.Tensors do
        Assert.Equal<float32[]>(research.Tensor(t.Name).ToArray(), tied.Tensor(t.Name).ToArray())

[<SkippableTheory>]
[<InlineData("57p-with-fc2", "unexpected tensor 'fc2.weight'")>]
[<InlineData("norm2-differs", "'norm2.weight' differs from 'norm1.weight'")>]
let ``a MicroAdder package checkpoint the presets cannot express is refused in one line`` (variant: string, expected: string) =
    requireTorch ()
    let r = run [ "eval"; "-c"; packageCheckpoint variant; "--suite"; "adderboard" ]
    Assert.NotEqual(0, r.Code)
    Assert.Contains(expected, r.Err)
    Assert.Equal(1, r.Err.Trim().Split('\n').Length)
