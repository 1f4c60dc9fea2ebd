/// export --format adderboard embeds free text (the name, the author, the tricks) as Python string literals:
/// whatever the text, the file parses and says exactly what was given, and no placeholder is substituted twice.
module Adder.Tests.AdderBoardExportTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Tests.Shared

let private python =
    [ "/usr/bin/python3"; "/usr/local/bin/python3" ] @ [ for d in (Environment.GetEnvironmentVariable "PATH" |> string).Split(':') -> Path.Combine(d, "python3") ]
    |> List.tryFind File.Exists

/// The file's docstring (first line) and METADATA as Python reads them, by parsing it (torch is not imported).
let private readBack (pythonExe: string) (path: string) =
    let script =
        "import ast, json, sys\n" +
        "tree = ast.parse(open(sys.argv[1], encoding='utf-8').read())\n" +
        "meta = [json.loads(ast.literal_eval(n.value.args[0])) for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'METADATA'][0]\n" +
        "weights = [n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'WEIGHTS']\n" +
        "print(json.dumps({'doc': ast.get_docstring(tree).split(', exported by')[0], 'meta': meta, 'weights': len(weights)}))"
    let info = ProcessStartInfo(pythonExe, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for a in [ "-c"; script; path ] do info.ArgumentList.Add a
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    p.WaitForExit()
    Assert.True((p.ExitCode = 0), sprintf "python could not read %s:\n%s" path err.Result)
    JsonDocument.Parse(out.Result).RootElement.Clone()

let private hostile =
    [ "__WEIGHTS__"; "by __NAME__"; "__METADATA__ and __CONFIG__"; "it's \"quoted\" '''\"\"\" \\ \\n"; "line\nbreak\r\u0000\u001b[31m"
      "Zoë ✓ 😀 \u2028 end\\" ]

[<Fact>]
let ``names, authors and tricks with quotes, placeholders, control and non-ASCII characters come out as given`` () =
    let model = Model.Initialised(ModelConfig.Preset311, 1)
    let dir = tempDir ()
    for text in hostile do
        let path = Path.Combine(dir, "submission.py")
        AdderBoardExport.write model { Name = text; Author = "by " + text; Architecture = "x"; Tricks = [ text ] } path
        let source = File.ReadAllText path
        // the weights are substituted once, where the template has them, and nowhere else
        Assert.Equal(1, source.Split("WEIGHTS = (").Length - 1)
        Assert.True(source |> Seq.forall (fun c -> c = '\n' || (c >= ' ' && c <= '~')), "the file is printable ASCII")
        match python with
        | Some exe ->
            let back = readBack exe path
            Assert.Equal(text, back.GetProperty("doc").GetString().Substring("AdderBoard submission: ".Length))
            let meta = back.GetProperty "meta"
            Assert.Equal(text, meta.GetProperty("name").GetString())
            Assert.Equal("by " + text, meta.GetProperty("author").GetString())
            Assert.Equal(text, meta.GetProperty("tricks").[0].GetString())
            Assert.Equal(1, back.GetProperty("weights").GetInt32())
        | None ->
            // no Python here: the metadata is one '...' literal on its line, every quote inside it escaped
            let start = "METADATA = json.loads('"
            let line = source.Split('\n') |> Array.find (fun l -> l.StartsWith start)
            Assert.EndsWith("')", line)
            Assert.DoesNotMatch(@"(^|[^\\])(\\\\)*'", line.Substring(start.Length, line.Length - start.Length - 2))

[<Fact>]
let ``pythonEscape writes what a Python literal needs`` () =
    Assert.Equal(@"it\'s \""q\"" \\ \n\x0d\x00\x1b \u2028 \U0001f600 \xeb", Adder.Pipeline.PythonSource.escape "it's \"q\" \\ \n\r\u0000\u001b \u2028 😀 ë")
