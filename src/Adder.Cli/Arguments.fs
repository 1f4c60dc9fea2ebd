/// The `adder` command line (Argu): one union per subcommand.
module Adder.Cli.Arguments

open Argu
open Adder.Pipeline
open Adder.Pipeline.Backends

/// The closed choices of the command line (Argu lists and checks them).
type Suite =
    | Reference
    | Random
    | Adderboard

type Preset =
    | [<CustomCommandLine "311p">] P311
    | [<CustomCommandLine "275p">] P275
    | Wide
    | [<CustomCommandLine "62p">] P62
    | [<CustomCommandLine "44p">] P44
    | [<CustomCommandLine "36p">] P36
    | [<CustomCommandLine "67p">] P67
    | [<CustomCommandLine "57p">] P57

// Argu matches a closed choice by its label against the given text lowercased with '_' made '-' (so a label
// with a capital or an underscore can never match): "sharea-tiekv" accepts shareA_tieKV, the config's spelling.
type TieQkv =
    | [<CustomCommandLine "sharea-tiekv">] ShareA_TieKV
    | [<CustomCommandLine "none">] Untied

type BenchWhat =
    | Train
    | Eval

let presetName (p: Preset) =
    match p with
    | P311 -> "311p" | P275 -> "275p" | Wide -> "wide" | P62 -> "62p" | P44 -> "44p" | P36 -> "36p" | P67 -> "67p" | P57 -> "57p"

let private presetsText = "311p (default), 275p, wide (the seed's family); 62p, 44p, 36p (Qwen3 + arc), 67p, 57p (MicroAdder)"
let tieMode (t: TieQkv) = match t with ShareA_TieKV -> Adder.Core.TieModes.ShareATieKV | Untied -> Adder.Core.TieModes.None

/// Defaults of the options that are not run hyperparameters (those are Hyperparameters.all's).
module Defaults =
    /// The shipped model used when --checkpoint is not given (models/README.md): our best, 311 parameters,
    /// 100,000 / 100,000 on the reference suite.
    let checkpointName = "adder-311p-s36-targeted.safetensors"
    let showFailures = 20
    let count = 100_000
    let probe = 30_000
    let keep = 2
    /// Seeds a sweep trains side by side: one on the CPU (it parallelises one model's batch already); on a GPU
    /// up to 256 (one model cannot fill it: 19,500 steps/s alone, 100,000 model-steps/s at 256 in run 9).
    let modelsPerLaunchCpu = 1
    let modelsPerLaunchCuda = 256
    let windows = 7
    let benchBatch = 512
    let targetedRounds = Targeted.defaultRounds
    let targetedMine = Targeted.defaultMine
    let targetedMix = Targeted.defaultMix

let private deviceUsage = "where the model math runs: cpu (default) or cuda (an NVIDIA GPU; checked on an H200, later kernel changes not yet: see README)"
let private threadsUsage = "cpu: worker threads (default: all cores)"
/// An option's usage: a run hyperparameter's comes from its row of Hyperparameters.all (TrainArgs.Weight_Decay:
/// weight_decay), with the kind's default; any other option's from `other`.
let private usageOf (kind: Hyperparameters.RunKind) (arg: obj) (other: unit -> string) =
    let case, _ = Reflection.FSharpValue.GetUnionFields(arg, arg.GetType())
    match Hyperparameters.tryFind (case.Name.ToLowerInvariant()) with
    | Some h -> Hyperparameters.usage kind h.Name
    | None -> other ()

type InfoArgs =
    | [<MainCommand; Unique>] Checkpoint of path: string
    | [<Unique>] Preset of Preset
    | [<Unique>] Arch of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint (.pt or .safetensors)"
            | Preset _ -> "a model preset instead of a checkpoint: " + presetsText
            | Arch _ -> "an architecture file instead of a checkpoint (the schema of architectures/*.json)"

type ConvertArgs =
    | [<MainCommand; ExactlyOnce>] Input of path: string
    | [<AltCommandLine("-o"); Mandatory; Unique>] Output of path: string
    | Weights_Only
    | [<Unique>] Preset of Preset
    | [<Unique>] Arch of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Input _ -> "PyTorch checkpoint to read (or a safetensors file to rewrite)"
            | Output _ -> "safetensors file to write"
            | Weights_Only -> "drop the optimiser and data-stream state (for publishing a model)"
            | Preset _ -> "move the weights into this architecture preset: its parameters taken from the checkpoint's by name and shape, the others dropped (printed with their largest magnitude); weights only: " + presetsText
            | Arch _ -> "as --preset, into an architecture file (the schema of architectures/*.json)"

type EvalArgs =
    | [<AltCommandLine("-c"); Unique>] Checkpoint of path: string
    | [<Unique>] Suite of Suite
    | [<Unique>] Count of n: int
    | [<Unique>] Seed of seed: int64
    | [<Unique>] Json of path: string
    | [<Unique>] Show_Failures of n: int
    | [<Unique>] Device of Device
    | [<Unique>] Threads of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Device _ -> deviceUsage
            | Checkpoint _ -> "checkpoint to evaluate (.pt or .safetensors; default: the shipped models/" + Defaults.checkpointName + ")"
            | Suite _ -> "reference (the ten published test sets, 100,000 sums; default), random, or adderboard (AdderBoard's 10 edge cases + 10,000 pairs of random.Random(2025))"
            | Count _ -> sprintf "random suite: number of pairs (default %d)" Defaults.count
            | Seed _ -> "random suite: generator seed (default 0)"
            | Json _ -> "also write the report as JSON to this file"
            | Show_Failures _ -> sprintf "failing pairs to print (default %d)" Defaults.showFailures
            | Threads _ -> threadsUsage

/// Formats of `adder export` (Argu lists them as pt, adderboard).
type ExportFormat =
    | Pt
    | Adderboard

type ExportArgs =
    | [<AltCommandLine("-c"); Mandatory; Unique>] Checkpoint of path: string
    | [<Mandatory; Unique>] Format of ExportFormat
    | [<AltCommandLine("-o"); Mandatory; Unique>] Output of path: string
    | [<Unique>] Name of text: string
    | [<Unique>] Author of text: string
    | [<Unique>] Tricks of list: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint to export (.pt or .safetensors)"
            | Format _ -> "pt (PyTorch checkpoint in the published layout) or adderboard (one self-contained Python submission)"
            | Output _ -> "file to write (written through a temporary file, then moved into place)"
            | Name _ -> "adderboard: the submission's name (default: the checkpoint's file name)"
            | Author _ -> "adderboard: the author (default: adder)"
            | Tricks _ -> "adderboard: comma-separated tricks (default: derived from the config)"

type VerifyArgs =
    | [<AltCommandLine("-c"); Unique>] Checkpoint of path: string
    | [<Unique>] Submission of file: string
    | [<Unique>] Python of path: string
    | [<Unique>] Count of n: int
    | [<Unique>] Seed of seed: int64
    | [<Unique>] Generators of list: string
    | [<Unique>] Json of path: string
    | [<Unique>] Max_Error_Rate of rate: float
    | [<Unique>] Show_Failures of n: int
    | [<Unique>] Threads of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint to check (.pt or .safetensors; default: the shipped models/" + Defaults.checkpointName + ")"
            | Submission _ -> "check an AdderBoard submission instead (a Python file with build_model() and add(); it is run, so trust it): its add() answers, through Python, a few hundred sums a second a worker"
            | Python _ -> "--submission: the Python to run it with (default: python3 on PATH)"
            | Count _ -> "examples per sampled generator (default 100000, with --submission 2000; the edge cases are always all run)"
            | Seed _ -> "FsCheck seed: the same seed and count give the same pairs (default 0)"
            | Generators _ -> "comma-separated: uniform, mixed-length, carry-chain, nine-pairs, edge (default: all)"
            | Json _ -> "also write the report as JSON to this file"
            | Max_Error_Rate _ -> "exit 1 when any generator's error rate exceeds this fraction (e.g. 0.001)"
            | Show_Failures _ -> "failures per generator to shrink and print (default 5)"
            | Threads _ -> "worker threads, or with --submission Python processes (default: all cores)"

type PredictArgs =
    | [<AltCommandLine("-c"); Unique>] Checkpoint of path: string
    | [<AltCommandLine("-f"); Unique>] File of path: string
    | [<MainCommand>] Operands of operand: string list
    | [<Unique>] Device of Device
    | [<Unique>] Threads of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Device _ -> deviceUsage
            | Threads _ -> threadsUsage
            | Checkpoint _ -> "checkpoint to use (.pt or .safetensors; default: the shipped models/" + Defaults.checkpointName + ")"
            | File _ -> "file of pairs, one per line ('a b' or 'a+b'); - reads standard input"
            | Operands _ -> sprintf "two operands, each in [0, %d]" Adder.Core.Tokens.MaxOperand

type TrainArgs =
    | [<AltCommandLine("-o"); Unique>] Out of dir: string
    | [<Unique>] Preset of Preset
    | [<Unique>] Arch of file: string
    | [<Unique>] Recipe of file: string
    | [<Unique>] D_Model of int
    | [<Unique>] D_Ff of int
    | [<Unique>] N_Head of int
    | [<Unique>] N_Layer of int
    | [<Unique>] Pos_Rank of int
    | [<Unique>] Qkv_Rank of int
    | [<Unique>] Attn_Out_Rank of int
    | [<Unique>] Ffn_Rank of int
    | [<Unique>] Tie_Qkv of TieQkv
    | [<Unique>] Layernorm
    | [<Unique>] Seed of int
    | [<Unique>] Seeds of list: string
    | [<Unique>] Probe of steps: int
    | [<Unique>] Keep of n: int
    | [<Unique>] Shard of spec: string
    | [<Unique>] Finish
    | [<Unique>] Merge of shards: int
    | [<Unique>] Init_Seed of int
    | [<Unique>] Steps of int
    | [<Unique>] Batch of int
    | [<Unique>] Lr of float
    | [<Unique>] Warmup of int
    | [<Unique>] Floor of float
    | [<Unique>] Weight_Decay of float
    | [<Unique>] Clip of float
    | [<Unique>] Eval_Interval of int
    | [<Unique>] Curriculum of spec: string
    | [<Unique>] Beta1 of float
    | [<Unique>] Beta2 of float
    | [<Unique>] Eps of float
    | [<Unique>] Grokfast_Alpha of float
    | [<Unique>] Grokfast_Lambda of float
    | [<Unique>] Carry_Mix of float
    | [<Unique>] Carry_Mix_Fade_Start of int
    | [<Unique>] Carry_Mix_Fade_End of int
    | [<Unique>] Weight_Decay_Cuts of spec: string
    | [<Unique>] Decay_Scales of spec: string
    | [<Unique>] Ema of decay: float
    | [<Unique>] Device of Device
    | [<Unique>] Threads of n: int
    | [<Unique>] Models_Per_Launch of n: int
    | [<Unique>] Resume
    | [<Unique>] Stop_After of steps: int
    | [<Unique>] Quiet
    interface IArgParserTemplate with
        member a.Usage =
            usageOf Hyperparameters.Train a (fun () ->
            match a with
            | Device _ -> deviceUsage
            | Models_Per_Launch _ ->
                sprintf "sweep: seeds trained side by side in one backend (default %d on the cpu, up to %d on cuda; the weights are the same either way)"
                    Defaults.modelsPerLaunchCpu Defaults.modelsPerLaunchCuda
            | Stop_After _ -> "stop (as on Ctrl-C: last.safetensors saved) once this many steps are done; --resume continues"
            | Out _ -> "run folder to write (default runs/<preset>-s<seed>)"
            | Preset _ -> "model preset: " + presetsText + "; for the seed's family the shape options below override it"
            | Arch _ -> "an architecture file (the schema of architectures/*.json: stored parameters, roles derived from them, token format)"
            | Recipe _ -> "a recipe file (recipes/*.json): a model and stages of run hyperparameters, each stage starting from the last one's best or last checkpoint; the same command continues it"
            | D_Model _ -> "d_model"
            | D_Ff _ -> "d_ff"
            | N_Head _ -> "attention heads"
            | N_Layer _ -> "layers"
            | Pos_Rank _ -> "position-embedding rank (0 = full)"
            | Qkv_Rank _ -> "q/k/v rank (0 = full)"
            | Attn_Out_Rank _ -> "attention output rank (0 = full)"
            | Ffn_Rank _ -> "MLP rank (0 = full)"
            | Tie_Qkv _ -> "sharea-tiekv (the default; also written shareA_tieKV, in any case) or none"
            | Layernorm -> "LayerNorm instead of RMSNorm"
            | Seeds _ -> "a seed sweep: seeds like 1-12,15, one run each in --out/s<seed> (default --out runs/sweep-<preset>)"
            | Probe _ -> sprintf "sweep: train every seed to this step first (default %d)" Defaults.probe
            | Keep _ -> sprintf "sweep: then finish this many seeds, best validation and lowest loss at the probe first (default %d)" Defaults.keep
            | Threads _ -> threadsUsage
            | Shard _ -> "sweep on several machines: run shard i/n (the seeds at list positions k with k mod n = i) to the probe; then --finish, then --merge"
            | Finish -> "with --shard i/n: rank all n shards' probes, finish the kept seeds of this shard, write sweep-shard-i-of-n.csv"
            | Merge _ -> "combine the n shards' sweep-shard-*-of-n.csv in --out into sweep.csv (the same as an unsharded sweep's); with --recipe, recipe-sweep-shard-*-of-n.csv into recipe-sweep.csv"
            | Resume -> "continue the run in --out from its last.safetensors, with the options in its config.json"
            | Quiet -> "no live progress, one line per validation"
            | _ -> "")

type FinetuneArgs =
    | [<AltCommandLine("-c"); Mandatory; Unique>] Checkpoint of path: string
    | [<AltCommandLine("-o"); Unique>] Out of dir: string
    | [<Mandatory; Unique>] Lr of float
    | [<Mandatory; Unique>] Steps of int
    | [<Mandatory; Unique>] Seed of int
    | [<Unique>] Batch of int
    | [<Unique>] Warmup of int
    | [<Unique>] Floor of float
    | [<Unique>] Weight_Decay of float
    | [<Unique>] Clip of float
    | [<Unique>] Eval_Interval of int
    | [<Unique>] Curriculum of spec: string
    | [<Unique>] Beta1 of float
    | [<Unique>] Beta2 of float
    | [<Unique>] Eps of float
    | [<Unique>] Grokfast_Alpha of float
    | [<Unique>] Grokfast_Lambda of float
    | [<Unique>] Carry_Mix of float
    | [<Unique>] Carry_Mix_Fade_Start of int
    | [<Unique>] Carry_Mix_Fade_End of int
    | [<Unique>] Weight_Decay_Cuts of spec: string
    | [<Unique>] Decay_Scales of spec: string
    | [<Unique>] Ema of decay: float
    | [<Unique>] Device of Device
    | [<Unique>] Threads of n: int
    | [<Unique>] Resume
    | [<Unique>] Stop_After of steps: int
    | [<Unique>] Quiet
    | [<Unique>] Targeted
    | [<Unique>] Rounds of n: int
    | [<Unique>] Mine of pairs: int
    | [<Unique>] Mix of share: float
    interface IArgParserTemplate with
        member a.Usage =
            usageOf Hyperparameters.Finetune a (fun () ->
            match a with
            | Targeted -> "targeted fine-tuning: mine the model's failures from fresh sums (uniform, mixed lengths, carry chains, nine-pairs) and mix them into the batches, round after round"
            | Rounds _ -> sprintf "--targeted: at most this many rounds of --steps each; stops early when mining finds no failure (default %d)" Defaults.targetedRounds
            | Mine _ -> sprintf "--targeted: fresh pairs per generator in each mining pass (default %d)" Defaults.targetedMine
            | Mix _ -> sprintf "--targeted: share of each batch drawn from the mined failures (default %g)" Defaults.targetedMix
            | Device _ -> deviceUsage
            | Stop_After _ -> "stop (as on Ctrl-C: last.safetensors saved) once this many steps are done; --resume continues"
            | Checkpoint _ -> "checkpoint to start from (its weights; the optimiser starts fresh)"
            | Out _ -> "run folder to write (default runs/ft-<checkpoint>-lr<lr>-s<seed>)"
            | Threads _ -> threadsUsage
            | Resume -> "continue the round in --out from its last.safetensors, with the options in its config.json"
            | Quiet -> "no live progress, one line per validation"
            | _ -> "")

type TruncateArgs =
    | [<AltCommandLine("-c"); Mandatory; Unique>] Checkpoint of path: string
    | [<Mandatory; Unique>] Ranks of spec: string
    | [<AltCommandLine("-o"); Mandatory; Unique>] Output of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint to truncate (.pt or .safetensors)"
            | Ranks _ -> "new ranks per matrix family, e.g. qkv=2,ffn=2 (families: pos, qkv, attn_out, ffn)"
            | Output _ -> "safetensors file to write (weights only)"

type PlotArgs =
    | [<MainCommand; Unique>] Run of dirs: string list
    | [<Unique>] Overlay of dirs: string list
    | [<AltCommandLine("-o"); Unique>] Output of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Run _ -> "run folder (metrics.csv), finetune --targeted folder (its rounds) or recipe folder (its stages); several: drawn one after another; a sweep folder alone: its seeds side by side"
            | Overlay _ -> "run or sweep folders drawn side by side, one colour each (a sweep folder: each of its seeds)"
            | Output _ -> "PNG or SVG (a name ending in .svg) to write (default: the first folder's curves.png)"

type BenchArgs =
    | [<MainCommand; ExactlyOnce>] What of BenchWhat
    | [<Unique>] Batch of int
    | [<Unique>] Windows of int
    | [<Unique>] Device of Device
    | [<Unique>] Threads of n: int
    | [<Unique>] Preset of Preset
    | [<Unique>] Models of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Device _ -> deviceUsage
            | Models _ -> "train: models side by side in the backend, each on its own batch (default 1); prints model-steps/s"
            | What _ -> "train (steps/s) or eval (examples/s)"
            | Batch _ -> sprintf "train: batch size (default %d)" Defaults.benchBatch
            | Windows _ -> sprintf "timed windows; the median is reported (default %d)" Defaults.windows
            | Threads _ -> threadsUsage
            | Preset _ -> "model preset: " + presetsText

type SelftestArgs =
    | [<Unique>] Device of Device
    | [<Unique>] Shared of dir: string
    | [<Unique>] Threads of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Device _ -> "backend to check against the CPU backend (default cuda)"
            | Shared _ -> "folder with golden/ and reference/best_311p_s34.pt (default ../shared)"
            | Threads _ -> threadsUsage

type CheckGradientsArgs =
    | [<Mandatory; Unique>] Golden of path: string
    | [<Unique>] Device of Device
    | [<Unique>] Threads of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Device _ -> deviceUsage
            | Threads _ -> threadsUsage
            | Golden _ -> "golden file shaped like gradcheck_random_init.json"

type AdderArgs =
    | [<CliPrefix(CliPrefix.None)>] Info of ParseResults<InfoArgs>
    | [<CliPrefix(CliPrefix.None)>] Convert of ParseResults<ConvertArgs>
    | [<CliPrefix(CliPrefix.None)>] Eval of ParseResults<EvalArgs>
    | [<CliPrefix(CliPrefix.None)>] Predict of ParseResults<PredictArgs>
    | [<CliPrefix(CliPrefix.None)>] Export of ParseResults<ExportArgs>
    | [<CliPrefix(CliPrefix.None)>] Verify of ParseResults<VerifyArgs>
    | [<CliPrefix(CliPrefix.None)>] Train of ParseResults<TrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Finetune of ParseResults<FinetuneArgs>
    | [<CliPrefix(CliPrefix.None)>] Truncate of ParseResults<TruncateArgs>
    | [<CliPrefix(CliPrefix.None)>] Plot of ParseResults<PlotArgs>
    | [<CliPrefix(CliPrefix.None)>] Bench of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None)>] Check_Gradients of ParseResults<CheckGradientsArgs>
    | [<CliPrefix(CliPrefix.None)>] Selftest of ParseResults<SelftestArgs>
    | [<AltCommandLine("-V")>] Version
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Info _ -> "print a checkpoint's config, tensors and parameter count"
            | Convert _ -> "convert a PyTorch checkpoint to safetensors"
            | Eval _ -> "exact-match evaluation (reference suite or random pairs)"
            | Predict _ -> "add numbers with a model"
            | Export _ -> "write a checkpoint as a PyTorch .pt or an AdderBoard submission"
            | Verify _ -> "property-based correctness run (FsCheck generators, shrunk counterexamples)"
            | Train _ -> "train a model from scratch (SPEC section 7)"
            | Finetune _ -> "one fine-tuning round from a checkpoint"
            | Truncate _ -> "lower the rank of factorised matrices by SVD (a start for a smaller model)"
            | Plot _ -> "draw a run's training curves to a PNG"
            | Bench _ -> "measure training or evaluation speed"
            | Check_Gradients _ -> "compare our backward pass with a golden gradient file"
            | Selftest _ -> "check a GPU backend against the CPU backend and the goldens (for a GPU machine)"
            | Version -> "print the version"
