using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Enumeration;
using System.Threading.Channels;
using Kintsugi.Backup.Chunking;
using Kintsugi.Backup.Chunking.Tensors;
using Kintsugi.Backup.Codecs;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Platform;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Backup.Engine;

/// <summary>
/// Backs up paths into a snapshot. Files are read and chunked by up to <see cref="BackupRequest.Workers"/>
/// readers; new chunks go through a bounded channel to as many sealers (compress, encrypt), which
/// fill packs. Packs are stored first, then the index entries for them, then the snapshot — the
/// single commit point. A crash before the snapshot leaves only unreferenced packs, which prune removes.
/// </summary>
public sealed partial class BackupEngine
{
    private readonly Repository _repo;

    public BackupEngine(Repository repository) => _repo = repository;

    public async Task<BackupResult> RunAsync(BackupRequest request, BackupProgress? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var paths = NormalizePaths(request.Paths);
        RefuseIfAllExcluded(request, paths);
        // A dry run writes nothing, not even a lock: like any reader it works on what it loads.
        await using var repoLock = request.DryRun ? null : await _repo.LockAsync(exclusive: false, request.Host, "backup", ct).ConfigureAwait(false);
        var run = new Run(_repo, request, progress ?? new BackupProgress());
        return await run.ExecuteAsync(paths, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Every named path left out by the excludes would make an empty snapshot, which would become
    /// `latest` and hide the last real one: refused (as restic refuses it), naming why each was left out.
    /// </summary>
    internal static void RefuseIfAllExcluded(BackupRequest request, IReadOnlyList<string> paths)
    {
        var why = new List<string>();
        foreach (string path in paths)
        {
            FileStatus status;
            try
            {
                status = Posix.LStat(path);
            }
            catch (IOException)
            {
                return; // the backup reports it
            }
            var patterns = request.Exclude.IsExcluded(path, status.IsDirectory)
                ? request.Exclude.Patterns.Where(p => !p.Negated && p.Matches(path, status.IsDirectory)).Select(p => p.Text).ToList()
                : null;
            if (patterns is not null)
            {
                why.Add($"{path} by the exclude {string.Join(", ", patterns.DefaultIfEmpty("patterns"))}");
            }
            else if (status.IsRegular && status.Size > request.ExcludeLargerThan)
            {
                why.Add($"{path} by --exclude-larger-than ({status.Size} bytes, over {request.ExcludeLargerThan})");
            }
            else
            {
                return;
            }
        }
        throw new KintsugiException(ErrorKind.InvalidInput,
            $"everything named is excluded ({string.Join("; ", why)}), so the snapshot would be empty and become latest; nothing was saved: narrow the excludes or name other paths");
    }

    /// <summary>Absolute, without trailing separators, without duplicates or paths nested in others; each must exist.</summary>
    internal static List<string> NormalizePaths(IReadOnlyList<string> paths)
    {
        if (paths.Count == 0)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "no paths to back up; name at least one file or folder");
        }
        var full = new List<string>();
        foreach (var p in paths)
        {
            if (string.IsNullOrWhiteSpace(p))
            {
                throw new KintsugiException(ErrorKind.InvalidInput, "an empty path was given; name a file or folder to back up");
            }
            string abs = Path.GetFullPath(p);
            if (abs.Length > 1)
            {
                abs = abs.TrimEnd('/');
            }
            try
            {
                Posix.LStat(abs);
            }
            catch (FileNotFoundException)
            {
                throw new KintsugiException(ErrorKind.InvalidInput, $"path {p} does not exist; check the spelling or remove it from the command");
            }
            catch (IOException e)
            {
                throw new KintsugiException(ErrorKind.InvalidInput, $"path {p} cannot be read ({e.Message}); fix its permissions or remove it from the command");
            }
            full.Add(abs);
        }
        full = full.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        return full.Where(p => !full.Any(q => q != p && (q == "/" || p.StartsWith(q + "/", StringComparison.Ordinal)))).ToList();
    }

    private sealed class ChunkJob(BlobId id, BlobKind kind, byte[] buffer, int length)
    {
        public BlobId Id { get; } = id;
        public BlobKind Kind { get; } = kind;
        public byte[] Buffer { get; } = buffer;
        public int Length { get; } = length;
        /// <summary>For a tensor piece: the element width for byte planes (0: none).</summary>
        public int PlaneWidth { get; init; }
        /// <summary>For a tensor piece: the same piece in the parent snapshot, to store a delta against.</summary>
        public IndexEntry? Base { get; init; }
    }

    /// <summary>What reading a file gave: its content list, its length, and how it was split.</summary>
    private sealed record FileContent(List<string> Content, long Length, string? Layout, List<TensorRef>? Tensors);

    /// <summary>The state of one backup run.</summary>
    private sealed partial class Run
    {
        private readonly Repository _repo;
        private readonly BackupRequest _request;
        private readonly BackupProgress _progress;
        private readonly MasterKey _key;
        private readonly Chunker _chunker;
        private readonly Channel<ChunkJob> _chunks;
        private readonly ConcurrentDictionary<BlobId, byte> _pending = new();
        private readonly ConcurrentDictionary<string, Lazy<IReadOnlyDictionary<string, TensorLayout>>> _externalLayouts = new(StringComparer.Ordinal);
        private readonly ConcurrentBag<byte[]> _readBuffers = [];
        private readonly SemaphoreSlim _readSlots;
        private readonly ConcurrentQueue<BackupIssue> _issues = new();
        private readonly List<IndexEntry> _unindexed = [];
        private readonly Lock _unindexedLock = new();
        private PackWriter _packs = null!;
        private MasterIndex _index = null!;
        private BlobReader _reader = null!;
        private long _filesNew, _filesChanged, _filesUnchanged, _dirs, _bytesAdded, _bytesStored, _blobsAdded;
        /// <summary>With --one-file-system: the devices of the named paths, the only ones entered.</summary>
        private HashSet<ulong>? _devices;

        public Run(Repository repo, BackupRequest request, BackupProgress progress)
        {
            _repo = repo;
            _request = request;
            _progress = progress;
            _key = repo.Key;
            _chunker = repo.CreateChunker();
            int workers = Math.Max(1, request.Workers);
            _readSlots = new SemaphoreSlim(workers);
            _chunks = Channel.CreateBounded<ChunkJob>(new BoundedChannelOptions(Math.Max(1, request.QueuedChunks)) { SingleReader = false, SingleWriter = false });
        }

        private int ReadBufferSize => _chunker.MaxSize + 1024 * 1024;

        public async Task<BackupResult> ExecuteAsync(List<string> paths, CancellationToken ct)
        {
            var clock = Stopwatch.StartNew();
            var started = _repo.Time.GetUtcNow();
            _index = await _repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
            _reader = new BlobReader(_repo, _index);
            _packs = new PackWriter(_repo.Store, _key, _repo.Config.PackSize, OnPackStoredAsync);
            // After a failure, the pack being filled is discarded rather than left in tmp/.
            await using var packs = _packs;
            var parent = await FindParentAsync(paths, ct).ConfigureAwait(false);
            if (_request.OneFileSystem)
            {
                _devices = paths.Select(p => Posix.LStat(p).Device).ToHashSet();
            }
            var scan = Task.Run(() => Scan(paths, ct), ct);

            using var sealCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var sealers = Enumerable.Range(0, Math.Max(1, _request.Workers)).Select(_ => Task.Run(async () =>
            {
                try
                {
                    await SealLoopAsync(sealCts.Token).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    // Unblocks the readers; the sealer's failure is what the caller sees.
                    _chunks.Writer.TryComplete(e);
                    throw;
                }
            }, sealCts.Token)).ToArray();
            Node root;
            try
            {
                var parentRoot = parent is null ? null : await TryLoadTreeAsync(BlobId.Parse(parent.Snapshot.Tree), ct).ConfigureAwait(false);
                root = paths is ["/"]
                    ? (await (await StartDirectoryAsync("/", "/", Posix.LStat("/"), new Node { Name = "/", Type = NodeType.Directory, Subtree = parent?.Snapshot.Tree }, ct).ConfigureAwait(false)).ConfigureAwait(false))!
                    : await (await StartVirtualDirectoryAsync("/", "/", BuildVirtualTree(paths), parentRoot, ct).ConfigureAwait(false)).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _chunks.Writer.TryComplete();
                await sealCts.CancelAsync().ConfigureAwait(false);
                await Task.WhenAll(sealers).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                var sealerFailure = sealers.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException).FirstOrDefault(x => x is not OperationCanceledException);
                if (e is ChannelClosedException && sealerFailure is not null)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(sealerFailure);
                }
                throw;
            }
            _chunks.Writer.Complete();
            await Task.WhenAll(sealers).ConfigureAwait(false);
            await _packs.FlushAsync(ct).ConfigureAwait(false);
            await FlushIndexAsync(ct).ConfigureAwait(false);
            await scan.ConfigureAwait(false);

            var snapshot = new Snapshot
            {
                Time = started,
                Host = _request.Host,
                User = _request.User,
                Paths = paths,
                Tags = _request.Tags.Count > 0 ? _request.Tags : null,
                Tree = root.Subtree!,
                Kind = _request.Full || parent is null ? "full" : "incremental",
                Parent = parent?.Id.ToString(),
                Program = _request.Program,
                Summary = new BackupSummary
                {
                    FilesNew = _filesNew,
                    FilesChanged = _filesChanged,
                    FilesUnchanged = _filesUnchanged,
                    Directories = _dirs,
                    Errors = _issues.Count(i => !i.Message.StartsWith("warning:", StringComparison.Ordinal)),
                    BytesTotal = _progress.BytesDone,
                    BytesRead = _progress.BytesRead,
                    BytesAdded = _bytesAdded,
                    BytesAddedStored = _bytesStored,
                    BlobsAdded = _blobsAdded,
                    DurationSeconds = Math.Round(clock.Elapsed.TotalSeconds, 3),
                },
            };
            if (_request.DryRun)
            {
                return new BackupResult(new SnapshotRef(default, snapshot), _issues.ToList()) { DryRun = true };
            }
            var id = await _repo.SaveSnapshotAsync(snapshot, ct).ConfigureAwait(false);
            await ProtectWithParityAsync(ct).ConfigureAwait(false);
            return new BackupResult(new SnapshotRef(id, snapshot), _issues.ToList());
        }

        /// <summary>
        /// Where the repository keeps parity, adds the new packs, index file and snapshot to it. The
        /// snapshot is already committed: a failure here leaves them unprotected until the next
        /// backup or `kintsugi parity update`, and is reported as a warning, not a failed backup.
        /// </summary>
        private async Task ProtectWithParityAsync(CancellationToken ct)
        {
            try
            {
                var cover = await new Parity.ParityEngine(_repo.Store).CoverAsync(ct: ct).ConfigureAwait(false);
                foreach (var skipped in cover.Skipped)
                {
                    _issues.Enqueue(new BackupIssue(_repo.Store.Location, $"warning: not protected by parity: {skipped}"));
                }
            }
            catch (Exception e) when (e is KintsugiException or IOException)
            {
                _issues.Enqueue(new BackupIssue(_repo.Store.Location, $"warning: the new files are not yet protected by parity ({e.Message}); run `kintsugi parity update`"));
            }
        }

        private async Task<SnapshotRef?> FindParentAsync(List<string> paths, CancellationToken ct)
        {
            if (_request.Parent is not null)
            {
                return await _repo.FindSnapshotAsync(_request.Parent, ct).ConfigureAwait(false);
            }
            var snapshots = await _repo.LoadSnapshotsAsync(onError: (_, _) => { }, ct: ct).ConfigureAwait(false);
            return snapshots.LastOrDefault(s => s.Snapshot.Host == _request.Host && s.Snapshot.Paths.SequenceEqual(paths, StringComparer.Ordinal));
        }

        private async Task<Dictionary<string, Node>?> TryLoadTreeAsync(BlobId id, CancellationToken ct)
        {
            try
            {
                var tree = await _repo.LoadTreeAsync(_index, id, ct).ConfigureAwait(false);
                var map = new Dictionary<string, Node>(StringComparer.Ordinal);
                foreach (var node in tree.Nodes)
                {
                    map.TryAdd(node.Name, node);
                }
                return map;
            }
            catch (KintsugiException)
            {
                // A damaged parent only costs re-reading its files.
                return null;
            }
        }

        /// <summary>Counts files and bytes for the progress display; it may meet files that vanish, so it never fails the backup.</summary>
        private void Scan(List<string> paths, CancellationToken ct)
        {
            try
            {
                ScanUnguarded(paths, ct);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The totals are an estimate; the backup itself reports what it could not read.
            }
            finally
            {
                _progress.ScanDoneField = true;
            }
        }

        private void ScanUnguarded(List<string> paths, CancellationToken ct)
        {
            var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0, ReturnSpecialDirectories = false };
            var filter = _request.Exclude;
            long maxSize = _request.ExcludeLargerThan ?? long.MaxValue;
            foreach (var path in paths)
            {
                if (File.Exists(path))
                {
                    long length = new FileInfo(path).Length;
                    if (length <= maxSize && !filter.IsExcluded(path, isDirectory: false))
                    {
                        Interlocked.Increment(ref _progress.TotalFilesField);
                        Interlocked.Add(ref _progress.TotalBytesField, length);
                    }
                    continue;
                }
                if (!Directory.Exists(path) || new FileInfo(path).LinkTarget is not null || filter.IsExcluded(path, isDirectory: true))
                {
                    continue;
                }
                // The estimate leaves out what the patterns and the size limit leave out; markers and mount points only the backup itself checks.
                var files = new FileSystemEnumerable<long>(path, (ref FileSystemEntry e) => e.Length, options)
                {
                    ShouldIncludePredicate = (ref FileSystemEntry e) => !e.IsDirectory && (e.Attributes & FileAttributes.ReparsePoint) == 0
                        && e.Length <= maxSize && (filter.IsEmpty || !filter.IsExcluded(e.ToFullPath(), isDirectory: false)),
                    ShouldRecursePredicate = (ref FileSystemEntry e) => (e.Attributes & FileAttributes.ReparsePoint) == 0
                        && (filter.IsEmpty || !filter.IsExcluded(e.ToFullPath(), isDirectory: true)),
                };
                foreach (long length in files)
                {
                    ct.ThrowIfCancellationRequested();
                    Interlocked.Add(ref _progress.TotalBytesField, length);
                    Interlocked.Increment(ref _progress.TotalFilesField);
                }
            }
        }

        /// <summary>The folders above the backup paths, down to the paths themselves.</summary>
        private sealed class VirtualDir
        {
            public SortedDictionary<string, VirtualDir?> Children { get; } = new(StringComparer.Ordinal);
        }

        private static VirtualDir BuildVirtualTree(List<string> paths)
        {
            var root = new VirtualDir();
            foreach (var path in paths)
            {
                var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
                var dir = root;
                for (int i = 0; i < parts.Length; i++)
                {
                    if (i == parts.Length - 1)
                    {
                        dir.Children[parts[i]] = null;
                    }
                    else
                    {
                        if (!dir.Children.TryGetValue(parts[i], out var next) || next is null)
                        {
                            next = new VirtualDir();
                            dir.Children[parts[i]] = next;
                        }
                        dir = next;
                    }
                }
            }
            return root;
        }

        /// <summary>A node that is not in the snapshot (left out, vanished, unreadable).</summary>
        private static readonly Task<Node?> NoNode = Task.FromResult<Node?>(null);

        /// <summary>The first failure of a file's task (not a file that could not be read: a sealer's, a full disk): the walk stops at it.</summary>
        private Exception? _fileFailure;

        /// <summary>As <see cref="StartDirectoryAsync"/>, for a folder above the named paths.</summary>
        private async Task<Task<Node>> StartVirtualDirectoryAsync(string fsPath, string name, VirtualDir dir, Dictionary<string, Node>? parentTree, CancellationToken ct)
        {
            var tasks = new List<Task<Node?>>();
            var sibling = NewestTensorFile(parentTree);
            foreach (var (childName, childDir) in dir.Children)
            {
                string childPath = fsPath == "/" ? "/" + childName : fsPath + "/" + childName;
                var parentNode = parentTree?.GetValueOrDefault(childName);
                if (childDir is null)
                {
                    tasks.Add(await StartEntryAsync(childPath, childName, parentNode, sibling, ct).ConfigureAwait(false));
                }
                else
                {
                    var parentChildTree = parentNode?.Subtree is { } sub ? await TryLoadTreeAsync(BlobId.Parse(sub), ct).ConfigureAwait(false) : null;
                    tasks.Add((await StartVirtualDirectoryAsync(childPath, childName, childDir, parentChildTree, ct).ConfigureAwait(false))!);
                }
            }
            return FinishVirtualDirectoryAsync(fsPath, name, tasks, ct);
        }

        private async Task<Node> FinishVirtualDirectoryAsync(string fsPath, string name, List<Task<Node?>> tasks, CancellationToken ct)
        {
            var nodes = (await Task.WhenAll(tasks).ConfigureAwait(false)).OfType<Node>().ToList();
            var treeId = await SaveTreeAsync(nodes, ct).ConfigureAwait(false);
            var status = Posix.LStat(fsPath);
            return MakeNode(name, NodeType.Directory, status) with { Subtree = treeId.ToString() };
        }

        /// <summary>
        /// Walks one entry: returns once it is under way, with the task that gives its node. A folder
        /// is under way when everything in it is; a file to read when a read slot is free and its read
        /// has started. The walk goes depth first and waits for read slots, so what is in flight at
        /// once (and in memory: a task, a path and a status per entry) is a few files and the folders
        /// on the way to them, however many files the folders hold.
        /// </summary>
        private async ValueTask<Task<Node?>> StartEntryAsync(string path, string name, Node? parentNode, Node? sibling, CancellationToken ct)
        {
            ct.ThrowIfCancellationRequested();
            if (_fileFailure is { } failure)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
            FileStatus status;
            try
            {
                status = Posix.LStat(path);
            }
            catch (IOException e)
            {
                _issues.Enqueue(new BackupIssue(path, e is FileNotFoundException ? "vanished before it was read" : e.Message));
                return NoNode;
            }
            if (IsLeftOut(path, status))
            {
                return NoNode;
            }
            if (status.IsDirectory)
            {
                return await StartDirectoryAsync(path, name, status, parentNode, ct).ConfigureAwait(false);
            }
            if (status.IsRegular)
            {
                return await StartFileAsync(path, name, status, parentNode, sibling, ct).ConfigureAwait(false);
            }
            if (status.IsSymlink)
            {
                string? target;
                try
                {
                    target = new FileInfo(path).LinkTarget;
                }
                catch (IOException e)
                {
                    _issues.Enqueue(new BackupIssue(path, e.Message));
                    return NoNode;
                }
                return Task.FromResult<Node?>(MakeNode(name, NodeType.Symlink, status) with { LinkTarget = target ?? "" });
            }
            var type = status.IsFifo ? NodeType.Fifo : status.IsSocket ? NodeType.Socket : status.IsCharDevice ? NodeType.CharDevice : NodeType.BlockDevice;
            return Task.FromResult<Node?>(MakeNode(name, type, status) with { RDevice = status.RDevice });
        }

        /// <summary>Whether the request's excludes leave the entry out of the snapshot.</summary>
        private bool IsLeftOut(string path, in FileStatus status)
        {
            if (_request.Exclude.IsExcluded(path, status.IsDirectory))
            {
                return true;
            }
            if (status.IsRegular && status.Size > _request.ExcludeLargerThan)
            {
                return true;
            }
            return false;
        }

        private static bool HasMarker(string folder, ExcludeMarker marker)
        {
            string file = folder + "/" + marker.FileName;
            try
            {
                if (marker.Header is null)
                {
                    Posix.LStat(file);
                    return true;
                }
                byte[] want = System.Text.Encoding.UTF8.GetBytes(marker.Header);
                using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                var head = new byte[want.Length];
                int filled = 0;
                while (filled < head.Length)
                {
                    int n = RandomAccess.Read(handle, head.AsSpan(filled), filled);
                    if (n == 0)
                    {
                        return false;
                    }
                    filled += n;
                }
                return head.AsSpan().SequenceEqual(want);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // No marker (or none that can be read): the folder is backed up.
                return false;
            }
        }

        private static Node MakeNode(string name, NodeType type, in FileStatus s) => new()
        {
            Name = name,
            Type = type,
            Mode = s.Permissions,
            Uid = s.Uid,
            Gid = s.Gid,
            MtimeNs = s.MtimeNs,
            CtimeNs = s.CtimeNs,
            Inode = s.Inode,
            Device = s.Device,
            Links = s.Links,
            Size = type == NodeType.File ? s.Size : 0,
        };

        /// <summary>Walks a folder (see <see cref="StartEntryAsync"/>); the task it returns stores the folder's tree once all it holds is stored.</summary>
        private async Task<Task<Node?>> StartDirectoryAsync(string path, string name, FileStatus status, Node? parentNode, CancellationToken ct)
        {
            Interlocked.Increment(ref _dirs);
            var parentTree = parentNode is { Type: NodeType.Directory, Subtree: { } sub } ? await TryLoadTreeAsync(BlobId.Parse(sub), ct).ConfigureAwait(false) : null;
            List<string> names;
            try
            {
                // A mount point below the named paths is stored as an empty folder, as restic does.
                names = _devices is not null && !_devices.Contains(status.Device) ? []
                    : Directory.EnumerateFileSystemEntries(path).Select(p => Path.GetFileName(p)).ToList();
                names.Sort(StringComparer.Ordinal);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _issues.Enqueue(new BackupIssue(path, $"cannot list the folder: {e.Message}"));
                names = [];
            }
            // .NET decodes file names as UTF-8; a name that is not valid UTF-8 comes back with U+FFFD and cannot be opened again by that name.
            foreach (var bad in names.Where(n => n.Contains('\uFFFD', StringComparison.Ordinal)))
            {
                _issues.Enqueue(new BackupIssue(path + "/" + bad, "the name is not valid UTF-8, which Kintsugi cannot store yet; rename it to back it up"));
            }
            names.RemoveAll(n => n.Contains('\uFFFD', StringComparison.Ordinal));
            // A marked folder keeps only its marker, as restic does: a restore brings the tag back with the folder.
            var markers = _request.ExcludeIfPresent.Where(m => HasMarker(path, m)).Select(m => m.FileName).ToHashSet(StringComparer.Ordinal);
            if (markers.Count > 0)
            {
                names.RemoveAll(n => !markers.Contains(n));
            }
            var sibling = NewestTensorFile(parentTree);
            var entries = new Task<Node?>[names.Count];
            for (int i = 0; i < names.Count; i++)
            {
                entries[i] = await StartEntryAsync(path + "/" + names[i], names[i], parentTree?.GetValueOrDefault(names[i]), sibling, ct).ConfigureAwait(false);
            }
            return FinishDirectoryAsync(name, status, entries, ct);
        }

        private async Task<Node?> FinishDirectoryAsync(string name, FileStatus status, Task<Node?>[] entries, CancellationToken ct)
        {
            var nodes = (await Task.WhenAll(entries).ConfigureAwait(false)).OfType<Node>().ToList();
            var treeId = await SaveTreeAsync(nodes, ct).ConfigureAwait(false);
            return MakeNode(name, NodeType.Directory, status) with { Subtree = treeId.ToString() };
        }

        private static bool SameMetadata(Node parent, in FileStatus s) =>
            parent.Type == NodeType.File && parent.Size == s.Size && parent.MtimeNs == s.MtimeNs && parent.CtimeNs == s.CtimeNs && parent.Inode == s.Inode;

        /// <summary>A file unchanged since the parent snapshot is taken from it at once; any other is read once a read slot is free, on a thread of its own.</summary>
        private async ValueTask<Task<Node?>> StartFileAsync(string path, string name, FileStatus status, Node? parentNode, Node? sibling, CancellationToken ct)
        {
            if (!_request.Full && parentNode is not null && SameMetadata(parentNode, status) && parentNode.Content is { } known && known.All(c => BlobId.TryParse(c, out var id) && _index.Contains(id)))
            {
                Interlocked.Increment(ref _filesUnchanged);
                Interlocked.Increment(ref _progress.FilesDoneField);
                Interlocked.Add(ref _progress.BytesDoneField, status.Size);
                _request.OnFile?.Invoke(path, FileChange.Unchanged);
                return Task.FromResult<Node?>(MakeNode(name, NodeType.File, status) with { Content = known, Sparse = IsSparse(status), Layout = parentNode.Layout, Tensors = parentNode.Tensors });
            }
            await _readSlots.WaitAsync(ct).ConfigureAwait(false);
            return Task.Run(async () =>
            {
                try
                {
                    return await SaveFileAsync(path, name, status, parentNode, sibling, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Interlocked.CompareExchange(ref _fileFailure, e, null);
                    throw;
                }
                finally
                {
                    _readSlots.Release();
                }
            }, ct);
        }

        /// <summary>Reads a file that changed (or is new), again if it changed while being read; null when it vanished or cannot be read (reported).</summary>
        private async Task<Node?> SaveFileAsync(string path, string name, FileStatus status, Node? parentNode, Node? sibling, CancellationToken ct)
        {
            {
                FileContent? read = null;
                var baseNode = parentNode?.Tensors is not null ? parentNode : sibling;
                for (int attempt = 0; ; attempt++)
                {
                    bool readWhole = false;
                    try
                    {
                        read = await ChunkFileAsync(path, baseNode, status.Size, ct).ConfigureAwait(false);
                        readWhole = true;
                        var after = Posix.LStat(path);
                        if (after.Size == status.Size && after.MtimeNs == status.MtimeNs && after.CtimeNs == status.CtimeNs)
                        {
                            break;
                        }
                        status = after;
                        if (attempt == 1)
                        {
                            _issues.Enqueue(new BackupIssue(path, "warning: changed while being read, twice; the snapshot holds the content of the last read"));
                            break;
                        }
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        string why = e is not FileNotFoundException ? e.Message
                            : readWhole ? "vanished while it was read; left out of the snapshot" : "vanished before it was read";
                        _issues.Enqueue(new BackupIssue(path, why));
                        return null;
                    }
                }
                Interlocked.Increment(ref _progress.FilesDoneField);
                FileChange change;
                if (parentNode is null || parentNode.Type != NodeType.File)
                {
                    Interlocked.Increment(ref _filesNew);
                    change = FileChange.New;
                }
                else if (parentNode.Content is { } old && old.SequenceEqual(read!.Content, StringComparer.Ordinal))
                {
                    Interlocked.Increment(ref _filesUnchanged);
                    change = FileChange.Unchanged;
                }
                else
                {
                    Interlocked.Increment(ref _filesChanged);
                    change = FileChange.Modified;
                }
                _request.OnFile?.Invoke(path, change);
                return MakeNode(name, NodeType.File, status) with { Content = read!.Content, Size = read.Length, Sparse = IsSparse(status), Layout = read.Layout, Tensors = read.Tensors };
            }
        }

        private static bool IsSparse(in FileStatus s) => s.Size > 0 && s.Blocks * 512 < s.Size;

        /// <summary>
        /// Files up to this size are one chunk (below the chunker's minimum) and hold no tensor a
        /// tensor-aware split would store apart (<see cref="TensorSplitter.MinTensorBytes"/>), so they
        /// are read in one call, without looking for a tensor layout.
        /// </summary>
        private int SmallFileBytes => (int)Math.Min(_chunker.MinSize, TensorSplitter.MinTensorBytes);

        /// <summary>
        /// Reads and splits a file: a tensor container at its tensors (pieces coded against
        /// <paramref name="baseNode"/>'s same pieces where it has them), anything else by content-defined chunking.
        /// <paramref name="statSize"/> is its size when it was looked at; the caller checks it again after the read.
        /// </summary>
        private async Task<FileContent> ChunkFileAsync(string path, Node? baseNode, long statSize, CancellationToken ct)
        {
            var content = new List<string>(1);
            bool small = statSize <= SmallFileBytes;
            // Read-ahead advice is a system call per file that pays only for files larger than one read.
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, small ? FileOptions.None : FileOptions.SequentialScan);
            if (small && await TryChunkSmallFileAsync(handle, (int)statSize, content, ct).ConfigureAwait(false) is >= 0 and var read)
            {
                return new FileContent(content, read, null, null);
            }
            long fileLength = RandomAccess.GetLength(handle);
            var layout = _request.TensorAware ? TensorLayoutReader.TryRead(handle, fileLength) ?? ExternalLayoutOf(path, fileLength) : null;
            if (layout is null || layout.Tensors.All(t => t.Length < TensorSplitter.MinTensorBytes))
            {
                long length = await ChunkRangeAsync(handle, 0, -1, content, ct).ConfigureAwait(false);
                return new FileContent(content, length, null, null);
            }
            var (ranges, tensors) = TensorSplitter.Plan(layout);
            var refs = new List<TensorRef>(tensors.Count);
            var bases = new TensorRef?[tensors.Count];
            long end = 0;
            foreach (var range in ranges)
            {
                ct.ThrowIfCancellationRequested();
                if (range.Tensor < 0)
                {
                    end = range.Offset + await ChunkRangeAsync(handle, range.Offset, range.Length, content, ct).ConfigureAwait(false);
                    continue;
                }
                var tensor = tensors[range.Tensor];
                if (range.Piece == 0)
                {
                    var tensorRef = new TensorRef { Name = tensor.Name, DType = tensor.DType, Shape = tensor.Shape, First = content.Count, Pieces = TensorSplitter.PieceCount(tensor.Length) };
                    refs.Add(tensorRef);
                    bases[range.Tensor] = baseNode?.Tensors?.FirstOrDefault(b => b.SameTensorAs(tensorRef));
                }
                await StorePieceAsync(handle, range, tensor, bases[range.Tensor], baseNode, content, ct).ConfigureAwait(false);
                end = range.Offset + range.Length;
            }
            return new FileContent(content, end, layout.Format, refs);
        }

        /// <summary>
        /// Reads a file of <paramref name="statSize"/> bytes (at most <see cref="SmallFileBytes"/>) as
        /// one chunk (none when empty); returns the bytes read, or -1, with nothing stored, when the file holds more than that now (it grew):
        /// the caller then reads it as any other. A file that shrank is read to its end; the caller's
        /// second look at its size and times tells that it changed and reads it again.
        /// </summary>
        private async ValueTask<int> TryChunkSmallFileAsync(SafeFileHandle handle, int statSize, List<string> content, CancellationToken ct)
        {
            // One byte more than the size asked for tells a file that grew in one read; a read that
            // returns exactly the size known needs no second read to find the end.
            var buffer = BufferPool.Shared.Rent(statSize + 1);
            bool queued = false;
            try
            {
                int filled = 0;
                while (filled <= statSize)
                {
                    int n = RandomAccess.Read(handle, buffer.AsSpan(filled, statSize + 1 - filled), filled);
                    if (n == 0)
                    {
                        break;
                    }
                    filled += n;
                    if (filled == statSize)
                    {
                        break;
                    }
                }
                if (filled > statSize)
                {
                    return -1;
                }
                Interlocked.Add(ref _progress.BytesReadField, filled);
                Interlocked.Add(ref _progress.BytesDoneField, filled);
                if (filled == 0)
                {
                    return 0;
                }
                var id = _key.IdOf(buffer.AsSpan(0, filled));
                content.Add(id.ToString());
                if (ClaimIfNew(id))
                {
                    queued = true;
                    await EnqueueAsync(id, BlobKind.Data, buffer, filled, ct).ConfigureAwait(false);
                }
                return filled;
            }
            finally
            {
                if (!queued)
                {
                    BufferPool.Shared.Return(buffer);
                }
            }
        }

        /// <summary>
        /// Content-defined chunking of <paramref name="length"/> bytes from <paramref name="start"/>
        /// (-1: to the end of the file); returns the bytes read.
        /// </summary>
        private async Task<long> ChunkRangeAsync(SafeFileHandle handle, long start, long length, List<string> content, CancellationToken ct)
        {
            if (!_readBuffers.TryTake(out var buffer))
            {
                buffer = GC.AllocateUninitializedArray<byte>(ReadBufferSize);
            }
            long fileOffset = start;
            try
            {
                int filled = 0;
                bool eof = false;
                while (true)
                {
                    while (!eof && filled < buffer.Length)
                    {
                        int want = buffer.Length - filled;
                        if (length >= 0)
                        {
                            want = (int)Math.Min(want, start + length - fileOffset);
                        }
                        int n = want == 0 ? 0 : RandomAccess.Read(handle, buffer.AsSpan(filled, want), fileOffset);
                        if (n == 0)
                        {
                            eof = true;
                            break;
                        }
                        filled += n;
                        fileOffset += n;
                        Interlocked.Add(ref _progress.BytesReadField, n);
                        Interlocked.Add(ref _progress.BytesDoneField, n);
                    }
                    int pos = 0;
                    while (filled - pos >= _chunker.MaxSize || (eof && pos < filled))
                    {
                        ct.ThrowIfCancellationRequested();
                        int chunk = _chunker.NextBoundary(buffer.AsSpan(pos, filled - pos));
                        var id = _key.IdOf(buffer.AsSpan(pos, chunk));
                        content.Add(id.ToString());
                        if (ClaimIfNew(id))
                        {
                            await EnqueueAsync(id, BlobKind.Data, PooledCopy.Rent(buffer.AsSpan(pos, chunk)), chunk, ct).ConfigureAwait(false);
                        }
                        pos += chunk;
                    }
                    Buffer.BlockCopy(buffer, pos, buffer, 0, filled - pos);
                    filled -= pos;
                    if (eof && filled == 0)
                    {
                        break;
                    }
                }
            }
            finally
            {
                _readBuffers.Add(buffer);
            }
            return fileOffset - start;
        }

        /// <summary>True for the first caller that finds a blob neither stored nor on its way.</summary>
        private bool ClaimIfNew(BlobId id) => !_index.Contains(id) && _pending.TryAdd(id, 0);

        private ValueTask EnqueueAsync(BlobId id, BlobKind kind, byte[] copy, int length, CancellationToken ct) =>
            _chunks.Writer.WriteAsync(new ChunkJob(id, kind, copy, length), ct);

        private async Task<BlobId> SaveTreeAsync(List<Node> nodes, CancellationToken ct)
        {
            var bytes = Repository.SerializeTree(new Tree { Nodes = nodes });
            var id = _key.IdOf(bytes);
            if (ClaimIfNew(id))
            {
                await EnqueueAsync(id, BlobKind.Tree, PooledCopy.Rent(bytes), bytes.Length, ct).ConfigureAwait(false);
            }
            return id;
        }

        private async Task SealLoopAsync(CancellationToken ct)
        {
            await foreach (var job in _chunks.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    BlobKind kind = job.Kind;
                    BlobCodec codec;
                    byte[] sealedBytes;
                    int sealedLength;
                    BlobId baseId = default;
                    if (job.Kind == BlobKind.TensorPiece)
                    {
                        var basePlain = job.Base is { } b ? await ReadBaseAsync(b, ct).ConfigureAwait(false) : null;
                        EncodedPiece piece;
                        try
                        {
                            piece = PieceEncoder.Encode(job.Buffer.AsSpan(0, job.Length), job.PlaneWidth, basePlain is null ? default : basePlain.AsSpan(0, (int)job.Base!.Value.RawLength));
                        }
                        finally
                        {
                            if (basePlain is not null)
                            {
                                BufferPool.Shared.Return(basePlain);
                            }
                        }
                        (kind, codec) = (piece.Kind, piece.Codec);
                        baseId = kind == BlobKind.Delta ? job.Base!.Value.Id : default;
                        try
                        {
                            (sealedBytes, sealedLength) = BlobSealer.SealEncodedPooled(_key, job.Id, kind, codec, (uint)job.Length, piece.Bytes.AsSpan(0, piece.Length), baseId);
                        }
                        finally
                        {
                            BufferPool.Shared.Return(piece.Bytes);
                        }
                    }
                    else
                    {
                        (codec, sealedBytes, sealedLength) = BlobSealer.SealPooled(_key, job.Id, job.Kind, job.Buffer.AsSpan(0, job.Length));
                    }
                    try
                    {
                        // A dry run seals each new blob to count what it would store, and keeps none.
                        if (!_request.DryRun)
                        {
                            await _packs.AddAsync(job.Id, kind, codec, job.Length, sealedBytes.AsMemory(0, sealedLength), baseId, ct).ConfigureAwait(false);
                        }
                    }
                    finally
                    {
                        BufferPool.Shared.Return(sealedBytes);
                    }
                    Interlocked.Add(ref _bytesAdded, job.Length);
                    Interlocked.Add(ref _bytesStored, sealedLength);
                    Interlocked.Increment(ref _blobsAdded);
                }
                finally
                {
                    BufferPool.Shared.Return(job.Buffer);
                }
            }
        }

        private async Task OnPackStoredAsync(IReadOnlyList<IndexEntry> entries, CancellationToken ct)
        {
            List<IndexEntry>? batch = null;
            lock (_unindexedLock)
            {
                _unindexed.AddRange(entries);
                if (_unindexed.Count >= 50_000)
                {
                    batch = [.. _unindexed];
                    _unindexed.Clear();
                }
            }
            foreach (var e in entries)
            {
                _index.Add(e);
            }
            if (batch is not null)
            {
                await _repo.SaveIndexAsync(batch, ct).ConfigureAwait(false);
            }
        }

        private async Task FlushIndexAsync(CancellationToken ct)
        {
            List<IndexEntry> batch;
            lock (_unindexedLock)
            {
                batch = [.. _unindexed];
                _unindexed.Clear();
            }
            if (batch.Count > 0)
            {
                await _repo.SaveIndexAsync(batch, ct).ConfigureAwait(false);
            }
        }
    }
}

internal static class PooledCopy
{
    /// <summary>Copies <paramref name="data"/> into an array rented from the shared pool; the consumer returns it.</summary>
    public static byte[] Rent(ReadOnlySpan<byte> data)
    {
        var array = BufferPool.Shared.Rent(Math.Max(1, data.Length));
        data.CopyTo(array);
        return array;
    }
}
