/// A run's metrics.csv: written by Training, read by Sweep and Plotting; its format is defined here only.
module Adder.Pipeline.Metrics

open System
open System.Globalization
open System.IO

type Row =
    { Step: int; Loss: float; Lr: float; GradNorm: float
      ValExact: float option; ValTokenAccuracy: float option; ElapsedSeconds: float }

let header = "step,loss,lr,grad_norm,val_exact,val_token_acc,elapsed_s"

let pathIn (runDir: string) = RunFolder.metrics runDir

let format (r: Row) =
    let opt (x: float option) = match x with Some v -> Files.formatFloat v | None -> ""
    sprintf "%d,%s,%s,%s,%s,%s,%.1f" r.Step (Files.formatFloat r.Loss) (Files.formatFloat r.Lr) (Files.formatFloat r.GradNorm) (opt r.ValExact) (opt r.ValTokenAccuracy) r.ElapsedSeconds

let private parse (path: string) (line: string) =
    let f = line.Split ','
    let num (s: string) = Double.Parse(s, CultureInfo.InvariantCulture)
    let opt (s: string) = if s = "" then None else Some(num s)
    try
        { Step = int f.[0]; Loss = num f.[1]; Lr = num f.[2]; GradNorm = num f.[3]
          ValExact = opt f.[4]; ValTokenAccuracy = opt f.[5]; ElapsedSeconds = num f.[6] }
    with :? FormatException | :? IndexOutOfRangeException | :? OverflowException ->
        fail "%s is not a metrics file written by adder train" path

/// The lines of a metrics file, read with a cap (Limits.MaxTextFileBytes) from a regular file only.
let private lines (path: string) = Adder.Core.SafeFiles.ReadAllText(path, "metrics file").Split('\n') |> Array.map (fun l -> l.TrimEnd '\r')

/// The rows of runDir's metrics.csv ([] when the run has none yet). adder train writes the header first, so
/// an empty file was not written by it.
let read (runDir: string) =
    let path = pathIn runDir
    if not (File.Exists path) then []
    else
        let all = lines path
        if all.[0].Trim() = "" then fail "%s is empty (not a metrics file written by adder train)" path
        [ for line in all |> Array.skip 1 do if line.Trim() <> "" then parse path line ]

/// Drops the rows an interrupted run logged after step (its last checkpoint), so a resumed run logs them again.
let truncateAfter (runDir: string) (step: int) =
    let path = pathIn runDir
    if File.Exists path then
        let keep =
            lines path
            |> Array.filter (fun l -> l = header || (match Int32.TryParse(l.Split(',').[0]) with | true, s -> s <= step | _ -> false))
        Files.writeTextAtomic path (String.Join("\n", keep) + "\n")
