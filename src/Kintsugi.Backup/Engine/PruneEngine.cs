using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Engine;

/// <summary>How to prune.</summary>
public sealed record PruneRequest
{
    /// <summary>Repack a pack when at least this fraction of its bytes is unused.</summary>
    public double RepackThreshold { get; init; } = 0.5;
    public bool DryRun { get; init; }
    public string Host { get; init; } = "localhost";

    /// <summary>
    /// Snapshots to count as already removed: what <c>forget --prune --dry-run</c> would forget, so
    /// its preview is the real run's. Without a dry run the caller deletes them first.
    /// </summary>
    public IReadOnlySet<BlobId> Forgotten { get; init; } = new HashSet<BlobId>();
}

/// <summary>What prune did (or, in a dry run, would do).</summary>
public sealed record PruneResult(
    int PacksDeleted, int PacksRepacked, int PacksWritten, long BytesFreed,
    long BlobsRemoved, long BlobsKept, int IndexFilesReplaced, int TempFilesRemoved, bool DryRun);

/// <summary>
/// Removes what no snapshot needs. Under an exclusive lock: find every blob the snapshots use,
/// delete packs nothing uses, repack packs that are mostly unused (their used blobs are verified
/// and copied into new packs), write one new index, then delete the old index files, then the old
/// packs. Each step leaves a valid repository if the process dies: until the old index files are
/// gone they still point at packs that still exist.
/// </summary>
public sealed class PruneEngine
{
    private readonly Repository _repo;

    public PruneEngine(Repository repository) => _repo = repository;

    public async Task<PruneResult> RunAsync(PruneRequest request, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        await using var repoLock = await _repo.LockAsync(true, request.Host, "prune", ct).ConfigureAwait(false);
        return await PruneAsync(request, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Prune for a caller that already holds the exclusive lock (forget --prune); a dry run, which only
    /// reads, may hold a shared lock or none (a repository that cannot be written).
    /// </summary>
    public Task<PruneResult> RunAsync(PruneRequest request, RepositoryLock? exclusiveLock, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (exclusiveLock is not { Exclusive: true } && !request.DryRun)
        {
            throw new ArgumentException("prune needs an exclusive lock", nameof(exclusiveLock));
        }
        return PruneAsync(request, ct);
    }

    private async Task<PruneResult> PruneAsync(PruneRequest request, CancellationToken ct)
    {
        var indexFiles = (await _repo.Store.ListAsync(FileKind.Index, ct).ConfigureAwait(false)).Select(f => f.Name).ToList();
        var allEntries = new List<IndexEntry>();
        foreach (var name in indexFiles)
        {
            try
            {
                allEntries.AddRange(await _repo.LoadIndexFileAsync(name, ct).ConfigureAwait(false));
            }
            catch (KintsugiException e)
            {
                throw new KintsugiException(ErrorKind.Corrupt, $"prune stopped before changing anything: {e.Message}", e);
            }
        }
        var index = new MasterIndex();
        foreach (var e in allEntries)
        {
            index.Add(e);
        }
        var snapshots = await _repo.LoadSnapshotsAsync(onError: (name, e) => throw new KintsugiException(ErrorKind.Corrupt, $"prune stopped before changing anything: {e.Message}", e), ct: ct).ConfigureAwait(false);
        var used = new HashSet<BlobId>();
        foreach (var snap in snapshots.Where(s => !request.Forgotten.Contains(s.Id)))
        {
            await MarkUsedAsync(BlobId.Parse(snap.Snapshot.Tree), index, used, ct).ConfigureAwait(false);
        }

        var packs = allEntries.GroupBy(e => e.Pack).ToDictionary(g => g.Key, g => g.ToList());
        var home = ChooseCopies(packs, used);
        bool IsLive(IndexEntry e) => home.TryGetValue(e.Id, out var pack) && pack == e.Pack;
        var onDisk = (await _repo.Store.ListAsync(FileKind.Pack, ct).ConfigureAwait(false)).ToDictionary(f => f.Name, f => f.Size, StringComparer.Ordinal);
        var delete = new List<BlobId>();
        var repack = new List<BlobId>();
        var keep = new List<BlobId>();
        long bytesFreed = 0, blobsRemoved = 0, blobsKept = 0;
        foreach (var (pack, entries) in packs)
        {
            if (!onDisk.ContainsKey(pack.ToString()))
            {
                throw new KintsugiException(ErrorKind.Corrupt, $"prune stopped before changing anything: pack {pack.Short} named by the index is missing; run `kintsugi check`");
            }
            long total = entries.Sum(e => (long)e.StoredLength);
            long live = entries.Where(IsLive).Sum(e => (long)e.StoredLength);
            int liveCount = entries.Count(IsLive);
            blobsKept += liveCount;
            blobsRemoved += entries.Count - liveCount;
            if (liveCount == 0)
            {
                delete.Add(pack);
                bytesFreed += onDisk[pack.ToString()];
            }
            else if (total - live >= total * request.RepackThreshold)
            {
                repack.Add(pack);
                bytesFreed += total - live;
            }
            else
            {
                keep.Add(pack);
            }
        }
        var unindexed = onDisk.Keys.Where(n => !BlobId.TryParse(n, out var id) || !packs.ContainsKey(id)).ToList();
        bytesFreed += unindexed.Sum(n => onDisk[n]);

        if (request.DryRun)
        {
            return new PruneResult(delete.Count + unindexed.Count, repack.Count, PacksToWrite(repack, packs, IsLive), bytesFreed, blobsRemoved, blobsKept, 0, 0, true);
        }

        var newEntries = new List<IndexEntry>();
        await using var writer = new PackWriter(_repo.Store, _repo.Key, _repo.Config.PackSize, (entries, _) =>
        {
            newEntries.AddRange(entries);
            return Task.CompletedTask;
        });
        foreach (var pack in repack)
        {
            foreach (var entry in packs[pack].Where(IsLive))
            {
                var sealedBytes = new byte[entry.StoredLength];
                await _repo.Store.ReadAtAsync(FileKind.Pack, pack.ToString(), entry.Offset, sealedBytes, ct).ConfigureAwait(false);
                // Verify before copying: a damaged blob must not be given a fresh, valid-looking home.
                // (A delta's bytes are authenticated here; its reconstruction is what check --read-data verifies.)
                BlobSealer.Decode(_repo.Key, entry, sealedBytes, new byte[entry.RawLength]);
                await writer.AddAsync(entry.Id, entry.Kind, entry.Codec, (int)entry.RawLength, sealedBytes, entry.Base, ct).ConfigureAwait(false);
            }
        }
        await writer.FlushAsync(ct).ConfigureAwait(false);

        var keepSet = keep.ToHashSet();
        // Kept packs keep their live entries; unused blobs in them stay listed once, so the index matches the pack headers.
        var listed = new HashSet<BlobId>();
        var finalEntries = allEntries
            .Where(e => keepSet.Contains(e.Pack) && (IsLive(e) || (!used.Contains(e.Id) && listed.Add(e.Id))))
            .Concat(newEntries)
            .ToList();
        var newIndex = await _repo.SaveIndexAsync(finalEntries, ct).ConfigureAwait(false);
        // Old index files go before their packs (a crash in between leaves packs no index lists,
        // which the next prune removes). Parity groups first protect the new packs and index files,
        // then let go of the files about to be deleted, before any is deleted.
        var parity = new Parity.ParityEngine(_repo.Store);
        var doomed = indexFiles.Where(n => !newIndex.Contains(n)).Select(n => (FileKind.Index, n))
            .Concat(delete.Concat(repack).Select(p => (FileKind.Pack, p.ToString())))
            .Concat(unindexed.Select(n => (FileKind.Pack, n)))
            .ToList();
        await parity.CoverAsync(doomed, ct: ct).ConfigureAwait(false);
        await parity.DeleteAsync(doomed, ct).ConfigureAwait(false);
        int replaced = doomed.Count(d => d.Item1 == FileKind.Index);
        int temps = _repo.Store.Capabilities.HasTemporaryFiles ? await _repo.Store.CleanTemporaryFilesAsync(TimeSpan.Zero, _repo.Time.GetUtcNow(), ct).ConfigureAwait(false) : 0;
        return new PruneResult(delete.Count + unindexed.Count, repack.Count, (int)writer.PacksWritten, bytesFreed, blobsRemoved, blobsKept, replaced, temps, false);
    }

    /// <summary>How many packs the repack writes: the blobs go in the same order, and a pack is stored once it reaches the pack size.</summary>
    private int PacksToWrite(List<BlobId> repack, Dictionary<BlobId, List<IndexEntry>> packs, Func<IndexEntry, bool> isLive)
    {
        int written = 0;
        long pending = 0;
        foreach (var entry in repack.SelectMany(p => packs[p].Where(isLive)))
        {
            pending += entry.StoredLength;
            if (pending >= _repo.Config.PackSize)
            {
                written++;
                pending = 0;
            }
        }
        return pending > 0 ? written + 1 : written;
    }

    /// <summary>
    /// Picks the one copy of each used blob that stays. Most blobs have one copy. Where concurrent
    /// backups stored a blob twice, packs are taken greedily by how many bytes of not-yet-placed used
    /// blobs they hold, so the duplicates gather in packs that end up deleted or repacked.
    /// </summary>
    private static Dictionary<BlobId, BlobId> ChooseCopies(Dictionary<BlobId, List<IndexEntry>> packs, HashSet<BlobId> used)
    {
        var copies = new Dictionary<BlobId, int>();
        foreach (var e in packs.Values.SelectMany(p => p).Where(e => used.Contains(e.Id)))
        {
            copies[e.Id] = copies.GetValueOrDefault(e.Id) + 1;
        }
        var home = new Dictionary<BlobId, BlobId>();
        var contested = new List<BlobId>();
        foreach (var (pack, entries) in packs)
        {
            if (entries.Any(e => copies.GetValueOrDefault(e.Id) > 1))
            {
                contested.Add(pack);
                continue;
            }
            foreach (var e in entries.Where(e => used.Contains(e.Id)))
            {
                home[e.Id] = pack;
            }
        }
        long Unplaced(BlobId pack) => packs[pack].Where(e => used.Contains(e.Id) && !home.ContainsKey(e.Id)).Sum(e => (long)e.StoredLength);
        while (contested.Count > 0)
        {
            var best = contested.MaxBy(Unplaced);
            if (Unplaced(best) == 0)
            {
                break;
            }
            foreach (var e in packs[best].Where(e => used.Contains(e.Id)))
            {
                home.TryAdd(e.Id, best);
            }
            contested.Remove(best);
        }
        return home;
    }

    private async Task MarkUsedAsync(BlobId root, MasterIndex index, HashSet<BlobId> used, CancellationToken ct)
    {
        var stack = new Stack<BlobId>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var treeId = stack.Pop();
            if (!used.Add(treeId))
            {
                continue;
            }
            Tree tree;
            try
            {
                tree = await _repo.LoadTreeAsync(index, treeId, ct).ConfigureAwait(false);
            }
            catch (KintsugiException e)
            {
                throw new KintsugiException(ErrorKind.Corrupt, $"prune stopped before changing anything: {e.Message}", e);
            }
            foreach (var node in tree.Nodes)
            {
                if (node.Subtree is not null)
                {
                    stack.Push(BlobId.Parse(node.Subtree));
                }
                foreach (var c in node.Content ?? [])
                {
                    var id = BlobId.Parse(c);
                    if (!index.Contains(id))
                    {
                        throw new KintsugiException(ErrorKind.Corrupt, $"prune stopped before changing anything: blob {id.Short} of {node.Name} is not in the index; run `kintsugi check`");
                    }
                    // A delta needs its chain of bases, however old the snapshots that stored them.
                    while (used.Add(id) && index.TryGet(id, out var entry) && entry.IsDelta)
                    {
                        if (!index.Contains(entry.Base))
                        {
                            throw new KintsugiException(ErrorKind.Corrupt, $"prune stopped before changing anything: base blob {entry.Base.Short} of delta {id.Short} is not in the index; run `kintsugi check`");
                        }
                        id = entry.Base;
                    }
                }
            }
        }
    }
}
