using System.Runtime.CompilerServices;
using static Adder.Kernels.Native.CudaDriver;

namespace Adder.Kernels;

/// <summary>A device buffer of Size elements of T (ManagedCuda's CudaDeviceVariable). Offsets and counts
/// are in elements.</summary>
public sealed unsafe class CudaDeviceVariable<T> : IDevicePointer, IDisposable where T : unmanaged
{
    public ulong DevicePointer { get; private set; }
    public long Size { get; }
    public long SizeInBytes => Size * sizeof(T);

    public CudaDeviceVariable(long size)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size));
        Size = size;
        Cuda.Check(cuMemAlloc_v2(out var pointer, (nuint)SizeInBytes), "cuMemAlloc_v2");
        DevicePointer = pointer;
    }

    /// <summary>The device address of element i (for cuBLAS and kernels that take a slice).</summary>
    public ulong At(long i) => DevicePointer + (ulong)(i * sizeof(T));

    void CheckRange(long offset, long count)
    {
        if (offset < 0 || count < 0 || offset + count > Size)
            throw new ArgumentOutOfRangeException(nameof(offset), $"elements {offset}..{offset + count} of a buffer of {Size}");
    }

    public void CopyToDevice(ReadOnlySpan<T> source, long offset = 0)
    {
        CheckRange(offset, source.Length);
        fixed (T* p = source) Cuda.Check(cuMemcpyHtoD_v2(At(offset), p, (nuint)(source.Length * sizeof(T))), "cuMemcpyHtoD_v2");
    }

    public void CopyToHost(Span<T> destination, long offset = 0)
    {
        CheckRange(offset, destination.Length);
        fixed (T* p = destination) Cuda.Check(cuMemcpyDtoH_v2(p, At(offset), (nuint)(destination.Length * sizeof(T))), "cuMemcpyDtoH_v2");
    }

    /// <summary>Enqueues a copy of count elements from pinned host memory (count = all of it by default).</summary>
    public void AsyncCopyToDevice(CudaPinnedHostMemory<T> source, CudaStream stream, long offset = 0, long count = -1)
    {
        if (count < 0) count = source.Size;
        CheckRange(offset, count);
        if (count > source.Size) throw new ArgumentOutOfRangeException(nameof(count));
        Cuda.Check(cuMemcpyHtoDAsync_v2(At(offset), source.PinnedHostPointer, (nuint)(count * sizeof(T)), stream.Stream), "cuMemcpyHtoDAsync_v2");
    }

    public void AsyncCopyToHost(CudaPinnedHostMemory<T> destination, CudaStream stream, long offset = 0, long count = -1)
    {
        if (count < 0) count = destination.Size;
        CheckRange(offset, count);
        if (count > destination.Size) throw new ArgumentOutOfRangeException(nameof(count));
        Cuda.Check(cuMemcpyDtoHAsync_v2(destination.PinnedHostPointer, At(offset), (nuint)(count * sizeof(T)), stream.Stream), "cuMemcpyDtoHAsync_v2");
    }

    /// <summary>Sets every byte to value (cuMemsetD8), e.g. 0 to clear.</summary>
    public void Memset(byte value) => Cuda.Check(cuMemsetD8_v2(DevicePointer, value, (nuint)SizeInBytes), "cuMemsetD8_v2");

    /// <summary>Sets every 32-bit word to value (cuMemsetD32); T must be 4 bytes wide.</summary>
    public void Memset(uint value)
    {
        if (sizeof(T) != 4) throw new InvalidOperationException("Memset(uint) needs 4-byte elements");
        Cuda.Check(cuMemsetD32_v2(DevicePointer, value, (nuint)Size), "cuMemsetD32_v2");
    }

    /// <summary>Stream-ordered 32-bit memset (capturable into a graph).</summary>
    public void MemsetAsync(uint value, CudaStream stream)
    {
        if (SizeInBytes % 4 != 0) throw new InvalidOperationException("MemsetAsync needs a size in whole 32-bit words");
        Cuda.Check(cuMemsetD32Async(DevicePointer, value, (nuint)(SizeInBytes / 4), stream.Stream), "cuMemsetD32Async");
    }

    public void Dispose()
    {
        if (DevicePointer == 0) return;
        var p = DevicePointer;
        DevicePointer = 0;
        Cuda.Check(cuMemFree_v2(p), "cuMemFree_v2");
    }
}

/// <summary>Page-locked host memory, the source and target of async copies (ManagedCuda's CudaPinnedHostMemory).</summary>
public sealed unsafe class CudaPinnedHostMemory<T> : IDisposable where T : unmanaged
{
    public void* PinnedHostPointer { get; private set; }
    public long Size { get; }

    public CudaPinnedHostMemory(long size)
    {
        if (size <= 0 || size * sizeof(T) > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(size));
        Size = size;
        Cuda.Check(cuMemAllocHost_v2(out var p, (nuint)(size * sizeof(T))), "cuMemAllocHost_v2");
        PinnedHostPointer = p;
    }

    public Span<T> Span => new(PinnedHostPointer, (int)Size);

    public ref T this[long i] => ref Span[(int)i];

    public void Dispose()
    {
        if (PinnedHostPointer == null) return;
        var p = PinnedHostPointer;
        PinnedHostPointer = null;
        Cuda.Check(cuMemFreeHost(p), "cuMemFreeHost");
    }
}
