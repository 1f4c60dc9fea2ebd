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

let private template = lazy (PythonSource.embedded "adderboard_submission.py")

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
    let values =
        dict [ "CONFIG", PythonSource.literal (ConfigJson.Write model.Config)
               "TENSORS", PythonSource.literal (JsonSerializer.Serialize tensors)
               "METADATA", PythonSource.literal (JsonSerializer.Serialize meta)
               "WEIGHTS", PythonSource.weights model.Parameters
               // in the module's docstring, a """ literal
               "NAME", PythonSource.escape metadata.Name ]
    // one pass over the template: text put in (a name "__WEIGHTS__", an author "by __NAME__") is never substituted again
    Regex.Replace(template.Value, "__(CONFIG|TENSORS|METADATA|WEIGHTS|NAME)__", fun m -> values.[m.Groups.[1].Value])

let write (model: Model) (metadata: Metadata) (path: string) = Files.writeTextAtomic path (render model metadata)
