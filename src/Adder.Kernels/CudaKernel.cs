using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using static Adder.Kernels.Native.CudaDriver;

namespace Adder.Kernels;

/// <summary>Grid or block dimensions (CUDA's dim3).</summary>
public readonly record struct dim3(uint x, uint y = 1, uint z = 1)
{
    public static implicit operator dim3(int x) => new((uint)x);
}

/// <summary>Anything that is a device address when passed to a kernel (a buffer).</summary>
public interface IDevicePointer
{
    ulong DevicePointer { get; }
}

/// <summary>A loaded PTX module (ManagedCuda: CudaContext.LoadModulePTX).</summary>
public sealed class CudaModule : IDisposable
{
    public nint Module { get; private set; }
    public string Name { get; }
    /// <summary>The PTX text, for <see cref="PtxSignature"/>.</summary>
    public string Ptx { get; }

    public unsafe CudaModule(byte[] ptx, string name)
    {
        Name = name;
        Ptx = System.Text.Encoding.ASCII.GetString(ptx);
        // The driver JIT-compiles the PTX for this GPU; it wants a NUL-terminated image.
        var image = new byte[ptx.Length + 1];
        ptx.CopyTo(image, 0);
        nint module;
        fixed (byte* p = image)
            Cuda.Check(cuModuleLoadDataEx(out module, p, 0, null, null), $"cuModuleLoadDataEx({name})");
        Module = module;
    }

    /// <summary>Loads a PTX file embedded in this assembly as "ptx/&lt;file&gt;.ptx".</summary>
    public static CudaModule FromResource(string file) => new(EmbeddedPtx(file), file);

    public static byte[] EmbeddedPtx(string file)
    {
        using var stream = typeof(CudaModule).Assembly.GetManifestResourceStream("ptx/" + file)
            ?? throw new AdderException($"the PTX file {file} is not embedded in Adder.Kernels");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }

    public void Dispose()
    {
        if (Module == 0) return;
        var m = Module;
        Module = 0;
        Cuda.Check(cuModuleUnload(m), "cuModuleUnload");
    }
}

/// <summary>One __global__ function of a module, with its launch shape (ManagedCuda's CudaKernel).
/// Arguments are passed as the kernel declares them: buffers (their device address), int, uint, float,
/// ulong, or a blittable struct such as the dims struct.</summary>
public sealed class CudaKernel
{
    public string Name { get; }
    public nint Function { get; }
    /// <summary>The byte size of each parameter, read from the module's PTX: every launch is checked against it.</summary>
    public int[] ParameterSizes { get; }
    public dim3 GridDimensions { get; set; } = new(1);
    public dim3 BlockDimensions { get; set; } = new(1);
    public uint DynamicSharedMemory { get; set; }

    public CudaKernel(string name, CudaModule module)
    {
        Name = name;
        ParameterSizes = PtxSignature.ParameterSizes(module.Ptx, name)
            ?? throw new AdderException($"the PTX of {module.Name} has no kernel {name}");
        Cuda.Check(cuModuleGetFunction(out var function, module.Module, name), $"cuModuleGetFunction({name})");
        Function = function;
    }

    public int GetAttribute(int attribute)
    {
        Cuda.Check(cuFuncGetAttribute(out var value, attribute, Function), $"cuFuncGetAttribute({Name})");
        return value;
    }

    public int MaxThreadsPerBlock => GetAttribute(CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    public int Registers => GetAttribute(CU_FUNC_ATTRIBUTE_NUM_REGS);

    /// <summary>Allows more than 48 KiB of dynamic shared memory (needed before such a launch).</summary>
    public void SetMaxDynamicSharedMemory(int bytes) =>
        Cuda.Check(cuFuncSetAttribute(Function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes), $"cuFuncSetAttribute({Name})");

    /// <summary>Launches on the legacy default stream and waits for the kernel to finish.</summary>
    public void Run(params object[] args)
    {
        RunAsync(0, args);
        Cuda.Check(cuCtxSynchronize(), $"{Name} (cuCtxSynchronize)");
    }

    public void RunAsync(CudaStream stream, params object[] args) => RunAsync(stream.Stream, args);

    /// <summary>Enqueues the kernel; the driver copies the argument values before this returns.</summary>
    public unsafe void RunAsync(nint stream, params object[] args)
    {
        PtxSignature.CheckArguments(Name, ParameterSizes, args);
        var handles = new GCHandle[args.Length];
        var pointers = stackalloc void*[Math.Max(1, args.Length)];
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                object value = args[i] is IDevicePointer buffer ? buffer.DevicePointer : args[i];
                handles[i] = GCHandle.Alloc(value, GCHandleType.Pinned);
                pointers[i] = (void*)handles[i].AddrOfPinnedObject();
            }
            var (g, b) = (GridDimensions, BlockDimensions);
            Cuda.Check(cuLaunchKernel(Function, g.x, g.y, g.z, b.x, b.y, b.z, DynamicSharedMemory, stream, pointers, null),
                $"cuLaunchKernel({Name})");
        }
        finally
        {
            foreach (var h in handles) if (h.IsAllocated) h.Free();
        }
    }
}

/// <summary>Reads a kernel's parameter list from its PTX (.entry name(.param .u64 ..., ...)), so that a launch
/// whose arguments do not match the kernel fails on one line instead of passing shifted bytes.</summary>
public static class PtxSignature
{
    /// <summary>The byte size of each parameter of the .entry, or null if the PTX has no such entry.</summary>
    public static int[]? ParameterSizes(string ptx, string entry)
    {
        var m = Regex.Match(ptx, @"\.entry\s+" + Regex.Escape(entry) + @"\s*\(([^)]*)\)");
        if (!m.Success) return null;
        var sizes = new List<int>();
        foreach (var raw in m.Groups[1].Value.Split(','))
        {
            var p = raw.Trim();
            if (p.Length == 0) continue;
            var array = Regex.Match(p, @"\.b8\s+\w+\[(\d+)\]");
            if (array.Success) { sizes.Add(int.Parse(array.Groups[1].Value)); continue; }
            var scalar = Regex.Match(p, @"\.param\s+\.[usbf](8|16|32|64)\s");
            if (!scalar.Success) throw new AdderException($"cannot read the PTX parameter '{p}' of {entry}");
            sizes.Add(int.Parse(scalar.Groups[1].Value) / 8);
        }
        return sizes.ToArray();
    }

    /// <summary>The byte size an argument is passed with (a buffer is its 8-byte device address).</summary>
    public static int ArgumentSize(object arg) => arg is IDevicePointer ? 8 : Marshal.SizeOf(arg);

    public static void CheckArguments(string kernel, int[] parameterSizes, object[] args)
    {
        if (args.Length != parameterSizes.Length)
            throw new AdderException($"{kernel} takes {parameterSizes.Length} arguments, {args.Length} given");
        for (int i = 0; i < args.Length; i++)
        {
            int size = ArgumentSize(args[i]);
            if (size != parameterSizes[i])
                throw new AdderException($"{kernel}: argument {i} is {size} bytes ({args[i].GetType().Name}), the kernel's parameter {i} is {parameterSizes[i]} bytes");
        }
    }
}
