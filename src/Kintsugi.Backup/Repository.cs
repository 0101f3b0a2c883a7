using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.Backup.Chunking;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup;

/// <summary>Settings fixed when a repository is created.</summary>
public sealed record RepositoryOptions
{
    /// <summary>Chunk sizes: 256 KiB minimum, 1 MiB average, 4 MiB maximum (docs/BENCHMARKS.md, "Chunk sizes", has the measurements behind them).</summary>
    public int ChunkMin { get; init; } = 256 * 1024;
    public int ChunkAverage { get; init; } = 1024 * 1024;
    public int ChunkMax { get; init; } = 4 * 1024 * 1024;
    /// <summary>Target pack size: 16 MiB.</summary>
    public int PackSize { get; init; } = 16 * 1024 * 1024;
}

/// <summary>An open repository: its store, master key and config, and the operations on stored files.</summary>
public sealed class Repository
{
    private Repository(IBlobStore store, MasterKey key, RepositoryConfig config, string keyId, TimeProvider time)
    {
        Store = store;
        Key = key;
        Config = config;
        KeyId = keyId;
        Time = time;
        // Remote metadata is cached per repository id (README, "Repositories"); a local folder needs no cache.
        Cache = store.Capabilities.IsRemote && store.CacheDirectory is { Length: > 0 } root ? MetadataCache.Open(root, config.Id) : null;
    }

    /// <summary>How many whole files (index, snapshots) are read at once: a local disk is busy with a few, a remote store waits on each request.</summary>
    private int ReadParallelism => Store.Capabilities.IsRemote ? 16 : Environment.ProcessorCount;

    /// <summary>The local cache of a remote repository's index, snapshot and tree files; null when not cached.</summary>
    public MetadataCache? Cache { get; }

    public IBlobStore Store { get; }

    public MasterKey Key { get; }

    public RepositoryConfig Config { get; }

    /// <summary>The key slot that opened the repository.</summary>
    public string KeyId { get; }

    public TimeProvider Time { get; }

    public Chunker CreateChunker() => new(Convert.FromBase64String(Config.ChunkerSeed), Config.ChunkMin, Config.ChunkAverage, Config.ChunkMax);

    /// <summary>Creates a repository. Refuses a folder that already holds one, or that is not empty.</summary>
    public static Task<Repository> InitAsync(IBlobStore store, string password, KdfParameters kdf, RepositoryOptions? options, string? host, string? user, TimeProvider time, CancellationToken ct = default) =>
        InitAsync(store, password, kdf, options, host, user, time, settingsFrom: null, ct);

    /// <summary>
    /// Creates a repository; with <paramref name="settingsFrom"/>, one that takes that repository's
    /// id key, chunker seed, chunk sizes and pack size (<paramref name="options"/> are then ignored),
    /// so blobs copied from it keep their ids and later backups deduplicate against them.
    /// </summary>
    public static async Task<Repository> InitAsync(IBlobStore store, string password, KdfParameters kdf, RepositoryOptions? options, string? host, string? user, TimeProvider time, Repository? settingsFrom, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        options = settingsFrom is { Config: var c } ? new RepositoryOptions { ChunkMin = c.ChunkMin, ChunkAverage = c.ChunkAverage, ChunkMax = c.ChunkMax, PackSize = c.PackSize } : options ?? new RepositoryOptions();
        if (await store.ExistsAsync(FileKind.Config, "config", ct).ConfigureAwait(false))
        {
            throw new KintsugiException(ErrorKind.RepositoryExists, $"a repository already exists at {store.Location}; use it as it is, or choose another path");
        }
        if (!await store.IsEmptyAsync(ct).ConfigureAwait(false))
        {
            string choose = store.Capabilities.IsRemote ? "choose an empty or new prefix" : "choose an empty or new folder";
            throw new KintsugiException(ErrorKind.RepositoryExists, $"{store.Location} is not empty and is not a repository; {choose}");
        }
        if (string.IsNullOrEmpty(password))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "the password is empty; give a non-empty password");
        }
        kdf.Validate();
        // A fresh encryption key always; the id key shared with the repository whose settings are taken.
        var key = settingsFrom is null ? MasterKey.Generate() : MasterKey.FromBytes([.. RandomNumberGenerator.GetBytes(32), .. settingsFrom.Key.IdKey]);
        var config = new RepositoryConfig
        {
            Id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)),
            ChunkerSeed = settingsFrom?.Config.ChunkerSeed ?? Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ChunkMin = options.ChunkMin,
            ChunkAverage = options.ChunkAverage,
            ChunkMax = options.ChunkMax,
            PackSize = options.PackSize,
        };
        _ = new Chunker(new byte[32], config.ChunkMin, config.ChunkAverage, config.ChunkMax);
        await store.CreateAsync(ct).ConfigureAwait(false);
        string keyId = await KeyRing.AddAsync(store, key, password, kdf, time.GetUtcNow(), host, user, ct).ConfigureAwait(false);
        // The config is written last: a folder without it is not (yet) a repository.
        var sealedConfig = SealedFile.Seal(key, SealedFileType.Config, JsonSerializer.SerializeToUtf8Bytes(config, FormatJson.Default.RepositoryConfig));
        await store.PutAsync(FileKind.Config, "config", sealedConfig, cancellationToken: ct).ConfigureAwait(false);
        return new Repository(store, key, config, keyId, time);
    }

    /// <summary>Opens a repository with a password.</summary>
    public static async Task<Repository> OpenAsync(IBlobStore store, string password, TimeProvider time, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        await RequireRepositoryAsync(store, ct).ConfigureAwait(false);
        var (key, keyId) = await KeyRing.OpenAsync(store, password, ct).ConfigureAwait(false);
        return await OpenWithKeyAsync(store, key, keyId, time, ct).ConfigureAwait(false);
    }

    /// <summary>Opens a repository with a key file (<see cref="KeyFile"/>): no key derivation.</summary>
    /// <param name="source">Where the key file was named, for the message when it does not open the repository ("--key-file").</param>
    public static async Task<Repository> OpenWithKeyFileAsync(IBlobStore store, string keyFile, TimeProvider time, string source = "--key-file", CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        await RequireRepositoryAsync(store, ct).ConfigureAwait(false);
        var secret = KeyFile.Read(keyFile);
        var (key, keyId) = await KeyRing.OpenWithKeyFileAsync(store, secret, keyFile, source, ct).ConfigureAwait(false);
        return await OpenWithKeyAsync(store, key, keyId, time, ct).ConfigureAwait(false);
    }

    private static async Task RequireRepositoryAsync(IBlobStore store, CancellationToken ct)
    {
        if (!await store.ExistsAsync(FileKind.Config, "config", ct).ConfigureAwait(false))
        {
            throw new KintsugiException(ErrorKind.RepositoryNotFound, $"{store.Location} is not a Kintsugi repository; create one with `kintsugi init` or check --repo / KINTSUGI_REPOSITORY");
        }
    }

    private static async Task<Repository> OpenWithKeyAsync(IBlobStore store, MasterKey key, string keyId, TimeProvider time, CancellationToken ct)
    {
        var data = await store.GetAsync(FileKind.Config, "config", ct).ConfigureAwait(false);
        var json = SealedFile.Open(key, SealedFileType.Config, data, "repository config", 1 << 20);
        RepositoryConfig config;
        try
        {
            config = JsonSerializer.Deserialize(json, FormatJson.Default.RepositoryConfig) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw KintsugiException.Corrupt("repository config", e.Message);
        }
        if (config.ChunkMax > 64 * 1024 * 1024 || config.PackSize is < 1024 or > 1024 * 1024 * 1024)
        {
            throw KintsugiException.Corrupt("repository config", "chunk or pack size out of range");
        }
        if (config.Version != RepositoryConfig.CurrentVersion)
        {
            throw new KintsugiException(ErrorKind.Failed, $"repository at {store.Location} has format version {config.Version}; this kintsugi reads version {RepositoryConfig.CurrentVersion}; use a matching kintsugi");
        }
        return new Repository(store, key, config, keyId, time);
    }

    public Task<RepositoryLock> LockAsync(bool exclusive, string host, string command, CancellationToken ct = default) =>
        RepositoryLock.AcquireAsync(Store, exclusive, host, command, Time, ct);

    // ----- keys -----

    public Task<string> AddKeyAsync(string password, KdfParameters kdf, string? host, string? user, CancellationToken ct = default)
    {
        if (string.IsNullOrEmpty(password))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "the new password is empty; give a non-empty password");
        }
        return KeyRing.AddAsync(Store, Key, password, kdf, Time.GetUtcNow(), host, user, ct);
    }

    /// <summary>Writes a new key file at <paramref name="path"/> (it must not exist) and adds the slot it opens; returns the slot's id.</summary>
    public async Task<string> AddKeyFileAsync(string path, string? host, string? user, CancellationToken ct = default)
    {
        var secret = KeyFile.Create(path, $"{KeyFile.CommentStart} opens the repository {Config.Id} at {Store.Location} without a password.\nAnyone who can read this file can read the repository: keep it as private as the data.\n`kintsugi key remove ID` removes its slot (see `kintsugi key list`), so it opens nothing more; it does not change\nthe repository's master key, which whoever read this file and the repository may have kept.");
        try
        {
            return await KeyRing.AddKeyFileAsync(Store, Key, secret, Time.GetUtcNow(), host, user, ct).ConfigureAwait(false);
        }
        catch
        {
            // No slot, no file: a key file that opens nothing would only mislead.
            File.Delete(path);
            throw;
        }
    }

    public async Task<IReadOnlyList<KeyInfo>> ListKeysAsync(CancellationToken ct = default)
    {
        var result = new List<KeyInfo>();
        foreach (var file in await Store.ListAsync(FileKind.Key, ct).ConfigureAwait(false))
        {
            var slot = await KeyRing.ReadAsync(Store, file.Name, ct).ConfigureAwait(false);
            if (slot is not null)
            {
                result.Add(new KeyInfo(file.Name, slot.Created, slot.Host, slot.User, file.Name == KeyId, slot.Kdf, slot.MemoryKib, slot.Iterations, slot.Parallelism));
            }
        }
        return result.OrderBy(k => k.Created).ToList();
    }

    /// <summary>Removes a key slot, found by id or unique id prefix. The slot in use and the last slot cannot be removed.</summary>
    public async Task<string> RemoveKeyAsync(string idOrPrefix, bool allowCurrent = false, CancellationToken ct = default)
    {
        var keys = await ListKeysAsync(ct).ConfigureAwait(false);
        var matches = keys.Where(k => k.Id.StartsWith(idOrPrefix, StringComparison.Ordinal)).ToList();
        if (matches.Count == 0 || idOrPrefix.Length == 0)
        {
            throw new KintsugiException(ErrorKind.NotFound, $"no key with id {idOrPrefix}; `kintsugi key list` shows the ids");
        }
        if (matches.Count > 1)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"key id prefix {idOrPrefix} matches {matches.Count} keys; give more digits");
        }
        var key = matches[0];
        if (key.Current && !allowCurrent)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"key {key.Id[..8]} is the one this command opened the repository with; open it with another key to remove this one");
        }
        if (keys.Count == 1)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "this is the repository's only key; removing it would make the repository unreadable");
        }
        // Exclusive: a backup's parity pass must not put the slot back into a group while it leaves one
        // (repair would then bring a revoked password back).
        await using (await LockAsync(exclusive: true, Environment.MachineName, "key remove", ct).ConfigureAwait(false))
        {
            await new Parity.ParityEngine(Store).DeleteAsync([(FileKind.Key, key.Id)], ct).ConfigureAwait(false);
        }
        return key.Id;
    }

    // ----- index -----

    /// <summary>
    /// Loads every index file, several at a time. Damaged index files are reported through
    /// <paramref name="onError"/> (or thrown when it is null). Commands that need no blob locations
    /// (snapshots, forget without prune, key, tag) never call this.
    /// </summary>
    public async Task<MasterIndex> LoadIndexAsync(Action<string, KintsugiException>? onError = null, CancellationToken ct = default)
    {
        var files = await Store.ListAsync(FileKind.Index, ct).ConfigureAwait(false);
        Cache?.Retain("index", files.Select(f => f.Name).ToHashSet(StringComparer.Ordinal));
        var tables = new IndexEntryTable[files.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, files.Count), new ParallelOptions { CancellationToken = ct, MaxDegreeOfParallelism = ReadParallelism }, async (i, token) =>
        {
            try
            {
                tables[i] = await LoadIndexTableAsync(files[i].Name, token).ConfigureAwait(false);
            }
            catch (KintsugiException e) when (onError is not null)
            {
                lock (files)
                {
                    onError(files[i].Name, e);
                }
                tables[i] = new IndexEntryTable(1, 1);
            }
        }).ConfigureAwait(false);
        return new MasterIndex(tables) { Files = files.Select(f => f.Name).ToList() };
    }

    public async Task<List<IndexEntry>> LoadIndexFileAsync(string name, CancellationToken ct = default)
    {
        var table = await LoadIndexTableAsync(name, ct).ConfigureAwait(false);
        var entries = new List<IndexEntry>(table.Count);
        for (int i = 0; i < table.Count; i++)
        {
            entries.Add(table[i]);
        }
        return entries;
    }

    private async Task<IndexEntryTable> LoadIndexTableAsync(string name, CancellationToken ct)
    {
        string what = $"index file {name[..Math.Min(8, name.Length)]}";
        var data = await GetNamedByHashAsync(FileKind.Index, "index", name, ct).ConfigureAwait(false);
        if (BlobId.HashOf(data).ToString() != name)
        {
            throw KintsugiException.Corrupt(what, "its content does not match its name");
        }
        return IndexFile.ParseTable(SealedFile.Open(Key, SealedFileType.Index, data, what), what);
    }

    /// <summary>Writes index files holding <paramref name="entries"/> (more than one when there are very many); returns their names.</summary>
    public async Task<IReadOnlyList<string>> SaveIndexAsync(IEnumerable<IndexEntry> entries, CancellationToken ct = default)
    {
        var names = new List<string>();
        var batch = new List<IGrouping<BlobId, IndexEntry>>();
        int count = 0;
        foreach (var pack in entries.GroupBy(e => e.Pack))
        {
            int n = pack.Count();
            if (count + n > IndexFile.MaxEntriesPerFile && batch.Count > 0)
            {
                names.Add(await WriteIndexFileAsync(batch, ct).ConfigureAwait(false));
                batch.Clear();
                count = 0;
            }
            batch.Add(pack);
            count += n;
        }
        if (batch.Count > 0)
        {
            names.Add(await WriteIndexFileAsync(batch, ct).ConfigureAwait(false));
        }
        return names;
    }

    private async Task<string> WriteIndexFileAsync(IReadOnlyCollection<IGrouping<BlobId, IndexEntry>> packs, CancellationToken ct)
    {
        var data = SealedFile.Seal(Key, SealedFileType.Index, IndexFile.Serialize(packs));
        string name = BlobId.HashOf(data).ToString();
        await Store.PutAsync(FileKind.Index, name, data, cancellationToken: ct).ConfigureAwait(false);
        Cache?.Put("index", name, data);
        return name;
    }

    /// <summary>
    /// A file named by the hash of its bytes (index, snapshot): from the cache when a cached copy
    /// still hashes to its name, else from the store (and then cached, if it hashes right).
    /// </summary>
    private async Task<byte[]> GetNamedByHashAsync(FileKind kind, string folder, string name, CancellationToken ct)
    {
        if (Cache?.Get(folder, name, d => BlobId.HashOf(d).ToString() == name) is { } cached)
        {
            return cached;
        }
        var data = await Store.GetAsync(kind, name, ct).ConfigureAwait(false);
        if (Cache is not null && BlobId.HashOf(data).ToString() == name)
        {
            Cache.Put(folder, name, data);
        }
        return data;
    }

    // ----- snapshots -----

    public async Task<IReadOnlyList<SnapshotRef>> LoadSnapshotsAsync(Action<string, KintsugiException>? onError = null, CancellationToken ct = default)
    {
        var files = await Store.ListAsync(FileKind.Snapshot, ct).ConfigureAwait(false);
        Cache?.Retain("snapshots", files.Select(f => f.Name).ToHashSet(StringComparer.Ordinal));
        // Several at a time: on a remote store each is a request.
        var loaded = new (SnapshotRef? Snapshot, KintsugiException? Error)[files.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, files.Count), new ParallelOptions { CancellationToken = ct, MaxDegreeOfParallelism = ReadParallelism }, async (i, token) =>
        {
            try
            {
                loaded[i] = (await LoadSnapshotAsync(files[i].Name, token).ConfigureAwait(false), null);
            }
            catch (KintsugiException e)
            {
                loaded[i] = (null, e);
            }
        }).ConfigureAwait(false);
        var result = new List<SnapshotRef>(files.Count);
        for (int i = 0; i < files.Count; i++)
        {
            if (loaded[i].Error is { } e)
            {
                if (onError is null)
                {
                    throw e;
                }
                onError(files[i].Name, e);
            }
            else
            {
                result.Add(loaded[i].Snapshot!);
            }
        }
        result.Sort((a, b) => a.Snapshot.Time.CompareTo(b.Snapshot.Time));
        return result;
    }

    public async Task<SnapshotRef> LoadSnapshotAsync(string name, CancellationToken ct = default)
    {
        string what = $"snapshot {name[..Math.Min(8, name.Length)]}";
        var data = await GetNamedByHashAsync(FileKind.Snapshot, "snapshots", name, ct).ConfigureAwait(false);
        var id = BlobId.HashOf(data);
        if (id.ToString() != name)
        {
            throw KintsugiException.Corrupt(what, "its content does not match its name");
        }
        var json = SealedFile.Open(Key, SealedFileType.Snapshot, data, what, 16 << 20);
        try
        {
            var snapshot = JsonSerializer.Deserialize(json, FormatJson.Default.Snapshot) ?? throw new JsonException("null");
            if (snapshot.Version != 1)
            {
                throw new KintsugiException(ErrorKind.Failed, $"{what} has format version {snapshot.Version}; this kintsugi reads version 1");
            }
            return new SnapshotRef(id, snapshot);
        }
        catch (JsonException e)
        {
            throw KintsugiException.Corrupt(what, e.Message);
        }
    }

    /// <summary>Finds a snapshot by id, unique id prefix, or "latest" (the newest of all).</summary>
    public Task<SnapshotRef> FindSnapshotAsync(string idOrPrefix, CancellationToken ct = default) =>
        FindSnapshotAsync(idOrPrefix, Engine.SnapshotFilter.None, ct);

    /// <summary>
    /// Finds a snapshot by id or unique id prefix, or "latest": the newest snapshot that passes
    /// <paramref name="filter"/>. As in restic, the filter chooses what "latest" means; a snapshot
    /// named by its id is that snapshot.
    /// </summary>
    public async Task<SnapshotRef> FindSnapshotAsync(string idOrPrefix, Engine.SnapshotFilter filter, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(idOrPrefix);
        ArgumentNullException.ThrowIfNull(filter);
        // A damaged snapshot file must not make the intact ones unreachable; check reports it.
        var all = await LoadSnapshotsAsync(onError: (_, _) => { }, ct: ct).ConfigureAwait(false);
        if (idOrPrefix == "latest")
        {
            if (all.Count == 0)
            {
                throw new KintsugiException(ErrorKind.NotFound, $"the repository at {Store.Location} has no snapshots yet; run `kintsugi backup` first");
            }
            return all.LastOrDefault(s => filter.Matches(s.Snapshot))
                ?? throw new KintsugiException(ErrorKind.NotFound, $"no snapshot of {filter} to take as latest ({all.Count} snapshots, none of them matches); `kintsugi snapshots` lists them with their hosts, paths and tags");
        }
        return FindById(all, idOrPrefix);
    }

    /// <summary>The one snapshot of <paramref name="all"/> whose id is or starts with <paramref name="idOrPrefix"/>.</summary>
    public static SnapshotRef FindById(IReadOnlyList<SnapshotRef> all, string idOrPrefix)
    {
        ArgumentNullException.ThrowIfNull(all);
        ArgumentNullException.ThrowIfNull(idOrPrefix);
        var matches = all.Where(s => s.Id.ToString().StartsWith(idOrPrefix, StringComparison.Ordinal)).ToList();
        return matches.Count switch
        {
            1 when idOrPrefix.Length > 0 => matches[0],
            0 or 1 => throw new KintsugiException(ErrorKind.NotFound, $"no snapshot with id {idOrPrefix}; `kintsugi snapshots` lists them"),
            _ => throw new KintsugiException(ErrorKind.InvalidInput, $"snapshot id prefix {idOrPrefix} matches {matches.Count} snapshots; give more digits"),
        };
    }

    public async Task<BlobId> SaveSnapshotAsync(Snapshot snapshot, CancellationToken ct = default)
    {
        var data = SealedFile.Seal(Key, SealedFileType.Snapshot, JsonSerializer.SerializeToUtf8Bytes(snapshot, FormatJson.Default.Snapshot));
        var id = BlobId.HashOf(data);
        await Store.PutAsync(FileKind.Snapshot, id.ToString(), data, cancellationToken: ct).ConfigureAwait(false);
        Cache?.Put("snapshots", id.ToString(), data);
        return id;
    }

    // ----- blobs -----

    /// <summary>Reads, authenticates, decodes and verifies one blob.</summary>
    public async Task<byte[]> ReadBlobAsync(IndexEntry entry, CancellationToken ct = default)
    {
        if (entry.StoredLength > PackFormat.MaxBlobStoredLength || entry.RawLength > PackFormat.MaxBlobRawLength)
        {
            throw KintsugiException.Corrupt($"blob {entry.Id.Short}", "lengths out of range");
        }
        var sealedBytes = new byte[entry.StoredLength];
        await Store.ReadAtAsync(FileKind.Pack, entry.Pack.ToString(), entry.Offset, sealedBytes, ct).ConfigureAwait(false);
        return BlobSealer.Open(Key, entry, sealedBytes);
    }

    /// <summary>A tree blob's plaintext: from the cache when the cached sealed bytes authenticate and match the id, else from its pack (then cached).</summary>
    private async Task<byte[]> ReadTreeBlobAsync(IndexEntry entry, CancellationToken ct)
    {
        if (Cache is null)
        {
            return await ReadBlobAsync(entry, ct).ConfigureAwait(false);
        }
        string name = entry.Id.ToString();
        byte[]? plain = null;
        if (Cache.Get("trees", name, sealedBytes =>
            {
                plain = sealedBytes.Length == entry.StoredLength ? BlobSealer.Open(Key, entry, sealedBytes) : null;
                return plain is not null;
            }) is not null && plain is not null)
        {
            return plain;
        }
        if (entry.StoredLength > PackFormat.MaxBlobStoredLength || entry.RawLength > PackFormat.MaxBlobRawLength)
        {
            throw KintsugiException.Corrupt($"blob {entry.Id.Short}", "lengths out of range");
        }
        var sealedFromPack = new byte[entry.StoredLength];
        await Store.ReadAtAsync(FileKind.Pack, entry.Pack.ToString(), entry.Offset, sealedFromPack, ct).ConfigureAwait(false);
        var result = BlobSealer.Open(Key, entry, sealedFromPack);
        Cache.Put("trees", name, sealedFromPack);
        return result;
    }

    public async Task<Tree> LoadTreeAsync(MasterIndex index, BlobId id, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(index);
        var entry = index.Get(id);
        if (entry.Kind != BlobKind.Tree)
        {
            throw KintsugiException.Corrupt($"tree {id.Short}", "the blob is not a tree");
        }
        var json = await ReadTreeBlobAsync(entry, ct).ConfigureAwait(false);
        try
        {
            var tree = JsonSerializer.Deserialize(json, FormatJson.Default.Tree) ?? throw new JsonException("null");
            return tree;
        }
        catch (JsonException e)
        {
            throw KintsugiException.Corrupt($"tree {id.Short}", e.Message);
        }
    }

    internal static byte[] SerializeTree(Tree tree) => JsonSerializer.SerializeToUtf8Bytes(tree, FormatJson.Default.Tree);
}
