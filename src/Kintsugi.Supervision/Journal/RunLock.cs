using Kintsugi.Backup;

namespace Kintsugi.Supervision.Journal;

/// <summary>
/// Held for the whole life of the one supervisor that writes a journal: a second <c>kintsugi run</c>
/// of the same configuration (or of another one sharing its journal) would take over its workloads
/// and run them twice. It is an advisory lock (flock) on <c>JOURNAL.lock</c>, so the kernel releases
/// it when the holder dies, however it dies: there is never a stale lock to remove.
/// </summary>
public sealed class RunLock : IDisposable
{
    private readonly FileStream _file;

    private RunLock(FileStream file)
    {
        _file = file;
    }

    /// <summary>The lock file of <paramref name="journalPath"/>.</summary>
    public static string PathFor(string journalPath) => Path.GetFullPath(journalPath) + ".lock";

    /// <summary>
    /// Takes the lock of <paramref name="journalPath"/> or throws <see cref="KintsugiException"/>
    /// (<see cref="ErrorKind.Locked"/>) naming the holder, whose pid <paramref name="describeHolder"/>
    /// finds (from the journal, which the holder keeps writing).
    /// </summary>
    public static RunLock Acquire(string journalPath, Func<string?> describeHolder)
    {
        ArgumentNullException.ThrowIfNull(describeHolder);
        string path = PathFor(journalPath);
        FileStream file;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            file = new FileStream(path, new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KintsugiException(ErrorKind.InvalidInput,
                $"cannot write beside the journal {Path.GetFullPath(journalPath)} (its run lock {Path.GetFileName(path)}: {e.Message.Trim()}); make its folder writable, or set 'journal' in the config to a writable place", e);
        }
        try
        {
            if (Kintsugi.Backup.Platform.Posix.TryLockExclusive(file.SafeFileHandle))
            {
                return new RunLock(file);
            }
        }
        catch
        {
            file.Dispose();
            throw;
        }
        file.Dispose();
        string holder = describeHolder() ?? "another `kintsugi run`";
        throw new KintsugiException(ErrorKind.Locked,
            $"{holder} is already supervising with the journal {Path.GetFullPath(journalPath)}; stop it first (a second one would run every workload twice), or give this config its own 'journal'");
    }

    public void Dispose() => _file.Dispose();
}
