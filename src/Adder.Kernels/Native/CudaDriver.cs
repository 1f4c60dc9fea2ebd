using System.Runtime.InteropServices;

namespace Adder.Kernels.Native;

/// <summary>The CUDA driver API calls this project uses (cuda.h), bound by name. Handles are nint,
/// device pointers ulong (CUdeviceptr), size_t nuint. Every call returns a CUresult (0 = CUDA_SUCCESS);
/// check it with <see cref="Cuda.Check"/>.</summary>
internal static partial class CudaDriver
{
    public const string Library = "libcuda.so.1";

    public const int CUDA_SUCCESS = 0, CUDA_ERROR_NO_DEVICE = 100;
    public const int CU_STREAM_NON_BLOCKING = 1;
    public const int CU_STREAM_CAPTURE_MODE_GLOBAL = 0, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
    public const int CU_EVENT_DEFAULT = 0;
    public const int CU_LIMIT_STACK_SIZE = 0;
    public const int CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8,
        CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
    public const int CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1,
        CU_FUNC_ATTRIBUTE_NUM_REGS = 4, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

    [LibraryImport(Library)] public static partial int cuInit(uint flags);
    [LibraryImport(Library)] public static partial int cuDriverGetVersion(out int version);
    [LibraryImport(Library)] public static partial int cuGetErrorName(int error, out nint name);

    [LibraryImport(Library)] public static partial int cuDeviceGetCount(out int count);
    [LibraryImport(Library)] public static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Library)] public static unsafe partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Library)] public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(Library)] public static partial int cuDeviceTotalMem_v2(out nuint bytes, int device);

    // The primary context is the one cuBLAS (through the runtime) also uses.
    [LibraryImport(Library)] public static partial int cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(Library)] public static partial int cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(Library)] public static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(Library)] public static partial int cuCtxSynchronize();
    [LibraryImport(Library)] public static partial int cuCtxSetLimit(int limit, nuint value);

    [LibraryImport(Library)] public static unsafe partial int cuModuleLoadDataEx(out nint module, byte* image, uint numOptions, int* options, nint* optionValues);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] public static partial int cuModuleGetFunction(out nint function, nint module, string name);
    [LibraryImport(Library)] public static partial int cuModuleUnload(nint module);
    [LibraryImport(Library)] public static partial int cuFuncGetAttribute(out int value, int attribute, nint function);
    [LibraryImport(Library)] public static partial int cuFuncSetAttribute(nint function, int attribute, int value);
    [LibraryImport(Library)] public static unsafe partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ,
        uint blockX, uint blockY, uint blockZ, uint sharedMemBytes, nint stream, void** kernelParams, void** extra);

    [LibraryImport(Library)] public static partial int cuMemAlloc_v2(out ulong pointer, nuint bytes);
    [LibraryImport(Library)] public static partial int cuMemFree_v2(ulong pointer);
    [LibraryImport(Library)] public static unsafe partial int cuMemcpyHtoD_v2(ulong destination, void* source, nuint bytes);
    [LibraryImport(Library)] public static unsafe partial int cuMemcpyDtoH_v2(void* destination, ulong source, nuint bytes);
    [LibraryImport(Library)] public static unsafe partial int cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, nint stream);
    [LibraryImport(Library)] public static unsafe partial int cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(Library)] public static partial int cuMemsetD8_v2(ulong destination, byte value, nuint count);
    [LibraryImport(Library)] public static partial int cuMemsetD32_v2(ulong destination, uint value, nuint count);
    [LibraryImport(Library)] public static partial int cuMemsetD32Async(ulong destination, uint value, nuint count, nint stream);
    [LibraryImport(Library)] public static unsafe partial int cuMemAllocHost_v2(out void* pointer, nuint bytes);
    [LibraryImport(Library)] public static unsafe partial int cuMemFreeHost(void* pointer);

    [LibraryImport(Library)] public static partial int cuStreamCreate(out nint stream, uint flags);
    [LibraryImport(Library)] public static partial int cuStreamDestroy_v2(nint stream);
    [LibraryImport(Library)] public static partial int cuStreamSynchronize(nint stream);
    [LibraryImport(Library)] public static partial int cuStreamBeginCapture_v2(nint stream, int mode);
    [LibraryImport(Library)] public static partial int cuStreamEndCapture(nint stream, out nint graph);
    [LibraryImport(Library)] public static partial int cuGraphInstantiateWithFlags(out nint graphExec, nint graph, ulong flags);
    [LibraryImport(Library)] public static partial int cuGraphLaunch(nint graphExec, nint stream);
    [LibraryImport(Library)] public static partial int cuGraphExecDestroy(nint graphExec);
    [LibraryImport(Library)] public static partial int cuGraphDestroy(nint graph);

    [LibraryImport(Library)] public static partial int cuEventCreate(out nint @event, uint flags);
    [LibraryImport(Library)] public static partial int cuEventRecord(nint @event, nint stream);
    [LibraryImport(Library)] public static partial int cuEventSynchronize(nint @event);
    [LibraryImport(Library)] public static partial int cuEventElapsedTime(out float milliseconds, nint start, nint end);
    [LibraryImport(Library)] public static partial int cuEventDestroy_v2(nint @event);

}
