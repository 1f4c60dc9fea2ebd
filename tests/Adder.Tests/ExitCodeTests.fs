/// Exit codes as the README promises them: 2 for a bad command line, 1 for bad input, one line on stderr either way.
module Adder.Tests.ExitCodeTests

open System.IO
open Xunit
open Adder.Tests.Shared
open Adder.Tests.CliTests

let private exits (code: int) (fragment: string) (args: string list) =
    let r = run args
    assertOneLineError fragment r
    Assert.True((r.Code = code), sprintf "adder %s: exit %d, expected %d (%s)" (String.concat " " args) r.Code code (r.Err.Trim()))

[<Fact>]
let ``a bad command line exits 2: Argu's errors, options that do not go together, a wrong number of operands`` () =
    let ckpt = referenceCheckpoint ()
    // what Argu refuses
    exits 2 "unrecognized argument: '--bogus'" [ "eval"; "--bogus" ]
    exits 2 "must be followed by <reference|random|adderboard>" [ "eval"; "--suite"; "nope" ]
    exits 2 "missing argument '--output'" [ "export"; "-c"; ckpt; "--format"; "pt" ]
    exits 2 "has been specified more than once" [ "train"; "--steps"; "1"; "--steps"; "2" ]
    exits 2 "--lr: '0,5' is not a number" [ "train"; "--lr"; "0,5" ]
    // what the commands refuse about the command line as a whole
    exits 2 "give one command" [ "-V"; "eval" ]
    exits 2 "expected exactly two operands, got 3" [ "predict"; "-c"; ckpt; "1"; "2"; "3" ]
    exits 2 "expected exactly two operands, got 1" [ "predict"; "-c"; ckpt; "1" ]
    exits 2 "nothing to add" [ "predict"; "-c"; ckpt ]
    exits 2 "not both" [ "predict"; "-c"; ckpt; "--file"; "-"; "1"; "2" ]
    exits 2 "--count and --seed apply to --suite random only" [ "eval"; "-c"; ckpt; "--count"; "5" ]
    exits 2 "--models applies to bench train only" [ "bench"; "eval"; "--models"; "2" ]
    exits 2 "--seed does not go with --seeds" [ "train"; "--seeds"; "1-3"; "--seed"; "4" ]
    exits 2 "--probe applies to a sweep" [ "train"; "--probe"; "10" ]
    exits 2 "--finish goes with --shard" [ "train"; "--seeds"; "1-4"; "--finish" ]
    exits 2 "--merge combines all shards" [ "train"; "--seeds"; "1-4"; "--merge"; "2"; "--finish" ]
    exits 2 "--rounds belongs to --targeted" [ "finetune"; "-c"; ckpt; "--lr"; "0.001"; "--steps"; "1"; "--seed"; "0"; "--rounds"; "2" ]
    exits 2 "applies to --format adderboard only" [ "export"; "-c"; ckpt; "--format"; "pt"; "-o"; Path.Combine(tempDir (), "m.pt"); "--name"; "x" ]

[<Fact>]
let ``bad input exits 1: a missing file, a value out of range, a bad operand`` () =
    let ckpt = referenceCheckpoint ()
    exits 1 "not found" [ "eval"; "-c"; "/no/such/file.pt" ]
    exits 1 "--threads must be at least 1" [ "predict"; "-c"; ckpt; "--threads"; "0"; "1"; "2" ]
    exits 1 "more than 10 digits" [ "predict"; "-c"; ckpt; "12345678901"; "3" ]
    exits 1 "must be a finite number" [ "train"; "--lr"; "NaN"; "--steps"; "1" ]
