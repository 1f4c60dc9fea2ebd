/// The files of a run folder, named once: what a run writes, --resume reads, sweeps, recipes and plots find.
module Adder.Pipeline.RunFolder

open System.IO

let configName = "config.json"
let metricsName = "metrics.csv"
let lastName = "last.safetensors"
let bestName = "best.safetensors"
/// the weights' moving average at its best validation, for a run that keeps one
let emaName = "ema.safetensors"

let config (runDir: string) = Path.Combine(runDir, configName)
let metrics (runDir: string) = Path.Combine(runDir, metricsName)
let last (runDir: string) = Path.Combine(runDir, lastName)
let best (runDir: string) = Path.Combine(runDir, bestName)
let ema (runDir: string) = Path.Combine(runDir, emaName)

/// A sweep's run folder for one seed.
let ofSeed (sweepDir: string) (seed: int) = Path.Combine(sweepDir, sprintf "s%d" seed)

/// The folder names ofSeed makes, the seed captured.
let seedPattern = "^s([0-9]+)$"
