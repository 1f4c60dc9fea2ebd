/// Standard output whose failures have a type of their own: full (/dev/full), closed, or a pipe whose reader
/// has gone. main tells them from other I/O errors by that type.
module Adder.Cli.StandardOutput

open System
open System.IO

exception StandardOutputFailed of string

/// A writer over another that raises StandardOutputFailed where the other fails.
type private Guarded(inner: TextWriter) =
    inherit TextWriter()
    let guard (write: unit -> unit) =
        try write ()
        with :? IOException | :? UnauthorizedAccessException as e -> raise (StandardOutputFailed e.Message)
    override _.Encoding = inner.Encoding
    override _.Write(c: char) = guard (fun () -> inner.Write c)
    override _.Write(s: string) = guard (fun () -> inner.Write s)
    override _.Write(buffer: char[], index: int, count: int) = guard (fun () -> inner.Write(buffer, index, count))
    override _.WriteLine(s: string) = guard (fun () -> inner.WriteLine s)
    override _.Flush() = guard (fun () -> inner.Flush())

/// Console.Out (what printfn writes to) guarded from here on.
let guardConsole () = Console.SetOut(new Guarded(Console.Out))
