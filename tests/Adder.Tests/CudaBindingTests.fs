/// The CUDA binding tested without a GPU: every bound name exists in Debian's driver library and cuBLAS 11,
/// the driver answers, a missing device gives one line, errors are named, the dims struct matches the ABI.
module Adder.Tests.CudaBindingTests

open System
open System.IO
open System.Reflection
open System.Runtime.InteropServices
open Xunit
open Adder.Core
open Adder.Kernels
open Adder.Kernels.Native
open Adder.Tests.Shared

let private libcuda = "libcuda.so.1"
let private libcublas11 = "/usr/lib/x86_64-linux-gnu/libcublas.so.11"
let private install = "install Debian's CUDA toolkit (scripts/install-cuda-toolchain.sh)"

/// A fact skipped, with the reason, when a native library cannot be loaded on this machine.
type NeedsLibraryFact(library: string) as this =
    inherit FactAttribute()
    do
        let mutable h = 0n
        if NativeLibrary.TryLoad(library, &h) then NativeLibrary.Free h
        elif not Adder.Tests.Shared.requireTools then this.Skip <- sprintf "%s cannot be loaded here: %s" library install

/// A fact for a machine without a GPU (this one and CI): skipped only where cuInit succeeds.
type NoGpuFact() as this =
    inherit FactAttribute()
    do
        let mutable h = 0n
        if not (NativeLibrary.TryLoad(libcuda, &h)) then this.Skip <- sprintf "%s cannot be loaded here: %s" libcuda install
        elif CudaDriver.cuInit 0u = 0 then this.Skip <- "this machine has a CUDA device"
        else NativeLibrary.Free h

let private hasGpu () = Cuda.DriverVersion().HasValue && CudaDriver.cuInit 0u = 0

/// The exported names a class binds: each [LibraryImport] method's EntryPoint, else its name.
let boundNames (t: Type) =
    [ for m in t.GetMethods(BindingFlags.Public ||| BindingFlags.Static) do
        match m.GetCustomAttribute<LibraryImportAttribute>() with
        | null -> ()
        | a -> yield (if String.IsNullOrEmpty a.EntryPoint then m.Name else a.EntryPoint) ]

let missingExports (library: string) (names: string list) =
    let handle = NativeLibrary.Load library
    try names |> List.filter (fun n -> let mutable p = 0n in not (NativeLibrary.TryGetExport(handle, n, &p)))
    finally NativeLibrary.Free handle

[<NeedsLibraryFact("libcuda.so.1")>]
let ``every driver API name the binding imports is exported by libcuda.so.1`` () =
    let names = boundNames typeof<CudaDriver>
    Assert.Equal(44, names.Length)   // the [LibraryImport]s of CudaDriver.cs
    Assert.Empty(missingExports libcuda names)

[<NeedsLibraryFact("/usr/lib/x86_64-linux-gnu/libcublas.so.11")>]
let ``every cuBLAS name the binding imports is exported by Debian's libcublas.so.11`` () =
    let names = boundNames typeof<CuBlas>
    Assert.Equal(6, names.Length)    // the [LibraryImport]s of CuBlas.cs
    Assert.Empty(missingExports libcublas11 names)

[<Fact>]
let ``a misspelled name is reported missing (the export check can fail)`` () =
    let mutable h = 0n
    if NativeLibrary.TryLoad(libcuda, &h) then
        NativeLibrary.Free h
        Assert.Equal<string list>([ "cuMemAlloc_v3" ], missingExports libcuda [ "cuMemAlloc_v2"; "cuMemAlloc_v3" ])

[<NeedsLibraryFact("libcuda.so.1")>]
let ``cuDriverGetVersion answers a CUDA version`` () =
    let v = Cuda.DriverVersion()
    Assert.True(v.HasValue, "cuDriverGetVersion failed")
    Assert.InRange(v.Value, 11000, 20000)

[<NoGpuFact>]
let ``without a GPU the context, the backend and the factory's question give one line: no CUDA device`` () =
    let e = Assert.Throws<AdderException>(fun () -> new CudaContext() |> ignore)
    Assert.Equal("no CUDA device: cuInit answered CUDA_ERROR_NO_DEVICE", e.Message)
    let e2 = Assert.Throws<AdderException>(fun () -> new CudaBackend(ModelConfig.Preset311, 4) |> ignore)
    Assert.Equal(e.Message, e2.Message)
    let ok, reason = CudaBackend.IsAvailable()
    Assert.False ok
    Assert.Equal(e.Message, reason)
    let backend, reason2 = CudaBackend.TryCreate(ModelConfig.Preset311, 1)
    Assert.Null backend
    Assert.Equal(e.Message, reason2)

[<NeedsLibraryFact("libcuda.so.1")>]
let ``CUresults are named by the driver, and a failed call is one line naming the call`` () =
    Assert.Equal("CUDA_ERROR_NO_DEVICE", Cuda.ErrorName 100)
    Assert.Equal("CUDA_ERROR_OUT_OF_MEMORY", Cuda.ErrorName 2)
    Assert.Equal("CUDA_ERROR_ILLEGAL_ADDRESS", Cuda.ErrorName 700)
    Assert.Equal("CUresult 123456", Cuda.ErrorName 123456)
    let e = Assert.Throws<AdderException>(fun () -> Cuda.Check(2, "cuMemAlloc_v2"))
    Assert.Equal("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY", e.Message)
    Cuda.Check(0, "cuInit")   // CUDA_SUCCESS passes

[<NeedsLibraryFact("/usr/lib/x86_64-linux-gnu/libcublas.so.11")>]
let ``our cublasStatus names agree with cuBLAS's own cublasGetStatusName`` () =
    NativeResolver.Install()
    for status in [ 0; 1; 3; 7; 8; 11; 13; 14; 15; 16 ] do
        Assert.Equal(Marshal.PtrToStringAnsi(CuBlas.cublasGetStatusName status), CuBlas.StatusName status)
    let e = Assert.Throws<AdderException>(fun () -> Cuda.CheckBlas(7, "cublasSgemm_v2"))
    Assert.Equal("cublasSgemm_v2 failed: CUBLAS_STATUS_INVALID_VALUE", e.Message)

[<NeedsLibraryFact("/usr/lib/x86_64-linux-gnu/libcublas.so.11")>]
let ``the resolver finds cuBLAS here, and a handle without a GPU fails on one line naming the call`` () =
    let found =
        NativeResolver.CuBlasCandidates()
        |> Seq.tryFind (fun c -> let mutable h = 0n in NativeLibrary.TryLoad(c, &h))
    Assert.Equal(Some "libcublas.so.11", found)
    if not (hasGpu ()) then
        let e = Assert.Throws<AdderException>(fun () -> new CudaBlas(Unchecked.defaultof<CudaStream>) |> ignore)
        Assert.StartsWith("cublasCreate_v2 failed: CUBLAS_STATUS_", e.Message)
        Assert.DoesNotContain("\n", e.Message)

// ---- the dims struct (kernels/ABI.md) ----

let private dimsInts (layout: ParameterLayout) =
    let mutable d = AdderDims.From layout
    MemoryMarshal.Cast<AdderDims, int>(MemoryMarshal.CreateSpan(&d, 1)).ToArray()

[<Fact>]
let ``the dims struct is 57 int32 without padding`` () =
    Assert.Equal(228, Marshal.SizeOf<AdderDims>())
    Assert.Equal(228, Runtime.CompilerServices.Unsafe.SizeOf<AdderDims>())
    Assert.Equal(AdderDims.Ints, (dimsInts (ParameterLayout ModelConfig.Preset311)).Length)

[<Fact>]
let ``the dims of the 311p model sit at ABI.md's indices`` () =
    let layout = ParameterLayout ModelConfig.Preset311
    let at (name: string) = layout.[name].Offset
    let d = dimsInts layout
    Assert.Equal<int[]>([| 311; 4; 1; 8; 14; 33; 1; at "token_emb.weight" |], d.[0..7])
    Assert.Equal<int[]>([| 33; 4; 3; at "pos_emb.A"; at "pos_emb.B"; -1 |], d.[8..13])
    Assert.Equal<int[]>([| at "blocks.0.ln1.weight"; at "blocks.0.attn.qkv_A"; 3; at "blocks.0.attn.qkv_Bq"; at "blocks.0.attn.qkv_Bkv" |], d.[14..18])
    Assert.Equal<int[]>([| 4; 4; 3; at "blocks.0.attn.proj.A"; at "blocks.0.attn.proj.B"; -1 |], d.[37..42])
    Assert.Equal(at "blocks.0.ln2.weight", d.[43])
    Assert.Equal<int[]>([| 4; 8; 3; at "blocks.0.mlp.fc1.A"; at "blocks.0.mlp.fc1.B"; -1 |], d.[44..49])
    Assert.Equal<int[]>([| 8; 4; 3; at "blocks.0.mlp.fc2.A"; at "blocks.0.mlp.fc2.B"; -1 |], d.[50..55])
    Assert.Equal(at "ln_f.weight", d.[56])
    Assert.Equal(311 + 33 * 4 + 1, (AdderDims.From layout).GradientRecord)

[<Fact>]
let ``the dims of the wide model hold full-rank weights and separate q, k, v`` () =
    let layout = ParameterLayout(ModelConfig.Preset "wide")
    let at (name: string) = layout.[name].Offset
    let d = dimsInts layout
    Assert.Equal<int[]>([| layout.Count; 8; 2; 16; 14; 33; 0 |], d.[0..6])
    Assert.Equal<int[]>([| 33; 8; 0; -1; -1; at "pos_emb.weight" |], d.[8..13])
    Assert.Equal<int[]>([| 8; 8; 0; -1; -1; at "blocks.0.attn.q.weight" |], d.[19..24])
    Assert.Equal<int[]>([| 8; 8; 0; -1; -1; at "blocks.0.attn.k.weight" |], d.[25..30])
    Assert.Equal<int[]>([| 8; 8; 0; -1; -1; at "blocks.0.attn.v.weight" |], d.[31..36])
    Assert.Equal<int[]>([| 16; 8; 0; -1; -1; at "blocks.0.mlp.fc2.weight" |], d.[50..55])

[<Fact>]
let ``configs outside the kernels' limits are refused on one line naming the limit, before any GPU is touched`` () =
    let refuse config (expected: string) =
        let e = Assert.Throws<AdderException>(fun () -> new CudaBackend(config, 1) |> ignore)
        Assert.Equal("unsupported model config for --device cuda: " + expected, e.Message)
    refuse (ModelConfig(NLayer = 2)) "n_layer 2 (the CUDA kernels support 1)"
    refuse (ModelConfig(UseRmsNorm = false)) "LayerNorm (the CUDA kernels support RMSNorm only)"
    refuse (ModelConfig(DModel = 16)) "d_model 16 (at most 8)"
    refuse (ModelConfig(DFf = 64)) "d_ff 64 (at most 32)"
    refuse (ModelConfig(FfnRank = 9)) "ffn_rank 9 (at most 8, or 0 for full rank)"
    refuse (ModelConfig(MaxSeqLen = 40)) "max_seq_len 40 (the CUDA kernels support 33)"

// ---- the embedded PTX against the launches (kernels/ABI.md "Kernels") ----

/// Skipped until the kernels branch is merged: its kernels/ptx/*.ptx are embedded in Adder.Kernels.
type NeedsPtxFact() as this =
    inherit FactAttribute()
    do
        let dir = Path.Combine(repoRoot, "kernels", "ptx")
        if not (Directory.Exists dir) || Directory.GetFiles(dir, "*.ptx").Length = 0 then
            this.Skip <- "kernels/ptx/*.ptx absent (the kernels branch is not merged)"

[<NeedsPtxFact>]
let ``every kernel CudaBackend launches is embedded with ABI.md's parameter sizes`` () =
    let expected =
        [ "train_step.ptx", "adder_train_step", [| 228; 8; 8; 4; 8 |]
          "train_step.ptx", "adder_reduce_gradients", [| 228; 8; 8; 4; 8; 8 |]
          "train_rows.ptx", "adder_train_rows", [| 228; 8; 8; 4; 8 |]
          "train_rows.ptx", "adder_train_rows_many", [| 228; 8; 8; 4; 8 |]
          "optimizer.ptx", "adder_optimizer_step", [| 228; 8; 4; 8; 8; 8; 8; 8; 8; 8; 8 |]
          "logits.ptx", "adder_logits", [| 228; 8; 8; 4; 8 |]
          "decode.ptx", "adder_decode", [| 228; 8; 8; 4; 8 |] ]
    for file, kernel, sizes in expected do
        let ptx = Text.Encoding.ASCII.GetString(CudaModule.EmbeddedPtx file)
        Assert.Equal<int[]>(sizes, PtxSignature.ParameterSizes(ptx, kernel))
    Assert.Null(PtxSignature.ParameterSizes(Text.Encoding.ASCII.GetString(CudaModule.EmbeddedPtx "decode.ptx"), "adder_decod"))

[<Fact>]
let ``a launch whose arguments do not match the kernel's PTX parameters is refused on one line`` () =
    let ptx = ".visible .entry k(\n\t.param .align 4 .b8 k_param_0[228],\n\t.param .u64 k_param_1,\n\t.param .u32 k_param_2\n)\n{\n}"
    let sizes = PtxSignature.ParameterSizes(ptx, "k")
    Assert.Equal<int[]>([| 228; 8; 4 |], sizes)
    let dims = AdderDims.From(ParameterLayout ModelConfig.Preset311)
    PtxSignature.CheckArguments("k", sizes, [| box dims; box 0UL; box 512 |])
    let e = Assert.Throws<AdderException>(fun () -> PtxSignature.CheckArguments("k", sizes, [| box dims; box 0UL; box 512L |]))
    Assert.Equal("k: argument 2 is 8 bytes (Int64), the kernel's parameter 2 is 4 bytes", e.Message)
    let e2 = Assert.Throws<AdderException>(fun () -> PtxSignature.CheckArguments("k", sizes, [| box dims; box 0UL |]))
    Assert.Equal("k takes 3 arguments, 2 given", e2.Message)

[<Fact>]
let ``tokens go up as bytes: the vectorised, chunked narrowing equals a plain conversion`` () =
    let rng = Random(5)
    for n in [ 0; 1; 31; 32; 33; 17_408; (1 <<< 19) + 77; 4_456_448 ] do
        let tokens = Array.init n (fun _ -> rng.Next 14)
        let bytes = Array.zeroCreate<byte> n
        CudaBackend.NarrowTokens(ReadOnlySpan tokens, Span bytes)
        Assert.True((Array.map byte tokens = bytes), sprintf "%d tokens" n)
