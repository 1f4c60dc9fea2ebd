using System.Runtime.InteropServices;
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

    public unsafe CudaModule(byte[] ptx, string name)
    {
        Name = name;
        // The driver JIT-compiles the PTX for this GPU; it wants a NUL-terminated image.
        var image = new byte[ptx.Length + 1];
        ptx.CopyTo(image, 0);
        nint module;
        fixed (byte* p = image)
            Cuda.Check(cuModuleLoadDataEx(out module, p, 0, null, null), $"cuModuleLoadDataEx({name})");
        Module = module;
    }

    /// <summary>Loads a PTX file embedded in this assembly as "ptx/&lt;file&gt;.ptx".</summary>
    public static CudaModule FromResource(string file)
    {
        var assembly = typeof(CudaModule).Assembly;
        using var stream = assembly.GetManifestResourceStream("ptx/" + file)
            ?? throw new AdderException($"the PTX file {file} is not embedded in Adder.Kernels");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return new CudaModule(memory.ToArray(), file);
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
    public dim3 GridDimensions { get; set; } = new(1);
    public dim3 BlockDimensions { get; set; } = new(1);
    public uint DynamicSharedMemory { get; set; }

    public CudaKernel(string name, CudaModule module)
    {
        Name = name;
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
