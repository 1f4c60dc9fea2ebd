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
    refused "start 'first' is neither best nor last" (stage """{ "start": "first" }""")
    refused "unknown recipe key 'stage'" """{ "architecture": "36p", "stage": [] }"""
    refused "needs a non-empty 'stages'" """{ "architecture": "36p", "stages": [] }"""
    refused "unknown model preset '35p' (known: 311p, 275p, wide, 62p" """{ "architecture": "35p", "stages": [ { "steps": 1 } ] }"""
    refused "not valid JSON" "{ nope"
    assertOneLineError "--recipe sets the model" (run [ "train"; "--recipe"; write dir twoStages; "--lr"; "0.1"; "--out"; out ])

[<Fact>]
let ``the shipped recipes parse`` () =
    for file in Directory.GetFiles(Path.Combine(repoRoot, "recipes"), "*.json") do
        let recipe = Adder.Pipeline.Recipes.load file
        Assert.NotEmpty(recipe.Stages)
