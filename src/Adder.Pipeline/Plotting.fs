/// Training curves of a run folder, drawn with ScottPlot.
module Adder.Pipeline.Plotting

open System
open System.Globalization
open System.IO
open Adder.Core

type Curves = { Steps: float[]; Loss: float[]; ValSteps: float[]; ValExact: float[] }

let curves (runDir: string) =
    if not (File.Exists(Metrics.pathIn runDir)) then fail "no metrics.csv in %s (is it a run folder?)" runDir
    let rows = Metrics.read runDir |> Array.ofList
    let withVal = rows |> Array.filter (fun r -> r.ValExact.IsSome)
    { Steps = rows |> Array.map (fun r -> float r.Step)
      Loss = rows |> Array.map (fun r -> r.Loss)
      ValSteps = withVal |> Array.map (fun r -> float r.Step)
      ValExact = withVal |> Array.map (fun r -> 100.0 * r.ValExact.Value) }

/// Loss (log scale, left axis) and validation exact match (%, right axis) against step.
let plot (runDir: string) (output: string) =
    let c = curves runDir
    if c.Steps.Length = 0 then fail "%s has no metric rows yet" runDir
    // a NaN or infinite loss would leave a blank chart; adder train never logs one, so the file was altered
    match Array.tryFindIndex (fun l -> not (Double.IsFinite l)) c.Loss with
    | Some i -> fail "%s: the loss at step %g is %g; cannot plot a non-finite loss" (Metrics.pathIn runDir) c.Steps.[i] c.Loss.[i]
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
    AtomicFile.Write(output, fun stream -> stream.Write(png, 0, png.Length))
