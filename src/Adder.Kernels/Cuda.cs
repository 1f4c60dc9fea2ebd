using System.Runtime.InteropServices;
using Adder.Kernels.Native;

namespace Adder.Kernels;

/// <summary>Checks every driver and cuBLAS call: a failure becomes a one-line AdderException naming the call
/// and the CUresult / cublasStatus name, e.g. "cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY".</summary>
public static class Cuda
{
    public static void Check(int result, string call)
    {
        if (result != CudaDriver.CUDA_SUCCESS) throw new AdderException($"{call} failed: {ErrorName(result)}");
    }

    public static void CheckBlas(int status, string call)
    {
        if (status != 0) throw new AdderException($"{call} failed: {CuBlas.StatusName(status)}");
    }

    /// <summary>The driver's name of a CUresult ("CUDA_ERROR_NO_DEVICE"), or "CUresult N" if it has none.</summary>
    public static string ErrorName(int result)
    {
        try
        {
            if (CudaDriver.cuGetErrorName(result, out var name) == CudaDriver.CUDA_SUCCESS && name != 0)
                return Marshal.PtrToStringAnsi(name) ?? $"CUresult {result}";
        }
        catch (DllNotFoundException) { }
        return $"CUresult {result}";
    }

    /// <summary>The driver's CUDA version as 1000·major + 10·minor (12020 for 12.2), or null without libcuda.</summary>
    public static int? DriverVersion()
    {
        try { return CudaDriver.cuDriverGetVersion(out var v) == CudaDriver.CUDA_SUCCESS ? v : null; }
        catch (DllNotFoundException) { return null; }
    }

    /// <summary>Initialises the driver; throws "no CUDA device: ..." (one line) when there is none to use.</summary>
    public static int DeviceCount()
    {
        int result;
        try { result = CudaDriver.cuInit(0); }
        catch (DllNotFoundException) { throw new AdderException("no CUDA device: the CUDA driver library libcuda.so.1 is not installed"); }
        if (result == CudaDriver.CUDA_ERROR_NO_DEVICE) throw new AdderException("no CUDA device: cuInit answered CUDA_ERROR_NO_DEVICE");
        if (result != CudaDriver.CUDA_SUCCESS) throw new AdderException($"no CUDA device: cuInit failed: {ErrorName(result)}");
        Check(CudaDriver.cuDeviceGetCount(out var count), "cuDeviceGetCount");
        if (count == 0) throw new AdderException("no CUDA device: cuDeviceGetCount answered 0");
        return count;
    }
}
