using System.Buffers;
using System.Collections.Concurrent;
using System.Threading.Channels;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Platform;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Backup.Engine;

/// <summary>What to restore and where.</summary>
public sealed record RestoreRequest
{
    public required string Target { get; init; }
    /// <summary>Paths inside the snapshot to restore (with everything under them); empty restores all.</summary>
    public IReadOnlyList<string> Includes { get; init; } = [];
    public int Workers { get; init; } = Environment.ProcessorCount;
    /// <summary>The host to name in the lock file.</summary>
    public string Host { get; init; } = "localhost";
}

/// <summary>Live counters for a progress display.</summary>
public sealed class RestoreProgress
{
    internal long TotalBytesField, BytesDoneField, FilesDoneField, TotalFilesField;

    public long TotalFiles => Interlocked.Read(ref TotalFilesField);
    public long TotalBytes => Interlocked.Read(ref TotalBytesField);
    public long FilesDone => Interlocked.Read(ref FilesDoneField);
    public long BytesDone => Interlocked.Read(ref BytesDoneField);
}

/// <summary>What a restore did.</summary>
public sealed record RestoreResult(long Files, long Directories, long Symlinks, long Bytes, IReadOnlyList<BackupIssue> Issues)
{
    /// <summary>The repository could not be written (a read-only mount, a full disk), so the restore ran without a lock.</summary>
    public bool WithoutLock { get; init; }
}

/// <summary>
/// Restores a snapshot into a target folder. Content blobs of all files are restored in parallel,
/// each written at its offset, so one large file uses every core. Symlinks are created last and
/// existing entries are replaced, never written through, so nothing lands outside the target.
/// What cannot be restored (a damaged blob, a file whose size disagrees with its content, a folder
/// whose name the target's file system refuses) is reported and the rest restored; a file that was
/// not restored whole is removed rather than left looking complete. Devices and sockets are never
/// created. A full disk stops the restore, removing the files it had not finished.
/// </summary>
public sealed class RestoreEngine
{
    private readonly Repository _repo;

    public RestoreEngine(Repository repository) => _repo = repository;

    private sealed class FileState(string path, Node node, int blobs)
    {
        public string Path { get; } = path;
        public Node Node { get; } = node;
        public SafeFileHandle? Handle { get; set; }
        public int Remaining = blobs;
        public volatile bool Failed;
        public volatile bool Finished;
    }

    private readonly record struct BlobJob(FileState File, long Offset, IndexEntry Entry);

    public async Task<RestoreResult> RunAsync(SnapshotRef snapshot, RestoreRequest request, RestoreProgress? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(request);
        progress ??= new RestoreProgress();
        var repoLock = await RepositoryLock.AcquireForReadingAsync(_repo.Store, request.Host, "restore", _repo.Time, ct).ConfigureAwait(false);
        try
        {
            var result = await RestoreAsync(snapshot, request, progress, ct).ConfigureAwait(false);
            return repoLock is null ? result with { WithoutLock = true } : result;
        }
        finally
        {
            if (repoLock is not null)
            {
                await repoLock.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static bool Selected(string path, IReadOnlyList<string> includes) =>
        includes.Count == 0 || includes.Any(i => path == i || path.StartsWith(i + "/", StringComparison.Ordinal) || i.StartsWith(path + "/", StringComparison.Ordinal));

    private async Task<RestoreResult> RestoreAsync(SnapshotRef snapshot, RestoreRequest request, RestoreProgress progress, CancellationToken ct)
    {
        var includes = request.Includes.Select(i => "/" + i.Trim('/')).Select(i => i == "/" ? "" : i).ToList();
        if (includes.Contains(""))
        {
            includes.Clear();
        }
        var root = TreeWalker.RootOf(snapshot);
        // A damaged index file or folder listing costs the files it describes, not the whole restore.
        var damage = new List<BackupIssue>();
        var index = await _repo.LoadIndexAsync((name, e) => damage.Add(new BackupIssue($"index/{name}", $"warning: {e.Message}; the blobs it lists are not found")), ct).ConfigureAwait(false);
        string target = Path.GetFullPath(request.Target);
        if (File.Exists(target))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"restore target {target} is a file; give a folder (it is created if missing)");
        }
        try
        {
            Directory.CreateDirectory(target);
        }
        catch (IOException e)
        {
            throw KintsugiException.FromIo(e, target);
        }
        var issues = new ConcurrentQueue<BackupIssue>(damage);
        var directories = new List<(string Path, Node Node)>();
        var symlinks = new List<(string Path, Node Node)>();
        var files = new List<(string Path, Node Node)>();
        var hardLinks = new List<(string Path, string Existing)>();
        var firstLink = new Dictionary<(ulong, ulong), string>();
        var matched = new HashSet<string>(StringComparer.Ordinal);
        // Folders that could not be created: what is under them is not attempted (and not reported again).
        var missingFolders = new HashSet<string>(StringComparer.Ordinal);

        void Unreadable(string folder, KintsugiException e) =>
            issues.Enqueue(new BackupIssue(folder, $"folder not restored: it cannot be read ({e.Message})"));
        await foreach (var walked in TreeWalker.WalkAsync(_repo, index, root, Unreadable, ct).ConfigureAwait(false))
        {
            if (!Selected(walked.Path, includes))
            {
                continue;
            }
            if (missingFolders.Contains(walked.Path[..walked.Path.LastIndexOf('/')]))
            {
                if (walked.Node.Type == NodeType.Directory)
                {
                    missingFolders.Add(walked.Path);
                }
                continue;
            }
            foreach (var inc in includes)
            {
                if (walked.Path == inc)
                {
                    matched.Add(inc);
                }
            }
            string local = target + walked.Path;
            var node = walked.Node;
            switch (node.Type)
            {
                case NodeType.Directory:
                    if (TryCreate(local, "cannot create folder", () => PrepareDirectory(local), issues))
                    {
                        directories.Add((local, node));
                    }
                    else
                    {
                        missingFolders.Add(walked.Path);
                    }
                    break;
                case NodeType.File:
                    if (node.Links > 1 && firstLink.TryGetValue((node.Device, node.Inode), out var existing))
                    {
                        hardLinks.Add((local, existing));
                    }
                    else
                    {
                        if (node.Links > 1)
                        {
                            firstLink[(node.Device, node.Inode)] = local;
                        }
                        files.Add((local, node));
                        Interlocked.Add(ref progress.TotalBytesField, node.Size);
                        Interlocked.Increment(ref progress.TotalFilesField);
                    }
                    break;
                case NodeType.Symlink:
                    symlinks.Add((local, node));
                    break;
                case NodeType.Fifo:
                    if (TryCreate(local, "cannot create FIFO", () => { RemoveExisting(local); Posix.MkFifo(local, node.Mode & 0x1FF); }, issues))
                    {
                        ApplyMetadata(local, node, issues);
                    }
                    break;
                default:
                    issues.Enqueue(new BackupIssue(walked.Path, $"warning: {node.Type.ToString().ToLowerInvariant()} not restored (special files are skipped for safety)"));
                    break;
            }
        }
        foreach (var inc in includes.Where(i => !matched.Contains(i)))
        {
            throw new KintsugiException(ErrorKind.NotFound, $"{inc} is not in snapshot {snapshot.ShortId}; `kintsugi ls {snapshot.ShortId}` lists what it holds");
        }

        await RestoreFilesAsync(files, index, request, progress, issues, ct).ConfigureAwait(false);
        foreach (var (path, existing) in hardLinks)
        {
            TryCreate(path, "cannot create hard link", () => { RemoveExisting(path); Posix.Link(existing, path); }, issues);
        }
        foreach (var (path, node) in symlinks)
        {
            string linkTarget = node.LinkTarget ?? "";
            if (linkTarget.Length == 0 || linkTarget.Contains('\0', StringComparison.Ordinal))
            {
                issues.Enqueue(new BackupIssue(path, linkTarget.Length == 0 ? "symlink not restored: the snapshot records no target for it" : "symlink not restored: its target holds a NUL character"));
                continue;
            }
            if (TryCreate(path, "cannot create symlink", () => { RemoveExisting(path); File.CreateSymbolicLink(path, linkTarget); }, issues))
            {
                ApplyMetadata(path, node, issues);
            }
        }
        // Folders last and deepest first, so writing their contents does not change their mtime again.
        for (int i = directories.Count - 1; i >= 0; i--)
        {
            var (path, node) = directories[i];
            // On a case-insensitive file system a symlink created above may now stand at a folder's
            // path; chmod would follow it out of the target.
            if (IsSymlink(path))
            {
                issues.Enqueue(new BackupIssue(path, "warning: metadata not restored: another entry of the snapshot took its place"));
                continue;
            }
            ApplyMetadata(path, node, issues);
        }
        return new RestoreResult(files.Count + hardLinks.Count, directories.Count, symlinks.Count, progress.BytesDone, issues.ToList());
    }

    /// <summary>
    /// Runs <paramref name="create"/>; a failure is reported as an issue (false), except a full
    /// disk, which stops the restore.
    /// </summary>
    private static bool TryCreate(string path, string what, Action create, ConcurrentQueue<BackupIssue> issues)
    {
        try
        {
            create();
            return true;
        }
        catch (IOException e) when (KintsugiException.FromIo(e, path) is not KintsugiException { Kind: ErrorKind.NoSpace })
        {
            issues.Enqueue(new BackupIssue(path, $"{what}: {e.Message}"));
        }
        catch (IOException e)
        {
            throw KintsugiException.FromIo(e, path);
        }
        catch (UnauthorizedAccessException e)
        {
            issues.Enqueue(new BackupIssue(path, $"{what}: {e.Message}"));
        }
        return false;
    }

    private static bool IsSymlink(string path)
    {
        try
        {
            return Posix.LStat(path).IsSymlink;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static void PrepareDirectory(string path)
    {
        try
        {
            var st = Posix.LStat(path);
            if (st.IsDirectory)
            {
                return;
            }
            File.Delete(path);
        }
        catch (FileNotFoundException)
        {
        }
        Directory.CreateDirectory(path);
    }

    /// <summary>Removes a file or symlink at <paramref name="path"/> so that creating it cannot follow a link.</summary>
    private static void RemoveExisting(string path)
    {
        try
        {
            var st = Posix.LStat(path);
            if (st.IsDirectory)
            {
                Directory.Delete(path, recursive: true);
            }
            else
            {
                File.Delete(path);
            }
        }
        catch (FileNotFoundException)
        {
        }
    }

    private async Task RestoreFilesAsync(List<(string Path, Node Node)> files, MasterIndex index, RestoreRequest request, RestoreProgress progress, ConcurrentQueue<BackupIssue> issues, CancellationToken ct)
    {
        int workers = Math.Max(1, request.Workers);
        var reader = new BlobReader(_repo, index);
        var jobs = Channel.CreateBounded<BlobJob>(new BoundedChannelOptions(workers * 4) { SingleWriter = true });
        var consumers = Enumerable.Range(0, workers).Select(_ => Task.Run(async () =>
        {
            try
            {
                await ConsumeAsync(jobs.Reader, reader, progress, issues, ct).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // Unblocks the producer; the first failure is what the caller sees.
                jobs.Writer.TryComplete(e);
                throw;
            }
        }, ct)).ToArray();
        var created = new List<FileState>();
        Exception? producerFailure = null;
        try
        {
            foreach (var (path, node) in files)
            {
                IndexEntry[] entries;
                try
                {
                    entries = (node.Content ?? []).Select(c => index.Get(BlobId.Parse(c))).ToArray();
                    int wrong = Array.FindIndex(entries, e => !e.Kind.IsContent());
                    if (wrong >= 0)
                    {
                        throw KintsugiException.Corrupt($"file {path}", $"content blob {entries[wrong].Id.Short} is not a data blob");
                    }
                    long length = entries.Sum(e => (long)e.RawLength);
                    if (length != node.Size)
                    {
                        throw KintsugiException.Corrupt($"file {path}", $"its size {node.Size} does not match its content of {length} bytes");
                    }
                }
                catch (KintsugiException e)
                {
                    issues.Enqueue(new BackupIssue(path, $"not restored: {e.Message}"));
                    continue;
                }
                var state = new FileState(path, node, entries.Length);
                if (!TryCreate(path, "cannot create", () =>
                {
                    RemoveExisting(path);
                    state.Handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                }, issues))
                {
                    continue;
                }
                created.Add(state);
                if (entries.Length == 0)
                {
                    Finish(state, issues);
                    continue;
                }
                long offset = 0;
                foreach (var entry in entries)
                {
                    await jobs.Writer.WriteAsync(new BlobJob(state, offset, entry), ct).ConfigureAwait(false);
                    offset += entry.RawLength;
                }
            }
        }
        catch (Exception e)
        {
            producerFailure = e;
        }
        jobs.Writer.TryComplete();
        try
        {
            // A consumer's failure (a full disk) is the cause of the producer's (a closed channel), so it wins.
            await Task.WhenAll(consumers).ConfigureAwait(false);
            if (producerFailure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(producerFailure);
            }
        }
        catch
        {
            RemoveUnfinished(created);
            throw;
        }
    }

    /// <summary>After a restore stopped: the files it had not finished are removed, so none is left looking complete.</summary>
    private static void RemoveUnfinished(List<FileState> created)
    {
        foreach (var file in created.Where(f => !f.Finished))
        {
            file.Handle?.Dispose();
            TryDelete(file.Path);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the restore already failed and says so.
        }
    }

    private static async Task ConsumeAsync(ChannelReader<BlobJob> jobs, BlobReader reader, RestoreProgress progress, ConcurrentQueue<BackupIssue> issues, CancellationToken ct)
    {
        byte[] plain = [];
        await foreach (var job in jobs.ReadAllAsync(ct).ConfigureAwait(false))
        {
            var file = job.File;
            if (!file.Failed)
            {
                try
                {
                    int raw = (int)job.Entry.RawLength;
                    if (plain.Length < raw)
                    {
                        plain = GC.AllocateUninitializedArray<byte>(raw);
                    }
                    await reader.ReadAsync(job.Entry, plain.AsMemory(0, raw), ct).ConfigureAwait(false);
                    var data = plain.AsMemory(0, raw);
                    if (!(file.Node.Sparse && !data.Span.ContainsAnyExcept((byte)0)))
                    {
                        RandomAccess.Write(file.Handle!, data.Span, job.Offset);
                    }
                    Interlocked.Add(ref progress.BytesDoneField, raw);
                }
                catch (KintsugiException e)
                {
                    file.Failed = true;
                    issues.Enqueue(new BackupIssue(file.Path, $"not restored: {e.Message}"));
                }
                catch (IOException e)
                {
                    file.Failed = true;
                    if (KintsugiException.FromIo(e, file.Path) is KintsugiException { Kind: ErrorKind.NoSpace } full)
                    {
                        throw full;
                    }
                    issues.Enqueue(new BackupIssue(file.Path, $"not restored: {e.Message}"));
                }
            }
            if (Interlocked.Decrement(ref file.Remaining) == 0)
            {
                Finish(file, issues);
            }
        }
    }

    /// <summary>Gives a file whose blobs are all written its length and metadata; one that failed is removed, its issue already reported.</summary>
    private static void Finish(FileState file, ConcurrentQueue<BackupIssue> issues)
    {
        if (file.Failed)
        {
            file.Handle!.Dispose();
            TryDelete(file.Path);
            file.Finished = true;
            return;
        }
        try
        {
            RandomAccess.SetLength(file.Handle!, file.Node.Size);
        }
        catch (IOException e)
        {
            file.Failed = true;
            file.Handle!.Dispose();
            TryDelete(file.Path);
            file.Finished = true;
            if (KintsugiException.FromIo(e, file.Path) is KintsugiException { Kind: ErrorKind.NoSpace } full)
            {
                throw full;
            }
            issues.Enqueue(new BackupIssue(file.Path, $"not restored: {e.Message}"));
            return;
        }
        file.Handle!.Dispose();
        file.Finished = true;
        ApplyMetadata(file.Path, file.Node, issues);
    }

    private static void ApplyMetadata(string path, Node node, ConcurrentQueue<BackupIssue> issues)
    {
        try
        {
            if (Posix.IsRoot)
            {
                Posix.LChown(path, node.Uid, node.Gid);
            }
            if (node.Type != NodeType.Symlink)
            {
                File.SetUnixFileMode(path, (UnixFileMode)(node.Mode & 0xFFF));
            }
            Posix.SetTimes(path, node.MtimeNs);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            issues.Enqueue(new BackupIssue(path, $"warning: metadata not fully restored: {e.Message}"));
        }
    }
}
