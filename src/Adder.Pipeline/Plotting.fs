/// Training curves of a run folder, drawn with ScottPlot.
module Adder.Pipeline.Plotting

open System
open System.Globalization
open System.IO
open Adder.Core

type Curves = { Steps: float[]; Loss: float[]; ValSteps: float[]; ValExact: float[] }

let readMetrics (runDir: string) =
    let path = Path.Combine(runDir, "metrics.csv")
    if not (File.Exists path) then raise (AdderException(sprintf "no metrics.csv in %s (is it a run folder?)" runDir))
    let lines = SafeFiles.ReadAllText(path, "metrics file").Split('\n')
    if lines.[0].Trim() = "" then raise (AdderException(sprintf "%s is empty (not a metrics file written by adder train)" path))
    let rows = lines |> Array.skip 1 |> Array.filter (fun l -> l.Trim() <> "") |> Array.map (fun l -> l.Split ',')
    let num (s: string) = Double.Parse(s, CultureInfo.InvariantCulture)
    try
        let withVal = rows |> Array.filter (fun r -> r.Length > 4 && r.[4] <> "")
        { Steps = rows |> Array.map (fun r -> num r.[0])
          Loss = rows |> Array.map (fun r -> num r.[1])
          ValSteps = withVal |> Array.map (fun r -> num r.[0])
          ValExact = withVal |> Array.map (fun r -> 100.0 * num r.[4]) }
    with :? FormatException | :? IndexOutOfRangeException ->
        raise (AdderException(sprintf "%s is not a metrics file written by adder train" path))

/// Loss (log scale, left axis) and validation exact match (%, right axis) against step.
let plot (runDir: string) (output: string) =
    let c = readMetrics runDir
    if c.Steps.Length = 0 then raise (AdderException(sprintf "%s has no metric rows yet" runDir))
    // a NaN or infinite loss would leave a blank chart; adder train never logs one, so the file was altered
    match Array.tryFindIndex (fun l -> not (Double.IsFinite l)) c.Loss with
    | Some i -> raise (AdderException(sprintf "%s: the loss at step %g is %g; cannot plot a non-finite loss" (Path.Combine(runDir, "metrics.csv")) c.Steps.[i] c.Loss.[i]))
    | None -> ()
    SafeFiles.CheckWritable(output, "-o")
    use plt = new ScottPlot.Plot()
    let logLoss = c.Loss |> Array.map (fun l -> Math.Log10(max l 1e-12))
    let loss = plt.Add.ScatterLine(c.Steps, logLoss)
    loss.LegendText <- "train loss (log10)"
    loss.LineWidth <- 1.5f
    let ticks = ScottPlot.TickGenerators.NumericAutomatic()
    ticks.MinorTickGenerator <- ScottPlot.TickGenerators.LogMinorTickGenerator()
    ticks.IntegerTicksOnly <- true
    ticks.LabelFormatter <- fun y -> sprintf "%g" (Math.Pow(10.0, y))
    plt.Axes.Left.TickGenerator <- ticks
    plt.Axes.Left.Label.Text <- "train loss"
    if c.ValSteps.Length > 0 then
        let v = plt.Add.ScatterLine(c.ValSteps, c.ValExact)
        v.LegendText <- "validation exact match (%)"
        v.Axes.YAxis <- plt.Axes.Right
        v.LineWidth <- 1.5f
        plt.Axes.Right.Label.Text <- "validation exact match (%)"
        plt.Axes.SetLimitsY(-2.0, 102.0, plt.Axes.Right)
    plt.Axes.Bottom.Label.Text <- "step"
    plt.Title(sprintf "%s" (Path.GetFileName(Path.GetFullPath(runDir).TrimEnd('/'))))
    plt.ShowLegend(ScottPlot.Alignment.UpperCenter) |> ignore
    let png = plt.GetImage(1000, 600).GetImageBytes(ScottPlot.ImageFormat.Png, 100)
    SafeFiles.WriteAtomic(output, fun s -> s.Write(png, 0, png.Length))
