/// `adder export --format adderboard` for an architecture: the template adderboard_architecture.py with the
/// architecture, its stored parameters' names and shapes, the weights, and the role graph written out as
/// PyTorch expressions (RoleNode.Python), so the submission derives its roles exactly as Adder does.
module Adder.Pipeline.ArchitectureExport

open System
open System.IO
open System.Runtime.InteropServices
open System.Text.Json
open System.Text.RegularExpressions
open Adder.Core

let private template = lazy (PythonSource.embedded "adderboard_architecture.py")

let private pythonString = PythonSource.literal

/// The roles' PyTorch code: one assignment a tape node, then R = {role: node}.
let private rolesCode (arch: CompiledArchitecture) =
    let index = Collections.Generic.Dictionary<RoleNode, int>(HashIdentity.Reference)
    let tape = arch.Graph.Tape
    for i in 0 .. tape.Count - 1 do index.[tape.[i]] <- i
    let name (node: RoleNode) = sprintf "n[%d]" index.[node]
    [ for i in 0 .. tape.Count - 1 -> sprintf "        n[%d] = %s" i (tape.[i].Python(Func<RoleNode, string> name))
      let roles = [ for KeyValue(role, node) in arch.Graph.Roles -> sprintf "%s: %s" (pythonString role) (name node) ]
      yield sprintf "        R = {%s}" (String.Join(", ", roles)) ]
    |> String.concat "\n"

/// The Python source. Placeholders are replaced in one pass, so no user text is ever substituted again.
let render (model: Model) (name: string) (author: string) (architectureText: string) (tricks: string list) =
    let arch = model.Config.General
    let compiled = arch.Compile()
    let parameters = [| for p in arch.Parameters -> [| box p.Name; box p.Shape |] |]
    let meta =
        dict [ "name", box name; "author", box author; "params", box arch.Count
               "architecture", box architectureText; "tricks", box (List.toArray tricks) ]
    let values =
        dict [ "__ARCHITECTURE__", pythonString (arch.ToJson())
               "__PARAMETERS__", pythonString (JsonSerializer.Serialize parameters)
               "__METADATA__", pythonString (JsonSerializer.Serialize meta)
               "__WEIGHTS__", PythonSource.weights model.Parameters
               "__ROLES__", rolesCode compiled ]
    Regex.Replace(template.Value, "__[A-Z]+__", fun m -> match values.TryGetValue m.Value with | true, v -> v | _ -> m.Value)

/// A short architecture line for the metadata.
let describe (arch: Architecture) =
    let c = arch.Compile()
    sprintf "1-layer decoder, %s (Adder architecture), d_model=%d, head dim %d, %s MLP d_ff=%d%s%s, token format %s"
        arch.Name c.D c.Dq arch.Mlp c.F (if c.HasQkNorm then ", QK-norm" else "")
        (if arch.RopeTheta.HasValue then sprintf ", RoPE theta=%g" arch.RopeTheta.Value else "") arch.Format.Name

let tricks (arch: Architecture) =
    [ "roles derived from tied stored parameters (" + String.Join("; ", [ for KeyValue(r, e) in arch.Roles do if e.Contains "(" || e.Contains "@" then yield sprintf "%s = %s" r e ]) + ")"
      "least significant digit first" ]
