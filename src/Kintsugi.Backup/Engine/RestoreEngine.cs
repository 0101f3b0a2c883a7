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
    /// <summary>Paths inside the snapshot to restore (with everything under them): absolute, relative to the snapshot's paths, or globs (<see cref="PathSelection"/>); empty restores all.</summary>
    public IReadOnlyList<string> Includes { get; init; } = [];
    /// <summary>Paths inside the snapshot not to restore (nor anything under them), in the syntax of <see cref="Includes"/>.</summary>
    public IReadOnlyList<string> Excludes { get; init; } = [];
    public int Workers { get; init; } = Environment.ProcessorCount;
    /// <summary>The host to name in the lock file.</summary>
    public string Host { get; init; } = "localhost";
    /// <summary>What to do with an entry the target already holds at a path the snapshot restores.</summary>
    public OverwritePolicy Overwrite { get; init; } = OverwritePolicy.SameType;
}

/// <summary>
/// What a restore does with an entry the target already holds at a path the snapshot restores. A
/// folder where the snapshot has a folder is always merged into; nothing the target holds is ever
/// deleted unless the snapshot's entry of the same type takes its place, and nothing is followed.
/// </summary>
public enum OverwritePolicy
{
    /// <summary>
    /// The default: a file, symlink or FIFO where the snapshot has one of the same type is replaced;
    /// an entry of another type (a folder where the snapshot has a file, a file where it has a
    /// folder, …) is left as it is and reported, and nothing under it is restored.
    /// </summary>
    SameType,
    /// <summary>As <see cref="SameType"/>, and an entry of another type is moved aside (renamed, never deleted) to make room.</summary>
    Always,
    /// <summary>An entry of the same type is replaced only when it differs: a file in size or mtime, a symlink in its target; another type is left and reported.</summary>
    IfChanged,
    /// <summary>An entry of the same type is replaced only when the snapshot's is newer (mtime); another type is left and reported.</summary>
    IfNewer,
    /// <summary>Nothing the target holds is replaced: an entry of the same type is left quietly, one of another type left and reported.</summary>
    Never,
}

/// <summary>An entry of the target moved out of the way of the snapshot's (with <see cref="OverwritePolicy.Always"/>).</summary>
public sealed record MovedAside(string Path, string MovedTo);

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

    /// <summary>Entries of the target left as they were because the overwrite policy said so (not counted as restored).</summary>
    public long Skipped { get; init; }

    /// <summary>Entries of the target renamed out of the way of the snapshot's (<see cref="OverwritePolicy.Always"/>).</summary>
    public IReadOnlyList<MovedAside> MovedAside { get; init; } = [];
}

/// <summary>
/// Restores a snapshot into a target folder. Content blobs of all files are restored in parallel,
/// each written at its offset, so one large file uses every core. Symlinks are created last. An
/// entry the target already holds is replaced (never written through, so nothing lands outside the
/// target) only when it is of the snapshot's type and the <see cref="OverwritePolicy"/> says so; one
/// of another type is left and reported, or moved aside with <see cref="OverwritePolicy.Always"/>:
/// a restore never deletes a folder, nor anything the snapshot does not replace.
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

    private async Task<RestoreResult> RestoreAsync(SnapshotRef snapshot, RestoreRequest request, RestoreProgress progress, CancellationToken ct)
    {
        var root = TreeWalker.RootOf(snapshot);
        // A damaged index file or folder listing costs the files it describes, not the whole restore.
        var damage = new List<BackupIssue>();
        var index = await _repo.LoadIndexAsync((name, e) => damage.Add(new BackupIssue($"index/{name}", $"warning: {e.Message}; the blobs it lists are not found")), ct).ConfigureAwait(false);
        // An include that matches nothing fails the restore here, before the target is touched.
        var selection = await PathSelection.ResolveAsync(_repo, index, snapshot, request.Includes, request.Excludes, ct).ConfigureAwait(false);
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
        var files = new List<(string Path, Node Node, bool Replace)>();
        var hardLinks = new List<(string Path, string Existing, bool Replace)>();
        var symlinks = new List<(string Path, Node Node, bool Replace)>();
        var inTheWay = new InTheWay(request.Overwrite, issues, _repo.Time.GetUtcNow());
        var firstLink = new Dictionary<(ulong, ulong), string>();
        // Folders that could not be created: what is under them is not attempted (and not reported again).
        var missingFolders = new HashSet<string>(StringComparer.Ordinal);

        void Unreadable(string folder, KintsugiException e) =>
            issues.Enqueue(new BackupIssue(folder, $"folder not restored: it cannot be read ({e.Message})"));
        await foreach (var walked in TreeWalker.WalkAsync(_repo, index, root, Unreadable, ct).ConfigureAwait(false))
        {
            if (!selection.Selects(walked.Path, walked.Node.Type == NodeType.Directory))
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
            string local = target + walked.Path;
            var node = walked.Node;
            switch (node.Type)
            {
                case NodeType.Directory:
                    if (TryCreate(local, "cannot create folder", () =>
                    {
                        var existing = inTheWay.Check(local, node);
                        if (existing == Existing.None)
                        {
                            Directory.CreateDirectory(local);
                        }
                        return existing != Existing.Refused;
                    }, issues))
                    {
                        directories.Add((local, node));
                    }
                    else
                    {
                        missingFolders.Add(walked.Path);
                    }
                    break;
                case NodeType.File:
                {
                    if (!inTheWay.TryCheck(local, node, out bool replace))
                    {
                        break;
                    }
                    // A path left as it is never becomes a hard link's first name: the next name of that
                    // file is then written whole, not linked to what the user has at the path left.
                    if (node.Links > 1 && firstLink.TryGetValue((node.Device, node.Inode), out var existing))
                    {
                        hardLinks.Add((local, existing, replace));
                    }
                    else
                    {
                        if (node.Links > 1)
                        {
                            firstLink[(node.Device, node.Inode)] = local;
                        }
                        files.Add((local, node, replace));
                        Interlocked.Add(ref progress.TotalBytesField, node.Size);
                        Interlocked.Increment(ref progress.TotalFilesField);
                    }
                    break;
                }
                case NodeType.Symlink:
                {
                    if (inTheWay.TryCheck(local, node, out bool replace))
                    {
                        symlinks.Add((local, node, replace));
                    }
                    break;
                }
                case NodeType.Fifo:
                {
                    if (inTheWay.TryCheck(local, node, out bool replace) && TryCreate(local, "cannot create FIFO", () => { RemoveReplaced(local, replace); Posix.MkFifo(local, node.Mode & 0x1FF); }, issues))
                    {
                        ApplyMetadata(local, node, issues);
                    }
                    break;
                }
                default:
                    issues.Enqueue(new BackupIssue(walked.Path, $"warning: {node.Type.ToString().ToLowerInvariant()} not restored (special files are skipped for safety)"));
                    break;
            }
        }
        await RestoreFilesAsync(files, index, request, progress, issues, ct).ConfigureAwait(false);
        foreach (var (path, existing, replace) in hardLinks)
        {
            TryCreate(path, "cannot create hard link", () => { RemoveReplaced(path, replace); Posix.Link(existing, path); }, issues);
        }
        foreach (var (path, node, replace) in symlinks)
        {
            string linkTarget = node.LinkTarget ?? "";
            if (linkTarget.Length == 0 || linkTarget.Contains('\0', StringComparison.Ordinal))
            {
                issues.Enqueue(new BackupIssue(path, linkTarget.Length == 0 ? "symlink not restored: the snapshot records no target for it" : "symlink not restored: its target holds a NUL character"));
                continue;
            }
            if (TryCreate(path, "cannot create symlink", () => { RemoveReplaced(path, replace); File.CreateSymbolicLink(path, linkTarget); }, issues))
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
        return new RestoreResult(files.Count + hardLinks.Count, directories.Count, symlinks.Count, progress.BytesDone, issues.ToList())
        {
            Skipped = inTheWay.Skipped,
            MovedAside = inTheWay.Moved,
        };
    }

    /// <summary>
    /// Runs <paramref name="create"/>; a failure is reported as an issue (false), except a full
    /// disk, which stops the restore.
    /// </summary>
    private static bool TryCreate(string path, string what, Action create, ConcurrentQueue<BackupIssue> issues) =>
        TryCreate(path, what, () =>
        {
            create();
            return true;
        }, issues);

    /// <summary>As above, for a <paramref name="create"/> that may decline (false), having reported why.</summary>
    private static bool TryCreate(string path, string what, Func<bool> create, ConcurrentQueue<BackupIssue> issues)
    {
        try
        {
            return create();
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

    /// <summary>What the target holds at a path the snapshot restores, and what the restore does with it.</summary>
    private enum Existing
    {
        /// <summary>Nothing (or nothing any more: it was moved aside): the snapshot's entry is created.</summary>
        None,
        /// <summary>An entry of the snapshot's type that the policy replaces (a folder: merged into).</summary>
        Replace,
        /// <summary>An entry of the snapshot's type that the policy leaves as it is.</summary>
        Keep,
        /// <summary>An entry of another type, left as it is and reported.</summary>
        Refused,
    }

    /// <summary>
    /// Decides, as the walk reaches each path, what becomes of what the target already holds there.
    /// Runs on the walk alone (one thread).
    /// </summary>
    private sealed class InTheWay(OverwritePolicy policy, ConcurrentQueue<BackupIssue> issues, DateTimeOffset now)
    {
        private readonly string _suffix = ".kintsugi-old-" + now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        private readonly List<MovedAside> _moved = [];

        public long Skipped { get; private set; }

        public IReadOnlyList<MovedAside> Moved => _moved;

        /// <summary>For a file, symlink or FIFO: true with whether to replace what is there, or false (left as it is; reported if refused or failed).</summary>
        public bool TryCheck(string local, Node node, out bool replace)
        {
            var existing = Existing.Refused;
            TryCreate(local, "cannot restore", () =>
            {
                existing = Check(local, node);
                return true;
            }, issues);
            replace = existing == Existing.Replace;
            return existing is Existing.None or Existing.Replace;
        }

        public Existing Check(string local, Node node)
        {
            FileStatus st;
            try
            {
                st = Posix.LStat(local);
            }
            catch (FileNotFoundException)
            {
                return Existing.None;
            }
            if (IsOfType(st, node.Type))
            {
                if (node.Type == NodeType.Directory)
                {
                    return Existing.Replace;
                }
                bool replace = policy switch
                {
                    OverwritePolicy.Never => false,
                    OverwritePolicy.IfNewer => node.MtimeNs > st.MtimeNs,
                    OverwritePolicy.IfChanged => node.Type switch
                    {
                        NodeType.File => st.Size != node.Size || st.MtimeNs != node.MtimeNs,
                        NodeType.Symlink => !string.Equals(new FileInfo(local).LinkTarget, node.LinkTarget, StringComparison.Ordinal),
                        _ => false,
                    },
                    _ => true,
                };
                if (!replace)
                {
                    Skipped++;
                }
                return replace ? Existing.Replace : Existing.Keep;
            }
            if (policy == OverwritePolicy.Always)
            {
                string aside = local + _suffix;
                for (int n = 2; Exists(aside); n++)
                {
                    aside = local + _suffix + "-" + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
                Posix.Rename(local, aside);
                _moved.Add(new MovedAside(local, aside));
                return Existing.None;
            }
            string under = node.Type == NodeType.Directory ? " and nothing under it restored" : "";
            issues.Enqueue(new BackupIssue(local, $"{Describe(st)} is in the way of the snapshot's {Word(node.Type)}; left as it is{under} (--overwrite always moves it aside)"));
            return Existing.Refused;
        }

        private static bool Exists(string path)
        {
            try
            {
                Posix.LStat(path);
                return true;
            }
            catch (FileNotFoundException)
            {
                return false;
            }
        }

        private static bool IsOfType(FileStatus st, NodeType type) => type switch
        {
            NodeType.Directory => st.IsDirectory,
            NodeType.File => st.IsRegular,
            NodeType.Symlink => st.IsSymlink,
            NodeType.Fifo => st.IsFifo,
            _ => false,
        };

        private static string Describe(FileStatus st) =>
            st.IsDirectory ? "a folder" : st.IsRegular ? "a file" : st.IsSymlink ? "a symlink" : st.IsFifo ? "a FIFO" : st.IsSocket ? "a socket" : "a device";

        private static string Word(NodeType type) => type switch
        {
            NodeType.Directory => "folder",
            NodeType.Fifo => "FIFO",
            _ => type.ToString().ToLowerInvariant(),
        };
    }

    /// <summary>
    /// Removes the file, symlink or FIFO the walk decided to replace, so that creating the snapshot's
    /// cannot follow a link. Never a folder: one that took its place since is reported, not deleted.
    /// </summary>
    private static void RemoveReplaced(string path, bool replace)
    {
        if (!replace)
        {
            return;
        }
        try
        {
            if (Posix.LStat(path).IsDirectory)
            {
                throw new IOException($"{path}: a folder took its place; left as it is");
            }
            File.Delete(path);
        }
        catch (FileNotFoundException)
        {
        }
    }

    private async Task RestoreFilesAsync(List<(string Path, Node Node, bool Replace)> files, MasterIndex index, RestoreRequest request, RestoreProgress progress, ConcurrentQueue<BackupIssue> issues, CancellationToken ct)
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
            foreach (var (path, node, replace) in files)
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
                    RemoveReplaced(path, replace);
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
