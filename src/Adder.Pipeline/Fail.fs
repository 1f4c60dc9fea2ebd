/// The one way to stop on bad input: an AdderException, which the CLI prints as "adder: ..." with exit 1.
[<AutoOpen>]
module Adder.Pipeline.Fail

let fail fmt = Printf.kprintf (fun s -> raise (Adder.Core.AdderException s)) fmt
