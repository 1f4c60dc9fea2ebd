/// What the exports write into Python: embedded templates, string literals that no text can break out of, and
/// the weights as base64 lines.
module Adder.Pipeline.PythonSource

open System
open System.IO
open System.Runtime.InteropServices
open System.Text

/// An embedded resource's text (the submission templates).
let embedded (name: string) =
    use stream = Reflection.Assembly.GetExecutingAssembly().GetManifestResourceStream name
    use reader = new StreamReader(stream)
    reader.ReadToEnd()

/// Text as the inside of a Python string literal, quoted with ' or with """: backslashes and both quotes
/// escaped, and every character outside printable ASCII written as \xNN, \uNNNN or \UNNNNNNNN, so that no
/// text (a newline, a NUL, a line separator, a lone surrogate) can end the literal or the line.
let escape (text: string) =
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
let literal (text: string) = "'" + escape text + "'"

/// The float32 weights as base64 of their little-endian bytes, as quoted lines of 76 characters.
let weights (values: float32[]) =
    if not BitConverter.IsLittleEndian then raise (PlatformNotSupportedException "big-endian host")
    let b64 = Convert.ToBase64String(MemoryMarshal.AsBytes(ReadOnlySpan values))
    String.Join("\n", [ for i in 0 .. 76 .. b64.Length - 1 -> sprintf "    \"%s\"" (b64.Substring(i, min 76 (b64.Length - i))) ])
