using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Engine;

/// <summary>What to check.</summary>
public sealed record CheckRequest
{
    /// <summary>Read and verify every pack (or the subset below).</summary>
    public bool ReadData { get; init; }
    /// <summary>When set, read only this fraction (0..1] of the packs, chosen at random.</summary>
    public double? ReadDataFraction { get; init; }
    /// <summary>
    /// When set, read only group N of M (N in 1..M): the packs split into M groups by their id, the same
    /// groups every time, so reading groups 1 to M in turn reads every pack once (restic's n/m).
    /// </summary>
    public (int N, int M)? ReadDataGroup { get; init; }
    /// <summary>When set, read packs chosen at random until this many bytes are read.</summary>
    public long? ReadDataBytes { get; init; }
    public int Workers { get; init; } = Environment.ProcessorCount;
    public string Host { get; init; } = "localhost";
    /// <summary>Seed of the random subset, so a run can be repeated.</summary>
    public int? Seed { get; init; }
}

/// <summary>One problem found: what, which file, and what it means.</summary>
public sealed record CheckProblem(string Severity, string Subject, string Message);

/// <summary>A file of a snapshot whose content cannot be fully restored.</summary>
public sealed record AffectedFile(string Snapshot, string Path);

public sealed record CheckResult(
    IReadOnlyList<CheckProblem> Problems,
    IReadOnlyList<AffectedFile> AffectedFiles,
    int Snapshots, int Packs, int PacksRead, long BlobsVerified, long BytesRead)
{
    public bool Ok => Problems.All(p => p.Severity != "error");
}

/// <summary>Live counters for a progress display.</summary>
public sealed class CheckProgress
{
    internal long TotalBytesField, BytesDoneField;

    public long TotalBytes => Interlocked.Read(ref TotalBytesField);
    public long BytesDone => Interlocked.Read(ref BytesDoneField);
}

/// <summary>
/// Checks a repository: every index and snapshot file opens, every pack the index names exists
/// with the right size, every tree opens and every blob a snapshot needs is indexed; with
/// <see cref="CheckRequest.ReadData"/>, every pack is read, its hash compared to its name and every
/// blob in it decrypted and verified against its id. Damage is reported down to the files of each
/// snapshot that it affects.
/// </summary>
public sealed class CheckEngine
{
    private readonly Repository _repo;

    /// <summary>A pack no index names that is younger than this is taken for one a backup is still writing.</summary>
    public static readonly TimeSpan InProgressWindow = TimeSpan.FromHours(1);

    public CheckEngine(Repository repository) => _repo = repository;

    /// <summary>The group (0..m-1) of a pack for <see cref="CheckRequest.ReadDataGroup"/>: from the first 32 bits of its id, evenly.</summary>
    public static int GroupOf(BlobId pack, int m) =>
        (int)(uint.Parse(pack.ToString().AsSpan(0, 8), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) * (ulong)m >> 32);

    public async Task<CheckResult> RunAsync(CheckRequest request, CheckProgress? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        progress ??= new CheckProgress();
        var problems = new ConcurrentQueue<CheckProblem>();
        void Error(string subject, string message) => problems.Enqueue(new CheckProblem("error", subject, message));
        void Warn(string subject, string message) => problems.Enqueue(new CheckProblem("warning", subject, message));

        var repoLock = await RepositoryLock.AcquireForReadingAsync(_repo.Store, request.Host, "check", _repo.Time, ct).ConfigureAwait(false);
        if (repoLock is null)
        {
            Warn("locks", "the repository cannot be written (read-only, or its disk full); checked without a lock");
        }
        try
        {
            var index = await _repo.LoadIndexAsync((name, e) => Error($"index/{name}", e.Message), ct).ConfigureAwait(false);
            var byPack = index.Entries.GroupBy(e => e.Pack).ToDictionary(g => g.Key, g => g.ToList());
            var packFiles = await _repo.Store.ListAsync(FileKind.Pack, ct).ConfigureAwait(false);
            var onDisk = packFiles.ToDictionary(f => f.Name, f => f.Size, StringComparer.Ordinal);
            var damaged = new ConcurrentDictionary<BlobId, string>();

            foreach (var (pack, entries) in byPack)
            {
                string name = pack.ToString();
                long needed = entries.Max(e => (long)e.Offset + e.StoredLength) + PackFormat.TrailerSize + Aead.Overhead;
                if (!onDisk.TryGetValue(name, out long size))
                {
                    Error($"data/{name}", $"pack is missing; {entries.Count} blobs are lost");
                    foreach (var e in entries)
                    {
                        damaged[e.Id] = "its pack is missing";
                    }
                }
                else if (size < needed)
                {
                    Error($"data/{name}", $"pack is truncated: {size} bytes, at least {needed} expected");
                    foreach (var e in entries.Where(e => e.Offset + (long)e.StoredLength > size))
                    {
                        damaged[e.Id] = "its pack is truncated";
                    }
                }
            }
            var unindexed = packFiles.Where(f => !BlobId.TryParse(f.Name, out var id) || !byPack.ContainsKey(id)).ToList();
            if (unindexed.Count > 0)
            {
                // Backups run side by side: another one's packs are indexed only when it writes its index.
                // A pack is left over only when no backup holds a lock and it is not recent.
                var now = _repo.Time.GetUtcNow();
                var writer = (await RepositoryLock.ListAsync(_repo.Store, request.Host, _repo.Time, ct).ConfigureAwait(false))
                    .FirstOrDefault(l => !l.Stale && l.Name != repoLock?.Name);
                foreach (var file in unindexed)
                {
                    if (writer is not null)
                    {
                        var r = writer.Record;
                        problems.Enqueue(new CheckProblem("info", $"data/{file.Name}", $"pack is in no index yet: being written by a backup in progress ({r.Command ?? "a command"}, pid {r.Pid} on {r.Host}, holds a lock); its index comes when it finishes"));
                    }
                    else if (file.Modified != default && now - file.Modified < InProgressWindow)
                    {
                        problems.Enqueue(new CheckProblem("info", $"data/{file.Name}", $"pack is in no index yet: written {Math.Max(0, (int)(now - file.Modified).TotalMinutes)} minutes ago, probably by a backup in progress; if none is running, it was left by an interrupted backup and `kintsugi prune` removes it"));
                    }
                    else
                    {
                        Warn($"data/{file.Name}", "pack is in no index (left by an interrupted backup); `kintsugi prune` removes it");
                    }
                }
            }

            int packsRead = 0;
            long blobsVerified = 0, bytesRead = 0;
            var readDeltas = new ConcurrentBag<IndexEntry>();
            if (request.ReadData)
            {
                var packs = byPack.Keys.Where(p => onDisk.ContainsKey(p.ToString())).OrderBy(p => p.ToString(), StringComparer.Ordinal).ToList();
                var rng = request.Seed is int seed ? new Random(seed) : new Random();
                if (request.ReadDataGroup is var (n, m))
                {
                    if (m < 1 || n < 1 || n > m)
                    {
                        throw new ArgumentOutOfRangeException(nameof(request), $"group {n} of {m} does not exist");
                    }
                    packs = packs.Where(p => GroupOf(p, m) == n - 1).ToList();
                }
                else if (request.ReadDataBytes is long budget)
                {
                    var chosen = new List<BlobId>();
                    long total = 0;
                    foreach (var p in packs.OrderBy(_ => rng.Next()))
                    {
                        if (total >= budget)
                        {
                            break;
                        }
                        chosen.Add(p);
                        total += onDisk[p.ToString()];
                    }
                    packs = chosen;
                }
                else if (request.ReadDataFraction is double fraction and < 1.0)
                {
                    int take = Math.Max(1, (int)Math.Ceiling(packs.Count * fraction));
                    packs = packs.OrderBy(_ => rng.Next()).Take(Math.Min(take, packs.Count)).ToList();
                }
                progress.TotalBytesField = packs.Sum(p => onDisk[p.ToString()]);
                await Parallel.ForEachAsync(packs, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, request.Workers), CancellationToken = ct }, async (pack, token) =>
                {
                    var (verified, read) = await ReadPackAsync(pack, onDisk[pack.ToString()], byPack[pack], damaged, readDeltas, Error, token).ConfigureAwait(false);
                    Interlocked.Add(ref blobsVerified, verified);
                    Interlocked.Add(ref bytesRead, read);
                    Interlocked.Increment(ref packsRead);
                    Interlocked.Add(ref progress.BytesDoneField, read);
                }).ConfigureAwait(false);
            }

            blobsVerified += await CheckDeltaChainsAsync(index, damaged, request.ReadData ? readDeltas : null, Error, ct).ConfigureAwait(false);

            var snapshots = await _repo.LoadSnapshotsAsync((name, e) => Error($"snapshots/{name}", e.Message), ct).ConfigureAwait(false);
            var affected = new List<AffectedFile>();
            var damagedTrees = await FindDamagedTreesAsync(snapshots.Select(s => BlobId.TryParse(s.Snapshot.Tree, out var t) ? t : default).Where(t => t != default), index, damaged, ct).ConfigureAwait(false);
            foreach (var snap in snapshots)
            {
                await CheckSnapshotAsync(snap, index, damaged, damagedTrees, affected, Error, ct).ConfigureAwait(false);
            }
            await CheckKeySlotsAsync(Error, ct).ConfigureAwait(false);
            await CheckParityAsync(request.ReadData, Error, Warn, ct).ConfigureAwait(false);
            if (problems.Any(p => p.Severity == "error") && (await _repo.Store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false)).Count > 0)
            {
                Warn("parity", "this repository keeps parity: `kintsugi repair` rebuilds damaged and missing files where it can");
            }
            return new CheckResult(problems.ToList(), affected, snapshots.Count, byPack.Count, packsRead, blobsVerified, bytesRead);
        }
        finally
        {
            if (repoLock is not null)
            {
                await repoLock.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Every key slot's bytes must still hash to its name (a damaged slot no longer opens the repository).</summary>
    private async Task CheckKeySlotsAsync(Action<string, string> error, CancellationToken ct)
    {
        foreach (var key in await _repo.Store.ListAsync(FileKind.Key, ct).ConfigureAwait(false))
        {
            var bytes = await _repo.Store.GetAsync(FileKind.Key, key.Name, ct).ConfigureAwait(false);
            if (Convert.ToHexStringLower(SHA256.HashData(bytes)) != key.Name)
            {
                error($"keys/{key.Name}", "key slot is damaged (its bytes do not match its name) and no longer opens the repository");
            }
        }
    }

    /// <summary>
    /// Where the repository keeps parity: every group header must parse, every file a group names
    /// must exist (a missing snapshot or key slot is otherwise invisible), and, when reading data,
    /// every group file must hash to its name. Files not yet protected are a warning.
    /// </summary>
    private async Task CheckParityAsync(bool readData, Action<string, string> error, Action<string, string> warn, CancellationToken ct)
    {
        var groups = await _repo.Store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false);
        if (groups.Count == 0 && !await _repo.Store.ExistsAsync(FileKind.ParitySettings, "settings", ct).ConfigureAwait(false))
        {
            return;
        }
        var parity = new Parity.ParityEngine(_repo.Store);
        Parity.ParityStatus status;
        try
        {
            status = await parity.StatusAsync(ct).ConfigureAwait(false);
        }
        catch (KintsugiException e)
        {
            error("parity/settings", e.Message);
            return;
        }
        foreach (var name in status.DamagedGroups)
        {
            error($"parity/{name}", "parity group is damaged; `kintsugi repair` rewrites it from the files it protects");
        }
        foreach (var (kind, name) in await parity.MissingMembersAsync(ct).ConfigureAwait(false))
        {
            error(Parity.ParityFile.Describe(kind, name), "is missing; a parity group protects it, so `kintsugi repair` can rebuild it");
        }
        if (readData)
        {
            foreach (var g in groups.Where(g => !status.DamagedGroups.Contains(g.Name)))
            {
                if (!await parity.GroupFileIntactAsync(g, ct).ConfigureAwait(false))
                {
                    error($"parity/{g.Name}", "parity group is damaged (its bytes do not match its name); `kintsugi repair` rewrites it");
                }
            }
        }
        if (status.Settings is not null && status.UncoveredFiles > 0)
        {
            warn("parity", $"{status.UncoveredFiles} files are not protected by parity yet (an interrupted backup); `kintsugi parity update` protects them");
        }
    }

    /// <summary>Reads a pack whole (its listed size, into a pooled buffer) and verifies its name, its header and every blob in it.</summary>
    private async Task<(long Verified, long Read)> ReadPackAsync(BlobId pack, long size, List<IndexEntry> entries, ConcurrentDictionary<BlobId, string> damaged, ConcurrentBag<IndexEntry> deltas, Action<string, string> error, CancellationToken ct)
    {
        string name = pack.ToString();
        if (size > int.MaxValue)
        {
            error($"data/{name}", $"pack of {size} bytes is larger than any Kintsugi writes");
            foreach (var entry in entries)
            {
                damaged[entry.Id] = "its pack is too large to be a pack";
            }
            return (0, 0);
        }
        var buffer = BufferPool.Shared.Rent((int)size);
        try
        {
            try
            {
                await _repo.Store.ReadAtAsync(FileKind.Pack, name, 0, buffer.AsMemory(0, (int)size), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or KintsugiException)
            {
                error($"data/{name}", $"cannot read pack: {e.Message}");
                foreach (var entry in entries)
                {
                    damaged[entry.Id] = "its pack cannot be read";
                }
                return (0, 0);
            }
            return VerifyPack(pack, entries, buffer.AsSpan(0, (int)size), damaged, deltas, error, ct);
        }
        finally
        {
            BufferPool.Shared.Return(buffer);
        }
    }

    private (long Verified, long Read) VerifyPack(BlobId pack, List<IndexEntry> entries, ReadOnlySpan<byte> data, ConcurrentDictionary<BlobId, string> damaged, ConcurrentBag<IndexEntry> deltas, Action<string, string> error, CancellationToken ct)
    {
        string name = pack.ToString();
        // Every byte of a well-formed pack is authenticated — its blobs and header by their AEAD tags
        // (checked below), the trailer by locating the header — so the pack's SHA-256 adds nothing
        // when its blobs tile it exactly; it is computed only when they do not (or the header is unreadable).
        bool tiled = false;
        try
        {
            var header = PackFormat.ReadHeader(_repo.Key, data, $"pack {pack.Short}");
            long at = 0;
            // Only blobs the index lists are opened below: a header entry it does not list is not authenticated by that.
            var verifiedHere = entries.Select(e => ((long)e.Offset, e.StoredLength)).ToHashSet();
            foreach (var h in header.OrderBy(h => h.Offset))
            {
                tiled = h.Offset == at && verifiedHere.Contains(((long)h.Offset, h.StoredLength));
                if (!tiled)
                {
                    break;
                }
                at += h.StoredLength;
            }
            tiled = tiled && at == data.Length - PackFormat.TrailerSize - BinaryPrimitives.ReadUInt32LittleEndian(data[^8..]);
            var inHeader = new Dictionary<BlobId, PackEntry>();
            foreach (var h in header)
            {
                // A header that lists a blob twice is odd but not unreadable; the first entry is compared.
                inHeader.TryAdd(h.Id, h);
            }
            foreach (var entry in entries)
            {
                if (!inHeader.TryGetValue(entry.Id, out var h) || h.Offset != entry.Offset || h.StoredLength != entry.StoredLength)
                {
                    error($"data/{name}", $"the index places blob {entry.Id.Short} where the pack header does not");
                }
            }
        }
        catch (KintsugiException e)
        {
            error($"data/{name}", e.Message);
        }
        if (!tiled)
        {
            Span<byte> hash = stackalloc byte[32];
            SHA256.HashData(data, hash);
            if (!hash.SequenceEqual(pack.ToArray()))
            {
                error($"data/{name}", "pack content does not match its name (bit rot or tampering); checking its blobs one by one");
            }
        }
        long verified;
        var plain = BufferPool.Shared.Rent((int)Math.Min(PackFormat.MaxBlobRawLength, entries.Max(e => e.RawLength)));
        try
        {
            verified = VerifyBlobs(pack, entries, data, plain, damaged, deltas, error, ct);
        }
        finally
        {
            BufferPool.Shared.Return(plain);
        }
        return (verified, data.Length);
    }

    /// <summary>Opens every blob of a pack read whole, into <paramref name="plain"/>; returns how many whole blobs were verified.</summary>
    private long VerifyBlobs(BlobId pack, List<IndexEntry> entries, ReadOnlySpan<byte> data, byte[] plain, ConcurrentDictionary<BlobId, string> damaged, ConcurrentBag<IndexEntry> deltas, Action<string, string> error, CancellationToken ct)
    {
        string name = pack.ToString();
        long verified = 0;
        foreach (var entry in entries)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                if (entry.Offset + (long)entry.StoredLength > data.Length)
                {
                    throw KintsugiException.Corrupt($"blob {entry.Id.Short}", "beyond the end of its pack");
                }
                var sealedBytes = data.Slice((int)entry.Offset, (int)entry.StoredLength);
                var plaintext = plain.AsSpan(0, (int)entry.RawLength);
                if (entry.IsDelta)
                {
                    // Authenticated here; the content it rebuilds is verified with its chain afterwards.
                    BlobSealer.Decode(_repo.Key, entry, sealedBytes, plaintext);
                    deltas.Add(entry);
                    continue;
                }
                BlobSealer.Open(_repo.Key, entry, sealedBytes, plaintext);
                verified++;
            }
            catch (KintsugiException e)
            {
                damaged[entry.Id] = e.Message;
                error($"data/{name}", e.Message);
            }
        }
        return verified;
    }

    /// <summary>
    /// Every delta's chain must reach a whole blob through indexed blobs of the same length; a delta
    /// resting on a damaged blob is damaged too. Deltas read from packs (<paramref name="readDeltas"/>)
    /// are rebuilt and checked against their ids. Returns how many were verified that way.
    /// </summary>
    private async Task<long> CheckDeltaChainsAsync(MasterIndex index, ConcurrentDictionary<BlobId, string> damaged, ConcurrentBag<IndexEntry>? readDeltas, Action<string, string> error, CancellationToken ct)
    {
        var reader = new BlobReader(_repo, index);
        foreach (var entry in index.Entries.Where(e => e.IsDelta))
        {
            try
            {
                var chain = reader.ChainOf(entry);
                var broken = chain.Skip(1).FirstOrDefault(link => damaged.ContainsKey(link.Id));
                if (broken != default && !damaged.ContainsKey(entry.Id))
                {
                    damaged[entry.Id] = $"it is a delta against damaged blob {broken.Id.Short}";
                }
            }
            catch (KintsugiException e)
            {
                damaged[entry.Id] = e.Message;
                error($"data/{entry.Pack}", e.Message);
            }
        }
        if (readDeltas is null)
        {
            return 0;
        }
        long verified = 0;
        await Parallel.ForEachAsync(readDeltas.Where(e => !damaged.ContainsKey(e.Id)), ct, async (entry, token) =>
        {
            try
            {
                var plain = BufferPool.Shared.Rent((int)entry.RawLength);
                try
                {
                    await reader.ReadAsync(entry, plain.AsMemory(0, (int)entry.RawLength), token).ConfigureAwait(false);
                }
                finally
                {
                    BufferPool.Shared.Return(plain);
                }
                Interlocked.Increment(ref verified);
            }
            catch (Exception e) when (e is KintsugiException or IOException)
            {
                damaged[entry.Id] = e.Message;
                error($"data/{entry.Pack}", $"delta blob {entry.Id.Short}: {e.Message}");
            }
        }).ConfigureAwait(false);
        return verified;
    }

    /// <summary>Most affected files listed per snapshot; a damaged folder shared by very many paths is not listed path by path beyond this.</summary>
    private const int MaxAffectedPerSnapshot = 10_000;

    /// <summary>A folder being evaluated: its subfolders still to look at, and whether anything under it is damaged so far.</summary>
    private sealed class TreeFrame(BlobId id, List<BlobId> subfolders, bool damaged, int depth)
    {
        public BlobId Id { get; } = id;
        public List<BlobId> Subfolders { get; } = subfolders;
        public int Next { get; set; }
        public bool Damaged { get; set; } = damaged;
        public int Depth { get; } = depth;
    }

    /// <summary>
    /// Every tree reachable from the snapshots, each read once however many folders and snapshots
    /// share it, marked damaged when it cannot be read, a file in it has a blob that is missing or
    /// damaged, or a tree under it is damaged. Only damaged trees are then walked path by path, so a
    /// repository of many folders sharing subfolders is checked in time linear in its distinct trees.
    /// </summary>
    private async Task<Dictionary<BlobId, bool>> FindDamagedTreesAsync(IEnumerable<BlobId> roots, MasterIndex index, ConcurrentDictionary<BlobId, string> damaged, CancellationToken ct)
    {
        var result = new Dictionary<BlobId, bool>();
        var stack = new Stack<TreeFrame>();
        var onStack = new HashSet<BlobId>();
        async Task<TreeFrame?> EnterAsync(BlobId id, int depth)
        {
            if (depth > TreeWalker.MaxDepth || damaged.ContainsKey(id))
            {
                result[id] = true;
                return null;
            }
            Tree tree;
            try
            {
                tree = await _repo.LoadTreeAsync(index, id, ct).ConfigureAwait(false);
            }
            catch (KintsugiException)
            {
                result[id] = true;
                return null;
            }
            bool bad = false;
            var subs = new List<BlobId>();
            foreach (var node in tree.Nodes)
            {
                if (node.Type == NodeType.Directory && node.Subtree is not null && BlobId.TryParse(node.Subtree, out var sub))
                {
                    subs.Add(sub);
                }
                else if (node.Type == NodeType.File && node.Content is not null)
                {
                    bad |= node.Content.Any(c => !BlobId.TryParse(c, out var blob) || !index.Contains(blob) || damaged.ContainsKey(blob));
                }
            }
            return new TreeFrame(id, [.. subs.Distinct()], bad, depth);
        }
        foreach (var root in roots.Distinct())
        {
            if (result.ContainsKey(root) || await EnterAsync(root, 0).ConfigureAwait(false) is not { } first)
            {
                continue;
            }
            stack.Push(first);
            onStack.Add(first.Id);
            while (stack.TryPeek(out var top))
            {
                ct.ThrowIfCancellationRequested();
                if (top.Next < top.Subfolders.Count)
                {
                    var sub = top.Subfolders[top.Next++];
                    if (result.TryGetValue(sub, out bool known))
                    {
                        top.Damaged |= known;
                    }
                    else if (onStack.Contains(sub))
                    {
                        top.Damaged = true;
                    }
                    else if (await EnterAsync(sub, top.Depth + 1).ConfigureAwait(false) is { } frame)
                    {
                        stack.Push(frame);
                        onStack.Add(frame.Id);
                    }
                    else
                    {
                        top.Damaged = true;
                    }
                    continue;
                }
                stack.Pop();
                onStack.Remove(top.Id);
                result[top.Id] = top.Damaged;
                if (stack.TryPeek(out var parent))
                {
                    parent.Damaged |= top.Damaged;
                }
            }
        }
        return result;
    }

    private async Task CheckSnapshotAsync(SnapshotRef snap, MasterIndex index, ConcurrentDictionary<BlobId, string> damaged, Dictionary<BlobId, bool> damagedTrees, List<AffectedFile> affected, Action<string, string> error, CancellationToken ct)
    {
        string subject = $"snapshot {snap.ShortId}";
        int listed = 0;
        void Affected(string path)
        {
            if (++listed <= MaxAffectedPerSnapshot)
            {
                affected.Add(new AffectedFile(snap.ShortId, path));
            }
        }
        var stack = new Stack<(string Path, BlobId Tree, int Depth)>();
        stack.Push(("", BlobId.Parse(snap.Snapshot.Tree), 0));
        while (stack.Count > 0 && listed <= MaxAffectedPerSnapshot)
        {
            var (path, treeId, depth) = stack.Pop();
            if (damagedTrees.TryGetValue(treeId, out bool bad) && !bad)
            {
                continue;
            }
            if (depth > TreeWalker.MaxDepth)
            {
                error(subject, $"folder {path} is nested deeper than {TreeWalker.MaxDepth} (a cycle?)");
                continue;
            }
            Tree tree;
            try
            {
                if (damaged.TryGetValue(treeId, out var why))
                {
                    throw KintsugiException.Corrupt($"tree {treeId.Short}", why);
                }
                tree = await _repo.LoadTreeAsync(index, treeId, ct).ConfigureAwait(false);
            }
            catch (KintsugiException e)
            {
                error(subject, $"folder {(path.Length == 0 ? "/" : path)} cannot be read: {e.Message}");
                Affected(path + "/ (whole folder)");
                continue;
            }
            foreach (var node in tree.Nodes)
            {
                string childPath = path + "/" + node.Name;
                if (node.Type == NodeType.Directory && node.Subtree is not null && BlobId.TryParse(node.Subtree, out var sub))
                {
                    stack.Push((childPath, sub, depth + 1));
                }
                else if (node.Type == NodeType.File && node.Content is not null)
                {
                    foreach (var c in node.Content)
                    {
                        if (!BlobId.TryParse(c, out var id) || !index.Contains(id))
                        {
                            error(subject, $"{childPath}: blob {c[..Math.Min(8, c.Length)]} is not in the index");
                            Affected(childPath);
                            break;
                        }
                        if (damaged.ContainsKey(id))
                        {
                            Affected(childPath);
                            break;
                        }
                    }
                }
            }
        }
        if (listed > MaxAffectedPerSnapshot)
        {
            error(subject, $"more than {MaxAffectedPerSnapshot} damaged files; only the first are listed");
        }
    }
}
