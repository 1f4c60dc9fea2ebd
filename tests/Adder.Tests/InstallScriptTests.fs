/// The install scripts' first run, on a machine without their tool: scripts/install-slurm.sh run against a
/// stand-in apt-get that installs stand-in Slurm commands which, like Debian's Slurm before any slurm.conf
/// exists, fail with "Could not establish a configuration source". The script must install, then judge
/// success without configuration; run again, it must find the tool and do nothing.
module Adder.Tests.InstallScriptTests

open System.Diagnostics
open System.IO
open Xunit
open Adder.Tests.Shared

let private executable (path: string) (text: string) =
    File.WriteAllText(path, text)
    File.SetUnixFileMode(path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute)

/// A folder that is the whole PATH: the few real tools the script uses, a root `id`, and the stand-ins.
let private standIns (installs: bool) =
    let bin = Path.Combine(tempDir (), "bin")
    Directory.CreateDirectory bin |> ignore
    for tool in [ "bash"; "paste"; "sed"; "cat"; "chmod" ] do
        let real = [ "/usr/bin"; "/bin" ] |> List.map (fun d -> Path.Combine(d, tool)) |> List.find File.Exists
        File.CreateSymbolicLink(Path.Combine(bin, tool), real) |> ignore
    executable (Path.Combine(bin, "id")) "#!/bin/bash\necho 0\n"
    executable (Path.Combine(bin, "dpkg-query")) "#!/bin/bash\nfor p in \"${@: -4}\"; do echo \"$p 22.05.8-standin\"; done\n"
    let unconfigured = "#!/bin/bash\necho 'sbatch: error: Could not establish a configuration source' >&2\nexit 1\n"
    let install =
        if installs then
            [ for c in [ "slurmctld"; "slurmd"; "sbatch"; "munged" ] ->
                sprintf "cat > %s/%s <<'EOF'\n%sEOF\nchmod +x %s/%s\n" bin c unconfigured bin c ]
            |> String.concat ""
        else ""
    executable (Path.Combine(bin, "apt-get")) (sprintf "#!/bin/bash\necho \"apt-get $*\" >> %s/apt.log\n%sexit 0\n" bin install)
    bin

let private installSlurm (bin: string) =
    let info = ProcessStartInfo(Path.Combine(bin, "bash"), RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    info.ArgumentList.Add(Path.Combine(repoRoot, "scripts", "install-slurm.sh"))
    info.Environment.Clear()
    info.Environment.["PATH"] <- bin
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out.Result, err

[<Fact>]
let ``install-slurm.sh on a machine without Slurm installs it and checks it without a slurm.conf; again, it does nothing`` () =
    let bin = standIns true
    let code, out, err = installSlurm bin
    Assert.True((code = 0), sprintf "exit %d\n%s%s" code out err)
    Assert.Contains("install-slurm: installing slurmctld slurmd slurm-client munge", out)
    Assert.Contains("install-slurm: installed (slurmctld 22.05.8-standin", out)
    Assert.Contains("install -y", File.ReadAllText(Path.Combine(bin, "apt.log")))
    let code, out, err = installSlurm bin
    Assert.True((code = 0), sprintf "exit %d\n%s%s" code out err)
    Assert.Contains("install-slurm: already installed", out)
    Assert.Equal(1, File.ReadAllLines(Path.Combine(bin, "apt.log")).Length)

[<Fact>]
let ``install-slurm.sh fails in one line when apt-get leaves a command missing`` () =
    let code, out, err = installSlurm (standIns false)
    Assert.Equal(1, code)
    Assert.Contains("apt-get finished but a Slurm or munge command is still missing", err)
    Assert.DoesNotContain("installed (", out)
