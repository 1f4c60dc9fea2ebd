/// Training curves of a run folder, drawn with ScottPlot.
module Adder.Pipeline.Plotting

open System
open System.Globalization
open System.IO
open Adder.Core

type Curves = { Steps: float[]; Loss: float[]; ValSteps: float[]; ValExact: float[] }

/// The run folders a folder stands for: itself, or a targeted fine-tune's rounds (round-1, round-2, ...) in order.
let private runsIn (dir: string) =
    if File.Exists(Path.Combine(dir, "targeted.csv")) then
        let number (d: string) = match Int32.TryParse(Path.GetFileName(d).Substring("round-".Length)) with | true, n -> n | _ -> Int32.MaxValue
        Directory.GetDirectories(dir, "round-*") |> Array.sortBy number |> List.ofArray
    else [ dir ]

/// The files a plot of these folders reads: each run's metrics.csv, and a targeted fine-tune's targeted.csv.
let private inputsOf (dirs: string list) =
    [| for dir in dirs do
         let targeted = Path.Combine(dir, "targeted.csv")
         if File.Exists targeted then yield struct (targeted, "the fine-tune's targeted.csv")
         for run in runsIn dir -> struct (Metrics.pathIn run, "a run's metrics.csv") |]

/// The curves of runs drawn one after another (fine-tuning rounds): each run's steps follow the previous run's last.
let curves (dirs: string list) =
    let runs = dirs |> List.collect runsIn
    let mutable offset = 0
    let rows =
        [| for runDir in runs do
             if not (File.Exists(Metrics.pathIn runDir)) then fail "no metrics.csv in %s (is it a run folder?)" runDir
             let rows = Metrics.read runDir
             yield! rows |> List.map (fun r -> { r with Step = r.Step + offset })
             offset <- offset + (rows |> List.fold (fun m r -> max m r.Step) 0) |]
    let withVal = rows |> Array.filter (fun r -> r.ValExact.IsSome)
    { Steps = rows |> Array.map (fun r -> float r.Step)
      Loss = rows |> Array.map (fun r -> r.Loss)
      ValSteps = withVal |> Array.map (fun r -> float r.Step)
      ValExact = withVal |> Array.map (fun r -> 100.0 * r.ValExact.Value) }

/// Loss (log scale, left axis) and validation exact match (%, right axis) against step, of one run or of
/// runs one after another.
let plot (runDirs: string list) (output: string) =
    let c = curves runDirs
    let runDir = String.Join(" + ", runDirs)
    if c.Steps.Length = 0 then fail "%s has no metric rows yet" runDir
    // a NaN or infinite loss would leave a blank chart; adder train never logs one, so the file was altered
    match Array.tryFindIndex (fun l -> not (Double.IsFinite l)) c.Loss with
    | Some i -> fail "%s: the loss at step %g is %g; cannot plot a non-finite loss" (Metrics.pathIn runDir) c.Steps.[i] c.Loss.[i]
    | None -> ()
    SafeFiles.CheckNotAnInput(output, "-o", inputsOf runDirs)
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
    plt.Title(String.Join(" + ", [ for d in runDirs -> Path.GetFileName(Path.GetFullPath(d).TrimEnd('/')) ]))
    plt.ShowLegend(ScottPlot.Alignment.UpperCenter) |> ignore
    let png = plt.GetImage(1000, 600).GetImageBytes(ScottPlot.ImageFormat.Png, 100)
    AtomicFile.Write(output, fun stream -> stream.Write(png, 0, png.Length))
