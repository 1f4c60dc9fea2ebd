/// `adder` as a .NET tool: scripts/install-tool.sh packs it into a local folder and installs it globally (here into
/// a private DOTNET_CLI_HOME), and the installed command runs from any folder, with the default model beside it.
module Adder.Tests.ToolInstallTests

open System.Diagnostics
open System.IO
open Xunit
open Adder.Tests.Shared

let private runIn (dir: string) (env: (string * string) list) (file: string) (args: string list) =
    let info = ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir)
    for a in args do info.ArgumentList.Add a
    for k, v in env do info.Environment.[k] <- v
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit 300_000) then
        p.Kill true
        Assert.Fail(sprintf "%s did not finish within 5 minutes" file)
    p.ExitCode, out.Result + err.Result

[<Fact>]
let ``install-tool.sh installs adder as a global tool that runs from another folder, and updates it`` () =
    let root = tempDir ()
    let env = [ "DOTNET_CLI_HOME", Path.Combine(root, "home"); "ADDER_TOOL_FEED", Path.Combine(root, "feed"); "DOTNET_NOLOGO", "1" ]
    let script = Path.Combine(repoRoot, "scripts", "install-tool.sh")
    let code, text = runIn repoRoot env "bash" [ script ]
    Assert.True((code = 0), text)
    Assert.Contains("successfully installed", text)
    let elsewhere = Path.Combine(root, "elsewhere")
    Directory.CreateDirectory elsewhere |> ignore
    let adder = Path.Combine(root, "home", ".dotnet", "tools", "adder")
    let code, help = runIn elsewhere [] adder [ "--help" ]
    Assert.True((code = 0), help)
    Assert.Contains("USAGE: adder", help)
    // the shipped default model came with the tool
    let code, sum = runIn elsewhere [] adder [ "predict"; "1234567890"; "9876543210" ]
    Assert.True((code = 0), sum)
    Assert.Equal("11111111100", sum.Trim())
    // the same command again updates the installed tool
    let code, text = runIn repoRoot env "bash" [ script ]
    Assert.True((code = 0), text)
    Assert.Contains("successfully updated", text)
    Assert.Single(Directory.GetFiles(Path.Combine(root, "feed"), "*.nupkg")) |> ignore
