using System.Runtime.InteropServices;
using System.Text;

namespace Adder.Core;

/// <summary>Paths and inputs that hostile input cannot turn against us: what a path is, output
/// paths checked before any work (the writing itself is <see cref="AtomicFile"/>), inputs read only from
/// regular files no larger than a stated cap, and a run folder locked while a run uses it.</summary>
public static class SafeFiles
{
    public enum Kind { Missing, Regular, Directory, Symlink, Other }

    // statx's struct is the same on every Linux architecture (unlike stat's): stx_mode is a u16 at byte 28.
    [DllImport("libc", SetLastError = true, EntryPoint = "statx")]
    static extern int Statx(int dirfd, string path, int flags, uint mask, [Out] byte[] buffer);
    const int AtFdCwd = -100, AtSymlinkNoFollow = 0x100;
    const uint StatxType = 1;
    static bool statxMissing;

    /// <summary>What a path is; followLinks false reports a symbolic link itself.</summary>
    public static Kind KindOf(string path, bool followLinks)
    {
        if (!statxMissing && OperatingSystem.IsLinux())
        {
            try
            {
                var buffer = new byte[256];
                if (Statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxType, buffer) != 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno is 2 or 20) return Kind.Missing;   // ENOENT, ENOTDIR
                    throw new AdderException($"cannot access {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
                }
                return (BitConverter.ToUInt16(buffer, 28) & 0xF000) switch
                {
                    0x8000 => Kind.Regular,
                    0x4000 => Kind.Directory,
                    0xA000 => Kind.Symlink,
                    _ => Kind.Other,
                };
            }
            catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { statxMissing = true; }
        }
        var info = new FileInfo(path);
        if (!followLinks && info.LinkTarget is not null) return Kind.Symlink;
        if (Directory.Exists(path)) return Kind.Directory;
        return File.Exists(path) ? Kind.Regular : Kind.Missing;
    }

    /// <summary>Refuses an output path that cannot be a file: empty, a NUL inside, or a folder.</summary>
    public static void CheckOutputPath(string path, string what)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new AdderException($"{what}: the path is empty");
        if (path.Contains('\0')) throw new AdderException($"{what}: the path contains a NUL character");
        if (KindOf(path, followLinks: true) == Kind.Directory) throw new AdderException($"{what} {path} is a folder; give a file name");
    }

    /// <summary>Checks, before any work, that AtomicFile.Write can write path: its folder exists.</summary>
    public static void CheckWritable(string path, string what)
    {
        CheckOutputPath(path, what);
        if (KindOf(path, followLinks: true) == Kind.Other) return;
        var target = FinalTarget(path);
        var dir = Path.GetDirectoryName(Path.GetFullPath(target))!;
        if (KindOf(dir, followLinks: true) != Kind.Directory) throw new AdderException($"output folder does not exist: {dir}");
    }

    /// <summary>The path with every symbolic link in it resolved, as realpath(3) does, for a path that need not
    /// exist (its missing part is kept as written): two paths that name the same file give the same string.</summary>
    public static string ResolvedPath(string path)
    {
        // not Path.GetFullPath: it drops "link/.." as text, where the kernel goes to the link target's parent
        var full = Path.IsPathRooted(path) ? path : Path.Combine(Directory.GetCurrentDirectory(), path);
        var root = Path.GetPathRoot(full)!;
        var pending = new Stack<string>(full[root.Length..].Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        var resolved = root;
        int links = 0;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == ".") continue;
            if (part == "..") { resolved = Path.GetDirectoryName(resolved) ?? root; continue; }
            var next = Path.Combine(resolved, part);
            string? target;
            try { target = new FileInfo(next).LinkTarget; }
            catch (IOException) { target = null; }
            if (target is null) { resolved = next; continue; }
            // as the kernel does (ELOOP): a cycle of links has no end
            if (++links > 40) throw new AdderException($"cannot resolve {path}: too many levels of symbolic links");
            var parts = target.Split('/', StringSplitOptions.RemoveEmptyEntries);
            for (int i = parts.Length - 1; i >= 0; i--) pending.Push(parts[i]);
            if (Path.IsPathRooted(target)) resolved = root;
        }
        return resolved;
    }

    /// <summary>Refuses an output that names one of the command's inputs (role: what it is, e.g. "the checkpoint"),
    /// after resolving links: the output is written over its target, so the command would replace what it reads.</summary>
    public static void CheckNotAnInput(string output, string what, params (string Path, string Role)[] inputs)
    {
        // an empty path or one with a NUL names no file: CheckOutputPath says so
        static bool names(string p) => !string.IsNullOrWhiteSpace(p) && !p.Contains('\0');
        if (!names(output)) return;
        var target = ResolvedPath(output);
        foreach (var (input, role) in inputs)
            if (names(input) && string.Equals(target, ResolvedPath(input), StringComparison.Ordinal))
                throw new AdderException($"{what} {output} is {role} being read; write to another file");
    }

    /// <summary>CheckNotAnInput for a command that reads one file.</summary>
    public static void CheckNotAnInput(string output, string what, string input, string role) =>
        CheckNotAnInput(output, what, (input, role));

    /// <summary>The path a symbolic link chain ends at (the path itself when it is not a link).</summary>
    internal static string FinalTarget(string path)
    {
        if (KindOf(path, followLinks: false) != Kind.Symlink) return path;
        // from the full path: a relative link target is relative to the link's folder
        try { return File.ResolveLinkTarget(Path.GetFullPath(path), returnFinalTarget: true)?.FullName ?? path; }
        catch (IOException e) { throw new AdderException($"cannot follow the link {path}: {e.Message}"); }
    }

    /// <summary>Reads a whole input file, refusing anything but a regular file of at most maxBytes (a device
    /// such as /dev/zero, a FIFO, or a file that grows past the cap while it is read).</summary>
    public static byte[] ReadAllBytes(string path, long maxBytes, string what)
    {
        if (string.IsNullOrEmpty(path)) throw new AdderException($"{what}: the path is empty");
        switch (KindOf(path, followLinks: true))
        {
            case Kind.Missing: throw new AdderException($"{what} not found: {path}");
            case Kind.Directory: throw new AdderException($"{what} {path} is a folder, not a file");
            case Kind.Other: throw new AdderException($"{what} {path} is not a regular file (a device or a pipe)");
        }
        try
        {
            using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (s.Length > maxBytes) throw new AdderException($"{what} {path} has {s.Length} bytes, more than the limit of {maxBytes}");
            return ReadCapped(s, maxBytes) ?? throw new AdderException($"{what} {path} grew past the limit of {maxBytes} bytes while being read");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AdderException($"cannot read {what} {path}: {e.Message}");
        }
    }

    public static string ReadAllText(string path, string what) => Encoding.UTF8.GetString(ReadAllBytes(path, Limits.MaxTextFileBytes, what));

    /// <summary>Reads a stream to its end, or returns null as soon as it holds more than maxBytes.</summary>
    public static byte[]? ReadCapped(Stream s, long maxBytes)
    {
        using var m = new MemoryStream();
        var buffer = new byte[81920];
        int n;
        while ((n = s.Read(buffer, 0, buffer.Length)) > 0)
        {
            if (m.Length + n > maxBytes) return null;
            m.Write(buffer, 0, n);
        }
        return m.ToArray();
    }

    /// <summary>The lock file of a run folder.</summary>
    public const string LockName = ".adder-lock";

    /// <summary>Locks a run folder for this process: an exclusive lock (flock) on its lock file, released by the
    /// kernel when the process ends however it ends, so a lock left by a killed run never blocks. Dispose removes it.</summary>
    public static IDisposable LockFolder(string dir)
    {
        var path = Path.Combine(dir, LockName);
        FileStream s;
        try { s = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException)
        {
            throw new AdderException($"run folder {dir} is in use by another adder process (it holds {path}); wait for it to finish or choose another --out");
        }
        catch (UnauthorizedAccessException e) { throw new AdderException($"cannot lock run folder {dir}: {e.Message}"); }
        s.SetLength(0);
        s.Write(Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
        s.Flush();
        return new FolderLock(s, path);
    }

    sealed class FolderLock(FileStream stream, string path) : IDisposable
    {
        public void Dispose()
        {
            try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            stream.Dispose();
        }
    }

    /// <summary>Whether a folder holds anything but our lock file and temporaries.</summary>
    public static bool HoldsFiles(string dir) =>
        Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir)
            .Select(Path.GetFileName).Any(n => n != LockName && !(n!.StartsWith('.') && n.Contains(".adder-tmp-")));
}
