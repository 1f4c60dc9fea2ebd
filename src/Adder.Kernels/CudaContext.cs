using System.Text;
using Adder.Kernels.Native;
using static Adder.Kernels.Native.CudaDriver;

namespace Adder.Kernels;

/// <summary>One device's primary context, made current on the creating thread (ManagedCuda's CudaContext).
/// Constructing it on a machine without a usable GPU throws "no CUDA device: ..." on one line.</summary>
public sealed class CudaContext : IDisposable
{
    public int DeviceId { get; }
    public nint Context { get; private set; }
    readonly int device;

    public CudaContext(int deviceId = 0)
    {
        int count = Cuda.DeviceCount();
        if (deviceId < 0 || deviceId >= count)
            throw new AdderException($"no CUDA device: device {deviceId} asked for, {count} present");
        DeviceId = deviceId;
        Cuda.Check(cuDeviceGet(out device, deviceId), "cuDeviceGet");
        Cuda.Check(cuDevicePrimaryCtxRetain(out var context, device), "cuDevicePrimaryCtxRetain");
        Context = context;
        SetCurrent();
    }

    /// <summary>Makes this context current on the calling thread (a context is current per thread).</summary>
    public void SetCurrent() => Cuda.Check(cuCtxSetCurrent(Context), "cuCtxSetCurrent");

    public void Synchronize() => Cuda.Check(cuCtxSynchronize(), "cuCtxSynchronize");

    /// <summary>Per-thread stack (local memory) size in bytes, for kernels with large stack frames.</summary>
    public void SetStackSize(long bytes) => Cuda.Check(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, (nuint)bytes), "cuCtxSetLimit");

    public unsafe string DeviceName
    {
        get
        {
            var name = new byte[256];
            fixed (byte* p = name) Cuda.Check(cuDeviceGetName(p, name.Length, device), "cuDeviceGetName");
            return Encoding.ASCII.GetString(name, 0, Math.Max(0, Array.IndexOf(name, (byte)0)));
        }
    }

    /// <summary>A CU_DEVICE_ATTRIBUTE_* value of this device.</summary>
    public int GetDeviceAttribute(int attribute)
    {
        Cuda.Check(cuDeviceGetAttribute(out var value, attribute, device), "cuDeviceGetAttribute");
        return value;
    }

    public (int Major, int Minor) ComputeCapability =>
        (GetDeviceAttribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR), GetDeviceAttribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR));

    public int MultiprocessorCount => GetDeviceAttribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);

    public ulong TotalMemory
    {
        get { Cuda.Check(cuDeviceTotalMem_v2(out var bytes, device), "cuDeviceTotalMem_v2"); return bytes; }
    }

    public void Dispose()
    {
        if (Context == 0) return;
        Context = 0;
        Cuda.Check(cuDevicePrimaryCtxRelease_v2(device), "cuDevicePrimaryCtxRelease_v2");
    }
}
