/// Reading the golden files of ../shared/golden (and a user's golden for check-gradients): parameters as
/// {name: {shape, data}} or {name: values}, values a number or nested lists (row-major), and batches of pairs.
/// The one reader, for check-gradients, the lent-GPU self-test and the tests.
module Adder.Pipeline.Golden

open System
open System.Text.Json
open Adder.Core

let private property (e: JsonElement) (name: string) (path: string) =
    match e.TryGetProperty name with
    | true, v -> v
    | _ -> fail "%s: missing '%s'" path name

/// A value as the goldens write it: a number or nested lists, flattened row-major.
let rec flatten (e: JsonElement) : float[] =
    match e.ValueKind with
    | JsonValueKind.Number -> [| e.GetDouble() |]
    | JsonValueKind.Array -> [| for x in e.EnumerateArray() do yield! flatten x |]
    | _ -> raise (InvalidOperationException "a tensor is a number or a list of numbers")

/// The flat parameter buffer of `layout` from a golden's parameter map (path names the file in errors): every
/// tensor present, of its layout's size, and of its shape where the golden gives one (a golden of another shape
/// with as many values must not pass as this one).
let parameters (layout: ParameterLayout) (pars: JsonElement) (path: string) =
    let p = Array.zeroCreate<float32> layout.Count
    for t in layout.Tensors do
        let e = property pars t.Name path
        let data =
            if e.ValueKind = JsonValueKind.Object then
                match e.TryGetProperty "shape" with
                | true, shape ->
                    let dims = [| for x in shape.EnumerateArray() -> x.GetInt32() |]
                    if dims <> t.Shape then fail "%s: tensor %s has shape [%s], the config needs %s" path t.Name (String.Join(", ", dims)) t.ShapeText
                | _ -> ()
                flatten (property e "data" path)
            else flatten e
        if data.Length <> t.Size then fail "%s: tensor %s has %d values, expected %d %s" path t.Name data.Length t.Size t.ShapeText
        for i in 0 .. data.Length - 1 do p.[t.Offset + i] <- float32 data.[i]
    p

/// A golden batch [{a, b, …}, …] as its operands.
let pairs (batch: JsonElement) (path: string) =
    let items = [| for x in batch.EnumerateArray() -> (property x "a" path).GetInt64(), (property x "b" path).GetInt64() |]
    Array.map fst items, Array.map snd items
