/// The closed choices of the command line (Argu enums): every value --help shows is accepted.
module Adder.Tests.ClosedChoiceTests

open System
open System.IO
open Microsoft.FSharp.Reflection
open Xunit
open Argu
open Adder.Tests.Shared
open Adder.Tests.CliTests

/// Every label of every closed choice in Adder.Cli.Arguments (the union types whose cases carry no fields).
let private labels () =
    [ for t in typeof<Adder.Cli.Arguments.AdderArgs>.Assembly.GetTypes() do
        if t.DeclaringType = typeof<Adder.Cli.Arguments.AdderArgs>.DeclaringType && FSharpType.IsUnion t
           && not (typeof<IArgParserTemplate>.IsAssignableFrom t) then
            for case in FSharpType.GetUnionCases t do
                if case.GetFields().Length = 0 then
                    let custom = case.GetCustomAttributes typeof<CustomCommandLineAttribute> |> Array.tryHead
                    match custom with
                    | Some a -> yield t.Name, (a :?> CustomCommandLineAttribute).Name
                    | None -> yield t.Name, case.Name.ToLowerInvariant().Replace('_', '-') ]

[<Fact>]
let ``every closed choice's label is one Argu can match`` () =
    let all = labels ()
    Assert.Contains(("TieQkv", "sharea-tiekv"), all)
    // Argu compares a label with the given text lowercased and '_' made '-'
    for typeName, label in all do
        Assert.True((label = label.ToLowerInvariant().Replace('_', '-')), sprintf "%s: label '%s' can never be matched" typeName label)

[<Fact>]
let ``--tie-qkv takes shareA_tieKV as --help spells it, in any case, and none`` () =
    let help = run [ "train"; "--help" ]
    Assert.Equal(0, help.Code)
    Assert.Contains("--tie-qkv <sharea-tiekv|none>", help.Out)
    let root = tempDir ()
    for value, expected in [ "shareA_tieKV", "shareA_tieKV"; "sharea-tiekv", "shareA_tieKV"; "SHAREA_TIEKV", "shareA_tieKV"; "none", "none" ] do
        let dir = Path.Combine(root, Guid.NewGuid().ToString("N"))
        let r = run [ "train"; "--tie-qkv"; value; "--steps"; "2"; "--batch"; "8"; "--eval-interval"; "1"; "--warmup"; "0"; "--quiet"; "--out"; dir ]
        Assert.True((r.Code = 0), sprintf "--tie-qkv %s: %s%s" value r.Out r.Err)
        Assert.Contains(sprintf "\"tie_qkv\":\"%s\"" expected, File.ReadAllText(Path.Combine(dir, "config.json")).Replace(" ", ""))
