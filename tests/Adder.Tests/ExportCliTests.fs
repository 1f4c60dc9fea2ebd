/// export, verify and eval --suite adderboard end to end; their bad inputs end in one line and no file.
module Adder.Tests.ExportCliTests

open System.IO
open Xunit
open Adder.Tests.Shared
open Adder.Tests.CliTests

let private shipped311 () = Path.Combine(repoRoot, "models", "adder-311p-s36.safetensors")

[<Fact>]
let ``eval --suite adderboard: the published checkpoint scores 10,010 / 10,010`` () =
    let r = run [ "eval"; "-c"; referenceCheckpoint (); "--suite"; "adderboard" ]
    Assert.Equal(0, r.Code)
    Assert.Contains("edge cases", r.Out)
    Assert.Contains("random(2025)", r.Out)
    Assert.Contains("10010 / 10010 correct", r.Out)
    assertOneLineError "--count and --seed apply to --suite random only" (run [ "eval"; "-c"; referenceCheckpoint (); "--suite"; "adderboard"; "--count"; "5" ])

[<Fact>]
let ``verify finds the shipped 311p's mixed-length failures, shrinks them, and gates on --max-error-rate`` () =
    let dir = tempDir ()
    let json = Path.Combine(dir, "verify.json")
    let args = [ "verify"; "-c"; shipped311 (); "--count"; "20000"; "--seed"; "1"; "--generators"; "mixed-length,edge"; "--show-failures"; "2"; "--json"; json ]
    let r = run args
    Assert.Equal(0, r.Code)
    let row = r.Out.Split('\n') |> Array.find (fun l -> l.StartsWith "mixed-length ")
    let failures = int (row.Split(' ', System.StringSplitOptions.RemoveEmptyEntries).[2])
    Assert.True(failures > 0, row)
    Assert.Contains("mixed-length: ", r.Out)
    Assert.Contains("shrunk counterexamples", r.Out)
    // each shrunk counterexample is a real failure: the printed sum is right and the model's answer differs
    let examples = r.Out.Split('\n') |> Array.filter (fun l -> l.Contains ", model says ")
    Assert.InRange(examples.Length, 1, 2)   // two failures shown, printed once per distinct shrunk pair
    for line in examples do
        let parts = line.Trim().Split(' ')
        let a, b, sum, said = int64 parts.[0], int64 parts.[2], int64 (parts.[4].TrimEnd(',')), parts.[7]
        Assert.Equal(a + b, sum)
        Assert.NotEqual<string>(string sum, said)
        Assert.Equal<string>(said, (run [ "predict"; "-c"; shipped311 (); string a; string b ]).Out.Trim())
    let report = System.Text.Json.JsonDocument.Parse(File.ReadAllText json).RootElement
    Assert.Equal(failures, report.GetProperty("generators").[0].GetProperty("failures").GetInt32())
    // the same seed gives the same run
    Assert.Equal(row, (run args).Out.Split('\n') |> Array.find (fun l -> l.StartsWith "mixed-length "))
    // a gate: exit 1 with one line when a rate exceeds the limit
    let gated = run [ "verify"; "-c"; shipped311 (); "--count"; "20000"; "--seed"; "1"; "--generators"; "mixed-length"; "--max-error-rate"; "0.0001" ]
    Assert.Equal(1, gated.Code)
    assertOneLineError "mixed-length error rate" gated

[<Fact>]
let ``export and verify refuse bad input with one line and write nothing`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "m.pt")
    let r = run [ "export"; "-c"; shipped311 (); "--format"; "onnx"; "-o"; out ]
    Assert.Equal(2, r.Code)
    assertOneLineError "--format" r
    assertOneLineError "output folder does not exist" (run [ "export"; "-c"; shipped311 (); "--format"; "pt"; "-o"; Path.Combine(dir, "no", "m.pt") ])
    assertOneLineError "is a folder" (run [ "export"; "-c"; shipped311 (); "--format"; "adderboard"; "-o"; dir ])
    assertOneLineError "checkpoint not found" (run [ "export"; "-c"; Path.Combine(dir, "none.pt"); "--format"; "pt"; "-o"; out ])
    assertOneLineError "applies to --format adderboard only" (run [ "export"; "-c"; shipped311 (); "--format"; "pt"; "-o"; out; "--author"; "x" ])
    let copy = Path.Combine(dir, "copy.safetensors")
    File.Copy(shipped311 (), copy)
    assertOneLineError "is the checkpoint being read" (run [ "export"; "-c"; copy; "--format"; "pt"; "-o"; copy ])
    Assert.Equal<byte[]>(File.ReadAllBytes(shipped311 ()), File.ReadAllBytes copy)
    Assert.Equal<string[]>([| copy |], Directory.GetFiles dir)    // no output, no temporary file left behind
    assertOneLineError "unknown generator 'carry'" (run [ "verify"; "-c"; shipped311 (); "--generators"; "carry" ])
    assertOneLineError "--count must be at least 1" (run [ "verify"; "-c"; shipped311 (); "--count"; "0" ])
    assertOneLineError "--max-error-rate must be a fraction" (run [ "verify"; "-c"; shipped311 (); "--max-error-rate"; "2" ])
    assertOneLineError "output folder does not exist" (run [ "verify"; "-c"; shipped311 (); "--json"; Path.Combine(dir, "no", "r.json") ])
