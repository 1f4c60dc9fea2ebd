using System.Runtime.InteropServices;
using System.Text;

namespace Adder.Core;

/// <summary>Reading and writing files so that hostile paths cannot clobber or exhaust anything (issue 12):
/// outputs are written through a temporary file and renamed into place, except that a device, a FIFO or
/// standard output is written through (never replaced by a regular file); inputs are read only from regular
/// files no larger than a stated cap; a run folder is locked while a run uses it.</summary>
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

    /// <summary>Checks, before any work, that WriteAtomic can write path: its folder exists.</summary>
    public static void CheckWritable(string path, string what)
    {
        CheckOutputPath(path, what);
        if (KindOf(path, followLinks: true) == Kind.Other) return;
        var target = FinalTarget(path);
        var dir = Path.GetDirectoryName(Path.GetFullPath(target))!;
        if (KindOf(dir, followLinks: true) != Kind.Directory) throw new AdderException($"output folder does not exist: {dir}");
    }

    /// <summary>The path a symbolic link chain ends at (the path itself when it is not a link).</summary>
    static string FinalTarget(string path)
    {
        if (KindOf(path, followLinks: false) != Kind.Symlink) return path;
        // from the full path: a relative link target is relative to the link's folder
        try { return File.ResolveLinkTarget(Path.GetFullPath(path), returnFinalTarget: true)?.FullName ?? path; }
        catch (IOException e) { throw new AdderException($"cannot follow the link {path}: {e.Message}"); }
    }

    /// <summary>Writes a file so that a failure never leaves half of it: through a temporary file in the target's
    /// folder, renamed over the target. A symbolic link is followed (its target is replaced, the link stays); a
    /// device, FIFO or standard output (/dev/stdout) is written through directly. Any failed write is an error.</summary>
    public static void WriteAtomic(string path, Action<Stream> write)
    {
        CheckOutputPath(path, "output");
        if (StandardStream(path) is { } standard)
        {
            Guard(path, () => { using var s = standard; write(s); s.Flush(); });
            return;
        }
        if (KindOf(path, followLinks: true) == Kind.Other)
        {
            // a device or FIFO: what is written must reach it; replacing it with a regular file would hide the output
            Guard(path, () =>
            {
                using var s = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1);
                write(s);
                s.Flush();
            });
            return;
        }
        var target = Path.GetFullPath(FinalTarget(path));
        var dir = Path.GetDirectoryName(target)!;
        if (KindOf(dir, followLinks: true) != Kind.Directory) throw new AdderException($"output folder does not exist: {dir}");
        var name = Path.GetFileName(target);
        RemoveStaleTemporaries(dir, name);
        var temp = Path.Combine(dir, TemporaryPrefix(name) + $"{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Guard(path, () =>
            {
                using (var s = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                {
                    write(s);
                    s.Flush();
                }
                File.Move(temp, target, overwrite: true);
            });
        }
        finally
        {
            try { if (File.Exists(temp)) File.Delete(temp); } catch (IOException) { }
        }
    }

    public static void WriteTextAtomic(string path, string text) => WriteAtomic(path, s => s.Write(Encoding.UTF8.GetBytes(text)));

    static void Guard(string path, Action action)
    {
        try { action(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new AdderException($"cannot write {path}: {e.Message}");
        }
    }

    /// <summary>/dev/stdout, /dev/stderr and /proc/self/fd/1 or 2 name this process's own output: written to
    /// the stream we already hold (renaming over them would replace a system file or lose the output).</summary>
    static Stream? StandardStream(string path)
    {
        var full = Path.GetFullPath(path);
        var link = KindOf(full, followLinks: false) == Kind.Symlink ? new FileInfo(full).LinkTarget : null;
        foreach (var p in new[] { full, link })
        {
            if (p is "/dev/stdout" or "/proc/self/fd/1" or "/dev/fd/1") return Console.OpenStandardOutput();
            if (p is "/dev/stderr" or "/proc/self/fd/2" or "/dev/fd/2") return Console.OpenStandardError();
        }
        return null;
    }

    /// <summary>Our temporary files for NAME are ".NAME.adder-tmp-PID-GUID".</summary>
    public static string TemporaryPrefix(string name) => $".{name}.adder-tmp-";

    /// <summary>Deletes temporary files for name left by a process that no longer runs (killed mid-write).</summary>
    public static void RemoveStaleTemporaries(string dir, string name)
    {
        var prefix = TemporaryPrefix(name);
        IEnumerable<string> candidates;
        try { candidates = Directory.EnumerateFiles(dir, prefix + "*").ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return; }
        foreach (var file in candidates)
        {
            var rest = Path.GetFileName(file)[prefix.Length..];
            int dash = rest.IndexOf('-');
            if (dash <= 0 || !int.TryParse(rest[..dash], out int pid) || ProcessAlive(pid)) continue;
            try { File.Delete(file); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    static bool ProcessAlive(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        if (OperatingSystem.IsLinux()) return Directory.Exists($"/proc/{pid}");
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
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
