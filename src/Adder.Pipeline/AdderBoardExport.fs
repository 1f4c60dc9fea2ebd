/// `adder export --format adderboard`: one self-contained Python file meeting AdderBoard's interface
/// (build_model() -> (model, metadata), add(model, a, b)), filled in from the template adderboard_submission.py.
module Adder.Pipeline.AdderBoardExport

open System
open System.IO
open System.Runtime.InteropServices
open System.Text
open System.Text.Json
open System.Text.RegularExpressions
open Adder.Core

let private template =
    lazy
        (use stream = Reflection.Assembly.GetExecutingAssembly().GetManifestResourceStream "adderboard_submission.py"
         use reader = new StreamReader(stream)
         reader.ReadToEnd())

/// What the submission says about itself (AdderBoard's metadata dict).
type Metadata = { Name: string; Author: string; Architecture: string; Tricks: string list }

/// A short architecture line, e.g. "1L decoder, d=4, 1 head, d_ff=8, rank-3 (pos/qkv/out/ffn 3/3/3/3), shareA_tieKV, RMSNorm".
let architecture (c: ModelConfig) =
  if not (isNull c.General) then ArchitectureExport.describe c.General
  else
    let ranks = [ c.PosRank; c.QkvRank; c.AttnOutRank; c.FfnRank ]
    let rankText =
        if ranks |> List.forall ((=) 0) then "full-rank projections"
        else sprintf "low-rank projections (pos/qkv/attn-out/ffn ranks %s, 0 = full)" (ranks |> List.map string |> String.concat "/")
    sprintf "%d-layer decoder-only transformer, d_model=%d, %d head%s, d_ff=%d, %s, %s, %s, tied output head, learned positions"
        c.NLayer c.DModel c.NHead (if c.NHead = 1 then "" else "s") c.DFf rankText
        (if c.TieQkv = TieModes.ShareATieKV then "shared-A Q/K/V with K = V (shareA_tieKV)" else "separate Q, K, V")
        (if c.UseRmsNorm then "RMSNorm" else "LayerNorm")

let defaultTricks (c: ModelConfig) =
  if not (isNull c.General) then ArchitectureExport.tricks c.General
  else
    [ yield "tied input/output embedding"
      if [ c.PosRank; c.QkvRank; c.AttnOutRank; c.FfnRank ] |> List.exists (fun r -> r > 0) then yield "low-rank factorised projections"
      if c.TieQkv = TieModes.ShareATieKV then yield "shared Q/K/V bottleneck with keys = values"
      yield "reversed (least significant first) sum digits" ]

/// Text as the inside of a Python string literal, quoted with ' or with """: backslashes and both quotes
/// escaped, and every character outside printable ASCII written as \xNN, \uNNNN or \UNNNNNNNN, so that no
/// text (a newline, a NUL, a line separator, a lone surrogate) can end the literal or the line.
let pythonEscape (text: string) =
    let escaped = StringBuilder(text.Length + 16)
    let mutable i = 0
    while i < text.Length do
        let c = text.[i]
        match c with
        | '\\' -> escaped.Append @"\\" |> ignore
        | '\'' -> escaped.Append @"\'" |> ignore
        | '"' -> escaped.Append "\\\"" |> ignore
        | '\n' -> escaped.Append @"\n" |> ignore
        | c when c >= ' ' && c <= '~' -> escaped.Append c |> ignore
        | c when Char.IsHighSurrogate c && i + 1 < text.Length && Char.IsLowSurrogate text.[i + 1] ->
            escaped.AppendFormat(@"\U{0:x8}", Char.ConvertToUtf32(c, text.[i + 1])) |> ignore
            i <- i + 1
        | c when int c < 0x100 -> escaped.AppendFormat(@"\x{0:x2}", int c) |> ignore
        | c -> escaped.AppendFormat(@"\u{0:x4}", int c) |> ignore
        i <- i + 1
    escaped.ToString()

/// A Python string literal holding the text.
let pythonString (text: string) = "'" + pythonEscape text + "'"

/// The Python source of the submission.
let render (model: Model) (metadata: Metadata) =
  if not (isNull model.Config.General) then
    ArchitectureExport.render model metadata.Name metadata.Author metadata.Architecture metadata.Tricks
  else
    let layout = model.Layout
    let tensors = [| for t in layout.Tensors -> [| box t.Name; box t.Shape |] |]
    let meta =
        dict [ "name", box metadata.Name; "author", box metadata.Author; "params", box layout.Count
               "architecture", box metadata.Architecture; "tricks", box (List.toArray metadata.Tricks) ]
    if not BitConverter.IsLittleEndian then raise (PlatformNotSupportedException "big-endian host")
    let b64 = Convert.ToBase64String(MemoryMarshal.AsBytes(ReadOnlySpan(model.Parameters)))
    let lines = [ for i in 0 .. 76 .. b64.Length - 1 -> sprintf "    \"%s\"" (b64.Substring(i, min 76 (b64.Length - i))) ]
    let values =
        dict [ "CONFIG", pythonString (ConfigJson.Write model.Config)
               "TENSORS", pythonString (JsonSerializer.Serialize tensors)
               "METADATA", pythonString (JsonSerializer.Serialize meta)
               "WEIGHTS", String.Join("\n", lines)
               // in the module's docstring, a """ literal
               "NAME", pythonEscape metadata.Name ]
    // one pass over the template: text put in (a name "__WEIGHTS__", an author "by __NAME__") is never substituted again
    Regex.Replace(template.Value, "__(CONFIG|TENSORS|METADATA|WEIGHTS|NAME)__", fun m -> values.[m.Groups.[1].Value])

let write (model: Model) (metadata: Metadata) (path: string) = Files.writeTextAtomic path (render model metadata)
