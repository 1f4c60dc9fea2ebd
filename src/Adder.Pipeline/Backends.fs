/// Picks the backend that runs the model math (Core's IBackend): the one place that names an implementation.
module Adder.Pipeline.Backends

open Adder.Core
open Adder.Core.Cpu

/// --device: where the model math runs.
type Device =
    | Cpu
    | Cuda

let deviceName (d: Device) = match d with Cpu -> "cpu" | Cuda -> "cuda"

/// The CUDA backend (Adder.Kernels): raises a one-line AdderException when no device is present or the config
/// is outside the kernels' limits (kernels/ABI.md), so `available` leaves CUDA out.
let private createCuda (config: ModelConfig) (models: int) : IBackend =
    match config.General with
    | null -> new Adder.Kernels.CudaBackend(config, models)
    | arch ->
        raise (AdderException(sprintf "the CUDA backend runs the seed's family only; architecture %s runs on --device cpu" arch.Name))

/// A backend holding `models` models of one config. cpu options (threads) only matter to the CPU backend.
let create (device: Device) (config: ModelConfig) (models: int) (cpu: CpuOptions) : IBackend =
    match device with
    | Cpu when not (isNull config.General) -> new GeneralBackend(config, models, cpu)
    | Cpu -> new CpuBackend(config, models, cpu)
    | Cuda -> createCuda config models

/// The devices this build can use on this machine: cpu always, cuda when a backend can be created.
let available () =
    [ yield Cpu
      let cuda =
          try
              (createCuda ModelConfig.Preset311 1).Dispose()
              true
          with :? AdderException -> false
      if cuda then yield Cuda ]

/// cuBLAS's Sgemm of two column-major 2×2 matrices on the device, through the binding's resolver (the library
/// the CUDA backend does not need but the binding offers; the lent-GPU self-test checks it).
let cublasProduct (a: float32[]) (b: float32[]) =
    use context = new Adder.Kernels.CudaContext()
    use stream = new Adder.Kernels.CudaStream()
    use blas = new Adder.Kernels.CudaBlas(stream)
    use da = new Adder.Kernels.CudaDeviceVariable<float32>(4L)
    use db = new Adder.Kernels.CudaDeviceVariable<float32>(4L)
    use dc = new Adder.Kernels.CudaDeviceVariable<float32>(4L)
    da.CopyToDevice(System.ReadOnlySpan a)
    db.CopyToDevice(System.ReadOnlySpan b)
    blas.Gemm(Adder.Kernels.Operation.NonTranspose, Adder.Kernels.Operation.NonTranspose, 2, 2, 2, 1f, da.DevicePointer, 2,
              db.DevicePointer, 2, 0f, dc.DevicePointer, 2)
    stream.Synchronize()
    let result = Array.zeroCreate<float32> 4
    dc.CopyToHost(System.Span result)
    result
