/// Training curves drawn with ScottPlot (what is drawn: PlotData): loss on a log scale (left axis) and validation
/// exact match (right axis) against step, curriculum phase starts as dotted lines, the runs of a chain separated
/// by solid ones, the legend beside the data rather than over it.
module Adder.Pipeline.Plotting

open System
open Adder.Core
open Adder.Pipeline.PlotData

/// Curves named in the legend one by one; more are drawn unnamed, the legend saying how many.
let maxNamedCurves = 30

let private width = 1100

/// Taller for a long legend, so that it fits beside the data.
let private heightOf (figure: Figure) =
    let entries = if figure.Curves.Length > maxNamedCurves then 1 else figure.Curves.Length
    600 + 18 * max 0 (entries - 25)

let private colourOf (i: int) (n: int) =
    if n <= 10 then ScottPlot.Palettes.Category10().GetColor i
    else ScottPlot.Color.FromHSL(float32 i / float32 n, 0.75f, 0.42f, 1.0f)

/// The figure as a ScottPlot plot (the caller disposes it), and the image's width and height.
let draw (figure: Figure) =
    let plt = new ScottPlot.Plot()
    let n = figure.Curves.Length
    let overlay = n > 1
    let ticks = ScottPlot.TickGenerators.NumericAutomatic()
    ticks.MinorTickGenerator <- ScottPlot.TickGenerators.LogMinorTickGenerator()
    ticks.IntegerTicksOnly <- true
    ticks.LabelFormatter <- fun y -> sprintf "%g" (Math.Pow(10.0, y))
    plt.Axes.Left.TickGenerator <- ticks
    plt.Axes.Left.Label.Text <- if overlay then "train loss (solid)" else "train loss"
    plt.Axes.Bottom.Label.Text <- "step"
    for i, c in List.indexed figure.Curves do
        let loss = plt.Add.ScatterLine(c.Steps, c.Loss |> Array.map (fun l -> Math.Log10(max l 1e-12)))
        loss.Color <- if overlay then colourOf i n else colourOf 0 1
        loss.LineWidth <- if overlay then 1.2f else 1.5f
        loss.LegendText <- if not overlay then "train loss (log10)" elif n <= maxNamedCurves then c.Label else ""
        if c.ValSteps.Length > 0 then
            let v = plt.Add.ScatterLine(c.ValSteps, c.ValExact)
            v.Axes.YAxis <- plt.Axes.Right
            v.Color <- if overlay then colourOf i n else colourOf 1 1
            v.LineWidth <- if overlay then 1.2f else 1.5f
            if overlay then v.LinePattern <- ScottPlot.LinePattern.Dashed
            else v.LegendText <- "validation exact match (%)"
    if figure.Curves |> List.exists (fun c -> c.ValSteps.Length > 0) then
        plt.Axes.Right.Label.Text <- if overlay then "validation exact match, % (dashed)" else "validation exact match (%)"
        plt.Axes.SetLimitsY(-2.0, 102.0, plt.Axes.Right)
    for m in figure.Phases do
        let line = plt.Add.VerticalLine(m.Step, 1.0f, ScottPlot.Colors.Gray, ScottPlot.LinePattern.Dotted)
        line.Text <- m.Label
        line.LabelFontSize <- 10.0f
    for b in figure.Boundaries do
        let line = plt.Add.VerticalLine(b.Step, 1.5f, ScottPlot.Colors.Black, ScottPlot.LinePattern.Solid)
        line.Text <- b.Label
        line.LabelFontSize <- 10.0f
        line.LabelOppositeAxis <- true
    if n > maxNamedCurves then
        plt.Legend.ManualItems.Add(ScottPlot.LegendItem(LabelText = sprintf "%d runs, one colour each" n, LineColor = ScottPlot.Colors.Gray, LineWidth = 1.2f))
    plt.Title figure.Title
    plt.ShowLegend(ScottPlot.Edge.Right) |> ignore
    plt, (width, heightOf figure)

/// The image of a figure: SVG where the output's name ends in .svg, else PNG.
let image (figure: Figure) (output: string) =
    let plt, (w, h) = draw figure
    use _ = plt
    if output.EndsWith(".svg", StringComparison.OrdinalIgnoreCase) then Text.Encoding.UTF8.GetBytes(plt.GetSvgXml(w, h))
    else plt.GetImage(w, h).GetImageBytes(ScottPlot.ImageFormat.Png, 100)

/// Draws `runDirs` (one after another, or side by side with `overlay`; see PlotData.figure) into `output`.
let plot (runDirs: string list) (overlay: bool) (output: string) =
    let figure = PlotData.figure runDirs overlay
    for c in figure.Curves do
        if c.Steps.Length = 0 then fail "%s has no metric rows yet" c.Label
        // a NaN or infinite loss would leave a blank chart; adder train never logs one, so the file was altered
        match Array.tryFindIndex (fun l -> not (Double.IsFinite l)) c.Loss with
        | Some i -> fail "%s: the loss at step %g is %g; cannot plot a non-finite loss" c.Label c.Steps.[i] c.Loss.[i]
        | None -> ()
    SafeFiles.CheckNotAnInput(output, "-o", PlotData.inputsOf runDirs)
    SafeFiles.CheckWritable(output, "-o")
    let bytes = image figure output
    AtomicFile.Write(output, fun stream -> stream.Write(bytes, 0, bytes.Length))
