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
    private readonly Lock _gate = new();
    private readonly string _path;
    private FileStream _file;
    private string? _identity;

    private RunLock(string path, FileStream file)
    {
        _path = path;
        _file = file;
        _identity = Identity(path);
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
                return new RunLock(path, file);
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

    /// <summary>
    /// When the lock file was deleted (with the journal's folder, say), makes it again and locks it,
    /// so that a second supervisor is still refused; a message when that could not be done, else null.
    /// </summary>
    public string? Renew()
    {
        lock (_gate)
        {
            string? current = Identity(_path);
            if (current is not null && current == _identity)
            {
                return null;
            }
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
                var file = new FileStream(_path, new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.ReadWrite });
                if (!Kintsugi.Backup.Platform.Posix.TryLockExclusive(file.SafeFileHandle))
                {
                    file.Dispose();
                    return $"the run lock {_path} was deleted and another `kintsugi run` took it meanwhile: two supervisors may now run these workloads; stop one of them";
                }
                _file.Dispose();
                _file = file;
                _identity = Identity(_path);
                return null;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return $"the run lock {_path} was deleted and cannot be made again ({e.Message}); a second `kintsugi run` of this journal would not be refused";
            }
        }
    }

    private static string? Identity(string path)
    {
        try
        {
            var status = Kintsugi.Backup.Platform.Posix.LStat(path);
            return $"{status.Device}:{status.Inode}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _file.Dispose();
        }
    }
}
