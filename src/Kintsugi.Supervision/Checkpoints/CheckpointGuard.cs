using System.Globalization;
using System.Text.RegularExpressions;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Journal;

namespace Kintsugi.Supervision.Checkpoints;

/// <summary>A checkpoint the guard knows: where, how big, which step, when written, and its snapshot once protected.</summary>
public sealed record CheckpointInfo(string Path, long Bytes, long? Step, DateTimeOffset WrittenAt, string? Snapshot)
{
    /// <summary>After a restore: the repository that served it (<see cref="RepositoryLabel"/>); null when it was not restored.</summary>
    public string? RestoredFrom { get; init; }
}

/// <summary>The repositories beyond the main one that each protected checkpoint is copied to, how, and how each is opened (for a restore).</summary>
public sealed record CheckpointCopies(IReadOnlyList<CopySpec> Targets, ICheckpointCopier Copier, Func<CopySpec, CancellationToken, Task<Repository>> OpenRepository);

/// <summary>
/// Watches a workload's checkpoint folder. A checkpoint is a file or folder directly inside it whose
/// name does not start with '.' or end with .tmp, .partial or .bad; it is complete once its size and
/// mtime have not changed for the settle time, so one being written is never taken half-written.
/// Each new complete checkpoint is journaled and, when configured, backed up into the repository (one
/// at a time, in the background), tagged with the workload and step; snapshots beyond keep-last are
/// forgotten. Once protected, a checkpoint is copied to each of the config's 'copies' (one at a
/// time, after the main repository, in the background; a failed copy is retried after the next
/// checkpoint). A rollback restores the newest good checkpoint from the nearest repository that holds
/// it (local ones first, the main one first among them), verified, and moves newer ones aside into .bad/.
/// </summary>
public sealed partial class CheckpointGuard : IAsyncDisposable
{
    private readonly WorkloadSpec _workload;
    private readonly CheckpointSpec _spec;
    private readonly EventJournal _journal;
    private readonly Func<CancellationToken, Task<Repository>> _openRepository;
    private readonly TimeProvider _time;
    private readonly string _host;
    private readonly Action<CheckpointInfo> _onComplete;
    private readonly Dictionary<string, (long Size, long Mtime, DateTimeOffset Since)> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CheckpointInfo> _complete = new(StringComparer.Ordinal);
    /// <summary>Bad checkpoints: path → the mtime of the bad file still there, or null when it was moved aside (a new file at that path is a new checkpoint).</summary>
    private readonly Dictionary<string, long?> _bad = new(StringComparer.Ordinal);

    /// <summary>Snapshots of checkpoints marked bad: retention does not count them among the ones it keeps.</summary>
    private readonly HashSet<string> _badSnapshots = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _backupSlot = new(1, 1);
    private readonly List<Task> _backups = [];
    private readonly string _repositoryLabel;
    private readonly CheckpointCopies? _copies;
    private readonly SemaphoreSlim _copySlot = new(1, 1);
    private readonly List<Task> _copyPasses = [];
    private readonly ICheckpointBackupRunner _runner;

    /// <summary>Checkpoint path → copy repository label → its snapshot there.</summary>
    private readonly Dictionary<string, Dictionary<string, string>> _copied = new(StringComparer.Ordinal);

    /// <summary>Per repository label: snapshots forgotten since its last prune.</summary>
    private readonly Dictionary<string, int> _forgottenSincePrune = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private ITimer? _timer;
    private int _polling;

    /// <param name="repository">The main repository as configured (journaled without secrets); null: "repository".</param>
    /// <param name="copies">Where protected checkpoints are copied to; null for none.</param>
    /// <param name="runner">Runs the backup of each checkpoint into the main repository; null: in this process.</param>
    public CheckpointGuard(WorkloadSpec workload, EventJournal journal, Func<CancellationToken, Task<Repository>> openRepository, TimeProvider time, string host, Action<CheckpointInfo> onComplete, string? repository = null, CheckpointCopies? copies = null, ICheckpointBackupRunner? runner = null)
    {
        _runner = runner ?? new InProcessCheckpointBackup(openRepository, copies?.OpenRepository);
        _repositoryLabel = repository is null ? "repository" : RepositoryLabel.Of(repository);
        _copies = copies is { Targets.Count: > 0 } ? copies : null;
        ArgumentNullException.ThrowIfNull(workload);
        _workload = workload;
        _spec = workload.Checkpoints ?? throw new ArgumentException("the workload has no checkpoints", nameof(workload));
        _journal = journal;
        _openRepository = openRepository;
        _time = time;
        _host = host;
        _onComplete = onComplete;
    }

    public static TimeSpan PollInterval { get; } = TimeSpan.FromMilliseconds(200);

    [GeneratedRegex(@"(\d+)(?!.*\d)")]
    private static partial Regex LastNumber();

    public static long? StepOf(string path)
    {
        var m = LastNumber().Match(System.IO.Path.GetFileName(path));
        return m.Success && long.TryParse(m.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long step) ? step : null;
    }

    /// <summary>Reads what earlier runs protected and marked bad, creates the folder, and starts polling.</summary>
    public void Start()
    {
        Directory.CreateDirectory(_spec.Directory);
        foreach (var e in _journal.Read(workload: _workload.Name, type: EventTypes.CheckpointProtected))
        {
            if (e.GetString("path") is { } path && File.Exists(path) && !_complete.ContainsKey(path))
            {
                var written = DateTimeOffset.TryParse(e.GetString("checkpoint_time"), CultureInfo.InvariantCulture, DateTimeStyles.None, out var t) ? t : e.Time;
                _complete[path] = new CheckpointInfo(path, e.GetInt64("bytes") ?? 0, StepOf(path), written, e.GetString("snapshot"));
            }
        }
        foreach (var e in _journal.Read(workload: _workload.Name, type: EventTypes.CheckpointCopied))
        {
            if (e.GetString("path") is { } path && _complete.ContainsKey(path) && e.GetString("repository") is { } repository && e.GetString("snapshot") is { } snapshot)
            {
                CopiesOf(path)[repository] = snapshot;
            }
        }
        foreach (var e in _journal.Read(workload: _workload.Name, type: EventTypes.CheckpointBad))
        {
            if (e.GetString("snapshot") is { } badSnapshot)
            {
                _badSnapshots.Add(badSnapshot);
            }
            if (e.GetString("path") is { } path)
            {
                // From an earlier run: whatever is at that path now is taken to be the bad file.
                _bad[path] = File.Exists(path) ? new FileInfo(path).LastWriteTimeUtc.Ticks : null;
            }
        }
        Poll();
        _timer = _time.CreateTimer(_ => Poll(), null, PollInterval, PollInterval);
    }

    private static bool IsCandidate(string name) =>
        !name.StartsWith('.') && !name.EndsWith(".tmp", StringComparison.Ordinal) && !name.EndsWith(".partial", StringComparison.Ordinal) && !name.EndsWith(".bad", StringComparison.Ordinal);

    private static (long Size, long Mtime) Measure(string path)
    {
        if (File.Exists(path))
        {
            var f = new FileInfo(path);
            return (f.Length, f.LastWriteTimeUtc.Ticks);
        }
        long size = 0, mtime = new DirectoryInfo(path).LastWriteTimeUtc.Ticks;
        foreach (var f in new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories))
        {
            size += f.Length;
            mtime = Math.Max(mtime, f.LastWriteTimeUtc.Ticks);
        }
        return (size, mtime);
    }

    /// <summary>One look at the folder; new checkpoints that have settled are handed on.</summary>
    public void Poll()
    {
        if (Interlocked.Exchange(ref _polling, 1) == 1)
        {
            return;
        }
        try
        {
            var now = _time.GetUtcNow();
            var settled = new List<CheckpointInfo>();
            IEnumerable<string> entries;
            try
            {
                entries = Directory.EnumerateFileSystemEntries(_spec.Directory).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return;
            }
            lock (_lock)
            {
                foreach (var path in entries)
                {
                    if (!IsCandidate(System.IO.Path.GetFileName(path)) || _complete.ContainsKey(path))
                    {
                        continue;
                    }
                    (long size, long mtime) m;
                    try
                    {
                        m = Measure(path);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        continue;
                    }
                    if (_bad.TryGetValue(path, out long? badMtime))
                    {
                        if (badMtime == m.mtime)
                        {
                            continue;
                        }
                        // A new checkpoint written where a bad one was (the rolled-back run reached that step again).
                        _bad.Remove(path);
                    }
                    if (_pending.TryGetValue(path, out var seen) && seen.Size == m.size && seen.Mtime == m.mtime)
                    {
                        if (now - seen.Since >= _spec.SettleTime)
                        {
                            _pending.Remove(path);
                            var info = new CheckpointInfo(path, m.size, StepOf(path), new DateTimeOffset(m.mtime, TimeSpan.Zero), null);
                            _complete[path] = info;
                            _copied.Remove(path);
                            settled.Add(info);
                        }
                    }
                    else
                    {
                        _pending[path] = (m.size, m.mtime, now);
                    }
                }
            }
            foreach (var info in settled.OrderBy(i => i.Step ?? 0).ThenBy(i => i.WrittenAt))
            {
                _journal.Append(EventTypes.CheckpointWritten, _workload.Name, null, new { path = info.Path, bytes = info.Bytes, step = info.Step, checkpoint_time = info.WrittenAt.ToString("O", CultureInfo.InvariantCulture) });
                _onComplete(info);
                if (_spec.BackupOnChange)
                {
                    lock (_lock)
                    {
                        _backups.RemoveAll(t => t.IsCompleted);
                        // Off the polling thread: opening (or creating) the repository derives a key, which takes a while.
                        _backups.Add(Task.Run(() => ProtectAsync(info, _stop.Token)));
                    }
                }
            }
        }
        finally
        {
            Volatile.Write(ref _polling, 0);
        }
    }

    private async Task ProtectAsync(CheckpointInfo info, CancellationToken ct)
    {
        await _backupSlot.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!Path.Exists(info.Path))
            {
                return;
            }
            var started = _time.GetUtcNow();
            string? previous;
            lock (_lock)
            {
                // The previous checkpoint's snapshot as parent: its tensors are the bases of this one's deltas.
                previous = _complete.Values.Where(c => c.Snapshot is not null && c.Path != info.Path && !_bad.ContainsKey(c.Path))
                    .OrderBy(c => c.Step ?? 0).ThenBy(c => c.WrittenAt).LastOrDefault()?.Snapshot;
            }
            var outcome = await _runner.BackupAsync(new CheckpointBackupJob
            {
                Workload = _workload.Name,
                Path = info.Path,
                Step = info.Step,
                Parent = previous,
                Host = _host,
                Exclude = _spec.Exclude,
            }, ct).ConfigureAwait(false);
            string snapshot = outcome.Snapshot;
            lock (_lock)
            {
                _complete[info.Path] = info with { Snapshot = snapshot };
            }
            _journal.Append(EventTypes.CheckpointProtected, _workload.Name, null, new
            {
                path = info.Path,
                bytes = info.Bytes,
                snapshot,
                duration_s = Math.Round((_time.GetUtcNow() - started).TotalSeconds, 3),
                checkpoint_time = info.WrittenAt.ToString("O", CultureInfo.InvariantCulture),
                repository = _repositoryLabel,
            });
            ScheduleCopies();
            await ForgetOldAsync(await _openRepository(ct).ConfigureAwait(false), null, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _journal.Append(EventTypes.Error, _workload.Name, null, new { message = $"backup of checkpoint {info.Path} failed: {e.Message}" });
        }
        finally
        {
            _backupSlot.Release();
        }
    }

    /// <summary>The copies made of the checkpoint at <paramref name="path"/> (under <see cref="_lock"/> or before polling starts).</summary>
    private Dictionary<string, string> CopiesOf(string path)
    {
        if (!_copied.TryGetValue(path, out var copies))
        {
            copies = new Dictionary<string, string>(StringComparer.Ordinal);
            _copied[path] = copies;
        }
        return copies;
    }

    /// <summary>A copy pass in the background, after the ones before it: never in the way of the workload or of the main repository's backups.</summary>
    private void ScheduleCopies()
    {
        if (_copies is null)
        {
            return;
        }
        lock (_lock)
        {
            _copyPasses.RemoveAll(t => t.IsCompleted);
            _copyPasses.Add(Task.Run(() => CopyPendingAsync(_copies, _stop.Token)));
        }
    }

    /// <summary>
    /// For each copy repository in turn: copies the protected checkpoints (of the newest keep-last)
    /// still on disk that it lacks, oldest first, one at a time. A failure is journaled and ends that
    /// repository's turn; the next pass (after the next checkpoint is protected) tries again.
    /// </summary>
    private async Task CopyPendingAsync(CheckpointCopies copies, CancellationToken ct)
    {
        try
        {
            await _copySlot.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return;
        }
        try
        {
            foreach (var target in copies.Targets)
            {
                await CopyToAsync(copies, target, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            _copySlot.Release();
        }
    }

    private async Task CopyToAsync(CheckpointCopies copies, CopySpec target, CancellationToken ct)
    {
        string label = RepositoryLabel.Of(target.Repository);
        List<CheckpointInfo> pending;
        lock (_lock)
        {
            pending = _complete.Values
                .Where(c => c.Snapshot is not null && !_bad.ContainsKey(c.Path))
                .OrderBy(c => c.Step ?? 0).ThenBy(c => c.WrittenAt)
                .TakeLast(_spec.KeepLast)
                .Where(c => !(_copied.TryGetValue(c.Path, out var m) && m.ContainsKey(label)))
                .ToList();
        }
        bool copiedAny = false;
        foreach (var c in pending)
        {
            if (!Path.Exists(c.Path))
            {
                continue;
            }
            string? parent;
            lock (_lock)
            {
                parent = _complete.Values
                    .Where(o => o.Path != c.Path && !_bad.ContainsKey(o.Path) && (o.Step ?? 0) <= (c.Step ?? 0) && _copied.TryGetValue(o.Path, out var m) && m.ContainsKey(label))
                    .OrderBy(o => o.Step ?? 0).ThenBy(o => o.WrittenAt).LastOrDefault() is { } previous ? _copied[previous.Path][label] : null;
            }
            var started = _time.GetUtcNow();
            try
            {
                var outcome = await copies.Copier.CopyAsync(new CheckpointCopyRequest { Workload = _workload.Name, Checkpoint = c, Parent = parent, Exclude = new PathFilter(_spec.Exclude) }, target, ct).ConfigureAwait(false);
                lock (_lock)
                {
                    CopiesOf(c.Path)[label] = outcome.Snapshot;
                }
                copiedAny = true;
                _journal.Append(EventTypes.CheckpointCopied, _workload.Name, null, new
                {
                    path = c.Path,
                    repository = label,
                    snapshot = outcome.Snapshot,
                    source_snapshot = c.Snapshot,
                    bytes = outcome.Bytes,
                    duration_s = Math.Round((_time.GetUtcNow() - started).TotalSeconds, 3),
                    checkpoint_time = c.WrittenAt.ToString("O", CultureInfo.InvariantCulture),
                });
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                _journal.Append(EventTypes.CheckpointCopyFailed, _workload.Name, null, new
                {
                    path = c.Path,
                    repository = label,
                    source_snapshot = c.Snapshot,
                    message = e.Message,
                    duration_s = Math.Round((_time.GetUtcNow() - started).TotalSeconds, 3),
                });
                break;
            }
        }
        if (copiedAny)
        {
            try
            {
                await ForgetOldAsync(await copies.OpenRepository(target, ct).ConfigureAwait(false), label, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                _journal.Append(EventTypes.Error, _workload.Name, null, new { message = $"forgetting old checkpoints in the copy {label} failed: {e.Message}" });
            }
        }
    }

    /// <summary>
    /// Keeps the newest keep-last protected snapshots of this workload (that are not bad) in the main
    /// repository, or in the copy <paramref name="copyLabel"/>; forgets the rest.
    /// </summary>
    private async Task ForgetOldAsync(Repository repo, string? copyLabel, CancellationToken ct)
    {
        var mine = (await repo.LoadSnapshotsAsync(onError: (_, _) => { }, ct: ct).ConfigureAwait(false))
            .Where(s => s.Snapshot.HasTag("workload:" + _workload.Name))
            .OrderByDescending(s => s.Snapshot.Time)
            .ToList();
        HashSet<string> bad;
        lock (_lock)
        {
            bad = [.. _badSnapshots];
        }
        // Keep-last counts good checkpoints: bad ones (newer than a fault) must not push good ones out.
        var keep = mine.Where(s => !bad.Contains(s.Id.ToString())).Take(_spec.KeepLast).ToList();
        var oldestKept = keep.Count > 0 ? keep[^1].Snapshot.Time : DateTimeOffset.MaxValue;
        var forget = mine.Where(s => !keep.Contains(s) && s.Snapshot.Time < oldestKept).ToList();
        if (forget.Count == 0)
        {
            return;
        }
        // Through the parity engine, so parity groups let go of the snapshots first, under an exclusive
        // lock so that no other process's backup puts them back into a group meanwhile; when another
        // process holds the repository, forgetting waits for the next checkpoint.
        try
        {
            await using var exclusive = await repo.LockAsync(exclusive: true, _host, "kintsugi run (forget)", ct).ConfigureAwait(false);
            await new Kintsugi.Backup.Parity.ParityEngine(repo.Store).DeleteAsync([.. forget.Select(s => (FileKind.Snapshot, s.Id.ToString()))], ct).ConfigureAwait(false);
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.Locked)
        {
            return;
        }
        string label = copyLabel ?? _repositoryLabel;
        int forgotten;
        lock (_lock)
        {
            foreach (var old in forget)
            {
                string id = old.Id.ToString();
                if (copyLabel is null)
                {
                    foreach (var c in _complete.Values.Where(c => c.Snapshot == id).ToList())
                    {
                        _complete[c.Path] = c with { Snapshot = null };
                    }
                }
                else
                {
                    foreach (var copies in _copied.Values.Where(m => m.TryGetValue(copyLabel, out var s) && s == id))
                    {
                        copies.Remove(copyLabel);
                    }
                }
            }
            forgotten = _forgottenSincePrune[label] = _forgottenSincePrune.GetValueOrDefault(label) + forget.Count;
        }
        // Forgetting frees nothing by itself; every so often the data only forgotten snapshots used is
        // pruned. Backups (and copies) of this guard are serialised by their slot, so none runs in this
        // repository meanwhile; another process's lock makes this one wait for the next round.
        if (forgotten >= Math.Max(PruneEvery, _spec.KeepLast))
        {
            try
            {
                await new PruneEngine(repo).RunAsync(new PruneRequest { Host = _host }, ct).ConfigureAwait(false);
                lock (_lock)
                {
                    _forgottenSincePrune[label] = 0;
                }
            }
            catch (KintsugiException e) when (e.Kind == ErrorKind.Locked)
            {
                _journal.Append(EventTypes.Error, _workload.Name, null, new { message = $"prune of forgotten checkpoints{(copyLabel is null ? "" : " in the copy " + copyLabel)} postponed: {e.Message}" });
            }
        }
    }

    /// <summary>Forgotten snapshots between two prunes of the repository (at least keep-last).</summary>
    public const int PruneEvery = 10;

    /// <summary>Complete, good checkpoints present in the folder, oldest first.</summary>
    public IReadOnlyList<CheckpointInfo> Local()
    {
        lock (_lock)
        {
            return _complete.Values.Where(c => !_bad.ContainsKey(c.Path) && Path.Exists(c.Path)).OrderBy(c => c.Step ?? 0).ThenBy(c => c.WrittenAt).ToList();
        }
    }

    /// <summary>The checkpoint a plain restart resumes from: the newest good one in the folder, or, if the folder lost them all, the newest protected one restored from the repository.</summary>
    public async Task<CheckpointInfo?> ResumePointAsync(CancellationToken ct)
    {
        // A checkpoint written just before the crash may still be settling: give it its settle time.
        await SettleAsync(_ => true, ct).ConfigureAwait(false);
        var local = Local();
        if (local.Count > 0)
        {
            return local[^1];
        }
        return await RestoreNewestAsync(_ => true, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Rollback: the newest protected checkpoint taken before the fault (step below <paramref name="faultStep"/>
    /// when steps are known, else written before <paramref name="faultTime"/>) is restored from the
    /// repository; where none can be (the checkpoint folder is read-only or full, the snapshots are
    /// damaged), the newest good checkpoint still on disk is used as it is (returned without a
    /// snapshot). Newer checkpoints are journaled as bad and, where the folder allows, moved into
    /// .bad/. Null when no checkpoint before the fault is known at all; a
    /// <see cref="RollbackException"/> when good ones are known but none could be used.
    /// </summary>
    public async Task<(CheckpointInfo Restored, IReadOnlyList<string> MarkedBad)?> RollbackAsync(long? faultStep, DateTimeOffset faultTime, CancellationToken ct)
    {
        bool Good(CheckpointInfo c) => faultStep is long s && c.Step is long cs ? cs < s : c.WrittenAt < faultTime;
        await SettleAsync(path => faultStep is long s && StepOf(path) is long ps && ps < s, ct).ConfigureAwait(false);
        await FlushAsync().ConfigureAwait(false);
        // From the repository (verified) where it can be; else the newest good checkpoint still on disk.
        var failures = new List<string>();
        var restored = await RestoreNewestAsync(Good, ct, failures).ConfigureAwait(false);
        if (restored is null && Local().LastOrDefault(Good) is { } onDisk)
        {
            restored = onDisk with { Snapshot = null };
            if (failures.Count > 0)
            {
                _journal.Append(EventTypes.Error, _workload.Name, null, new { message = $"rollback: no good checkpoint could be restored from the repository; resuming from {onDisk.Path} as it is on disk" });
            }
        }
        if (restored is null)
        {
            List<CheckpointInfo> known;
            lock (_lock)
            {
                known = _complete.Values.Where(c => !_bad.ContainsKey(c.Path) && Good(c)).OrderByDescending(c => c.Step ?? 0).ThenByDescending(c => c.WrittenAt).ToList();
            }
            if (known.Count == 0)
            {
                return null;
            }
            // Good checkpoints that were neither restorable nor on disk: say so, so the reason names every one.
            failures.AddRange(known.Where(c => !failures.Any(f => f.StartsWith(c.Path + ":", StringComparison.Ordinal)))
                .Select(c => $"{c.Path}: {(c.Snapshot is null ? "not protected" : "not restored")} and gone from the folder"));
            // What was written after the fault is bad all the same: nothing may resume from it later.
            MarkBad(Good, keep: null);
            throw new RollbackException($"rollback: {known.Count} good checkpoint{(known.Count == 1 ? "" : "s")} known, none could be restored: {string.Join("; ", failures)}");
        }
        var marked = MarkBad(Good, restored.Path);
        return (restored, marked);
    }

    /// <summary>Journals checkpoints newer than the fault (all but <paramref name="keep"/> that <paramref name="good"/> rejects) as bad and, where the folder allows, moves them into .bad/.</summary>
    private List<string> MarkBad(Func<CheckpointInfo, bool> good, string? keep)
    {
        var marked = new List<string>();
        List<CheckpointInfo> newer;
        lock (_lock)
        {
            newer = _complete.Values.Where(c => c.Path != keep && !_bad.ContainsKey(c.Path) && !good(c)).ToList();
            // What is on disk but not yet settled, and written after the fault, is not good either.
            foreach (var (path, seen) in _pending.ToList())
            {
                var info = new CheckpointInfo(path, seen.Size, StepOf(path), new DateTimeOffset(seen.Mtime, TimeSpan.Zero), null);
                if (!good(info))
                {
                    newer.Add(info);
                    _pending.Remove(path);
                }
            }
        }
        string badDir = Path.Combine(_spec.Directory, ".bad");
        foreach (var c in newer)
        {
            string dest = Path.Combine(badDir, Path.GetFileName(c.Path));
            try
            {
                Directory.CreateDirectory(badDir);
                if (File.Exists(c.Path))
                {
                    File.Move(c.Path, dest, overwrite: true);
                }
                else if (Directory.Exists(c.Path))
                {
                    if (Directory.Exists(dest))
                    {
                        Directory.Delete(dest, recursive: true);
                    }
                    Directory.Move(c.Path, dest);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Moving aside is a convenience (a read-only or full folder refuses it); the journal's
                // mark is what rollback and resume obey.
            }
            lock (_lock)
            {
                _bad[c.Path] = File.Exists(c.Path) ? new FileInfo(c.Path).LastWriteTimeUtc.Ticks : Directory.Exists(c.Path) ? new DirectoryInfo(c.Path).LastWriteTimeUtc.Ticks : null;
                _complete.Remove(c.Path);
                if (c.Snapshot is not null)
                {
                    _badSnapshots.Add(c.Snapshot);
                }
                if (_copied.Remove(c.Path, out var copies))
                {
                    _badSnapshots.UnionWith(copies.Values);
                }
            }
            marked.Add(c.Path);
            _journal.Append(EventTypes.CheckpointBad, _workload.Name, null, new { path = c.Path, snapshot = c.Snapshot });
        }
        return marked;
    }

    /// <summary>A repository holding a checkpoint: its label, the snapshot there, how to open it, and how it is named in messages.</summary>
    private sealed record Holder(string Label, string Snapshot, Func<CancellationToken, Task<Repository>> Open, string Name);

    /// <summary>
    /// The repositories that hold <paramref name="c"/>, nearest first: local folders before remote
    /// stores, and the main repository before its copies.
    /// </summary>
    private List<Holder> HoldersOf(CheckpointInfo c)
    {
        var holders = new List<Holder>();
        if (c.Snapshot is { } snapshot)
        {
            holders.Add(new Holder(_repositoryLabel, snapshot, _openRepository, "the repository"));
        }
        if (_copies is not null && _copied.TryGetValue(c.Path, out var copies))
        {
            foreach (var target in _copies.Targets)
            {
                string label = RepositoryLabel.Of(target.Repository);
                if (copies.TryGetValue(label, out var copy))
                {
                    holders.Add(new Holder(label, copy, ct => _copies.OpenRepository(target, ct), "the copy " + label));
                }
            }
        }
        // OrderBy is stable: among local (or remote) ones, the main repository and then the config's order.
        return [.. holders.OrderBy(h => StoreFactory.IsRemote(h.Label) ? 1 : 0)];
    }

    /// <summary>Restores the newest protected checkpoint <paramref name="good"/> selects that can be restored, from the nearest repository that can; each failure is journaled and added to <paramref name="failures"/>.</summary>
    private async Task<CheckpointInfo?> RestoreNewestAsync(Func<CheckpointInfo, bool> good, CancellationToken ct, List<string>? failures = null)
    {
        List<(CheckpointInfo Checkpoint, List<Holder> Holders)> candidates;
        lock (_lock)
        {
            candidates = _complete.Values.Where(c => !_bad.ContainsKey(c.Path) && good(c)).OrderBy(c => c.Step ?? 0).ThenBy(c => c.WrittenAt)
                .Select(c => (c, HoldersOf(c))).Where(x => x.Item2.Count > 0).ToList();
        }
        for (int i = candidates.Count - 1; i >= 0; i--)
        {
            var (checkpoint, holders) = candidates[i];
            foreach (var holder in holders)
            {
                try
                {
                    await RestoreAsync(checkpoint, holder, ct).ConfigureAwait(false);
                    return checkpoint with { Snapshot = holder.Snapshot, RestoredFrom = holder.Label };
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    // That snapshot is gone or damaged, or the folder refuses it; another repository, an older good one, or the copy on disk, will do.
                    _journal.Append(EventTypes.Error, _workload.Name, null, new { message = $"checkpoint {checkpoint.Path} could not be restored from {holder.Name}: {e.Message}" });
                    failures?.Add($"{checkpoint.Path}: from {holder.Name}: {e.Message}");
                }
            }
        }
        return null;
    }

    /// <summary>Restores one protected checkpoint from a repository that holds it into its place, verified.</summary>
    private async Task RestoreAsync(CheckpointInfo chosen, Holder holder, CancellationToken ct)
    {
        var repo = await holder.Open(ct).ConfigureAwait(false);
        var snapshot = await repo.FindSnapshotAsync(holder.Snapshot, ct).ConfigureAwait(false);
        string staging = Path.Combine(_spec.Directory, ".restore-" + Guid.NewGuid().ToString("N"));
        try
        {
            var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = staging, Includes = [chosen.Path], Host = _host }, null, ct).ConfigureAwait(false);
            var failures = result.Issues.Where(i => !i.Message.StartsWith("warning:", StringComparison.Ordinal)).ToList();
            if (failures.Count > 0)
            {
                throw new KintsugiException(ErrorKind.Corrupt, $"checkpoint {chosen.Path} could not be restored: {failures[0].Message}");
            }
            string restoredPath = staging + chosen.Path;
            if (File.Exists(restoredPath))
            {
                File.Move(restoredPath, chosen.Path, overwrite: true);
            }
            else
            {
                if (Directory.Exists(chosen.Path))
                {
                    Directory.Delete(chosen.Path, recursive: true);
                }
                Directory.Move(restoredPath, chosen.Path);
            }
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
    }

    /// <summary>
    /// Gives checkpoints still settling that <paramref name="wanted"/> selects the time to settle (and
    /// so to be protected): a checkpoint written just before a fault is the one a rollback wants.
    /// </summary>
    private async Task SettleAsync(Func<string, bool> wanted, CancellationToken ct)
    {
        var deadline = _time.GetUtcNow() + _spec.SettleTime + PollInterval * 3;
        while (true)
        {
            Poll();
            bool waiting;
            lock (_lock)
            {
                waiting = _pending.Keys.Any(wanted);
            }
            if (!waiting || _time.GetUtcNow() > deadline)
            {
                return;
            }
            await Task.Delay(PollInterval / 4, _time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Once the workload's processes have stopped: checkpoints they wrote last, still inside the
    /// settle time, are given it (nothing writes them any more) and handed on, so a job's final
    /// checkpoint, or one written while it was being stopped, is recorded and protected.
    /// </summary>
    public Task SettleRemainingAsync(CancellationToken ct) => SettleAsync(_ => true, ct);

    /// <summary>Waits for backups in flight (not for copies: a rollback must not wait for an off-site upload).</summary>
    public async Task FlushAsync()
    {
        Task[] pending;
        lock (_lock)
        {
            pending = [.. _backups];
        }
        await Task.WhenAll(pending).ConfigureAwait(false);
    }

    /// <summary>Waits for backups and then for the copies they started.</summary>
    public async Task FlushCopiesAsync()
    {
        await FlushAsync().ConfigureAwait(false);
        Task[] pending;
        lock (_lock)
        {
            pending = [.. _copyPasses];
        }
        await Task.WhenAll(pending).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_timer is not null)
        {
            await _timer.DisposeAsync().ConfigureAwait(false);
        }
        await FlushCopiesAsync().ConfigureAwait(false);
        await _stop.CancelAsync().ConfigureAwait(false);
        _stop.Dispose();
        _backupSlot.Dispose();
        _copySlot.Dispose();
    }
}

/// <summary>A rollback found good checkpoints from before the fault but could use none of them; the message names each and why.</summary>
public sealed class RollbackException : Exception
{
    public RollbackException(string message) : base(message) { }

    public RollbackException() { }

    public RollbackException(string message, Exception inner) : base(message, inner) { }
}
