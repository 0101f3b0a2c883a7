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
    /// <summary>
    /// Delete what the target holds inside the restored folders that the snapshot does not have (as
    /// restic's <c>restore --delete</c>): with includes, only at or under an included path; nothing the
    /// snapshot holds, also what an exclude leaves out.
    /// </summary>
    public bool Delete { get; init; }
    /// <summary>Paths --delete never deletes, nor a folder that holds one (the repository in use is always one).</summary>
    public IReadOnlyList<string> Protected { get; init; } = [];
    /// <summary>Decide everything and change nothing: the result says what a real run would restore, move aside and delete.</summary>
    public bool DryRun { get; init; }
    /// <summary>Fill <see cref="RestoreResult.Restored"/> with every entry restored (or, in a dry run, that would be).</summary>
    public bool ListEntries { get; init; }
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

    /// <summary>
    /// Files of the snapshot (hard links included) that are not in the target whole because of an
    /// error: damaged content, a failed write, an entry of another type in the way. <see cref="Files"/>
    /// and <see cref="Bytes"/> count only files written intact.
    /// </summary>
    public long Failed { get; init; }

    /// <summary>Paths in the target that the snapshot does not have, deleted (<see cref="RestoreRequest.Delete"/>; in a dry run, that would be), a folder after what was in it.</summary>
    public IReadOnlyList<string> Deleted { get; init; } = [];

    /// <summary>Nothing was changed: the counts and lists say what a real run would do.</summary>
    public bool DryRun { get; init; }

    /// <summary>Every entry restored (in a dry run, that would be), sorted; empty unless <see cref="RestoreRequest.ListEntries"/>.</summary>
    public IReadOnlyList<string> Restored { get; init; } = [];
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

    private sealed class FileState(string path, Node node, int blobs, bool replace, ConcurrentDictionary<FileState, byte> unfinished)
    {
        public string Path { get; } = path;
        public Node Node { get; } = node;
        /// <summary>What the target holds at the path is to be removed first (the walk decided it may be replaced).</summary>
        public bool Replace { get; } = replace;
        public SafeFileHandle? Handle { get; set; }
        public int Remaining = blobs;
        public volatile bool Failed;

        /// <summary>
        /// Creates the file, empty, where nothing is (removing what the walk decided to replace);
        /// false when it cannot be (reported). A full disk stops the restore.
        /// </summary>
        public bool TryCreate(ConcurrentQueue<BackupIssue> issues)
        {
            if (!RestoreEngine.TryCreate(Path, "cannot create", () =>
            {
                RemoveReplaced(Path, Replace);
                Handle = File.OpenHandle(Path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            }, issues))
            {
                return false;
            }
            unfinished.TryAdd(this, 0);
            return true;
        }

        /// <summary>Takes the file off the files created and not yet finished, which a restore that stops removes.</summary>
        public void MarkFinished() => unfinished.TryRemove(this, out _);
    }

    /// <summary>A blob to write at its offset in a file; with <see cref="Create"/>, the file's only blob (or none: an empty file), the file not yet created.</summary>
    private readonly record struct BlobJob(FileState File, long Offset, IndexEntry Entry, bool Create = false);

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
        bool dry = request.DryRun;
        if (!dry)
        {
            try
            {
                Directory.CreateDirectory(target);
            }
            catch (IOException e)
            {
                throw KintsugiException.FromIo(e, target);
            }
        }
        var issues = new ConcurrentQueue<BackupIssue>(damage);
        var tally = new Tally(request.ListEntries);
        var directories = new List<(string Path, Node Node)>();
        var files = new List<(string Path, Node Node, bool Replace)>();
        var hardLinks = new List<(string Path, string Existing, bool Replace)>();
        var symlinks = new List<(string Path, Node Node, bool Replace)>();
        var inTheWay = new InTheWay(request.Overwrite, issues, _repo.Time.GetUtcNow(), dry);
        var cleanup = request.Delete ? new TargetCleanup(target, dry, issues, selection.Covers, [_repo.Store.Location, .. request.Protected]) : null;
        if (cleanup is not null && selection.IncludesEverything)
        {
            cleanup.Clear("");
        }
        var firstLink = new Dictionary<(ulong, ulong), string>();
        // Folders that could not be created: what is under them is not attempted (and not reported again).
        var missingFolders = new HashSet<string>(StringComparer.Ordinal);
        // Folders this restore created (in a dry run, would create): nothing can be in the way in them.
        var newFolders = new HashSet<string>(StringComparer.Ordinal);
        // Files are written as the walk finds them, so the walk holds none of them in memory; with
        // --delete they wait until the target is cleared, so the space of what goes is free first.
        var writer = new FileWriter(_repo, index, request, progress, issues, tally, ct);
        try
        {
            await WalkAsync().ConfigureAwait(false);
            cleanup?.Run(inTheWay.Moved.Select(m => m.MovedTo));
            foreach (var (path, node, replace) in files)
            {
                await writer.AddAsync(path, node, replace).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            await writer.AbandonAsync(e).ConfigureAwait(false);
            throw;
        }
        await writer.CompleteAsync().ConfigureAwait(false);
        foreach (var (path, existing, replace) in hardLinks)
        {
            if (dry || TryCreate(path, "cannot create hard link", () => { RemoveReplaced(path, replace); Posix.Link(existing, path); }, issues))
            {
                tally.FileRestored(path, 0);
            }
            else
            {
                tally.FileFailed();
            }
        }
        foreach (var (path, node, replace) in symlinks)
        {
            string linkTarget = node.LinkTarget ?? "";
            if (linkTarget.Length == 0 || linkTarget.Contains('\0', StringComparison.Ordinal))
            {
                issues.Enqueue(new BackupIssue(path, linkTarget.Length == 0 ? "symlink not restored: the snapshot records no target for it" : "symlink not restored: its target holds a NUL character"));
                continue;
            }
            if (dry)
            {
                tally.SymlinkRestored(path);
            }
            else if (TryCreate(path, "cannot create symlink", () => { RemoveReplaced(path, replace); File.CreateSymbolicLink(path, linkTarget); }, issues))
            {
                tally.SymlinkRestored(path);
                ApplyMetadata(path, node, issues);
            }
        }
        // Folders last and deepest first, so writing their contents does not change their mtime again.
        for (int i = directories.Count - 1; i >= 0 && !dry; i--)
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
        return new RestoreResult(tally.Files, directories.Count, tally.Symlinks, tally.Bytes, issues.ToList())
        {
            Skipped = inTheWay.Skipped,
            MovedAside = inTheWay.Moved,
            Failed = tally.Failed,
            Deleted = cleanup?.Deleted ?? [],
            DryRun = dry,
            Restored = tally.Listing,
        };

        async Task WalkAsync()
        {
            void Unreadable(string folder, KintsugiException e)
            {
                issues.Enqueue(new BackupIssue(folder, $"folder not restored: it cannot be read ({e.Message})"));
                cleanup?.Unknown(folder == "/" ? "" : folder);
            }
            // A folder nothing is selected in or under is not read at all.
            await foreach (var walked in TreeWalker.WalkAsync(_repo, index, root, Unreadable, path => selection.Selects(path, isDirectory: true), ct).ConfigureAwait(false))
            {
                // Whatever the snapshot holds is never --delete's to remove, restored or left out by an exclude.
                cleanup?.InSnapshot(walked.Path);
                if (!selection.Selects(walked.Path, walked.Node.Type == NodeType.Directory))
                {
                    continue;
                }
                string parent = walked.Path[..walked.Path.LastIndexOf('/')];
                if (missingFolders.Contains(parent))
                {
                    if (walked.Node.Type == NodeType.Directory)
                    {
                        missingFolders.Add(walked.Path);
                    }
                    else if (walked.Node.Type == NodeType.File)
                    {
                        tally.FileFailed();
                    }
                    continue;
                }
                // Under --target / the snapshot's paths are the local ones (not //tmp/…).
                string local = target == "/" ? walked.Path : target + walked.Path;
                var node = walked.Node;
                switch (node.Type)
                {
                    case NodeType.Directory:
                        var folderState = Existing.Refused;
                        if (TryCreate(local, "cannot create folder", () =>
                        {
                            folderState = inTheWay.Check(local, node);
                            if (folderState == Existing.None && !dry)
                            {
                                Directory.CreateDirectory(local);
                            }
                            return folderState != Existing.Refused;
                        }, issues))
                        {
                            directories.Add((local, node));
                            tally.Restored(local);
                            if (folderState == Existing.None)
                            {
                                newFolders.Add(walked.Path);
                            }
                            // A folder the target already had is cleared of what the snapshot lacks; one just made holds nothing else.
                            if (folderState == Existing.Replace && cleanup is not null && selection.Covers(walked.Path, isDirectory: true))
                            {
                                cleanup.Clear(walked.Path);
                            }
                        }
                        else
                        {
                            missingFolders.Add(walked.Path);
                        }
                        break;
                    case NodeType.File:
                    {
                        // In a folder this restore made, nothing is in the way (one that appears since is
                        // not overwritten: the file is created only where nothing is, and reported otherwise).
                        var existing = newFolders.Contains(parent) ? Existing.None : inTheWay.TryCheck(local, node);
                        if (existing is Existing.Keep or Existing.Refused)
                        {
                            if (existing == Existing.Refused)
                            {
                                tally.FileFailed();
                            }
                            break;
                        }
                        bool replace = existing == Existing.Replace;
                        // A path left as it is never becomes a hard link's first name: the next name of that
                        // file is then written whole, not linked to what the user has at the path left.
                        if (node.Links > 1 && firstLink.TryGetValue((node.Device, node.Inode), out var first))
                        {
                            hardLinks.Add((local, first, replace));
                        }
                        else
                        {
                            if (node.Links > 1)
                            {
                                firstLink[(node.Device, node.Inode)] = local;
                            }
                            Interlocked.Add(ref progress.TotalBytesField, node.Size);
                            Interlocked.Increment(ref progress.TotalFilesField);
                            if (cleanup is null)
                            {
                                await writer.AddAsync(local, node, replace).ConfigureAwait(false);
                            }
                            else
                            {
                                files.Add((local, node, replace));
                            }
                        }
                        break;
                    }
                    case NodeType.Symlink:
                    {
                        var existing = inTheWay.TryCheck(local, node);
                        if (existing is Existing.None or Existing.Replace)
                        {
                            symlinks.Add((local, node, existing == Existing.Replace));
                        }
                        break;
                    }
                    case NodeType.Fifo:
                    {
                        var existing = inTheWay.TryCheck(local, node);
                        if (existing is not (Existing.None or Existing.Replace))
                        {
                            break;
                        }
                        if (dry)
                        {
                            tally.Restored(local);
                        }
                        else if (TryCreate(local, "cannot create FIFO", () => { RemoveReplaced(local, existing == Existing.Replace); Posix.MkFifo(local, node.Mode & 0x1FF); }, issues))
                        {
                            tally.Restored(local);
                            ApplyMetadata(local, node, issues);
                        }
                        break;
                    }
                    default:
                        issues.Enqueue(new BackupIssue(walked.Path, $"warning: {node.Type.ToString().ToLowerInvariant()} not restored (special files are skipped for safety)"));
                        break;
                }
            }
        }
    }

    /// <summary>
    /// What a restore wrote intact, counted as it goes (files finish on several threads), and what it
    /// failed to: the summary's figures are of files that are in the target whole.
    /// </summary>
    private sealed class Tally(bool list)
    {
        private long _files, _bytes, _symlinks, _failed;
        private readonly ConcurrentQueue<string> _listing = new();

        public long Files => Interlocked.Read(ref _files);
        public long Bytes => Interlocked.Read(ref _bytes);
        public long Symlinks => Interlocked.Read(ref _symlinks);
        public long Failed => Interlocked.Read(ref _failed);

        public IReadOnlyList<string> Listing => [.. _listing.Order(StringComparer.Ordinal)];

        public void FileRestored(string path, long size)
        {
            Interlocked.Increment(ref _files);
            Interlocked.Add(ref _bytes, size);
            Restored(path);
        }

        public void SymlinkRestored(string path)
        {
            Interlocked.Increment(ref _symlinks);
            Restored(path);
        }

        public void FileFailed() => Interlocked.Increment(ref _failed);

        public void Restored(string path)
        {
            if (list)
            {
                _listing.Enqueue(path);
            }
        }
    }

    // ----- restore --delete -----

    /// <summary>What the name of an entry moved aside holds (NAME.kintsugi-old-TIME); --delete never deletes one.</summary>
    private const string MovedAsideMark = ".kintsugi-old-";

    /// <summary>
    /// Whether <paramref name="folder"/> is <paramref name="path"/> or a folder above it, symlinks
    /// followed: the CLI refuses --delete into the root, a home folder or a folder that holds one.
    /// </summary>
    public static bool IsOrHolds(string folder, string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileStatus f;
        try
        {
            f = Posix.Stat(folder);
        }
        catch (IOException)
        {
            return false;
        }
        for (string? p = Path.GetFullPath(path); p is not null; p = Path.GetDirectoryName(p))
        {
            try
            {
                var st = Posix.Stat(p);
                if (f.IsDirectory && st.Device == f.Device && st.Inode == f.Inode)
                {
                    return true;
                }
            }
            catch (IOException)
            {
                // Not there (yet): what is above it may still be the folder.
            }
        }
        return false;
    }

    /// <summary>
    /// restore --delete: deletes, from the folders the target already had and the restore merged
    /// into, every entry the snapshot does not have there (in a dry run, only lists them). Entries are
    /// taken as they are, never followed: a symlink is removed as a link, a folder with what is in
    /// it (a folder after its contents), and nothing outside the target is reached. A folder whose
    /// listing in the snapshot could not be read is left alone (what it should hold is unknown), and
    /// so is a mount point (another file system) and what was moved aside.
    /// </summary>
    private sealed class TargetCleanup(string target, bool dryRun, ConcurrentQueue<BackupIssue> issues, Func<string, bool, bool> inScope, IReadOnlyList<string> protectedPaths)
    {
        private readonly HashSet<string> _inSnapshot = new(StringComparer.Ordinal);
        private readonly List<string> _folders = [];
        private readonly HashSet<string> _unknown = new(StringComparer.Ordinal);
        private readonly List<string> _deleted = [];

        public IReadOnlyList<string> Deleted => _deleted;

        /// <summary>A path of the snapshot inside what is restored: the target's entry there stays.</summary>
        public void InSnapshot(string path) => _inSnapshot.Add(path);

        /// <summary>A folder (a snapshot path; "" the target itself) to clear of what the snapshot lacks.</summary>
        public void Clear(string folder) => _folders.Add(folder);

        /// <summary>A folder whose listing could not be read from the snapshot.</summary>
        public void Unknown(string folder) => _unknown.Add(folder);

        public void Run(IEnumerable<string> keep)
        {
            var kept = new HashSet<string>(keep, StringComparer.Ordinal);
            foreach (var folder in _folders.Where(f => !_unknown.Contains(f)))
            {
                string local = target == "/" && folder.Length > 0 ? folder : target + folder;
                FileStatus st;
                try
                {
                    st = Posix.LStat(local);
                }
                catch (FileNotFoundException)
                {
                    // A dry run into a target that does not exist yet.
                    continue;
                }
                if (!st.IsDirectory)
                {
                    continue;
                }
                List<string> names;
                try
                {
                    names = [.. Names(local)];
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    issues.Enqueue(new BackupIssue(local, $"not cleared of what the snapshot does not have: {e.Message}"));
                    continue;
                }
                foreach (var name in names)
                {
                    string entry = local == "/" ? "/" + name : local + "/" + name;
                    // What --overwrite moved aside (now or in an earlier restore) is the user's, never deleted.
                    if (_inSnapshot.Contains(folder + "/" + name) || kept.Contains(entry) || name.Contains(MovedAsideMark, StringComparison.Ordinal))
                    {
                        continue;
                    }
                    bool isDirectory;
                    try
                    {
                        isDirectory = Posix.LStat(entry).IsDirectory;
                    }
                    catch (IOException)
                    {
                        continue;
                    }
                    // Outside the restore's scope (an --exclude): not the restore's to delete.
                    if (!inScope(folder + "/" + name, isDirectory))
                    {
                        continue;
                    }
                    if (isDirectory && protectedPaths.FirstOrDefault(p => IsOrHolds(entry, p)) is { } protectedPath)
                    {
                        issues.Enqueue(new BackupIssue(entry, $"warning: not deleted: it is or holds {protectedPath}, which this restore uses (the repository, or the program itself)"));
                        continue;
                    }
                    Remove(entry, st.Device);
                }
            }
        }

        private static IEnumerable<string> Names(string folder) =>
            Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

        /// <summary>Removes an entry, a folder with everything in it; true when it is gone (or, in a dry run, would be).</summary>
        private bool Remove(string path, ulong device)
        {
            try
            {
                var st = Posix.LStat(path);
                if (st.IsDirectory)
                {
                    if (st.Device != device)
                    {
                        issues.Enqueue(new BackupIssue(path, "warning: not deleted: it is a mount point (another file system); left as it is"));
                        return false;
                    }
                    bool all = true;
                    foreach (var name in Names(path))
                    {
                        all &= Remove(path + "/" + name, device);
                    }
                    if (!all)
                    {
                        // What could not be deleted inside it is reported; the folder stays for it.
                        return false;
                    }
                    if (!dryRun)
                    {
                        Directory.Delete(path, recursive: false);
                    }
                }
                else if (!dryRun)
                {
                    // unlink(2): a symlink goes as a link; what it points to is not touched.
                    File.Delete(path);
                }
                _deleted.Add(path);
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                issues.Enqueue(new BackupIssue(path, $"not deleted: {e.Message}"));
                return false;
            }
        }
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
    private sealed class InTheWay(OverwritePolicy policy, ConcurrentQueue<BackupIssue> issues, DateTimeOffset now, bool dryRun)
    {
        private readonly string _suffix = MovedAsideMark + now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        private readonly List<MovedAside> _moved = [];
        // In a dry run, what would have been moved aside is still there: the paths under it are taken as empty.
        private readonly HashSet<string> _wouldBeGone = new(StringComparer.Ordinal);

        public long Skipped { get; private set; }

        public IReadOnlyList<MovedAside> Moved => _moved;

        /// <summary>For a file, symlink or FIFO: what becomes of what is there; <see cref="Existing.Refused"/> also when that cannot be told (reported).</summary>
        public Existing TryCheck(string local, Node node)
        {
            var existing = Existing.Refused;
            TryCreate(local, "cannot restore", () =>
            {
                existing = Check(local, node);
                return true;
            }, issues);
            return existing;
        }

        public Existing Check(string local, Node node)
        {
            if (_wouldBeGone.Count > 0 && UnderWouldBeGone(local))
            {
                return Existing.None;
            }
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
                if (dryRun)
                {
                    _wouldBeGone.Add(local);
                }
                else
                {
                    Posix.Rename(local, aside);
                }
                _moved.Add(new MovedAside(local, aside));
                return Existing.None;
            }
            string under = node.Type == NodeType.Directory ? " and nothing under it restored" : "";
            issues.Enqueue(new BackupIssue(local, $"{Describe(st)} is in the way of the snapshot's {Word(node.Type)}; left as it is{under} (--overwrite always moves it aside)"));
            return Existing.Refused;
        }

        private bool UnderWouldBeGone(string local)
        {
            for (int slash = local.LastIndexOf('/'); slash > 0; slash = local.LastIndexOf('/', slash - 1))
            {
                if (_wouldBeGone.Contains(local[..slash]))
                {
                    return true;
                }
            }
            return false;
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

    /// <summary>
    /// Writes the files of a restore: each is created as it is added, its content blobs queued to as
    /// many writers as <see cref="RestoreRequest.Workers"/>, each blob written at its offset, so one
    /// large file uses every core. A file is finished (length, metadata) by whichever writer writes its
    /// last blob.
    /// </summary>
    private sealed class FileWriter
    {
        private readonly MasterIndex _index;
        private readonly RestoreRequest _request;
        private readonly ConcurrentQueue<BackupIssue> _issues;
        private readonly Tally _tally;
        private readonly CancellationToken _ct;
        private readonly Channel<BlobJob> _jobs;
        private readonly Task[] _consumers;
        private readonly ConcurrentDictionary<FileState, byte> _unfinished = new();

        public FileWriter(Repository repo, MasterIndex index, RestoreRequest request, RestoreProgress progress, ConcurrentQueue<BackupIssue> issues, Tally tally, CancellationToken ct)
        {
            _index = index;
            _request = request;
            _issues = issues;
            _tally = tally;
            _ct = ct;
            int workers = Math.Max(1, request.Workers);
            var reader = new BlobReader(repo, index);
            var jobs = Channel.CreateBounded<BlobJob>(new BoundedChannelOptions(workers * 4) { SingleWriter = true });
            _jobs = jobs;
            _consumers = request.DryRun ? [] : Enumerable.Range(0, workers).Select(_ => Task.Run(async () =>
            {
                try
                {
                    await ConsumeAsync(jobs.Reader, reader, progress, issues, tally, ct).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    // Unblocks the producer; the first failure is what the caller sees.
                    jobs.Writer.TryComplete(e);
                    throw;
                }
            }, ct)).ToArray();
        }

        /// <summary>Creates the file (replacing what the walk decided to replace) and queues its blobs.</summary>
        public async Task AddAsync(string path, Node node, bool replace)
        {
            IndexEntry[] entries;
            try
            {
                entries = DumpEngine.ContentEntries(_index, path, node);
            }
            catch (KintsugiException e)
            {
                _issues.Enqueue(new BackupIssue(path, $"not restored: {e.Message}"));
                _tally.FileFailed();
                return;
            }
            if (_request.DryRun)
            {
                // What the index says is all a dry run checks: no pack is read.
                _tally.FileRestored(path, node.Size);
                return;
            }
            var state = new FileState(path, node, entries.Length, replace, _unfinished);
            if (entries.Length <= 1)
            {
                // A small file is created by the writer that writes it: creating a file is much of
                // the cost of a small one, and the walk (one thread) then only hands files out.
                await _jobs.Writer.WriteAsync(new BlobJob(state, 0, entries.Length == 0 ? default : entries[0], Create: true), _ct).ConfigureAwait(false);
                return;
            }
            if (!state.TryCreate(_issues))
            {
                _tally.FileFailed();
                return;
            }
            long offset = 0;
            foreach (var entry in entries)
            {
                await _jobs.Writer.WriteAsync(new BlobJob(state, offset, entry), _ct).ConfigureAwait(false);
                offset += entry.RawLength;
            }
        }

        /// <summary>Waits until every file added is written; after a failure, removes the files not finished and throws it.</summary>
        public async Task CompleteAsync()
        {
            _jobs.Writer.TryComplete();
            try
            {
                await Task.WhenAll(_consumers).ConfigureAwait(false);
            }
            catch
            {
                RemoveUnfinished();
                throw;
            }
        }

        /// <summary>
        /// After the walk failed (<paramref name="failure"/>): stops the writers, removes the files not
        /// finished. A writer's failure (a full disk) is the cause of the walk's (a closed channel), so it is thrown instead.
        /// </summary>
        public async Task AbandonAsync(Exception failure)
        {
            _jobs.Writer.TryComplete();
            try
            {
                await Task.WhenAll(_consumers).ConfigureAwait(false);
            }
            catch when (failure is ChannelClosedException or OperationCanceledException)
            {
                RemoveUnfinished();
                throw;
            }
            catch
            {
                // The walk's failure is the one reported.
            }
            RemoveUnfinished();
        }

        /// <summary>After a restore stopped (every writer done): the files it had not finished are removed, so none is left looking complete.</summary>
        private void RemoveUnfinished()
        {
            foreach (var file in _unfinished.Keys)
            {
                file.Handle?.Dispose();
                TryDelete(file.Path);
            }
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

    private static async Task ConsumeAsync(ChannelReader<BlobJob> jobs, BlobReader reader, RestoreProgress progress, ConcurrentQueue<BackupIssue> issues, Tally tally, CancellationToken ct)
    {
        byte[] plain = [];
        await foreach (var job in jobs.ReadAllAsync(ct).ConfigureAwait(false))
        {
            var file = job.File;
            if (job.Create)
            {
                if (!file.TryCreate(issues))
                {
                    tally.FileFailed();
                    continue;
                }
                if (file.Remaining == 0)
                {
                    Finish(file, issues, tally);
                    continue;
                }
            }
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
                Finish(file, issues, tally);
            }
        }
    }

    /// <summary>Gives a file whose blobs are all written its length and metadata; one that failed is removed, its issue already reported.</summary>
    private static void Finish(FileState file, ConcurrentQueue<BackupIssue> issues, Tally tally)
    {
        if (file.Failed)
        {
            file.Handle!.Dispose();
            TryDelete(file.Path);
            file.MarkFinished();
            tally.FileFailed();
            return;
        }
        try
        {
            // The file was created empty and its blobs add up to its size (DumpEngine.ContentEntries),
            // so writing them all gave it its length; only a sparse file may end in a hole not written.
            if (file.Node.Sparse)
            {
                RandomAccess.SetLength(file.Handle!, file.Node.Size);
            }
        }
        catch (IOException e)
        {
            file.Failed = true;
            file.Handle!.Dispose();
            TryDelete(file.Path);
            file.MarkFinished();
            if (KintsugiException.FromIo(e, file.Path) is KintsugiException { Kind: ErrorKind.NoSpace } full)
            {
                throw full;
            }
            issues.Enqueue(new BackupIssue(file.Path, $"not restored: {e.Message}"));
            tally.FileFailed();
            return;
        }
        file.Handle!.Dispose();
        file.MarkFinished();
        tally.FileRestored(file.Path, file.Node.Size);
        ApplyMetadata(file.Path, file.Node, issues);
    }

    /// <summary>Asked once, not once per file.</summary>
    private static readonly bool IsRoot = Posix.IsRoot;

    private static void ApplyMetadata(string path, Node node, ConcurrentQueue<BackupIssue> issues)
    {
        try
        {
            if (IsRoot)
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
