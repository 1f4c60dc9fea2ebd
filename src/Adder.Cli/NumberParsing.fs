/// Strict parsing of the command line's real-valued options. Argu reads a float with
/// Double.Parse, which takes ',' as a thousands separator ("--lr 0,002" would train at lr 2) and accepts NaN
/// and Infinity; every such value is checked here first, against this stricter rule.
module Adder.Cli.NumberParsing

open System
open System.Globalization
open Microsoft.FSharp.Reflection
open Adder.Core
open Adder.Cli.CommandLine

/// Invariant culture, an optional sign, digits, a decimal point and an exponent; no group separators.
let tryParseFloat (text: string) =
    let styles = NumberStyles.AllowLeadingSign ||| NumberStyles.AllowDecimalPoint ||| NumberStyles.AllowExponent
    match Double.TryParse(text, styles, CultureInfo.InvariantCulture) with
    | true, v -> Some v
    | _ -> None

/// Argu's names ("--weight-decay") of every float option of the subcommands of `commands`.
let floatOptions (commands: Type) =
    [ for case in FSharpType.GetUnionCases commands do
        for field in case.GetFields() do
            if field.PropertyType.IsGenericType then
                let sub = field.PropertyType.GetGenericArguments().[0]
                if FSharpType.IsUnion sub then
                    for option in FSharpType.GetUnionCases sub do
                        if option.GetFields() |> Array.map (fun f -> f.PropertyType) = [| typeof<float> |] then
                            "--" + option.Name.ToLowerInvariant().Replace('_', '-') ]
    |> List.distinct

/// Checks the value of every float option in argv (as "--lr X" or "--lr=X").
let checkFloats (options: string list) (argv: string[]) =
    let check (name: string) (value: string) =
        match tryParseFloat value with
        | Some v when Double.IsFinite v -> ()
        | Some _ -> raise (AdderException(sprintf "%s must be a finite number, got '%s'" name (Limits.Echo value)))
        | None ->
            raise (CommandLineError(sprintf "%s: '%s' is not a number (write it with a decimal point and no group separators, e.g. 0.002)" name (Limits.Echo value)))
    for i in 0 .. argv.Length - 1 do
        for name in options do
            if argv.[i] = name && i + 1 < argv.Length then check name argv.[i + 1]
            elif argv.[i].StartsWith(name + "=") then check name (argv.[i].Substring(name.Length + 1))
