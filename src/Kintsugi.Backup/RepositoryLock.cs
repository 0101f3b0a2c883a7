using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup;

/// <summary>A lock file as found in the repository, with whether it is stale.</summary>
public sealed record LockInfo(string Name, LockRecord Record, bool Stale, string Reason);

/// <summary>
/// Repository locks. Backups take shared locks and run side by side; prune takes an exclusive
/// lock. A lock whose process is gone from this host is stale and ignored (and removed) at once;
/// a lock from another host that has not been refreshed for <see cref="StaleAfter"/> is reported
/// and can be removed with <c>kintsugi unlock</c>.
/// </summary>
public sealed class RepositoryLock : IAsyncDisposable
{
    public static readonly TimeSpan RefreshEvery = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(30);

    private readonly IBlobStore _store;
    private readonly ITimer _timer;
    private readonly TimeProvider _time;
    private LockRecord _record;
    private int _disposed;

    private RepositoryLock(IBlobStore store, string name, LockRecord record, TimeProvider time)
    {
        _store = store;
        Name = name;
        _record = record;
        _time = time;
        _timer = time.CreateTimer(_ => _ = RefreshAsync(), null, RefreshEvery, RefreshEvery);
    }

    public string Name { get; }

    public bool Exclusive => _record.Exclusive;

    public static async Task<RepositoryLock> AcquireAsync(IBlobStore store, bool exclusive, string host, string command, TimeProvider time, CancellationToken ct)
    {
        int pid = Environment.ProcessId;
        var record = new LockRecord
        {
            Time = time.GetUtcNow(),
            Exclusive = exclusive,
            Host = host,
            Pid = pid,
            ProcessStart = Platform.Posix.ProcessStartTicks(pid),
            Command = command,
            PidNamespace = Platform.Posix.PidNamespace,
        };
        string name = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        // Check before and after writing our own lock: two processes that race both see each other.
        ThrowOnConflict(await ListAsync(store, host, time, ct).ConfigureAwait(false), exclusive, name, host);
        await store.PutAsync(FileKind.Lock, name, JsonSerializer.SerializeToUtf8Bytes(record, FormatJson.Default.LockRecord), cancellationToken: ct).ConfigureAwait(false);
        try
        {
            ThrowOnConflict(await ListAsync(store, host, time, ct).ConfigureAwait(false), exclusive, name, host);
        }
        catch
        {
            await store.DeleteAsync(FileKind.Lock, name, ct).ConfigureAwait(false);
            throw;
        }
        return new RepositoryLock(store, name, record, time);
    }

    /// <summary>
    /// A shared lock for a command that only reads (restore, check). Where the repository cannot be
    /// written — a read-only mount, a folder this user may not write, a full disk or quota (reading
    /// needs no space) — it returns null and the command goes on without a lock: no process with the
    /// same view of the repository can prune it (nor, on a full disk, write the new files a prune
    /// writes before it deletes).
    /// A conflicting exclusive lock still stops it (the locks are read before writing one).
    /// </summary>
    public static async Task<RepositoryLock?> AcquireForReadingAsync(IBlobStore store, string host, string command, TimeProvider time, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(store);
        try
        {
            return await AcquireAsync(store, exclusive: false, host, command, time, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (IsNotWritable(e))
        {
            return null;
        }
    }

    /// <summary>Whether a failed write means the repository cannot be written at all (EROFS, EACCES, EPERM) or has no room left (ENOSPC, EDQUOT).</summary>
    private static bool IsNotWritable(Exception e)
    {
        const int EPERM = 1, EACCES = 13, ENOSPC = 28, EROFS = 30, EDQUOT = 122;
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is UnauthorizedAccessException or KintsugiException { Kind: ErrorKind.NoSpace or ErrorKind.NotWritable }
                || (x is IOException io && (io.HResult & 0xFFFF) is EPERM or EACCES or EROFS or ENOSPC or EDQUOT))
            {
                return true;
            }
        }
        return false;
    }

    private static void ThrowOnConflict(IReadOnlyList<LockInfo> locks, bool exclusive, string ownName, string host)
    {
        foreach (var other in locks)
        {
            if (other.Name == ownName || other.Stale)
            {
                continue;
            }
            if (exclusive || other.Record.Exclusive)
            {
                throw new KintsugiException(ErrorKind.Locked, ConflictMessage(other.Record, host));
            }
        }
    }

    /// <summary>
    /// Who holds the lock, and the way out that fits: a live process of this host is waited for (unlock
    /// keeps its lock); a fresh lock of another host is waited for, or removed with --remove-all by
    /// someone who knows its process is gone (a plain unlock keeps it until it is stale).
    /// </summary>
    private static string ConflictMessage(LockRecord r, string host)
    {
        string what = $"repository is locked{(r.Exclusive ? " exclusively" : "")} by {r.Command ?? "a command"}";
        if (IsLocal(r, host))
        {
            return $"{what} (pid {r.Pid} on this host, {r.Host}, which is running; lock refreshed {r.Time:u}); wait for it to finish";
        }
        return $"{what}, held by {r.Host}, pid {r.Pid}, since {r.Time:u} (last refreshed); wait for it to finish, "
            + $"or if you know that process is gone, `kintsugi unlock --remove-all` removes the lock "
            + $"(after {(int)StaleAfter.TotalMinutes} minutes without a refresh it is stale and a plain `kintsugi unlock` removes it)";
    }

    /// <summary>Lists locks, removing those of dead processes on this host as it goes.</summary>
    public static async Task<IReadOnlyList<LockInfo>> ListAsync(IBlobStore store, string host, TimeProvider time, CancellationToken ct)
    {
        var result = new List<LockInfo>();
        foreach (var file in await store.ListAsync(FileKind.Lock, ct).ConfigureAwait(false))
        {
            LockRecord? record;
            try
            {
                record = JsonSerializer.Deserialize(await store.GetAsync(FileKind.Lock, file.Name, ct).ConfigureAwait(false), FormatJson.Default.LockRecord);
            }
            catch (Exception e) when (e is JsonException or KintsugiException)
            {
                // A lock being written or removed right now, or garbage: neither blocks anyone.
                continue;
            }
            if (record is null)
            {
                continue;
            }
            var (stale, reason) = Judge(record, host, time.GetUtcNow());
            if (stale && IsLocal(record, host))
            {
                try
                {
                    await store.DeleteAsync(FileKind.Lock, file.Name, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (IsNotWritable(e))
                {
                    // A read-only repository keeps its stale locks; being stale, they block no one.
                }
            }
            result.Add(new LockInfo(file.Name, record, stale, reason));
        }
        return result;
    }

    /// <summary>Whether the lock's process can be looked up here: same host name and same pid namespace.</summary>
    private static bool IsLocal(LockRecord record, string host) =>
        record.Host == host && (record.PidNamespace is null || record.PidNamespace == Platform.Posix.PidNamespace);

    private static (bool Stale, string Reason) Judge(LockRecord record, string host, DateTimeOffset now)
    {
        if (IsLocal(record, host))
        {
            long start = Platform.Posix.ProcessStartTicks(record.Pid);
            if (start < 0)
            {
                return (true, "its process is gone");
            }
            if (record.ProcessStart > 0 && start != record.ProcessStart)
            {
                return (true, "its pid now belongs to another process");
            }
            return (false, "its process is running");
        }
        if (now - record.Time > StaleAfter)
        {
            return (true, $"not refreshed for {(int)(now - record.Time).TotalMinutes} minutes");
        }
        return (false, "held by another host");
    }

    /// <summary>Removes stale locks (or all locks); returns how many were removed.</summary>
    public static async Task<int> RemoveAsync(IBlobStore store, string host, bool all, TimeProvider time, CancellationToken ct)
    {
        int removed = 0;
        foreach (var info in await ListAsync(store, host, time, ct).ConfigureAwait(false))
        {
            if (all || info.Stale)
            {
                await store.DeleteAsync(FileKind.Lock, info.Name, ct).ConfigureAwait(false);
                removed++;
            }
        }
        return removed;
    }

    private async Task RefreshAsync()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }
        _record = _record with { Time = _time.GetUtcNow() };
        try
        {
            await _store.PutAsync(FileKind.Lock, Name, JsonSerializer.SerializeToUtf8Bytes(_record, FormatJson.Default.LockRecord), overwrite: true).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // A missed refresh only makes the lock look older to other hosts.
        }
        catch (KintsugiException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _timer.DisposeAsync().ConfigureAwait(false);
        await _store.DeleteAsync(FileKind.Lock, Name).ConfigureAwait(false);
    }
}
