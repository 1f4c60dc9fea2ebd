using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Adder.Kernels;

/// <summary>The CUDA backend (kernels/ABI.md): M models side by side on one GPU. Parameters, AdamW moments and
/// steps live on the device; a training step uploads the step settings and the batch's tokens from pinned
/// memory (one copy) and replays one CUDA graph (train step + gradient reduction, clipping and AdamW), captured on the
/// first step and again only when the batch size changes. Every reduction runs in a fixed order, so a run is
/// deterministic on a given GPU.</summary>
public sealed class CudaBackend : IBackend
{
    const int SequenceBlock = 64;   // adder_train_step: 32 or 64; adder_logits/adder_decode: ≤ 256
    // adder_train_rows (few blocks) and adder_train_rows_many: common.cuh's ADDER_ROWS_FEW_SEQS, ADDER_ROWS_MANY_SEQS
    const int FewSequences = 4, ManySequences = 8;
    static int RowDynamicBytes(int sequences) => sequences * (33 * 34 / 2) * 4;   // ADDER_ROW_DYNAMIC_BYTES
    static int RowThreads(int sequences) => 32 * ((33 * sequences + 31) / 32);    // ADDER_ROWS_THREADS
    const int RowGroup = 4;   // ADDER_ROWS_GROUP: both row kernels write a partial record a group of 4 sequences
    const int ModelBlock = 256;     // adder_reduce_gradients
    const int OptimizerBlock = 1024;   // adder_optimizer_step (ADDER_OPT_BLOCK): one model's reduction over more threads
    const long KernelStackBytes = 40960;   // ≥ the largest ptxas stack frame (adder_train_step, 39,216 B)

    public string Name => "cuda";
    public ModelConfig Config { get; }
    public ParameterLayout Layout { get; }
    public int Models { get; }
    public string DeviceName { get; }

    readonly AdderDims dims;
    readonly int P, G;
    readonly CudaContext context;
    readonly CudaStream stream;
    readonly List<CudaModule> modules = [];
    readonly CudaKernel trainStep, reduceGradients, optimizerStep, logits, decode;
    // adder_train_rows[_many] where the config is of the 311p family (AdderDims.RowsFit), else adder_train_step
    readonly CudaKernel? rowsFew, rowsMany;
    readonly bool rows;
    readonly int multiprocessors;

    // The models' state: [M][P] floats, [M] steps.
    readonly CudaDeviceVariable<float> parameters, adamM, adamV;
    // Grokfast-EMA's gradient average [M][P]; filtered[m]: model m has one (it ran a filtered step or was given
    // one), so GetOptimizer returns it; otherwise it is zeros, as a CPU run's average before its first use.
    readonly CudaDeviceVariable<float> grokfastEma;
    readonly bool[] filtered;
    readonly CudaDeviceVariable<long> step;
    // The step's results, pinned on the host for the graph's async copy down.
    // outcome: [M] gradient norms (double), then [M] losses (float) in the next M doubles' bytes: one copy
    readonly CudaDeviceVariable<double> outcome;
    readonly CudaPinnedHostMemory<double> hostOutcome;

    // The captured training step and the buffers whose addresses it holds (sized for graphBatch).
    CudaGraphExec? graph;
    int graphBatch;
    // The step's inputs, one copy up: the settings (SettingsCount doubles, ABI.md "settings"), then the tokens as
    // bytes (ABI.md "tokens"). A copy node less in the graph: for one model the step is latency, not bandwidth.
    CudaPinnedHostMemory<byte>? hostInput;
    CudaDeviceVariable<byte>? stepInput;
    const int SettingsBytes = SettingsCount * sizeof(double);
    CudaDeviceVariable<float>? stepPartials;

    // Grown on demand by the one-model verbs (loss and gradient, logits, decoding).
    CudaDeviceVariable<int>? scratchTokens, scratchOut;
    CudaDeviceVariable<byte>? scratchTokenBytes;
    CudaDeviceVariable<float>? scratchPartials, scratchGrad, scratchFloats;

    public CudaBackend(ModelConfig config, int models, int deviceId = 0)
    {
        Config = config;
        Layout = new ParameterLayout(config);
        dims = AdderDims.From(Layout);   // refuses configs the kernels do not support, before touching the GPU
        if (models < 1 || models > 65535) throw new AdderException($"--device cuda holds 1 to 65,535 models side by side, not {models}");
        Models = models;
        P = Layout.Count;
        G = dims.GradientRecord;

        context = new CudaContext(deviceId);
        try
        {
            DeviceName = context.DeviceName;
            // kernels/ABI.md "Local memory": each thread's activations and gradient record live on its stack;
            // set the limit before any launch so the driver never resizes local memory inside a captured graph.
            context.SetStackSize(KernelStackBytes);
            stream = new CudaStream();
            var train = Load("train_step.ptx");
            rows = AdderDims.RowsFit(Layout);
            var optimizer = Load("optimizer.ptx");
            var logitsModule = Load("logits.ptx");
            var decodeModule = Load("decode.ptx");
            trainStep = new CudaKernel("adder_train_step", train);
            reduceGradients = new CudaKernel("adder_reduce_gradients", train);
            optimizerStep = new CudaKernel("adder_optimizer_step", optimizer);
            logits = new CudaKernel("adder_logits", logitsModule);
            decode = new CudaKernel("adder_decode", decodeModule);
            if (rows)
            {
                var rowModule = Load("train_rows.ptx");
                rowsFew = new CudaKernel("adder_train_rows", rowModule);
                rowsMany = new CudaKernel("adder_train_rows_many", rowModule);
                foreach (var (k, sequences) in new[] { (rowsFew, FewSequences), (rowsMany, ManySequences) })
                {
                    // the attention terms; with the many kernel's 47.6 KB of static shared memory, over the 48 KB a
                    // launch gets without asking
                    k.SetMaxDynamicSharedMemory(RowDynamicBytes(sequences));
                    k.DynamicSharedMemory = (uint)RowDynamicBytes(sequences);
                }
            }
            multiprocessors = context.MultiprocessorCount;

            long mp = (long)models * P;
            parameters = new(mp); adamM = new(mp); adamV = new(mp); step = new(models); grokfastEma = new(mp);
            parameters.Memset((byte)0); adamM.Memset((byte)0); adamV.Memset((byte)0); step.Memset((byte)0);
            grokfastEma.Memset((byte)0);
            filtered = new bool[models];
            outcome = new(2L * models);
            hostOutcome = new(2L * models);
        }
        catch
        {
            // Free what was made so far (the rest is still null); the first error is the one to report.
            try { Dispose(); } catch (AdderException) { }
            throw;
        }
    }

    CudaModule Load(string file)
    {
        var module = CudaModule.FromResource(file);
        modules.Add(module);
        return module;
    }

    /// <summary>Whether a CUDA device can be used here; reason says why not ("no CUDA device: ...").</summary>
    public static bool IsAvailable(out string reason)
    {
        try { Cuda.DeviceCount(); reason = ""; return true; }
        catch (AdderException e) { reason = e.Message; return false; }
    }

    /// <summary>The backend, or null and the one-line reason (no device, unsupported config, ...).</summary>
    public static CudaBackend? TryCreate(ModelConfig config, int models, out string reason)
    {
        try { reason = ""; return new CudaBackend(config, models); }
        catch (AdderException e) { reason = e.Message; return null; }
    }

    void CheckModel(int model) => BackendContract.Model(model, Models);

    static void CheckLength(int length, long expected, string what) => BackendContract.Length(length, expected, what);

    static int Blocks(int count, int block) => (count + block - 1) / block;

    /// <summary>A scratch buffer of at least size elements (reallocated only to grow).</summary>
    static CudaDeviceVariable<T> Scratch<T>(ref CudaDeviceVariable<T>? buffer, long size) where T : unmanaged
    {
        if (buffer is null || buffer.Size < size)
        {
            buffer?.Dispose();
            buffer = new CudaDeviceVariable<T>(size);
        }
        return buffer;
    }

    public void SetParameters(int model, ReadOnlySpan<float> values)
    {
        CheckModel(model);
        CheckLength(values.Length, P, "parameters");
        context.SetCurrent();
        parameters.CopyToDevice(values, (long)model * P);
    }

    public void GetParameters(int model, Span<float> values)
    {
        CheckModel(model);
        CheckLength(values.Length, P, "parameters");
        context.SetCurrent();
        parameters.CopyToHost(values, (long)model * P);
    }

    const int SettingsCount = 8;   // ABI.md "settings": lr, weight decay, clip, beta1, beta2, eps, Grokfast alpha, lambda

    public void SetOptimizer(int model, OptimizerState state)
    {
        CheckModel(model);
        if (state.M.Length != P || state.V.Length != P)
            throw new AdderException($"optimizer state has {state.M.Length} moments, the model {P} parameters");
        if (state.GrokfastEma is { } e && e.Length != P)
            throw new AdderException($"Grokfast state has {e.Length} values, the model {P}");
        context.SetCurrent();
        adamM.CopyToDevice(state.M, (long)model * P);
        adamV.CopyToDevice(state.V, (long)model * P);
        step.CopyToDevice([state.Step], model);
        grokfastEma.CopyToDevice(state.GrokfastEma ?? new float[P], (long)model * P);
        filtered[model] = state.GrokfastEma is not null;
    }

    public OptimizerState GetOptimizer(int model)
    {
        CheckModel(model);
        context.SetCurrent();
        float[] m = new float[P], v = new float[P];
        long[] s = new long[1];
        adamM.CopyToHost(m, (long)model * P);
        adamV.CopyToHost(v, (long)model * P);
        step.CopyToHost(s, model);
        float[]? ema = null;
        if (filtered[model])
        {
            ema = new float[P];
            grokfastEma.CopyToHost(ema, (long)model * P);
        }
        return new OptimizerState(s[0], m, v, ema);
    }

    public void TrainStep(ReadOnlySpan<int> tokens, int batch, in StepSettings s, Span<StepResult> results)
    {
        BackendContract.Batch(batch);
        if (s.DecayScale is not null) throw new AdderException(WeightDecayScales.CpuOnly);
        CheckLength(tokens.Length, (long)Models * batch * Tokens.FullLength, "tokens");
        CheckLength(results.Length, Models, "results");
        context.SetCurrent();
        if (graph is null || batch != graphBatch) Capture(batch);

        var input = hostInput!.Span;
        NarrowTokens(tokens, input[SettingsBytes..]);
        var h = MemoryMarshal.Cast<byte, double>(input[..SettingsBytes]);   // StepSettings order (ABI.md "settings")
        h[0] = s.Lr; h[1] = s.WeightDecay; h[2] = s.Clip; h[3] = s.Beta1; h[4] = s.Beta2; h[5] = s.Eps;
        h[6] = s.GrokfastAlpha; h[7] = s.GrokfastLambda;
        if (s.GrokfastLambda != 0) Array.Fill(filtered, true);
        graph!.Launch(stream);
        stream.Synchronize();
        var norms = hostOutcome.Span[..Models];
        var losses = MemoryMarshal.Cast<double, float>(hostOutcome.Span[Models..])[..Models];
        for (int m = 0; m < Models; m++) results[m] = new StepResult(losses[m], norms[m]);
    }

    /// <summary>Tokens (0..13) as bytes: a quarter of the bytes to copy up each step (17.8 MB of int32 at 256 models
    /// of 512 sequences, 4.5 MB as bytes). Vectorised, and for many models in parallel chunks, so the host side
    /// does not stand in for the GPU's step.</summary>
    public static unsafe void NarrowTokens(ReadOnlySpan<int> tokens, Span<byte> bytes)
    {
        const int Chunk = 1 << 18;
        if (bytes.Length != tokens.Length) throw new ArgumentException($"{bytes.Length} bytes for {tokens.Length} tokens");
        fixed (int* source = tokens)
        fixed (byte* target = bytes)
        {
            nint from = (nint)source, to = (nint)target;
            int length = tokens.Length;
            if (length <= 2 * Chunk) { Narrow((int*)from, (byte*)to, length); return; }
            Parallel.For(0, (length + Chunk - 1) / Chunk, c =>
            {
                int start = c * Chunk;
                Narrow((int*)from + start, (byte*)to + start, Math.Min(Chunk, length - start));
            });
        }
    }

    static unsafe void Narrow(int* from, byte* to, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 32 <= n; i += 32)
            {
                var a = Vector256.Narrow(Vector256.Load(from + i), Vector256.Load(from + i + 8));
                var b = Vector256.Narrow(Vector256.Load(from + i + 16), Vector256.Load(from + i + 24));
                Vector256.Narrow(a.AsUInt16(), b.AsUInt16()).Store(to + i);
            }
        for (; i < n; i++) to[i] = (byte)from[i];
    }

    /// <summary>Records one training step of every model as a graph: settings and tokens up, forward and
    /// backward per sequence, reduction + clipping + AdamW per model, losses and norms down.</summary>
    void Capture(int batch)
    {
        DisposeGraph();
        int nblk = GradientKernel(Models, batch).Records;
        hostInput = new(SettingsBytes + (long)Models * batch * Tokens.FullLength);
        stepInput = new(hostInput.Size);
        stepPartials = new((long)Models * nblk * G);
        ulong settings = stepInput.DevicePointer, tokens = stepInput.At(SettingsBytes);

        stream.BeginCapture();
        try
        {
            stepInput.AsyncCopyToDevice(hostInput, stream);
            LaunchGradients(Models, parameters.DevicePointer, tokens, batch, stepPartials);
            optimizerStep.GridDimensions = Models;
            optimizerStep.BlockDimensions = OptimizerBlock;
            optimizerStep.RunAsync(stream, dims, stepPartials, nblk, settings, parameters, adamM, adamV, step,
                outcome.At(Models), outcome.DevicePointer, grokfastEma);
            outcome.AsyncCopyToHost(hostOutcome, stream);
        }
        catch
        {
            // End the broken capture so the stream is usable again; the first error is the one to report.
            try { stream.EndCapture().Dispose(); } catch (AdderException) { }
            throw;
        }
        using var captured = stream.EndCapture();
        graph = captured.Instantiate();
        graphBatch = batch;
    }

    /// <summary>The gradient kernel for `models` models of `batch` sequences, its block, its blocks a model and the
    /// partial records it writes a model (ABI.md "partials"): the row kernels for the 311p family, the one that holds
    /// more blocks an SM where the grid of the other would fill the GPU more than twice (BENCHMARKS). Both row
    /// kernels write the same records, so the choice does not change a model's step.</summary>
    (CudaKernel Kernel, int Block, int Blocks, int Records) GradientKernel(int models, int batch)
    {
        if (!rows) return (trainStep, SequenceBlock, Blocks(batch, SequenceBlock), Blocks(batch, SequenceBlock));
        int few = Blocks(batch, FewSequences), records = Blocks(batch, RowGroup);
        return (long)few * models > 2L * multiprocessors
            ? (rowsMany!, RowThreads(ManySequences), Blocks(batch, ManySequences), records)
            : (rowsFew!, RowThreads(FewSequences), few, records);
    }

    /// <summary>Forward and backward of `models` models (from `parameters` on) over batch sequences each.</summary>
    void LaunchGradients(int models, ulong parameters, ulong tokens, int batch, IDevicePointer partials)
    {
        var (kernel, block, blocks, _) = GradientKernel(models, batch);
        kernel.GridDimensions = new dim3((uint)blocks, (uint)models);
        kernel.BlockDimensions = block;
        kernel.RunAsync(stream, dims, parameters, tokens, batch, partials);
    }

    public float LossAndGradient(int model, ReadOnlySpan<int> tokens, int batch, Span<float> grad)
    {
        CheckModel(model);
        BackendContract.Batch(batch);
        CheckLength(tokens.Length, (long)batch * Tokens.FullLength, "tokens");
        CheckLength(grad.Length, P, "gradient");
        context.SetCurrent();
        int nblk = GradientKernel(1, batch).Records;
        var t = Scratch(ref scratchTokenBytes, tokens.Length);
        var partials = Scratch(ref scratchPartials, (long)nblk * G);
        var g = Scratch(ref scratchGrad, P);
        var l = Scratch(ref scratchFloats, 1);
        var bytes = new byte[tokens.Length];
        NarrowTokens(tokens, bytes);
        t.CopyToDevice(bytes);
        // One model: a grid of height 1 with the base pointers moved to model `model`'s parameters.
        LaunchGradients(1, parameters.At((long)model * P), t.DevicePointer, batch, partials);
        reduceGradients.GridDimensions = 1;
        reduceGradients.BlockDimensions = ModelBlock;
        reduceGradients.RunAsync(stream, dims, parameters.At((long)model * P), partials, nblk, g, l);
        stream.Synchronize();
        g.CopyToHost(grad[..P]);
        var result = new float[1];
        l.CopyToHost(result);
        return result[0];
    }

    public void Logits(int model, ReadOnlySpan<int> tokens, int count, Span<float> output)
    {
        CheckModel(model);
        BackendContract.Count(count);
        CheckLength(tokens.Length, (long)count * Tokens.FullLength, "tokens");
        CheckLength(output.Length, (long)count * Tokens.InputLength * Config.VocabSize, "logits");
        RunPerSequence(logits, model, tokens, count, output, ref scratchFloats);
    }

    public void Decode(int model, ReadOnlySpan<int> prompts, int count, Span<int> output)
    {
        CheckModel(model);
        BackendContract.Count(count);
        CheckLength(prompts.Length, (long)count * Tokens.PromptLength, "prompts");
        CheckLength(output.Length, (long)count * Tokens.SumDigits, "output");
        RunPerSequence(decode, model, prompts, count, output, ref scratchOut);
    }

    /// <summary>An inference kernel (adder_logits, adder_decode: one thread per sequence) over one model: its
    /// tokens up, a grid of height 1 with the base pointer moved to that model's parameters, its output down.</summary>
    void RunPerSequence<T>(CudaKernel kernel, int model, ReadOnlySpan<int> input, int count, Span<T> output,
        ref CudaDeviceVariable<T>? scratch) where T : unmanaged
    {
        CheckModel(model);
        if (count == 0) return;
        context.SetCurrent();
        var t = Scratch(ref scratchTokens, input.Length);
        var o = Scratch(ref scratch, output.Length);
        t.CopyToDevice(input);
        kernel.GridDimensions = new dim3((uint)Blocks(count, SequenceBlock), 1);
        kernel.BlockDimensions = SequenceBlock;
        kernel.RunAsync(stream, dims, parameters.At((long)model * P), t, count, o);
        stream.Synchronize();
        o.CopyToHost(output);
    }

    void DisposeGraph()
    {
        graph?.Dispose(); graph = null;
        hostInput?.Dispose(); hostInput = null;
        stepInput?.Dispose(); stepInput = null;
        stepPartials?.Dispose(); stepPartials = null;
    }

    /// <summary>Frees everything; also called by a constructor that failed half-way, hence the null checks.</summary>
    public void Dispose()
    {
        if (context is null || context.Context == 0) return;
        context.SetCurrent();
        stream?.Synchronize();
        DisposeGraph();
        foreach (var b in new IDisposable?[] { scratchTokens, scratchTokenBytes, scratchOut, scratchPartials, scratchGrad, scratchFloats,
                     parameters, adamM, adamV, step, grokfastEma, outcome, hostOutcome, stream })
            b?.Dispose();
        foreach (var m in modules) m.Dispose();
        context.Dispose();
    }
}
