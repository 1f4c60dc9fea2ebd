using System.Reflection;
using System.Runtime.InteropServices;

namespace Adder.Kernels.Native;

/// <summary>The cuBLAS calls this project uses (cublas_api.h). "libcublas" is resolved by
/// <see cref="NativeResolver"/>: the lent machines have cuBLAS 13, Debian's toolkit has 11, and neither
/// need be on the loader path.</summary>
internal static partial class CuBlas
{
    public const string Library = "libcublas";
    public const int CUBLAS_OP_N = 0, CUBLAS_OP_T = 1;

    [LibraryImport(Library)] public static partial int cublasCreate_v2(out nint handle);
    [LibraryImport(Library)] public static partial int cublasDestroy_v2(nint handle);
    [LibraryImport(Library)] public static partial int cublasSetStream_v2(nint handle, nint stream);
    [LibraryImport(Library)] public static partial nint cublasGetStatusName(int status);
    [LibraryImport(Library)] public static unsafe partial int cublasSgemm_v2(nint handle, int transa, int transb, int m, int n, int k,
        float* alpha, ulong a, int lda, ulong b, int ldb, float* beta, ulong c, int ldc);
    [LibraryImport(Library)] public static unsafe partial int cublasSgemmStridedBatched(nint handle, int transa, int transb, int m, int n, int k,
        float* alpha, ulong a, int lda, long strideA, ulong b, int ldb, long strideB, float* beta, ulong c, int ldc, long strideC, int batchCount);

    /// <summary>cublasStatus_t names (cublas_api.h), so a failure to load cuBLAS itself can still be named.</summary>
    public static string StatusName(int status) => status switch
    {
        0 => "CUBLAS_STATUS_SUCCESS",
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        16 => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => $"cublasStatus {status}",
    };
}

/// <summary>Finds cuBLAS for <see cref="CuBlas"/>: newest soname first, through the normal search path, then
/// the usual CUDA folders and the pip package nvidia-cublas (the lent machines' PyTorch brings it).</summary>
internal static class NativeResolver
{
    static readonly string[] Sonames = ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11"];
    static readonly string[] Folders = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"];
    static int installed;

    /// <summary>Installs the resolver for this assembly once (a second SetDllImportResolver would throw).</summary>
    public static void Install()
    {
        if (Interlocked.Exchange(ref installed, 1) == 0)
            NativeLibrary.SetDllImportResolver(typeof(NativeResolver).Assembly, Resolve);
    }

    static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
        name == CuBlas.Library ? LoadCuBlas() : 0;

    /// <summary>The candidate files in the order they are tried (bare sonames go through dlopen's search).</summary>
    public static IEnumerable<string> CuBlasCandidates()
    {
        // ADDER_CUBLAS names the file outright, for a machine where none of the places below has it.
        if (Environment.GetEnvironmentVariable("ADDER_CUBLAS") is { Length: > 0 } file) yield return file;
        foreach (var so in Sonames) yield return so;
        var folders = Folders.Concat(VersionedCudaFolders()).Concat(PipFolders()).ToList();
        foreach (var so in Sonames)
            foreach (var folder in folders)
                yield return Path.Combine(folder, so);
    }

    static nint LoadCuBlas()
    {
        foreach (var candidate in CuBlasCandidates())
            if (NativeLibrary.TryLoad(candidate, out var handle)) return handle;
        return 0;   // the runtime then throws DllNotFoundException, which CudaBlas turns into a one-line error
    }

    /// <summary>/usr/local/cuda-X.Y/lib64 and the like (the lent H200 has cuBLAS at /usr/local/cuda-13.0/lib64).</summary>
    static IEnumerable<string> VersionedCudaFolders() =>
        SafeDirectories("/usr/local", "cuda-*")
            .SelectMany(d => new[] { Path.Combine(d, "lib64"), Path.Combine(d, "targets", "x86_64-linux", "lib") });

    /// <summary>site-packages/nvidia/cublas/lib of every Python under /usr/lib, /usr/local/lib and ~/.local/lib.</summary>
    static IEnumerable<string> PipFolders()
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        foreach (var root in new[] { "/usr/lib", "/usr/local/lib", Path.Combine(home, ".local", "lib") })
        {
            if (!Directory.Exists(root)) continue;
            foreach (var python in SafeDirectories(root, "python3*"))
                foreach (var packages in new[] { "site-packages", "dist-packages" })
                {
                    var lib = Path.Combine(python, packages, "nvidia", "cublas", "lib");
                    if (Directory.Exists(lib)) yield return lib;
                }
        }
    }

    static string[] SafeDirectories(string root, string pattern)
    {
        try { return Directory.Exists(root) ? Directory.GetDirectories(root, pattern) : []; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }
}
