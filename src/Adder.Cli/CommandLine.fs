/// Errors in the command line itself, as against bad input: the README promises exit 2 for the first
/// (Argu's own errors, options that do not go together, a wrong number of operands) and 1 for the second
/// (Fail.fail: a missing file, a value out of range).
module Adder.Cli.CommandLine

/// A malformed command line: main reports it like Argu's own errors, exit 2.
exception CommandLineError of string

/// Stops on a command line that does not make sense as a whole, with exit 2.
let misuse fmt = Printf.kprintf (fun s -> raise (CommandLineError s)) fmt
