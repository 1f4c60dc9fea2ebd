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
