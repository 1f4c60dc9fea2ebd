/// Sharded sweeps: the split of the seeds, the shard files, and a sharded sweep against the unsharded one
/// (here in one process after another, and through a real Slurm job array by scripts/test-slurm.sh).
module Adder.Tests.ShardTests

open System
open System.Diagnostics
open System.IO
open System.Security.Cryptography
open Xunit
open FsCheck
open FsCheck.FSharp
open FsCheck.Xunit
open Adder.Core
open Adder.Pipeline
open Adder.Pipeline.Sweep
open Adder.Tests.Shared
open Adder.Tests.CliTests

/// A seed list as parseSeeds gives it (distinct) and a shard count.
let private splits = Arb.fromGen (gen {
    let! seeds = Gen.listOf (Gen.choose (0, 500)) |> Gen.map List.distinct
    let! count = Gen.choose (1, 12)
    return seeds, count })

[<Property>]
let ``the shards' seeds are disjoint, their union is the list, and their sizes differ by at most one`` () =
    Prop.forAll splits (fun (seeds, count) ->
        let parts = [ for i in 0 .. count - 1 -> Shards.assigned { Index = i; Count = count } seeds ]
        let all = List.concat parts
        List.sort all = List.sort seeds
        && (all |> List.distinct |> List.length) = all.Length
        && (let sizes = parts |> List.map List.length in List.max sizes - List.min sizes <= 1)
        // each shard keeps the list's order, and position k goes to shard k mod n
        && parts |> List.forall (fun p -> p = (seeds |> List.filter (fun s -> List.contains s p)))
        && seeds |> List.indexed |> List.forall (fun (k, s) -> List.contains s parts.[k % count]))

[<Fact>]
let ``shard 1 of 4 of seeds 1-10 is 2, 6, 10`` () =
    Assert.Equal<int list>([ 2; 6; 10 ], Shards.assigned (Shards.parse "1/4") (Sweep.parseSeeds "1-10"))

[<Theory>]
[<InlineData("4/4")>]
[<InlineData("-1/4")>]
[<InlineData("0/0")>]
[<InlineData("1")>]
[<InlineData("a/b")>]
[<InlineData("1/2/3")>]
let ``a bad shard is refused`` (text: string) =
    let e = Assert.Throws<AdderException>(fun () -> Shards.parse text |> ignore)
    Assert.Contains("--shard", e.Message)

[<Property(MaxTest = 50)>]
let ``shard files keep probes and summary rows bit for bit`` (rows: (int * NormalFloat * NormalFloat * NormalFloat) list) =
    let dir = tempDir ()
    let summary =
        [ for seed, NormalFloat a, NormalFloat b, NormalFloat c in rows |> List.distinctBy (fun (s, _, _, _) -> s) ->
            ({ Seed = abs seed; ProbeStep = 30; ProbeLoss = a; ProbeValExact = b; LastStep = 60; BestValExact = c; BestStep = 60 } : SeedSummary) ]
        |> List.distinctBy (fun r -> r.Seed)
    let path = Path.Combine(dir, "s.csv")
    Sweep.writeSummary path summary
    let probes = [ for r in summary -> ({ Seed = r.Seed; Step = r.ProbeStep; Loss = r.ProbeLoss; ValExact = r.ProbeValExact } : Probe) ]
    let probePath = Path.Combine(dir, "p.csv")
    Shards.writeProbes probePath probes
    let ok = Shards.readSummary path = summary && Shards.readProbes probePath = probes
    Directory.Delete(dir, true)
    ok

[<Fact>]
let ``merge refuses a missing shard, a seed of another shard and a bad file`` () =
    let dir = tempDir ()
    let seeds = [ 1 .. 4 ]
    let row seed : SeedSummary = { Seed = seed; ProbeStep = 30; ProbeLoss = 1.0; ProbeValExact = 0.0; LastStep = 30; BestValExact = 0.0; BestStep = 30 }
    let shard i = Shards.summaryFile dir { Index = i; Count = 2 }
    Sweep.writeSummary (shard 0) [ row 1; row 3 ]
    let e = Assert.Throws<AdderException>(fun () -> Shards.merge dir seeds 2 |> ignore)
    Assert.Contains("sweep-shard-1-of-2.csv not found", e.Message)
    Sweep.writeSummary (shard 1) [ row 2; row 3 ]
    let e = Assert.Throws<AdderException>(fun () -> Shards.merge dir seeds 2 |> ignore)
    Assert.Contains("holds seed 3, which belongs to shard 0/2", e.Message)
    File.WriteAllText(shard 1, "seed,probe_step,probe_loss,probe_val_exact,last_step,best_val_exact,best_step\n2,x\n")
    let e = Assert.Throws<AdderException>(fun () -> Shards.merge dir seeds 2 |> ignore)
    Assert.Contains("bad row", e.Message)
    Sweep.writeSummary (shard 1) [ row 4; row 2 ]
    let merged = Shards.merge dir seeds 2
    Assert.Equal<int list>([ 1; 2; 3; 4 ], merged |> List.map (fun r -> r.Seed))   // ties keep the seed list's order
    Directory.Delete(dir, true)

/// sha256 of a safetensors file's tensor data (after the header), as scripts/test-slurm.sh compares them.
let private tensorData (path: string) =
    let bytes = File.ReadAllBytes path
    let n = BitConverter.ToInt64(bytes, 0)
    Convert.ToHexString(SHA256.HashData(ReadOnlySpan(bytes, 8 + int n, bytes.Length - 8 - int n)))

[<Fact>]
let ``a 2-shard sweep, finished and merged, equals the unsharded sweep bit for bit`` () =
    let dir = tempDir ()
    let common = [ "train"; "--seeds"; "1-4"; "--steps"; "40"; "--probe"; "20"; "--keep"; "1"; "--eval-interval"; "20"; "--batch"; "32"; "--warmup"; "5"; "--quiet" ]
    let sharded = Path.Combine(dir, "sharded")
    let unsharded = Path.Combine(dir, "unsharded")
    let ok (r: Run) = Assert.True((r.Code = 0), sprintf "exit %d: %s %s" r.Code r.Out r.Err)
    ok (run (common @ [ "--out"; unsharded ]))
    // the finish pass needs every shard's probes
    ok (run (common @ [ "--out"; sharded; "--shard"; "1/2" ]))
    run (common @ [ "--out"; sharded; "--shard"; "1/2"; "--finish" ]) |> assertOneLineError "probe-shard-0-of-2.csv not found"
    ok (run (common @ [ "--out"; sharded; "--shard"; "0/2" ]))
    for i in 0 .. 1 do ok (run (common @ [ "--out"; sharded; "--shard"; sprintf "%d/2" i; "--finish" ]))
    ok (run (common @ [ "--out"; sharded; "--merge"; "2" ]))
    Assert.Equal(File.ReadAllText(Path.Combine(unsharded, "sweep.csv")), File.ReadAllText(Path.Combine(sharded, "sweep.csv")))
    let finished = Shards.readSummary (Path.Combine(unsharded, "sweep.csv")) |> List.filter (fun r -> r.LastStep = 40)
    Assert.Equal(1, finished.Length)
    for seed in 1 .. 4 do
        for file in [ "best.safetensors"; "last.safetensors" ] do
            Assert.Equal(tensorData (Path.Combine(unsharded, sprintf "s%d" seed, file)), tensorData (Path.Combine(sharded, sprintf "s%d" seed, file)))
    run [ "train"; "--seed"; "1"; "--shard"; "0/2" ] |> assertOneLineError "--shard applies to a sweep"
    run [ "train"; "--seeds"; "1-4"; "--finish"; "--out"; sharded ] |> assertOneLineError "--finish goes with --shard"
    run [ "train"; "--seeds"; "1-4"; "--shard"; "2/2"; "--out"; sharded ] |> assertOneLineError "bad --shard '2/2'"
    Directory.Delete(dir, true)

/// scripts/test-slurm.sh: a 4-task job array on a real single-node Slurm started for the test (skipped where
/// it cannot run: not root, or apt cannot install Slurm).
[<SkippableFact>]
let ``a 4-shard sweep through a real Slurm job array equals the unsharded sweep`` () =
    let script = Path.Combine(repoRoot, "scripts", "test-slurm.sh")
    let info = ProcessStartInfo("bash", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    info.ArgumentList.Add script
    info.Environment.["ADDER"] <- "dotnet " + Path.Combine(AppContext.BaseDirectory, "adder.dll")
    use p = Process.Start info
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit(TimeSpan.FromMinutes 10.0)) then
        p.Kill true   // SIGKILL skips the script's EXIT trap, but its daemons are in its process tree and go with it
        failwithf "scripts/test-slurm.sh did not finish in 10 minutes:\n%s" out.Result
    if p.ExitCode = 77 then missingTool (out.Result.Trim())
    Skip.If(p.ExitCode = 77, out.Result.Trim())
    Assert.True((p.ExitCode = 0), sprintf "scripts/test-slurm.sh exited %d:\n%s\n%s" p.ExitCode out.Result err.Result)
    Assert.Contains("PASS", out.Result)
