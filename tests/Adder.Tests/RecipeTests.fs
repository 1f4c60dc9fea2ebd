/// `adder train --recipe`: stages one after another, each from the last one's checkpoint with its own options;
/// the same command continues a recipe, across a stage boundary too; a malformed recipe is refused before any folder.
module Adder.Tests.RecipeTests

open System.IO
open Xunit
open Adder.Core
open Adder.Tests.Shared
open Adder.Tests.CliTests

let twoStages = """{
  "architecture": "36p", "seed": 3,
  "stages": [
    { "name": "base", "steps": 60, "batch": 16, "lr": 0.01, "warmup": 5, "eval_interval": 30, "carry_mix": 0.5, "carry_mix_fade_start": 10, "carry_mix_fade_end": 50 },
    { "name": "polish", "start": "last", "optimizer": "adam", "steps": 40, "batch": 32, "lr": 0.001, "floor": 1.0, "eval_interval": 20 }
  ] }"""

let write (dir: string) (text: string) =
    let path = Path.Combine(dir, "recipe.json")
    File.WriteAllText(path, text)
    path

/// Runs a recipe into out, which must succeed; returns the run's output.
let trainRecipe (dir: string) (text: string) (out: string) =
    let r = run [ "train"; "--recipe"; write dir text; "--out"; out; "--quiet" ]
    Assert.True((r.Code = 0), sprintf "exit %d\n%s%s" r.Code r.Out r.Err)
    r.Out + r.Err

/// A stored parameter's values.
let tensorOf (m: Model) (name: string) =
    let t = m.Layout.Tensors |> Seq.find (fun x -> x.Name = name)
    m.Parameters.[t.Offset .. t.Offset + t.Size - 1]

/// A checkpoint's model.
let modelAt (path: string) = (Checkpoint.Load path).Model

[<Fact>]
let ``a two-stage recipe runs each stage from the last with its own options, and the same command continues it bit for bit`` () =
    let dir = tempDir ()
    let recipe = write dir twoStages
    let out = Path.Combine(dir, "run")
    let r = run [ "train"; "--recipe"; recipe; "--out"; out; "--quiet" ]
    Assert.True((r.Code = 0), sprintf "exit %d\n%s%s" r.Code r.Out r.Err)
    let stage1, stage2 = Path.Combine(out, "stage-1-base"), Path.Combine(out, "stage-2-polish")
    let config2 = File.ReadAllText(Path.Combine(stage2, "config.json"))
    Assert.Contains("\"kind\": \"finetune\"", config2)
    Assert.Contains("\"weight_decay\": 0", config2)
    Assert.Contains("\"batch\": 32", config2)
    Assert.Contains(Path.Combine(stage1, "last.safetensors"), config2)
    Assert.Contains("\"carry_mix\": 0.5", File.ReadAllText(Path.Combine(stage1, "config.json")))
    let weights = (Checkpoint.Load(Path.Combine(stage2, "last.safetensors"))).Model.Parameters
    // the second stage is removed and the recipe run again: stage 1 is found finished, stage 2 trains the same
    Directory.Delete(stage2, true)
    let again = run [ "train"; "--recipe"; recipe; "--out"; out; "--quiet" ]
    Assert.True((again.Code = 0), again.Err)
    Assert.Equal<float32[]>(weights, (Checkpoint.Load(Path.Combine(stage2, "last.safetensors"))).Model.Parameters)
    // and a finished recipe run again changes nothing
    let third = run [ "train"; "--recipe"; recipe; "--out"; out; "--quiet" ]
    Assert.True((third.Code = 0), third.Err)
    Assert.Equal<float32[]>(weights, (Checkpoint.Load(Path.Combine(stage2, "last.safetensors"))).Model.Parameters)

[<Fact>]
let ``a recipe sweep runs the recipe for each seed as a recipe with that seed would, and reports each seed's AdderBoard score`` () =
    let dir = tempDir ()
    // stage 2 sets its own data seed: a sweep changes the init and stage 1's data, not that
    let text = twoStages.Replace("\"name\": \"polish\",", "\"name\": \"polish\", \"seed\": 11,")
    let recipe = write dir text
    let out = Path.Combine(dir, "sweep")
    let r = run [ "train"; "--recipe"; recipe; "--seeds"; "4,5"; "--out"; out; "--quiet" ]
    Assert.True((r.Code = 0), sprintf "exit %d\n%s%s" r.Code r.Out r.Err)
    let rows = File.ReadAllLines(Path.Combine(out, Adder.Pipeline.Recipes.summaryName))
    Assert.Equal(3, rows.Length)
    Assert.StartsWith("seed,completed,best_val_exact", rows.[0])
    Assert.StartsWith("4,true,", rows.[1])
    Assert.StartsWith("5,true,", rows.[2])
    Assert.EndsWith(",10010," + rows.[2].Split(',').[6] + ",2," + Path.Combine("s5", "stage-2-polish", "best.safetensors"), rows.[2])
    Assert.Contains("on AdderBoard's protocol (reported, not used to choose)", r.Out)
    let config1 = File.ReadAllText(Path.Combine(out, "s5", "stage-1-base", "config.json"))
    Assert.Contains("\"seed\": 5,", config1)
    Assert.Contains("\"init_seed\": 5,", config1)
    Assert.Contains("\"seed\": 11,", File.ReadAllText(Path.Combine(out, "s5", "stage-2-polish", "config.json")))
    // seed 5 of the sweep is the recipe run with "seed": 5
    let single = Path.Combine(dir, "single")
    let alone = run [ "train"; "--recipe"; write dir (text.Replace("\"seed\": 3,", "\"seed\": 5,")); "--out"; single; "--quiet" ]
    Assert.True((alone.Code = 0), alone.Err)
    let weights (d: string) = (Checkpoint.Load(Path.Combine(d, "stage-2-polish", "last.safetensors"))).Model.Parameters
    Assert.Equal<float32[]>(weights single, weights (Path.Combine(out, "s5")))
    Assert.NotEqual<float32[]>(weights single, weights (Path.Combine(out, "s4")))
    // the same command again finds every seed finished and writes the same table
    let again = run [ "train"; "--recipe"; recipe; "--seeds"; "4,5"; "--out"; out; "--quiet" ]
    Assert.True((again.Code = 0), again.Err)
    Assert.Equal<string[]>(rows, File.ReadAllLines(Path.Combine(out, Adder.Pipeline.Recipes.summaryName)))
    assertOneLineError "--shard goes with --seeds" (run [ "train"; "--recipe"; recipe; "--shard"; "1/2"; "--out"; out ])

[<Fact>]
let ``a sharded recipe sweep's tables merge into the table the whole sweep writes`` () =
    let dir = tempDir ()
    let recipe = write dir twoStages
    let out = Path.Combine(dir, "sweep")
    for shard in [ "0/2"; "1/2" ] do
        let r = run [ "train"; "--recipe"; recipe; "--seeds"; "4,5,6"; "--shard"; shard; "--out"; out; "--quiet" ]
        Assert.True((r.Code = 0), r.Err + r.Out)
    let summary = Path.Combine(out, Adder.Pipeline.Recipes.summaryName)
    let merged = run [ "train"; "--recipe"; recipe; "--seeds"; "4,5,6"; "--merge"; "2"; "--out"; out ]
    Assert.True((merged.Code = 0), merged.Err + merged.Out)
    Assert.Contains("3 of 3 seeds done", merged.Out)
    let mergedText = File.ReadAllText summary
    Assert.Equal(4, mergedText.Trim().Split('\n').Length)
    let whole = run [ "train"; "--recipe"; recipe; "--seeds"; "4,5,6"; "--out"; out; "--quiet" ]
    Assert.True((whole.Code = 0), whole.Err + whole.Out)
    Assert.Equal(File.ReadAllText summary, mergedText)
    assertOneLineError "--merge goes with --seeds" (run [ "train"; "--recipe"; recipe; "--merge"; "2"; "--out"; out ])
    assertOneLineError "--merge combines all shards; leave out --shard" (run [ "train"; "--recipe"; recipe; "--seeds"; "4,5,6"; "--shard"; "0/2"; "--merge"; "2"; "--out"; out ])
    Assert.Equal(mergedText, File.ReadAllText summary)
    assertOneLineError "recipe-sweep-shard-0-of-3.csv not found: the recipe sweep of shard 0/3 has not finished" (run [ "train"; "--recipe"; recipe; "--seeds"; "4,5,6"; "--merge"; "3"; "--out"; out ])

[<Fact>]
let ``a targeted stage runs rounds of targeted fine-tuning from the stage before, and the same command again changes nothing`` () =
    let dir = tempDir ()
    let recipe = write dir """{
  "architecture": "36p", "seed": 2,
  "stages": [
    { "name": "base", "steps": 60, "batch": 16, "lr": 0.01, "warmup": 5, "eval_interval": 30 },
    { "name": "mined", "targeted": { "rounds": 2, "mine": 2000, "mix": 0.25 }, "steps": 20, "batch": 16, "lr": 0.001, "warmup": 2, "eval_interval": 10 }
  ] }"""
    let out = Path.Combine(dir, "run")
    let r = run [ "train"; "--recipe"; recipe; "--out"; out; "--quiet" ]
    Assert.True((r.Code = 0), sprintf "exit %d\n%s%s" r.Code r.Out r.Err)
    let stage = Path.Combine(out, "stage-2-mined")
    let rows = File.ReadAllLines(Path.Combine(stage, Adder.Pipeline.Targeted.csvName))
    Assert.Equal(4, rows.Length)   // the header, the start's mining and two rounds
    Assert.Contains(Path.Combine(out, "stage-1-base", "best.safetensors"), rows.[1])
    Assert.True(File.Exists(Path.Combine(stage, "round-2", "last.safetensors")))
    let best = Path.Combine(stage, "best.safetensors")
    Assert.Contains("best: " + best, r.Out)
    let weights = (Checkpoint.Load best).Model.Parameters
    let again = run [ "train"; "--recipe"; recipe; "--out"; out; "--quiet" ]
    Assert.True((again.Code = 0), again.Err)
    Assert.Equal<float32[]>(weights, (Checkpoint.Load best).Model.Parameters)
    Assert.Equal<string[]>(rows, File.ReadAllLines(Path.Combine(stage, Adder.Pipeline.Targeted.csvName)))

[<Fact>]
let ``a targeted stage whose start mines clean reports the stage before's validation, not none`` () =
    let before: Adder.Pipeline.Training.Outcome = { Completed = true; LastStep = 60000; BestValExact = 1.0; BestStep = 44000 }
    // the stage's own best checkpoint step (7 here) is not what it reports: no round ran, so its best is the stage before's
    let clean = Adder.Pipeline.Recipes.targetedOutcome [ nan ] true 7 (Some before)
    Assert.Equal(1.0, clean.BestValExact)
    Assert.Equal(44000, clean.BestStep)
    let rounds = Adder.Pipeline.Recipes.targetedOutcome [ nan; 0.9; 0.95 ] true 2000 (Some before)
    Assert.Equal(0.95, rounds.BestValExact)
    Assert.Equal(2000, rounds.BestStep)
    Assert.Equal(2, rounds.LastStep)
    Assert.False((Adder.Pipeline.Recipes.targetedOutcome [ nan ] false 0 (Some before)).Completed)

[<Fact>]
let ``a malformed recipe is refused in one line before any folder is made`` () =
    let dir = tempDir ()
    let out = Path.Combine(dir, "run")
    let refused (fragment: string) (text: string) =
        assertOneLineError fragment (run [ "train"; "--recipe"; write dir text; "--out"; out ])
        Assert.False(Directory.Exists out, "a refused recipe left a folder")
    let stage (s: string) = sprintf """{ "architecture": "36p", "stages": [ { "steps": 10 }, %s ] }""" s
    refused "unknown key 'stepz'" (stage """{ "stepz": 10 }""")
    refused "stage 2: --steps must be at least 1" (stage """{ "steps": 0 }""")
    refused "unknown optimizer 'sgd'" (stage """{ "optimizer": "sgd" }""")
    refused "fade ends" (stage """{ "carry_mix": 0.8, "carry_mix_fade_start": 100, "carry_mix_fade_end": 50 }""")
    refused "start 'first' is not best, last or ema" (stage """{ "start": "first" }""")
    refused "unknown recipe key 'stage'" """{ "architecture": "36p", "stage": [] }"""
    refused "needs a non-empty 'stages'" """{ "architecture": "36p", "stages": [] }"""
    refused "unknown model preset '35p' (known: 311p, 275p, wide, 62p" """{ "architecture": "35p", "stages": [ { "steps": 1 } ] }"""
    refused "not valid JSON" "{ nope"
    refused "a targeted stage fine-tunes the stage before's model" """{ "architecture": "36p", "stages": [ { "targeted": {}, "steps": 5 } ] }"""
    refused "unknown targeted key 'round'" (stage """{ "targeted": { "round": 2 } }""")
    refused "targeted 'mix' must be in (0, 1)" (stage """{ "targeted": { "mix": 1.5 } }""")
    refused "a targeted stage leaves its best only" """{ "architecture": "36p", "stages": [ { "steps": 5 }, { "targeted": {}, "steps": 5 }, { "start": "last", "steps": 5 } ] }"""
    refused "the first stage trains the recipe's 'architecture'" """{ "architecture": "36p", "stages": [ { "architecture": "44p", "steps": 5 } ] }"""
    refused "stage 2: the checkpoint has no parameter" (stage """{ "architecture": "44p" }""")
    refused "stage 2: unknown model preset 'x'" (stage """{ "architecture": "x" }""")
    refused "stage 2: 'new_parameters' belongs to a stage with an 'architecture' of its own" (stage """{ "new_parameters": "init" }""")
    refused "stage 2: new_parameters 'zero' is neither init nor an object of expressions" (stage """{ "architecture": "44p", "new_parameters": "zero" }""")
    refused "stage 1: 'stop_below' must be a validation exact match in (0, 1]" """{ "architecture": "36p", "stages": [ { "steps": 5, "stop_below": 1.5 }, { "steps": 5 } ] }"""
    refused "stage 2: 'stop_below' on the last stage changes nothing" (stage """{ "stop_below": 0.5 }""")
    assertOneLineError "--recipe sets the model" (run [ "train"; "--recipe"; write dir twoStages; "--lr"; "0.1"; "--out"; out ])

[<Fact>]
let ``a stage on another architecture starts from the stage before's weights moved into it by name, a faded term dropped`` () =
    let dir = tempDir ()
    let arch = File.ReadAllText(Path.Combine(repoRoot, "docs", "experiments", "42p-down-res.json"))
    let text =
        sprintf """{ "architecture": %s, "seed": 2,
          "stages": [ { "name": "base", "steps": 40, "batch": 16, "lr": 0.01, "warmup": 0, "eval_interval": 20 },
                      { "name": "fade", "start": "last", "steps": 40, "batch": 16, "lr": 0.001, "weight_decay": 0.01, "decay_scales": "mlp.W_res:50000", "eval_interval": 20 },
                      { "name": "cut", "start": "last", "architecture": "36p", "steps": 20, "batch": 16, "lr": 0.001, "eval_interval": 20 } ] }""" arch
    let out = Path.Combine(dir, "run")
    Assert.Contains("stage 3 starts without mlp.W_res", trainRecipe dir text out)
    let faded = modelAt (Path.Combine(out, "stage-2-fade", "last.safetensors"))
    let moved = modelAt (Path.Combine(out, "stage-3-cut-start.safetensors"))
    Assert.Equal(36, moved.Layout.Count)
    // the moved weights are the faded stage's, parameter by parameter
    for t in moved.Layout.Tensors do
        Assert.Equal<float32[]>(tensorOf faded t.Name, tensorOf moved t.Name)
    let last = Checkpoint.Load(Path.Combine(out, "stage-3-cut", "last.safetensors"))
    Assert.Equal(36, last.Model.Layout.Count)
    Assert.Contains("stage-3-cut-start.safetensors", File.ReadAllText(Path.Combine(out, "stage-3-cut", "config.json")))

[<Fact>]
let ``a stage whose best is below its stop_below ends the recipe, a sweep counts the seed as ended there, and one above goes on`` () =
    let dir = tempDir ()
    let threeStages (threshold: float) =
        sprintf """{ "architecture": "36p", "seed": 3,
          "stages": [ { "name": "base", "steps": 20, "batch": 16, "eval_interval": 10, "stop_below": %g },
                      { "name": "next", "steps": 10, "batch": 16, "eval_interval": 10, "stop_below": %g },
                      { "name": "last", "steps": 10, "batch": 16, "eval_interval": 10 } ] }""" threshold threshold
    // twenty steps from scratch are far below 90% exact: the recipe ends after stage 1, and says so
    let out = Path.Combine(dir, "stopped")
    let printed = trainRecipe dir (threeStages 0.9) out
    Assert.Contains("stage 1's best validation", printed)
    Assert.Contains("below its stop_below 90.00%: the recipe ends here", printed)
    Assert.False(Directory.Exists(Path.Combine(out, "stage-2-next")), "a stage after the stop ran")
    Assert.Contains("best: " + Path.Combine(out, "stage-1-base", "best.safetensors"), printed)
    let sweepDir = Path.Combine(dir, "sweep")
    let r = run [ "train"; "--recipe"; write dir (threeStages 0.9); "--seeds"; "3,4"; "--out"; sweepDir; "--quiet" ]
    Assert.True((r.Code = 0), r.Err + r.Out)
    Assert.Contains("(stopped after stage 1)", r.Out)
    let rows = File.ReadAllLines(Path.Combine(sweepDir, Adder.Pipeline.Recipes.summaryName))
    Assert.Equal(3, rows.Length)
    for row in rows.[1..] do
        let cells = row.Split(',')
        Assert.Equal("true", cells.[1])
        Assert.Equal("1", cells.[7])
    // a best at or above the threshold goes on; an interrupted stage is not a stop
    let recipe = Adder.Pipeline.Recipes.parse (threeStages 0.9) "recipe"
    let stage = recipe.Stages.Head
    let outcome (v: float) (completed: bool) : Adder.Pipeline.Training.Outcome = { Completed = completed; LastStep = 20; BestValExact = v; BestStep = 20 }
    Assert.True(Adder.Pipeline.Recipes.stopsAfter stage (outcome 0.89 true))
    Assert.False(Adder.Pipeline.Recipes.stopsAfter stage (outcome 0.9 true))
    Assert.False(Adder.Pipeline.Recipes.stopsAfter stage (outcome 0.1 false))
    Assert.False(Adder.Pipeline.Recipes.stopsAfter recipe.Stages.[2] (outcome 0.0 true))

[<Fact>]
let ``the shipped recipes parse`` () =
    for file in Directory.GetFiles(Path.Combine(repoRoot, "recipes"), "*.json") do
        let recipe = Adder.Pipeline.Recipes.load file
        Assert.NotEmpty(recipe.Stages)

/// An architecture model's logits for two fixed pairs (the general CPU backend).
let logitsOf (model: Model) =
    use backend = new Adder.Core.Cpu.GeneralBackend(model.Config, 1, CpuOptions.Default)
    backend.SetParameters(0, System.ReadOnlySpan model.Parameters)
    let format = model.Config.Format
    let tokens = format.EncodeFullBatch([| 1234567890L; 9999999999L |], [| 8765432109L; 1L |])
    let logits = Array.zeroCreate<float32> (2 * format.InputLength * format.VocabSize)
    backend.Logits(0, System.ReadOnlySpan tokens, 2, System.Span logits)
    logits

[<Fact>]
let ``a stage with new_parameters init starts the parameters the stage before lacks at their init, the rest moved by name`` () =
    let dir = tempDir ()
    let arch = File.ReadAllText(Path.Combine(repoRoot, "docs", "experiments", "40p-gate-rank1-res.json"))
    let text =
        sprintf """{ "architecture": "36p", "seed": 2,
          "stages": [ { "name": "base", "steps": 40, "batch": 16, "lr": 0.01, "warmup": 0, "eval_interval": 20 },
                      { "name": "grow", "start": "last", "architecture": %s, "new_parameters": "init", "steps": 20, "batch": 16, "lr": 0.001, "eval_interval": 20 } ] }""" arch
    let out = Path.Combine(dir, "run")
    // without the key the new model's parameters are refused before any folder
    let refusedText = text.Replace("\"new_parameters\": \"init\", ", "")
    Assert.NotEqual<string>(text, refusedText)
    assertOneLineError "stage 2: the checkpoint has no parameter 'mlp.gate_row'" (run [ "train"; "--recipe"; write dir refusedText; "--out"; out ])
    Assert.False(Directory.Exists out)
    Assert.Contains("stage 2 starts mlp.gate_row at its init", trainRecipe dir text out)
    let before = modelAt (Path.Combine(out, "stage-1-base", "last.safetensors"))
    let moved = modelAt (Path.Combine(out, "stage-2-grow-start.safetensors"))
    Assert.Equal(40, moved.Layout.Count)
    for t in moved.Layout.Tensors do
        match t.Name with
        | "mlp.gate_row" -> Assert.Equal<float32[]>([| 0f; 0f; 0f |], tensorOf moved t.Name)
        | "mlp.gate_ratio" -> Assert.Equal<float32[]>([| 1f |], tensorOf moved t.Name)
        | name -> Assert.Equal<float32[]>(tensorOf before name, tensorOf moved name)
    // the new rank-1 part of the gate starts at zero, so the moved model computes the 36p's function
    Assert.Equal<float32[]>(logitsOf before, logitsOf moved)
    Assert.Equal(40, (modelAt (Path.Combine(out, "stage-2-grow", "last.safetensors"))).Layout.Count)

[<Fact>]
let ``new_parameters as expressions start a split parameter at the stage before's values, and a wrong one is refused in one line`` () =
    let dir = tempDir ()
    let arch34 = File.ReadAllText(Path.Combine(repoRoot, "docs", "experiments", "34p-gate-rank1.json"))
    let split = File.ReadAllText(Path.Combine(repoRoot, "docs", "experiments", "34p-gate-rank1-qn.json"))
    let recipe (starts: string) =
        sprintf """{ "architecture": %s, "seed": 4,
          "stages": [ { "name": "base", "steps": 40, "batch": 16, "lr": 0.01, "warmup": 0, "eval_interval": 20 },
                      { "name": "split", "start": "last", "architecture": %s, "new_parameters": %s, "steps": 20, "batch": 16, "lr": 0.001, "eval_interval": 20 } ] }""" arch34 split starts
    let out = Path.Combine(dir, "run")
    let refused (fragment: string) (starts: string) =
        assertOneLineError fragment (run [ "train"; "--recipe"; write dir (recipe starts); "--out"; out ])
        Assert.False(Directory.Exists out, "a refused recipe left a folder")
    refused "is neither a stored parameter nor a role" """{ "attn.q_norm_head": "slice(attn.qnorm, 0, 3, 0, 1)", "attn.q_norm_tail": "slice(attn.q_norm, 3, 1, 0, 1)" }"""
    refused "new parameter attn.q_norm_tail: its expression is 2×1, the parameter [1]" """{ "attn.q_norm_head": "slice(attn.q_norm, 0, 3, 0, 1)", "attn.q_norm_tail": "slice(attn.q_norm, 2, 2, 0, 1)" }"""
    refused "the checkpoint has no parameter 'attn.q_norm_tail'" """{ "attn.q_norm_head": "slice(attn.q_norm, 0, 3, 0, 1)" }"""
    refused "new_parameters names 'attn.nope'" """{ "attn.nope": "attn.key_angle" }"""
    refused "is neither init nor an object of expressions" "3"
    refused "new_parameters 'attn.q_norm_head' is not an expression (a string)" """{ "attn.q_norm_head": 3 }"""
    let output = trainRecipe dir (recipe """{ "attn.q_norm_head": "slice(attn.q_norm, 0, 3, 0, 1)", "attn.q_norm_tail": "slice(attn.q_norm, 3, 1, 0, 1)" }""") out
    Assert.Contains("stage 2 starts attn.q_norm_tail at slice(attn.q_norm, 3, 1, 0, 1)", output)
    let before = modelAt (Path.Combine(out, "stage-1-base", "last.safetensors"))
    let moved = modelAt (Path.Combine(out, "stage-2-split-start.safetensors"))
    Assert.Equal<float32[]>(tensorOf before "attn.q_norm", Array.append (tensorOf moved "attn.q_norm_head") (tensorOf moved "attn.q_norm_tail"))
    Assert.Equal<float32[]>(logitsOf before, logitsOf moved)
