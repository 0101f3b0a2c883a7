using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Backup.Storage;

/// <summary>
/// A repository in a local folder. Files are written to <c>tmp/</c>, flushed to disk, then renamed
/// into place, so a crash leaves either the whole file or none of it (and perhaps a leftover in
/// <c>tmp/</c> that prune removes).
/// </summary>
public sealed class LocalBlobStore : IBlobStore
{
    private readonly string _root;

    public LocalBlobStore(string root)
    {
        _root = Path.GetFullPath(root);
    }

    public string Location => _root;

    public StoreCapabilities Capabilities => StoreCapabilities.Local;

    public Task<bool> IsEmptyAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult(!Directory.Exists(_root) || !Directory.EnumerateFileSystemEntries(_root).Any());

    public Task<int> CleanTemporaryFilesAsync(TimeSpan olderThan, DateTimeOffset now, CancellationToken cancellationToken = default) =>
        Task.FromResult(CleanTemporaryFiles(olderThan, now));

    internal string TempDirectory => Path.Combine(_root, "tmp");

    // Local work is quick and has nothing to wait for: the asynchronous members do it at once and return completed tasks.

    public Task CreateAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            Directory.CreateDirectory(_root);
            foreach (var dir in new[] { "keys", "index", "snapshots", "locks", "tmp", "parity" })
            {
                Directory.CreateDirectory(Path.Combine(_root, dir));
            }
            string data = Path.Combine(_root, "data");
            Directory.CreateDirectory(data);
            for (int i = 0; i < 256; i++)
            {
                Directory.CreateDirectory(Path.Combine(data, i.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
            }
            return Task.CompletedTask;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw WriteFailure(e, _root);
        }
    }

    /// <summary>
    /// A failed write, in words the user can act on: where the repository as a whole cannot be
    /// written (a read-only file system, a folder this user may not write, a full disk or quota), one
    /// line that names the repository and says what to do, whichever of its files was being written
    /// (the lock, a pack, a key slot…). Any other failure keeps its own message, naming the file.
    /// </summary>
    private Exception WriteFailure(Exception e, string path)
    {
        const int EPERM = 1, EACCES = 13, EROFS = 30;
        int errno = e.HResult & 0xFFFF;
        if (e is IOException && errno == EROFS)
        {
            return new KintsugiException(ErrorKind.NotWritable, $"the repository at {_root} cannot be written (read-only file system); remount it read-write to change it (commands that only read it work as it is: snapshots, ls, find, dump, diff, stats, restore, check, forget and prune --dry-run)", e);
        }
        if (e is UnauthorizedAccessException || (e is IOException && errno is EACCES or EPERM))
        {
            // Creating, renaming and deleting are allowed or denied by the folder, not by the file.
            string folder = path == _root ? _root : Path.GetDirectoryName(path)!;
            return new KintsugiException(ErrorKind.NotWritable, $"the repository at {_root} cannot be written (permission denied in {folder}); run as a user who may write it, or give this one write permission (commands that only read it work as it is: snapshots, ls, find, dump, diff, stats, restore, check, forget and prune --dry-run)", e);
        }
        if (e is IOException io)
        {
            var failure = KintsugiException.FromIo(io, path);
            return failure is KintsugiException { Kind: ErrorKind.NoSpace }
                ? new KintsugiException(ErrorKind.NoSpace, $"the repository at {_root} cannot be written (no space left on device); free some space on its disk and run the command again (what was not finished was removed: the repository is still valid)", e)
                : failure;
        }
        return e;
    }

    public string PathOf(FileKind kind, string name)
    {
        ValidateName(name);
        return kind switch
        {
            FileKind.Config => Path.Combine(_root, "config"),
            FileKind.Key => Path.Combine(_root, "keys", name),
            FileKind.Pack => Path.Combine(_root, "data", name[..2], name),
            FileKind.Index => Path.Combine(_root, "index", name),
            FileKind.Snapshot => Path.Combine(_root, "snapshots", name),
            FileKind.Lock => Path.Combine(_root, "locks", name),
            FileKind.Parity => Path.Combine(_root, "parity", name),
            FileKind.ParitySettings => Path.Combine(_root, "parity", "settings"),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
    }

    private static void ValidateName(string name)
    {
        if (name.Length < 2 || name.Contains('/', StringComparison.Ordinal) || name.Contains('.', StringComparison.Ordinal))
        {
            throw new ArgumentException($"invalid repository file name '{name}'", nameof(name));
        }
    }

    public Task<bool> ExistsAsync(FileKind kind, string name, CancellationToken cancellationToken = default) =>
        Task.FromResult(File.Exists(PathOf(kind, name)));

    public async Task PutAsync(FileKind kind, string name, ReadOnlyMemory<byte> data, bool overwrite = false, CancellationToken cancellationToken = default)
    {
        if (!overwrite && File.Exists(PathOf(kind, name)))
        {
            return;
        }
        await using var pending = CreatePending(kind);
        pending.Write(data.Span);
        await pending.CommitAsync(name, overwrite, cancellationToken).ConfigureAwait(false);
    }

    public IPendingFile CreatePending(FileKind kind) => new PendingFile(this, kind);

    /// <summary>
    /// A file written into tmp/ and, once complete, fsynced and renamed to its name (then its folder
    /// fsynced): a reader never sees it half-written, and a crash leaves only a temporary file.
    /// </summary>
    private sealed class PendingFile : IPendingFile
    {
        private readonly LocalBlobStore _store;
        private readonly FileKind _kind;
        private readonly string _temp;
        private SafeFileHandle? _handle;

        public PendingFile(LocalBlobStore store, FileKind kind)
        {
            _store = store;
            _kind = kind;
            _temp = Path.Combine(store.TempDirectory, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)));
            try
            {
                _handle = File.OpenHandle(_temp, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw store.WriteFailure(e, _temp);
            }
        }

        public long Length { get; private set; }

        public void Write(ReadOnlySpan<byte> data)
        {
            var handle = _handle ?? throw new InvalidOperationException("the file was already committed");
            try
            {
                RandomAccess.Write(handle, data, Length);
            }
            catch (IOException e)
            {
                throw _store.WriteFailure(e, _temp);
            }
            Length += data.Length;
        }

        public Task CommitAsync(string name, bool overwrite, CancellationToken cancellationToken)
        {
            var handle = _handle ?? throw new InvalidOperationException("the file was already committed");
            cancellationToken.ThrowIfCancellationRequested();
            string target = _store.PathOf(_kind, name);
            _store.ForgetHandle(target);
            try
            {
                RandomAccess.FlushToDisk(handle);
                handle.Dispose();
                _handle = null;
                File.SetUnixFileMode(_temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
                if (_kind is FileKind.Parity or FileKind.ParitySettings)
                {
                    // Repositories created before parity existed have no parity/ folder yet.
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                }
                try
                {
                    File.Move(_temp, target, overwrite);
                }
                catch (IOException) when (!overwrite && File.Exists(target))
                {
                    // Another writer stored the same content-addressed file first: it is the same file.
                    TryDelete(_temp);
                    return Task.CompletedTask;
                }
                Platform.Posix.FsyncDirectory(Path.GetDirectoryName(target)!);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                TryDelete(_temp);
                throw _store.WriteFailure(e, target);
            }
            return Task.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            if (_handle is not null)
            {
                _handle.Dispose();
                _handle = null;
                TryDelete(_temp);
            }
            return ValueTask.CompletedTask;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    public Task<byte[]> GetAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
    {
        string path = PathOf(kind, name);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<byte[]>(cancellationToken);
        }
        try
        {
            // Read at once: the files read whole (config, keys, index, snapshots) are small, and an
            // asynchronous read of a local file is a thread-pool hop per read that costs more than the read.
            return Task.FromResult(File.ReadAllBytes(path));
        }
        catch (FileNotFoundException e)
        {
            return Task.FromException<byte[]>(new KintsugiException(ErrorKind.Corrupt, $"repository file {path} is missing; run `kintsugi check` to see what is affected", e));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Task.FromException<byte[]>(e);
        }
    }

    public ValueTask ReadAtAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // A local read is served from the page cache or the disk at once; an asynchronous one is only
        // the same read handed to another thread (a hop per blob of a restore).
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            ReadAt(kind, name, offset, buffer.Span);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    private void ReadAt(FileKind kind, string name, long offset, Span<byte> buffer)
    {
        string path = PathOf(kind, name);
        // Packs are read blob by blob (a restore reads thousands of small blobs): their handles are kept open.
        bool cache = kind == FileKind.Pack;
        var handle = cache ? LeaseCachedHandle(path) : null;
        bool leased = handle is not null;
        if (handle is null)
        {
            try
            {
                handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                string what = kind switch { FileKind.Pack => "pack", FileKind.Index => "index file", FileKind.Snapshot => "snapshot", FileKind.Key => "key slot", FileKind.Parity => "parity group", _ => "file" };
                throw new KintsugiException(ErrorKind.Corrupt, $"{what} {name} is missing from the repository; run `kintsugi check` to see what is affected", e);
            }
            leased = cache && TryCache(path, handle);
        }
        try
        {
            int done = 0;
            while (done < buffer.Length)
            {
                int n;
                try
                {
                    n = RandomAccess.Read(handle, buffer[done..], offset + done);
                }
                catch (IOException e) when (KintsugiException.FromIo(e, path) is KintsugiException { Kind: not ErrorKind.NoSpace })
                {
                    // A bad sector is damage to this file: callers treat it like any other damage.
                    throw new KintsugiException(ErrorKind.Corrupt, $"{kind.ToString().ToLowerInvariant()} {name} cannot be read ({e.Message}); run `kintsugi check --read-data` to see what is affected", e);
                }
                if (n == 0)
                {
                    throw KintsugiException.Corrupt($"{kind.ToString().ToLowerInvariant()} {name}", $"it ends before byte {offset + buffer.Length}");
                }
                done += n;
            }
        }
        finally
        {
            if (leased)
            {
                handle.DangerousRelease();
            }
            else
            {
                handle.Dispose();
            }
        }
    }

    private const int MaxCachedHandles = 64;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, SafeFileHandle> _readHandles = new(StringComparer.Ordinal);

    /// <summary>A cached handle with its reference count raised (release it with DangerousRelease), or null.</summary>
    private SafeFileHandle? LeaseCachedHandle(string path)
    {
        if (!_readHandles.TryGetValue(path, out var handle))
        {
            return null;
        }
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
        if (!added)
        {
            return null;
        }
        if (Platform.Posix.LinkCount(handle) == 0)
        {
            // Deleted or replaced (by repair, say) since it was opened: read the file that bears the name now.
            handle.DangerousRelease();
            ForgetHandle(path);
            return null;
        }
        return handle;
    }

    /// <summary>Keeps a freshly opened handle for later reads; true when it is now cached and leased to the caller.</summary>
    private bool TryCache(string path, SafeFileHandle handle)
    {
        if (_readHandles.Count >= MaxCachedHandles)
        {
            foreach (var old in _readHandles.Keys.Take(MaxCachedHandles / 4))
            {
                ForgetHandle(old);
            }
        }
        // Leased before it is published, so that an eviction racing with us cannot close it under our read.
        bool added = false;
        handle.DangerousAddRef(ref added);
        if (!added)
        {
            return false;
        }
        if (!_readHandles.TryAdd(path, handle))
        {
            handle.DangerousRelease();
            return false;
        }
        return true;
    }

    /// <summary>Closes a cached handle (at once, or when its last reader releases it): the file is being replaced or deleted.</summary>
    private void ForgetHandle(string path)
    {
        if (_readHandles.TryRemove(path, out var handle))
        {
            handle.Dispose();
        }
    }

    public Task<IReadOnlyList<StoredFile>> ListAsync(FileKind kind, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<StoredFile>>(List(kind));

    private List<StoredFile> List(FileKind kind)
    {
        var result = new List<StoredFile>();
        switch (kind)
        {
            case FileKind.Config:
                var config = new FileInfo(Path.Combine(_root, "config"));
                if (config.Exists)
                {
                    result.Add(new StoredFile("config", config.Length));
                }
                break;
            case FileKind.Pack:
                string data = Path.Combine(_root, "data");
                if (Directory.Exists(data))
                {
                    foreach (var dir in Directory.EnumerateDirectories(data))
                    {
                        AddFiles(dir, result);
                    }
                }
                break;
            default:
                AddFiles(Path.GetDirectoryName(PathOf(kind, "xx"))!, result);
                break;
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    private static void AddFiles(string dir, List<StoredFile> into)
    {
        if (!Directory.Exists(dir))
        {
            return;
        }
        bool sharded = Path.GetFileName(Path.GetDirectoryName(dir)) == "data";
        foreach (var file in new DirectoryInfo(dir).EnumerateFiles())
        {
            // Only names the repository writes: 64 lowercase hex digits, packs in the folder of their first two.
            if (IsHexName(file.Name) && (!sharded || file.Name.StartsWith(Path.GetFileName(dir), StringComparison.Ordinal)))
            {
                into.Add(new StoredFile(file.Name, file.Length, file.LastWriteTimeUtc));
            }
        }
    }

    private static bool IsHexName(string name) =>
        name.Length == 64 && name.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    public Task DeleteAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
    {
        string path = PathOf(kind, name);
        ForgetHandle(path);
        try
        {
            File.Delete(path);
            if (kind != FileKind.Lock)
            {
                // Prune's order (old index files gone before their packs) must survive a power loss too.
                Platform.Posix.FsyncDirectory(Path.GetDirectoryName(path)!);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw WriteFailure(e, path);
        }
        return Task.CompletedTask;
    }

    /// <summary>Removes files left in <c>tmp/</c> by writers that died; returns how many.</summary>
    private int CleanTemporaryFiles(TimeSpan olderThan, DateTimeOffset now)
    {
        int removed = 0;
        if (!Directory.Exists(TempDirectory))
        {
            return 0;
        }
        foreach (var file in new DirectoryInfo(TempDirectory).EnumerateFiles())
        {
            if (now - file.LastWriteTimeUtc > olderThan)
            {
                TryDelete(file.FullName);
                removed++;
            }
        }
        return removed;
    }
}
