using Adder.Kernels.Native;
using static Adder.Kernels.Native.CuBlas;

namespace Adder.Kernels;

/// <summary>Whether a cuBLAS operand is transposed (cublasOperation_t).</summary>
public enum Operation { NonTranspose = CUBLAS_OP_N, Transpose = CUBLAS_OP_T }

/// <summary>A cuBLAS handle bound to a stream (ManagedCuda's CudaBlas). Matrices are column-major, as in
/// cuBLAS; operands are device addresses (CudaDeviceVariable.At).</summary>
public sealed unsafe class CudaBlas : IDisposable
{
    public nint Handle { get; private set; }

    public CudaBlas(CudaStream stream)
    {
        NativeResolver.Install();
        nint handle;
        try { Cuda.CheckBlas(cublasCreate_v2(out handle), "cublasCreate_v2"); }
        catch (DllNotFoundException)
        {
            throw new AdderException("cuBLAS not found: tried " + string.Join(", ", NativeResolver.CuBlasCandidates().Take(3)) +
                " and the usual CUDA folders (set ADDER_CUBLAS to the file)");
        }
        Handle = handle;
        Stream = stream;
    }

    public CudaStream Stream
    {
        set => CheckBlas(cublasSetStream_v2(Handle, value.Stream), "cublasSetStream_v2");
    }

    /// <summary>C = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n, C m×n.</summary>
    public void Gemm(Operation transa, Operation transb, int m, int n, int k, float alpha, ulong a, int lda,
        ulong b, int ldb, float beta, ulong c, int ldc) =>
        CheckBlas(cublasSgemm_v2(Handle, (int)transa, (int)transb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc), "cublasSgemm_v2");

    /// <summary>batchCount independent Gemms, operand i at a + i·strideA (strides in elements).</summary>
    public void GemmStridedBatched(Operation transa, Operation transb, int m, int n, int k, float alpha,
        ulong a, int lda, long strideA, ulong b, int ldb, long strideB, float beta, ulong c, int ldc, long strideC, int batchCount) =>
        CheckBlas(cublasSgemmStridedBatched(Handle, (int)transa, (int)transb, m, n, k, &alpha, a, lda, strideA,
            b, ldb, strideB, &beta, c, ldc, strideC, batchCount), "cublasSgemmStridedBatched");

    static void CheckBlas(int status, string call) => Cuda.CheckBlas(status, call);

    public void Dispose()
    {
        if (Handle == 0) return;
        var h = Handle;
        Handle = 0;
        CheckBlas(cublasDestroy_v2(h), "cublasDestroy_v2");
    }
}
