/// adder plot: runs side by side (--overlay, or a sweep folder's seeds), curriculum phase starts, a recipe's
/// stages one after another with boundaries, and the legend beside the data, never over it.
module Adder.Tests.PlotTests

open System
open System.IO
open System.Text.RegularExpressions
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared
open Adder.Tests.CliTests

/// A run folder as adder train writes it (metrics.csv every 100 steps, validation every 200; config.json), made
/// up without training.
let private fakeRun (dir: string) (kind: string) (steps: int) (curriculum: string) =
    Directory.CreateDirectory dir |> ignore
    let config = { Hyperparameters.defaults (Hyperparameters.RunKind.Parse kind) ModelConfig.Preset311 with Steps = steps; Curriculum = Curriculum.Parse curriculum }
    File.WriteAllText(Path.Combine(dir, "config.json"), Hyperparameters.toJson config)
    let rows =
        [ for step in 100 .. 100 .. steps ->
            Metrics.format { Step = step; Loss = 2.0 / float step; Lr = 0.01; GradNorm = 0.5
                             ValExact = (if step % 200 = 0 then Some(float step / float steps) else None)
                             ValTokenAccuracy = (if step % 200 = 0 then Some 0.9 else None); ElapsedSeconds = float step } ]
    File.WriteAllLines(Metrics.pathIn dir, Metrics.header :: rows)
    dir

let private base' = "0:1-3,200:1-6,400:1-10"

/// A sweep folder of three seeds, as adder train --seeds 1-3 leaves it.
let private fakeSweep (root: string) =
    let sweep = Path.Combine(root, "sweep")
    for seed in [ 1; 2; 3 ] do fakeRun (Path.Combine(sweep, sprintf "s%d" seed)) "train" 600 base' |> ignore
    File.WriteAllText(Path.Combine(sweep, "sweep.csv"), "seed\n")
    sweep

[<Fact>]
let ``--overlay draws runs side by side, each from its own first step; a sweep folder stands for its seeds`` () =
    let root = tempDir ()
    let a, b = fakeRun (Path.Combine(root, "a")) "train" 600 base', fakeRun (Path.Combine(root, "b")) "train" 400 base'
    let f = PlotData.figure [ a; b ] true
    Assert.Equal<string list>([ "a"; "b" ], [ for c in f.Curves -> c.Label ])
    Assert.Equal<float[]>([| 100.0 .. 100.0 .. 600.0 |], f.Curves.[0].Steps)
    Assert.Equal<float[]>([| 100.0 .. 100.0 .. 400.0 |], f.Curves.[1].Steps)
    Assert.Empty(f.Boundaries)
    // a sweep folder, alone or after --overlay: every seed's curve, by seed
    let sweep = fakeSweep root
    for figure in [ PlotData.figure [ sweep ] false; PlotData.figure [ sweep ] true ] do
        Assert.Equal<string list>([ "s1"; "s2"; "s3" ], [ for c in figure.Curves -> c.Label ])
        Assert.Equal("sweep (3 seeds)", figure.Title)
    Assert.Equal<string list>([ "s1"; "s2"; "s3"; "a" ], [ for c in (PlotData.figure [ sweep; a ] true).Curves -> c.Label ])
    // through the command: SVG by the output's name, every curve named in the legend
    let svg = Path.Combine(root, "overlay.svg")
    let r = run [ "plot"; "--overlay"; sweep; a; "-o"; svg ]
    Assert.True((r.Code = 0), r.Err)
    let text = File.ReadAllText svg
    Assert.Contains("<svg", text)
    for label in [ "s1"; "s2"; "s3"; "a" ] do Assert.Matches(sprintf @">\s*%s\s*<" label, text)
    let png = Path.Combine(root, "sweep.png")
    Assert.Equal(0, (run [ "plot"; sweep; "-o"; png ]).Code)
    Assert.Equal<byte[]>([| 0x89uy; byte 'P'; byte 'N'; byte 'G' |], (File.ReadAllBytes png).[0..3])
    // a sweep folder cannot be one of a chain; the two ways of giving folders do not mix
    run [ "plot"; a; sweep; "-o"; png ] |> assertOneLineError "is a sweep folder"
    let both = run [ "plot"; a; "--overlay"; b; "-o"; png ]
    both |> assertOneLineError "not both"
    Assert.Equal(2, both.Code)

[<Fact>]
let ``the curriculum's phase starts inside a run are marked, once for a sweep's seeds`` () =
    let root = tempDir ()
    let run' = fakeRun (Path.Combine(root, "run")) "train" 600 base'
    let f = PlotData.figure [ run' ] false
    Assert.Equal<PlotData.Mark list>([ { PlotData.Mark.Step = 200.0; PlotData.Mark.Label = "digits 1-6" }; { PlotData.Mark.Step = 400.0; PlotData.Mark.Label = "digits 1-10" } ], f.Phases)
    // a phase the run never reached is not drawn; a run without config.json has none
    let short = fakeRun (Path.Combine(root, "short")) "train" 300 base'
    Assert.Equal<float list>([ 200.0 ], [ for m in (PlotData.figure [ short ] false).Phases -> m.Step ])
    File.Delete(Path.Combine(short, "config.json"))
    Assert.Empty((PlotData.figure [ short ] false).Phases)
    Assert.Equal<float list>([ 200.0; 400.0 ], [ for m in (PlotData.figure [ fakeSweep root ] false).Phases -> m.Step ])
    // drawn as labelled lines
    let svg = Path.Combine(root, "phases.svg")
    Assert.Equal(0, (run [ "plot"; run'; "-o"; svg ]).Code)
    Assert.Matches(@">\s*digits 1-6\s*<", File.ReadAllText svg)

[<Fact>]
let ``a recipe folder's stages are drawn one after another, with a boundary where each begins`` () =
    let root = tempDir ()
    let recipe = Path.Combine(root, "recipe")
    fakeRun (Path.Combine(recipe, "stage-1-base")) "train" 600 base' |> ignore
    fakeRun (Path.Combine(recipe, "stage-2-polish")) "finetune" 300 "0:1-10" |> ignore
    fakeRun (Path.Combine(recipe, "stage-10-last")) "finetune" 200 "0:1-10" |> ignore
    let f = PlotData.figure [ recipe ] false
    Assert.Equal<PlotData.Mark list>([ { PlotData.Mark.Step = 600.0; PlotData.Mark.Label = "stage-2-polish" }; { PlotData.Mark.Step = 900.0; PlotData.Mark.Label = "stage-10-last" } ], f.Boundaries)
    let c = f.Curves |> List.exactlyOne
    Assert.Equal<float[]>(Array.append [| 100.0 .. 100.0 .. 600.0 |] (Array.append [| 700.0 .. 100.0 .. 900.0 |] [| 1000.0; 1100.0 |]), c.Steps)
    Assert.Equal<float list>([ 200.0; 400.0 ], [ for m in f.Phases -> m.Step ])
    let svg = Path.Combine(root, "recipe.svg")
    Assert.Equal(0, (run [ "plot"; recipe; "-o"; svg ]).Code)
    Assert.Matches(@">\s*stage-2-polish\s*<", File.ReadAllText svg)

/// Where each legend label is drawn (its text's x), and the data area's right edge.
let private legendAndData (figure: PlotData.Figure) (labels: string list) =
    let plt, (w, h) = Plotting.draw figure
    use _ = plt
    let svg = plt.GetSvgXml(w, h)
    let right = float plt.LastRender.DataRect.Right
    [ for label in labels ->
        let m = Regex.Match(svg, sprintf @"<text transform=""translate\(([0-9.]+) [0-9.]+\)""[^>]*>\s*%s\s*</text>" (Regex.Escape label))
        Assert.True(m.Success, sprintf "legend label %s not found" label)
        float m.Groups.[1].Value ], right

[<Fact>]
let ``the legend lies beside the data, not over it`` () =
    let root = tempDir ()
    let sweep = fakeSweep root
    let xs, right = legendAndData (PlotData.figure [ sweep ] false) [ "s1"; "s2"; "s3" ]
    for x in xs do Assert.True(x > right, sprintf "a legend label at x %g, inside the data area (right edge %g)" x right)
    let xs, right = legendAndData (PlotData.figure [ Path.Combine(sweep, "s1") ] false) [ "train loss (log10)"; "validation exact match (%)" ]
    for x in xs do Assert.True(x > right, sprintf "a legend label at x %g, inside the data area (right edge %g)" x right)
    // many curves: one legend line says how many instead of naming each
    let many = { PlotData.figure [ sweep ] false with Curves = List.replicate (Plotting.maxNamedCurves + 1) (PlotData.figure [ sweep ] false).Curves.Head }
    let xs, right = legendAndData many [ sprintf "%d runs, one colour each" (Plotting.maxNamedCurves + 1) ]
    Assert.True(xs.Head > right)
