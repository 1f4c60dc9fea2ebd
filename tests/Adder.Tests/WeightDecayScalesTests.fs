/// Per-parameter weight decay: its text form, AdamW's update element by element, a run in which a scaled term
/// shrinks and the rest train as before, bad scales refused before any folder; and a model moved to another
/// architecture by name (`convert --preset`), which computes the source's function with the dropped term at zero.
module Adder.Tests.WeightDecayScalesTests

open System
open System.IO
open Xunit
open Adder.Core
open Adder.Core.Cpu
open Adder.Tests.Shared
open Adder.Tests.CliTests

[<Fact>]
let ``decay scales parse, print back, and refuse what is malformed`` () =
    let scales = WeightDecayScales.Parse "mlp.W_res:1000, norm.ln1:0"
    Assert.Equal<(string * float) list>([ "mlp.W_res", 1000.0; "norm.ln1", 0.0 ], [ for struct (name, factor) in scales.Scales -> name, factor ])
    Assert.Equal("mlp.W_res:1000,norm.ln1:0", string scales)
    Assert.Equal(scales, WeightDecayScales.Parse(string scales))
    Assert.False((WeightDecayScales.Parse "").Active)
    for bad in [ "mlp.W_res"; ":3"; "mlp.W_res:x"; "mlp.W_res:-1"; "a:1,a:2"; "a:inf" ] do
        let e = Assert.Throws<AdderException>(fun () -> WeightDecayScales.Parse bad |> ignore)
        Assert.DoesNotContain("\n", e.Message)

[<Fact>]
let ``AdamW decays each parameter by its own factor, and factors of 1 are the plain update bit for bit`` () =
    let n = 6
    let grad = [| 0.3f; -0.2f; 0.0f; 0.0f; 0.1f; 0.0f |]
    let start = [| 1.5f; -0.7f; 2.0f; -3.0f; 0.25f; 4.0f |]
    let stepWith (scale: float32[]) =
        let p = Array.copy start
        let adam = AdamW n
        for _ in 1 .. 3 do adam.Update(Span p, ReadOnlySpan grad, 0.01, 0.1, ReadOnlySpan scale)
        p
    let plain = stepWith [||]
    Assert.Equal<float32[]>(plain, stepWith (Array.create n 1.0f))
    // a zero gradient leaves only the decay: (1 − lr·wd·k) a step, so k = 0 keeps the value and k = 100 shrinks it
    let scaled = stepWith [| 1.0f; 1.0f; 0.0f; 100.0f; 1.0f; 1.0f |]
    Assert.Equal(2.0f, scaled.[2])
    Assert.Equal(-3.0f * float32 (1.0 - 0.01 * 0.1 * 100.0) ** 3.0f, scaled.[3], 5)
    Assert.Equal(plain.[5], scaled.[5])
    Assert.Equal(plain.[0], scaled.[0])

let private arch42 = Path.Combine(repoRoot, "docs", "experiments", "42p-down-res.json")

let private parameter (path: string) (name: string) =
    let m = (Checkpoint.Load path).Model
    let t = m.Layout.Tensors |> Seq.find (fun t -> t.Name = name)
    m.Parameters.[t.Offset .. t.Offset + t.Size - 1]

let private train (dir: string) (name: string) (extra: string list) =
    let out = Path.Combine(dir, name)
    let r = run ([ "train"; "--arch"; arch42; "--seed"; "5"; "--steps"; "300"; "--batch"; "32"; "--lr"; "0.01"; "--warmup"; "0"
                   "--weight-decay"; "0.01"; "--eval-interval"; "300"; "--quiet"; "--threads"; "1"; "--out"; out ] @ extra)
    Assert.True((r.Code = 0), r.Err)
    Path.Combine(out, "last.safetensors")

let private largest (xs: float32[]) = xs |> Array.map abs |> Array.max

[<Fact>]
let ``a large decay scale shrinks its parameter, a scale of 1 changes nothing, and bad scales are refused before any folder`` () =
    let dir = tempDir ()
    let plain = train dir "plain" []
    let unit = train dir "unit" [ "--decay-scales"; "mlp.W_res:1" ]
    Assert.Equal<float32[]>((Checkpoint.Load plain).Model.Parameters, (Checkpoint.Load unit).Model.Parameters)
    let faded = train dir "faded" [ "--decay-scales"; "mlp.W_res:5000" ]
    let before, after = largest (parameter plain "mlp.W_res"), largest (parameter faded "mlp.W_res")
    Assert.True(after < before / 5.0f, sprintf "W_res's largest magnitude %g with the scale against %g without" after before)
    Assert.Contains("\"decay_scales\": \"mlp.W_res:5000\"", File.ReadAllText(Path.Combine(dir, "faded", "config.json")))
    for spec, fragment in [ "mlp.W_rex:10", "no such parameter"; "mlp.W_res:20000", "flip its sign"; "mlp.W_res", "bad decay scale" ] do
        let out = Path.Combine(dir, "bad")
        assertOneLineError fragment (run [ "train"; "--arch"; arch42; "--steps"; "10"; "--lr"; "0.01"; "--weight-decay"; "0.01"
                                           "--decay-scales"; spec; "--out"; out ])
        Assert.False(Directory.Exists out)
    // the CUDA backend does not take it: refused before any folder, with or without a GPU present
    let out = Path.Combine(dir, "cuda")
    assertOneLineError "CPU backend only" (run [ "train"; "--arch"; arch42; "--steps"; "10"; "--device"; "cuda"; "--decay-scales"; "mlp.W_res:10"; "--out"; out ])
    Assert.False(Directory.Exists out)

[<Fact>]
let ``convert --preset moves a model's weights by name: the 36p computes the 42p's function with its extra term at zero`` () =
    let dir = tempDir ()
    let source = train dir "source" []
    let moved = Path.Combine(dir, "36p.safetensors")
    let r = run [ "convert"; source; "--preset"; "36p"; "-o"; moved ]
    Assert.True((r.Code = 0), r.Err)
    Assert.Contains("dropped mlp.W_res", r.Out)
    let big = (Checkpoint.Load source).Model
    let small = (Checkpoint.Load moved).Model
    Assert.Equal(36, small.Layout.Count)
    let zeroed = Array.copy big.Parameters
    let res = big.Layout.Tensors |> Seq.find (fun t -> t.Name = "mlp.W_res")
    Array.fill zeroed res.Offset res.Size 0.0f
    let logitsOf (model: Model) (values: float32[]) =
        use backend = new GeneralBackend(model.Config, 1, CpuOptions.Default)
        backend.SetParameters(0, ReadOnlySpan values)
        let format = model.Config.Format
        let tokens = format.EncodeFullBatch([| 1234567890L; 9999999999L |], [| 8765432109L; 1L |])
        let logits = Array.zeroCreate<float32> (2 * format.InputLength * format.VocabSize)
        backend.Logits(0, ReadOnlySpan tokens, 2, Span logits)
        logits
    Assert.Equal<float32[]>(logitsOf big zeroed, logitsOf small small.Parameters)
    Assert.NotEqual<float32[]>(logitsOf big big.Parameters, logitsOf small small.Parameters)
    // the other way a parameter is missing: refused in one line, nothing written
    let back = Path.Combine(dir, "back.safetensors")
    assertOneLineError "no parameter 'mlp.W_res'" (run [ "convert"; moved; "--arch"; arch42; "-o"; back ])
    Assert.False(File.Exists back)
    // the seed's family is not an architecture to move weights between; both targets at once is a misuse
    assertOneLineError "is not an architecture" (run [ "convert"; referenceCheckpoint (); "--preset"; "36p"; "-o"; back ])
    Assert.False(File.Exists back)
    assertOneLineError "not both" (run [ "convert"; moved; "--preset"; "36p"; "--arch"; arch42; "-o"; back ])
    Assert.False(File.Exists back)
