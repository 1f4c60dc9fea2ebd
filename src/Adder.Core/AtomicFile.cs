using System.Text;

namespace Adder.Core;

/// <summary>The one way the tool writes an output file: through a temporary file in the target's folder,
/// then moved over the target, so a failure never leaves a half-written or clobbered file; a device, a FIFO
/// or standard output is written through instead (never replaced by a regular file).</summary>
public static class AtomicFile
{
    /// <summary>Writes a file so that a failure never leaves half of it: through a temporary file in the target's
    /// folder, renamed over the target. A symbolic link is followed (its target is replaced, the link stays); a
    /// device, FIFO or standard output (/dev/stdout) is written through directly. Any failed write is an error.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        SafeFiles.CheckOutputPath(path, "output");
        if (StandardStream(path) is { } standard)
        {
            Guard(path, () => { using var s = standard; write(s); s.Flush(); });
            return;
        }
        if (SafeFiles.KindOf(path, followLinks: true) == SafeFiles.Kind.Other)
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
        var target = Path.GetFullPath(SafeFiles.FinalTarget(path));
        var dir = Path.GetDirectoryName(target)!;
        if (SafeFiles.KindOf(dir, followLinks: true) != SafeFiles.Kind.Directory) throw new AdderException($"output folder does not exist: {dir}");
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

    public static void WriteText(string path, string text) => Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));

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
        var link = SafeFiles.KindOf(full, followLinks: false) == SafeFiles.Kind.Symlink ? new FileInfo(full).LinkTarget : null;
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
}
