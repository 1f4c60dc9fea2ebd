/// Real-valued options are read with the invariant culture: a decimal comma or a group separator is refused.
module Adder.Tests.NumberParsingTests

open System.IO
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.TestProcesses

[<Fact>]
let ``a decimal comma or a group separator in a real-valued option is refused`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "r")
    for args in [ [ "--lr"; "0,002" ]; [ "--lr"; "1,5" ]; [ "--lr=0,002" ]; [ "--floor"; "0,1" ]; [ "--lr"; "1,000.5" ]; [ "--eps"; "1e-8x" ] ] do
        let r = run ([ "train"; "--steps"; "1"; "--batch"; "16"; "--out"; out ] @ args)
        r |> assertOneLineError "is not a number"
        Assert.Equal(2, r.Code)
        Assert.False(Directory.Exists out, "a run started with a malformed number")
    run [ "finetune"; "-c"; referenceCheckpoint (); "--lr"; "0,001"; "--steps"; "1"; "--seed"; "0"; "--out"; out ] |> assertOneLineError "--lr: '0,001'"
    // the accepted forms still work and mean what they say
    let r = run [ "train"; "--steps"; "1"; "--batch"; "16"; "--lr"; "2e-3"; "--floor"; ".5"; "--out"; out; "--quiet" ]
    Assert.True((r.Code = 0), r.Err)
    Assert.Contains("lr 0.002,", r.Out)
