/// The `adder` command line (Argu): one union per subcommand.
module Adder.Cli.Arguments

open Argu

type InfoArgs =
    | [<MainCommand; ExactlyOnce>] Checkpoint of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint (.pt or .safetensors)"

type ConvertArgs =
    | [<MainCommand; ExactlyOnce>] Input of path: string
    | [<AltCommandLine("-o"); Mandatory; Unique>] Output of path: string
    | Weights_Only
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Input _ -> "PyTorch checkpoint to read (or a safetensors file to rewrite)"
            | Output _ -> "safetensors file to write"
            | Weights_Only -> "drop the optimiser and data-stream state (for publishing a model)"

type EvalArgs =
    | [<AltCommandLine("-c"); Unique>] Checkpoint of path: string
    | [<Unique>] Suite of name: string
    | [<Unique>] Count of n: int
    | [<Unique>] Seed of seed: int64
    | [<Unique>] Json of path: string
    | [<Unique>] Show_Failures of n: int
    | [<Unique>] Threads of n: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint to evaluate (.pt or .safetensors; default: the shipped models/adder-912p-s1.safetensors)"
            | Suite _ -> "reference (the ten published test sets, 100,000 sums; default), random, or adderboard (AdderBoard's 10 edge cases + 10,000 pairs of random.Random(2025))"
            | Count _ -> "random suite: number of pairs (default 100000)"
            | Seed _ -> "random suite: generator seed (default 0)"
            | Json _ -> "also write the report as JSON to this file"
            | Show_Failures _ -> "failing pairs to print (default 20)"
            | Threads _ -> "worker threads (default: all cores)"

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
            | Checkpoint _ -> "checkpoint to check (.pt or .safetensors; default: the shipped models/adder-912p-s1.safetensors)"
            | Count _ -> "examples per sampled generator (default 100000; the edge cases are always all run)"
            | Seed _ -> "FsCheck seed: the same seed and count give the same pairs (default 0)"
            | Generators _ -> "comma-separated: uniform, mixed-length, carry-chain, nine-pairs, edge (default: all)"
            | Json _ -> "also write the report as JSON to this file"
            | Max_Error_Rate _ -> "exit 1 when any generator's error rate exceeds this fraction (e.g. 0.001)"
            | Show_Failures _ -> "failures per generator to shrink and print (default 5)"
            | Threads _ -> "worker threads (default: all cores)"

type PredictArgs =
    | [<AltCommandLine("-c"); Unique>] Checkpoint of path: string
    | [<AltCommandLine("-f"); Unique>] File of path: string
    | [<MainCommand>] Operands of operand: string list
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint to use (.pt or .safetensors; default: the shipped models/adder-912p-s1.safetensors)"
            | File _ -> "file of pairs, one per line ('a b' or 'a+b'); - reads standard input"
            | Operands _ -> "two operands, each in [0, 9999999999]"

type TrainArgs =
    | [<AltCommandLine("-o"); Unique>] Out of dir: string
    | [<Unique>] Preset of name: string
    | [<Unique>] D_Model of int
    | [<Unique>] D_Ff of int
    | [<Unique>] N_Head of int
    | [<Unique>] N_Layer of int
    | [<Unique>] Pos_Rank of int
    | [<Unique>] Qkv_Rank of int
    | [<Unique>] Attn_Out_Rank of int
    | [<Unique>] Ffn_Rank of int
    | [<Unique>] Tie_Qkv of mode: string
    | [<Unique>] Layernorm
    | [<Unique>] Seed of int
    | [<Unique>] Seeds of list: string
    | [<Unique>] Probe of steps: int
    | [<Unique>] Keep of n: int
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
    | [<Unique>] Threads of n: int
    | [<Unique>] Resume
    | [<Unique>] Stop_After of steps: int
    | [<Unique>] Quiet
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Stop_After _ -> "stop (as on Ctrl-C: last.safetensors saved) once this many steps are done; --resume continues"
            | Out _ -> "run folder to write (default runs/<preset>-s<seed>)"
            | Preset _ -> "model preset: 311p (default) or wide; the shape options below override it"
            | D_Model _ -> "d_model"
            | D_Ff _ -> "d_ff"
            | N_Head _ -> "attention heads"
            | N_Layer _ -> "layers"
            | Pos_Rank _ -> "position-embedding rank (0 = full)"
            | Qkv_Rank _ -> "q/k/v rank (0 = full)"
            | Attn_Out_Rank _ -> "attention output rank (0 = full)"
            | Ffn_Rank _ -> "MLP rank (0 = full)"
            | Tie_Qkv _ -> "shareA_tieKV (default) or none"
            | Layernorm -> "LayerNorm instead of RMSNorm"
            | Seed _ -> "run seed: holdout split and data stream (default 34)"
            | Seeds _ -> "a seed sweep: seeds like 1-12,15, one run each in --out/s<seed> (default --out runs/sweep-<preset>)"
            | Probe _ -> "sweep: train every seed to this step first (default 30000)"
            | Keep _ -> "sweep: then finish this many seeds, best validation and lowest loss at the probe first (default 2)"
            | Init_Seed _ -> "seed of the initial weights (default: the run seed)"
            | Steps _ -> "total steps (default 162000)"
            | Batch _ -> "batch size (default 512)"
            | Lr _ -> "peak learning rate (default 0.02)"
            | Warmup _ -> "warm-up steps (default 1350)"
            | Floor _ -> "final lr as a fraction of the peak (default 0.1)"
            | Weight_Decay _ -> "AdamW weight decay (default 0.01)"
            | Clip _ -> "gradient clipping global norm (default 1.0)"
            | Eval_Interval _ -> "validate every N steps (default 1000)"
            | Curriculum _ -> "phases 'step:min-max,...' (default 0:1-3,2000:1-6,7000:1-10)"
            | Beta1 _ -> "AdamW beta1 (default 0.9)"
            | Beta2 _ -> "AdamW beta2 (default 0.999)"
            | Eps _ -> "AdamW epsilon (default 1e-8)"
            | Threads _ -> "worker threads (default: all cores)"
            | Resume -> "continue the run in --out from its last.safetensors, with the options in its config.json"
            | Quiet -> "no live progress, one line per validation"

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
    | [<Unique>] Beta1 of float
    | [<Unique>] Beta2 of float
    | [<Unique>] Eps of float
    | [<Unique>] Threads of n: int
    | [<Unique>] Resume
    | [<Unique>] Stop_After of steps: int
    | [<Unique>] Quiet
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Stop_After _ -> "stop (as on Ctrl-C: last.safetensors saved) once this many steps are done; --resume continues"
            | Checkpoint _ -> "checkpoint to start from (its weights; the optimiser starts fresh)"
            | Out _ -> "run folder to write (default runs/ft-<checkpoint>-lr<lr>-s<seed>)"
            | Lr _ -> "peak learning rate"
            | Steps _ -> "steps in this round"
            | Seed _ -> "round seed f: holdout(5000, 10000, f) reserved and validated on, sampler f + 1337"
            | Batch _ -> "batch size (default 512)"
            | Warmup _ -> "warm-up steps (default 500)"
            | Floor _ -> "final lr fraction (default 0.01)"
            | Weight_Decay _ -> "AdamW weight decay (default 0.01)"
            | Clip _ -> "gradient clipping global norm (default 1.0)"
            | Eval_Interval _ -> "validate every N steps (default 500)"
            | Beta1 _ -> "AdamW beta1 (default 0.9)"
            | Beta2 _ -> "AdamW beta2 (default 0.999)"
            | Eps _ -> "AdamW epsilon (default 1e-8)"
            | Threads _ -> "worker threads (default: all cores)"
            | Resume -> "continue the round in --out from its last.safetensors, with the options in its config.json"
            | Quiet -> "no live progress, one line per validation"

type PlotArgs =
    | [<MainCommand; ExactlyOnce>] Run of dir: string
    | [<AltCommandLine("-o"); Unique>] Output of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Run _ -> "run folder (holding metrics.csv)"
            | Output _ -> "PNG to write (default RUN/curves.png)"

type BenchArgs =
    | [<MainCommand; ExactlyOnce>] What of string
    | [<Unique>] Batch of int
    | [<Unique>] Windows of int
    | [<Unique>] Threads of n: int
    | [<Unique>] Preset of name: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | What _ -> "train (steps/s) or eval (examples/s)"
            | Batch _ -> "train: batch size (default 512)"
            | Windows _ -> "timed windows; the median is reported (default 7)"
            | Threads _ -> "worker threads (default: all cores)"
            | Preset _ -> "model preset (default 311p)"

type CheckGradientsArgs =
    | [<Mandatory; Unique>] Golden of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
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
    | [<CliPrefix(CliPrefix.None)>] Plot of ParseResults<PlotArgs>
    | [<CliPrefix(CliPrefix.None)>] Bench of ParseResults<BenchArgs>
    | [<CliPrefix(CliPrefix.None)>] Check_Gradients of ParseResults<CheckGradientsArgs>
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
            | Plot _ -> "draw a run's training curves to a PNG"
            | Bench _ -> "measure training or evaluation speed"
            | Check_Gradients _ -> "compare our backward pass with a golden gradient file"
            | Version -> "print the version"
