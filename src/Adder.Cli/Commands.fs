/// The training commands: train, finetune, plot.
module Adder.Cli.Commands

open System
open System.IO
open Argu
open Adder.Core
open Adder.Pipeline
open Adder.Pipeline.Training
open Adder.Cli.Arguments

let private fail fmt = Printf.kprintf (fun s -> raise (AdderException s)) fmt

/// 2.00e-02 rather than .NET's 2.00e-002.
let sci (x: float) = x.ToString("0.00e+00", Globalization.CultureInfo.InvariantCulture)

let private formatSpan (t: TimeSpan) =
    if t.TotalHours >= 1.0 then sprintf "%dh%02dm" (int t.TotalHours) t.Minutes
    elif t.TotalMinutes >= 1.0 then sprintf "%dm%02ds" (int t.TotalMinutes) t.Seconds
    else sprintf "%ds" (int t.TotalSeconds)

/// Live progress: a status line rewritten in place on a terminal, one line per validation always.
let private reporter (quiet: bool) =
    let live = not quiet && not Console.IsOutputRedirected
    let mutable lastDraw = DateTime.MinValue
    fun (p: Progress) ->
        let eta =
            if p.StepsPerSecond > 0.0 then formatSpan (TimeSpan.FromSeconds(float (p.Steps - p.Step) / p.StepsPerSecond)) else "?"
        let line =
            sprintf "step %d/%d  loss %.4f  lr %s  |g| %.3f  %.0f steps/s  ETA %s  best val %.2f%%" p.Step p.Steps p.Loss (sci p.Lr)
                p.GradNorm p.StepsPerSecond eta (100.0 * max p.BestValExact 0.0)
        match p.ValExact with
        | Some e ->
            if live then Console.Write("\r" + String(' ', Console.WindowWidth - 1) + "\r")
            printfn "step %7d  loss %.5f  val exact %6.2f%%  token acc %6.2f%%  lr %s  %.0f steps/s  %s elapsed" p.Step p.Loss
                (100.0 * e) (100.0 * p.ValTokenAccuracy.Value) (sci p.Lr) p.StepsPerSecond (formatSpan p.Elapsed)
        | None when live && (DateTime.UtcNow - lastDraw).TotalMilliseconds > 250.0 ->
            lastDraw <- DateTime.UtcNow
            let width = max 20 (Console.WindowWidth - 1)
            Console.Write("\r" + (if line.Length > width then line.Substring(0, width) else line.PadRight width))
        | None -> ()

// Registrations must stay reachable: a collected registration stops handling its signal.
let mutable private signalRegistrations: Runtime.InteropServices.PosixSignalRegistration list = []

/// Ctrl-C, SIGTERM or reaching --stop-after stops the run after the current step and saves last.safetensors.
/// A second signal is not cancelled, so it ends the process at once.
let private cancellation (stopAfter: int option) =
    let requested = ref 0
    let onSignal (context: Runtime.InteropServices.PosixSignalContext) =
        if Threading.Interlocked.Exchange(&requested.contents, 1) = 0 then
            context.Cancel <- true
            eprintfn "\ninterrupt (%O): saving last.safetensors after this step (signal again to abort)" context.Signal
    signalRegistrations <-
        [ for signal in [ Runtime.InteropServices.PosixSignal.SIGINT; Runtime.InteropServices.PosixSignal.SIGTERM ] ->
              Runtime.InteropServices.PosixSignalRegistration.Create(signal, onSignal) ]
    fun step -> Threading.Volatile.Read(&requested.contents) = 1 || (match stopAfter with Some n -> step >= n | None -> false)

let private execute (config: RunConfig) (runDir: string) (resume: bool) (quiet: bool) (stopAfter: int option) =
    printfn "%s %s -> %s" config.Kind (config.Model.Describe()) runDir
    printfn "steps %d, batch %d, lr %g, warm-up %d, floor %g, weight decay %g, clip %g, seed %d, curriculum %s" config.Steps config.Batch
        config.Lr config.Warmup config.Floor config.WeightDecay config.Clip config.Seed (curriculumText config.Curriculum)
    stopAfter |> Option.iter (fun n -> if n < 1 then fail "--stop-after must be at least 1")
    let outcome = Training.run config runDir resume (reporter quiet) (cancellation stopAfter)
    if outcome.Completed then
        printfn "done: %d steps; best validation exact match %.2f%% at step %d" outcome.LastStep (100.0 * outcome.BestValExact) outcome.BestStep
        printfn "best: %s" (Path.Combine(runDir, "best.safetensors"))
        0
    else
        printfn "stopped at step %d; continue with --resume --out %s" outcome.LastStep runDir
        130

let train (args: ParseResults<TrainArgs>) =
    let preset = ModelConfig.Preset(args.GetResult(TrainArgs.Preset, "311p"))
    let model =
        ModelConfig(
            NLayer = args.GetResult(TrainArgs.N_Layer, preset.NLayer),
            DModel = args.GetResult(TrainArgs.D_Model, preset.DModel),
            NHead = args.GetResult(TrainArgs.N_Head, preset.NHead),
            DFf = args.GetResult(TrainArgs.D_Ff, preset.DFf),
            PosRank = args.GetResult(TrainArgs.Pos_Rank, preset.PosRank),
            QkvRank = args.GetResult(TrainArgs.Qkv_Rank, preset.QkvRank),
            AttnOutRank = args.GetResult(TrainArgs.Attn_Out_Rank, preset.AttnOutRank),
            FfnRank = args.GetResult(TrainArgs.Ffn_Rank, preset.FfnRank),
            UseRmsNorm = (preset.UseRmsNorm && not (args.Contains TrainArgs.Layernorm)),
            TieQkv = args.GetResult(TrainArgs.Tie_Qkv, preset.TieQkv))
    let seed = args.GetResult(TrainArgs.Seed, 34)
    let config =
        { Kind = "train"
          Model = model.Validate()
          StartCheckpoint = None
          Seed = seed
          InitSeed = args.GetResult(TrainArgs.Init_Seed, seed)
          Steps = args.GetResult(TrainArgs.Steps, 162_000)
          Batch = args.GetResult(TrainArgs.Batch, 512)
          Lr = args.GetResult(TrainArgs.Lr, 0.02)
          Warmup = args.GetResult(TrainArgs.Warmup, 1350)
          Floor = args.GetResult(TrainArgs.Floor, 0.1)
          WeightDecay = args.GetResult(TrainArgs.Weight_Decay, 0.01)
          Clip = args.GetResult(TrainArgs.Clip, 1.0)
          EvalInterval = args.GetResult(TrainArgs.Eval_Interval, 1000)
          Curriculum = (match args.TryGetResult TrainArgs.Curriculum with Some t -> parseCurriculum t | None -> baseCurriculum)
          Threads = max 0 (args.GetResult(TrainArgs.Threads, 0)) }
    let runDir = args.GetResult(TrainArgs.Out, Path.Combine("runs", sprintf "%s-s%d" (args.GetResult(TrainArgs.Preset, "311p")) seed))
    execute config runDir (args.Contains TrainArgs.Resume) (args.Contains TrainArgs.Quiet) (args.TryGetResult TrainArgs.Stop_After)

let finetune (args: ParseResults<FinetuneArgs>) =
    let checkpoint = args.GetResult FinetuneArgs.Checkpoint
    let start = Checkpoint.Load checkpoint
    let lr = args.GetResult FinetuneArgs.Lr
    let seed = args.GetResult FinetuneArgs.Seed
    let config =
        { Kind = "finetune"
          Model = start.Model.Config
          StartCheckpoint = Some(Path.GetFullPath checkpoint)
          Seed = seed
          InitSeed = seed
          Steps = args.GetResult FinetuneArgs.Steps
          Batch = args.GetResult(FinetuneArgs.Batch, 512)
          Lr = lr
          Warmup = args.GetResult(FinetuneArgs.Warmup, 500)
          Floor = args.GetResult(FinetuneArgs.Floor, 0.01)
          WeightDecay = args.GetResult(FinetuneArgs.Weight_Decay, 0.01)
          Clip = args.GetResult(FinetuneArgs.Clip, 1.0)
          EvalInterval = args.GetResult(FinetuneArgs.Eval_Interval, 500)
          Curriculum = fullCurriculum
          Threads = max 0 (args.GetResult(FinetuneArgs.Threads, 0)) }
    let name = Path.GetFileNameWithoutExtension checkpoint
    let runDir = args.GetResult(FinetuneArgs.Out, Path.Combine("runs", sprintf "ft-%s-lr%g-s%d" name lr seed))
    execute config runDir (args.Contains FinetuneArgs.Resume) (args.Contains FinetuneArgs.Quiet) (args.TryGetResult FinetuneArgs.Stop_After)

let plot (args: ParseResults<PlotArgs>) =
    let runDir = args.GetResult PlotArgs.Run
    if not (Directory.Exists runDir) then fail "run folder not found: %s" runDir
    let output = args.GetResult(PlotArgs.Output, Path.Combine(runDir, "curves.png"))
    Plotting.plot runDir output
    printfn "wrote %s" output
    0
