/// `adder verify --submission`: any AdderBoard submission's add() checked through Python by the same generators,
/// report and shrinking as a checkpoint.
module Adder.Tests.VerifySubmissionTests

open System.IO
open Xunit
open Adder.Tests.Shared
open Adder.Tests.CliTests
open Adder.Tests.ExportTests

/// A submission that is wrong by one from 5·10^9 on and raises on 1 + 1, and prints while it loads.
let private buggy =
    """print("loading the model")
def build_model():
    return object(), {"name": "buggy", "author": "tests", "params": 0, "architecture": "none", "tricks": []}
def add(model, a, b):
    if a == 1 and b == 1:
        raise ValueError("one")
    return a + b + 1 if a >= 5_000_000_000 else a + b
"""

let private write (dir: string) (name: string) (text: string) =
    let path = Path.Combine(dir, name)
    File.WriteAllText(path, text)
    path

[<Fact>]
let ``verify --submission finds a submission's failures and exceptions and shrinks them`` () =
    let dir = tempDir ()
    let file = write dir "buggy.py" buggy
    let json = Path.Combine(dir, "report.json")
    let r = run [ "verify"; "--submission"; file; "--python"; python; "--count"; "600"; "--generators"; "uniform,edge"; "--threads"; "2"; "--show-failures"; "6"; "--json"; json ]
    Assert.Equal(0, r.Code)
    Assert.Contains("'buggy' by tests", r.Out)
    Assert.DoesNotContain("loading the model", r.Out)   // the submission's prints stay off the protocol
    // about half of the uniform pairs have a >= 5·10^9; every one fails and shrinks to the simplest such pair
    let row = r.Out.Split('\n') |> Array.find (fun l -> l.StartsWith "uniform ")
    Assert.InRange(int (row.Split(' ', System.StringSplitOptions.RemoveEmptyEntries).[2]), 240, 360)
    Assert.Contains("5000000000 + 0 = 5000000000, model says 5000000001", r.Out)
    // an exception is a failure, shown with what was raised
    Assert.Contains("1 + 1 = 2, model says !raised ValueError: one", r.Out)
    let report = System.Text.Json.JsonDocument.Parse(File.ReadAllText json).RootElement
    let edge = report.GetProperty("generators").[1]
    let expectedEdge =
        Adder.Pipeline.Verify.edgeCases |> Array.filter (fun (a, b) -> a >= 5_000_000_000L || (a = 1L && b = 1L)) |> Array.length
    Assert.Equal(expectedEdge, edge.GetProperty("failures").GetInt32())
    // one worker gives the same report as two
    let one = run [ "verify"; "--submission"; file; "--python"; python; "--count"; "600"; "--generators"; "uniform,edge"; "--threads"; "1" ]
    Assert.Equal(row, one.Out.Split('\n') |> Array.find (fun l -> l.StartsWith "uniform "))

[<Fact>]
let ``verify --submission refuses a file that does not load in one line`` () =
    let dir = tempDir ()
    let syntax = write dir "syntax.py" "def build_model(:\n"
    assertOneLineError "could not be loaded: SyntaxError" (run [ "verify"; "--submission"; syntax; "--python"; python ])
    let noAdd = write dir "noadd.py" "def build_model():\n    return 1, {}\n"
    assertOneLineError "defines no function add()" (run [ "verify"; "--submission"; noAdd; "--python"; python ])
    let dies = write dir "dies.py" "import os\ndef build_model():\n    return 1, {}\ndef add(m, a, b):\n    os._exit(9)\n"
    assertOneLineError "Python process stopped (exit 9)" (run [ "verify"; "--submission"; dies; "--python"; python; "--count"; "5" ])
    assertOneLineError "no submission file" (run [ "verify"; "--submission"; Path.Combine(dir, "none.py"); "--python"; python ])
    assertOneLineError "cannot start Python" (run [ "verify"; "--submission"; syntax; "--python"; Path.Combine(dir, "no-python") ])
    let both = run [ "verify"; "--submission"; syntax; "-c"; "x.safetensors" ]
    Assert.Equal(2, both.Code)
    assertOneLineError "not both" both

[<SkippableFact>]
let ``verify --submission on MicroAdder's own 67p submission: no failure on the edge cases and sampled pairs`` () =
    requireTorch ()
    let r = run [ "verify"; "--submission"; sharedFile "reference/microadder/submission_67p.py"; "--python"; python; "--count"; "100" ]
    Assert.Equal(0, r.Code)
    Assert.Contains("67 unique parameters", r.Out)
    for name in [ "uniform"; "mixed-length"; "carry-chain"; "nine-pairs"; "edge" ] do
        let row = r.Out.Split('\n') |> Array.find (fun l -> l.StartsWith(name + " "))
        Assert.Equal("0", row.Split(' ', System.StringSplitOptions.RemoveEmptyEntries).[2])
