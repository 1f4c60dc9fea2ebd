/// Errors quote user text as the README's Limits table says: at most 20 characters, then …, control
/// characters escaped, so no input can flood the terminal or drive it.
module Adder.Tests.QuotingTests

open System
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests

[<Fact>]
let ``Echo keeps 20 characters and escapes control characters`` () =
    Assert.Equal("12345678901234567890", Limits.Echo "12345678901234567890")
    Assert.Equal("12345678901234567890…", Limits.Echo "123456789012345678901")
    Assert.Equal("a\\x1b[31mb\\x0d\\x00c\\x7f", Limits.Echo "a\u001b[31mb\r\u0000c\u007f")
    // a character outside the BMP is not cut in half
    let emoji = String('x', 19) + "\U0001F600" + "tail"
    Assert.Equal(String('x', 19) + "…", Limits.Echo emoji)

/// No raw control character on stderr, a quoted part of at most 20 characters of the given text.
let private quotedAtMost20 (fragment: string) (r: Run) =
    assertOneLineError fragment r
    Assert.False(r.Err |> Seq.exists (fun c -> Char.IsControl c && c <> '\n'), sprintf "raw control character in: %s" r.Err)
    Assert.DoesNotContain(String('q', 21), r.Err)

[<Fact>]
let ``a pairs file line holding an ESC byte is quoted escaped`` () =
    let r = adder (Some "1 2\n3 4\u001b[2J\u001b]0;owned\u0007\n") [ "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ]
    Assert.Equal(1, r.Code)
    quotedAtMost20 "line 2: operand '4\\x1b[2J\\x1b]0;owned\\x07' is not a non-negative integer" r
    let r = adder (Some("1 2 \u001b[31m" + String('q', 50) + "\n")) [ "predict"; "-c"; referenceCheckpoint (); "--file"; "-" ]
    quotedAtMost20 "line 1: expected two operands ('a b' or 'a+b'), got '1 2 \\x1b[31mqqqqqqqqqqq…'" r

[<Fact>]
let ``options' values, Argu's errors and paths quote at most 20 characters, escaped`` () =
    let long = "\u001b[31m" + String('q', 100)
    let ckpt = referenceCheckpoint ()
    let out = IO.Path.Combine(tempDir (), "t.safetensors")
    quotedAtMost20 "bad --ranks '\\x1b[31mqqqqqqqqqqqqqqq…'" (run [ "truncate"; "-c"; ckpt; "--ranks"; long; "-o"; out ])
    quotedAtMost20 "bad --shard" (run [ "train"; "--seeds"; "1-4"; "--shard"; long ])
    quotedAtMost20 "unknown generator '\\x1b[31mqqq" (run [ "verify"; "-c"; ckpt; "--generators"; long ])
    quotedAtMost20 "bad curriculum phase" (run [ "train"; "--curriculum"; long; "--steps"; "1" ])
    let r = run [ "eval"; "-c"; ckpt; "--suite"; long ]
    Assert.Equal(2, r.Code)
    quotedAtMost20 "but was '\\x1b[31mqqqqqqqqqqqqqqq…'" r
    quotedAtMost20 "unrecognized argument: '--qqqqqqqqqqqqqqqqqq…'" (run [ "eval"; "--" + String('q', 100) ])
    quotedAtMost20 "not found" (run [ "eval"; "-c"; "/no/such/\u001b[31mfile.pt" ])
