/// The live status line of a training run, fitted to the terminal's width.
module Adder.Cli.ProgressLine

open System

/// Columns assumed when the terminal reports none: `script` and some container ptys report a width of 0.
let fallbackWidth = 80

/// The terminal's width, or 0 when it cannot say.
let windowWidth () =
    try Console.WindowWidth with :? IO.IOException | :? PlatformNotSupportedException -> 0

/// The columns a line may use: one less than the terminal's, so that the cursor never wraps to a new line.
let columns (windowWidth: int) = max 1 ((if windowWidth > 0 then windowWidth else fallbackWidth) - 1)

/// The fields (text, importance: lower is kept longer) joined by two spaces, in their order, leaving out
/// the least important until the line fits; a single field that still does not fit is cut.
let fit (columns: int) (fields: (string * int) list) =
    let join (fs: (string * int) list) = fs |> List.map fst |> String.concat "  "
    let rec shrink (fs: (string * int) list) =
        let line = join fs
        if line.Length <= columns || fs.Length <= 1 then line
        else
            let least = fs |> List.indexed |> List.maxBy (fun (_, (_, importance)) -> importance) |> fst
            shrink (List.removeAt least fs)
    let line = shrink fields
    if line.Length > columns then line.Substring(0, columns) else line

/// What erases the status line: spaces over its columns, the cursor back at the start.
let blank (columns: int) = "\r" + String(' ', columns) + "\r"
