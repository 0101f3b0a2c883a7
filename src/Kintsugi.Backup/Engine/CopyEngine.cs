using System.Security.Cryptography;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>What to copy.</summary>
public sealed record CopyRequest
{
    /// <summary>Snapshots of the source to copy, as the caller selected them.</summary>
    public required IReadOnlyList<SnapshotRef> Snapshots { get; init; }

    /// <summary>Host recorded in the locks.</summary>
    public string Host { get; init; } = "localhost";
}

/// <summary>One selected snapshot: its copy in the destination, new or found there already.</summary>
public sealed record CopiedSnapshot(SnapshotRef Source, BlobId Destination, bool Skipped);

/// <summary>
/// How far a copy is. Where the repositories share ids: blobs and their sealed bytes written to the
/// destination so far, of those it lacks. Where ids differ, whether the destination lacks a content
/// blob is known only once its plaintext is read and hashed, so the counts are of blobs processed
/// (read, and stored where lacking) and their raw bytes, of all the copied snapshots reach.
/// </summary>
public readonly record struct CopyProgress(long BlobsCopied, long BlobsToCopy, long BytesCopied, long BytesToCopy);

/// <summary>
/// What a copy did: blobs and sealed bytes written to the destination, and whether the two
/// repositories share blob ids (blobs moved as stored) or not (blobs re-identified).
/// </summary>
public sealed record CopyResult(IReadOnlyList<CopiedSnapshot> Snapshots, long BlobsCopied, long BytesCopied, long PacksWritten, IReadOnlyList<string> Warnings, bool IdsShared)
{
    public int SnapshotsCopied => Snapshots.Count(s => !s.Skipped);

    public int SnapshotsSkipped => Snapshots.Count(s => s.Skipped);
}

/// <summary>
/// Copies snapshots, with every blob they need, from one repository to another, moving only the
/// blobs the destination lacks. Blob ids are keyed (docs/FORMAT.md §3.3), so there are two ways:
/// <list type="bullet">
/// <item>The destination shares the source's id key (<c>kintsugi init --copy-settings-from</c>): ids,
/// trees and delta bases mean the same in both and nothing is rewritten; each blob is opened with
/// the source's encryption key and sealed again with the destination's, its encoding kept as stored.</item>
/// <item>The id keys differ: every blob is re-identified (see CopyEngine.Translation.cs). Content is
/// read as plaintext, named by the destination's key and stored whole where lacking; trees are
/// rewritten with the new ids, bottom-up, and the snapshot names its new tree.</item>
/// </list>
/// The write order is the crash-safety argument: packs, then the index naming them (every few
/// packs, so a killed copy leaves work the next run reuses), then the snapshots, last.
/// </summary>
public sealed partial class CopyEngine
{
    /// <summary>Index entries are saved after this many packs, so an interrupted copy keeps what it moved.</summary>
    internal const int PacksPerIndexFile = 4;

    /// <summary>Neighbouring blobs of a source pack are read in one request up to this many bytes.</summary>
    internal const int MaxReadRun = 8 << 20;

    private readonly Repository _source;
    private readonly Repository _destination;

    public CopyEngine(Repository source, Repository destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        _source = source;
        _destination = destination;
    }

    /// <summary>Whether <paramref name="destination"/> names blobs as <paramref name="source"/> does, so a copy between them needs no rewriting.</summary>
    public static bool SharesIds(Repository source, Repository destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        return CryptographicOperations.FixedTimeEquals(source.Key.IdKey, destination.Key.IdKey);
    }

    public async Task<CopyResult> RunAsync(CopyRequest request, IProgress<CopyProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_source.Config.Id == _destination.Config.Id)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"{_source.Store.Location} and {_destination.Store.Location} are the same repository; copy to another one");
        }
        bool idsShared = SharesIds(_source, _destination);
        await using var sourceLock = await _source.LockAsync(exclusive: false, request.Host, "copy (source)", ct).ConfigureAwait(false);
        await using var destinationLock = await _destination.LockAsync(exclusive: false, request.Host, "copy", ct).ConfigureAwait(false);

        var present = await _destination.LoadSnapshotsAsync(onError: (_, _) => { }, ct: ct).ConfigureAwait(false);
        var outcome = new List<(SnapshotRef Source, BlobId? Existing)>();
        foreach (var snap in request.Snapshots.DistinctBy(s => s.Id).OrderBy(s => s.Snapshot.Time))
        {
            outcome.Add((snap, present.FirstOrDefault(d => IsCopyOf(d, snap, compareTrees: idsShared))?.Id));
        }
        var toCopy = outcome.Where(o => o.Existing is null).Select(o => o.Source).ToList();
        if (toCopy.Count == 0)
        {
            return new CopyResult(outcome.Select(o => new CopiedSnapshot(o.Source, o.Existing!.Value, true)).ToList(), 0, 0, 0, [], idsShared);
        }

        var sourceIndex = await _source.LoadIndexAsync(ct: ct).ConfigureAwait(false);
        var destinationIndex = await _destination.LoadIndexAsync(ct: ct).ConfigureAwait(false);
        long blobs, bytes, packs;
        Dictionary<BlobId, BlobId> trees;
        if (idsShared)
        {
            var needed = new List<IndexEntry>();
            var seen = new HashSet<BlobId>();
            foreach (var snap in toCopy)
            {
                await CollectAsync(snap, sourceIndex, destinationIndex, seen, needed, ct).ConfigureAwait(false);
            }
            (blobs, bytes, packs) = await CopyBlobsAsync(needed, progress, ct).ConfigureAwait(false);
            trees = toCopy.ToDictionary(s => s.Id, s => BlobId.Parse(s.Snapshot.Tree));
        }
        else
        {
            (trees, blobs, bytes, packs) = await TranslateAsync(toCopy, sourceIndex, destinationIndex, progress, ct).ConfigureAwait(false);
        }

        // Last: a snapshot is visible only once every blob it needs is indexed in the destination.
        var copies = new Dictionary<BlobId, BlobId>();
        foreach (var snap in toCopy)
        {
            var copy = snap.Snapshot with { Tree = trees[snap.Id].ToString(), Original = snap.Snapshot.Original ?? snap.Id.ToString() };
            copies[snap.Id] = await _destination.SaveSnapshotAsync(copy, ct).ConfigureAwait(false);
        }
        var warnings = new List<string>();
        await ProtectWithParityAsync(warnings, ct).ConfigureAwait(false);
        var result = outcome.Select(o => o.Existing is { } existing
            ? new CopiedSnapshot(o.Source, existing, true)
            : new CopiedSnapshot(o.Source, copies[o.Source.Id], false)).ToList();
        return new CopyResult(result, blobs, bytes, packs, warnings, idsShared);
    }

    /// <summary>
    /// Whether <paramref name="candidate"/> (in the destination) is <paramref name="snap"/> or a copy
    /// of it: the same id, or the same first id (<c>original</c>, which copy and tag keep), tree and tags.
    /// Between repositories whose ids differ the trees cannot be compared (a copy's tree was
    /// re-identified): pass <paramref name="compareTrees"/> false, and the first id and tags decide.
    /// </summary>
    public static bool IsCopyOf(SnapshotRef candidate, SnapshotRef snap, bool compareTrees = true)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ArgumentNullException.ThrowIfNull(snap);
        if (candidate.Id == snap.Id)
        {
            return true;
        }
        string first = snap.Snapshot.Original ?? snap.Id.ToString();
        return (candidate.Snapshot.Original ?? candidate.Id.ToString()) == first
            && (!compareTrees || candidate.Snapshot.Tree == snap.Snapshot.Tree)
            && (candidate.Snapshot.Tags ?? []).Order(StringComparer.Ordinal).SequenceEqual((snap.Snapshot.Tags ?? []).Order(StringComparer.Ordinal), StringComparer.Ordinal);
    }

    /// <summary>
    /// Adds to <paramref name="needed"/> every blob the snapshot reaches that the destination lacks:
    /// its trees, their content, and each delta's chain of bases. Every tree is read, even one the
    /// destination holds, since an interrupted copy may have indexed a tree before its content.
    /// </summary>
    private async Task CollectAsync(SnapshotRef snap, MasterIndex sourceIndex, MasterIndex destinationIndex, HashSet<BlobId> seen, List<IndexEntry> needed, CancellationToken ct)
    {
        void Need(BlobId id, string what)
        {
            if (!sourceIndex.TryGet(id, out var entry))
            {
                throw new KintsugiException(ErrorKind.Corrupt, $"copy stopped before writing a snapshot: {what} {id.Short} of snapshot {snap.ShortId} is not in the source's index; run `kintsugi check` on {_source.Store.Location}");
            }
            if (!destinationIndex.Contains(id))
            {
                needed.Add(entry);
            }
        }

        var trees = new Stack<BlobId>();
        trees.Push(BlobId.Parse(snap.Snapshot.Tree));
        while (trees.Count > 0)
        {
            var treeId = trees.Pop();
            if (!seen.Add(treeId))
            {
                continue;
            }
            Need(treeId, "tree");
            var tree = await _source.LoadTreeAsync(sourceIndex, treeId, ct).ConfigureAwait(false);
            foreach (var node in tree.Nodes)
            {
                if (node.Subtree is not null)
                {
                    trees.Push(BlobId.Parse(node.Subtree));
                }
                foreach (var content in node.Content ?? [])
                {
                    // A delta needs its chain of bases, however old the snapshots that stored them.
                    var id = BlobId.Parse(content);
                    int links = 0;
                    while (seen.Add(id))
                    {
                        Need(id, links == 0 ? "blob" : "delta base");
                        var entry = sourceIndex.Get(id);
                        if (!entry.IsDelta)
                        {
                            break;
                        }
                        if (++links > 64)
                        {
                            throw KintsugiException.Corrupt($"delta chain of blob {BlobId.Parse(content).Short} in {_source.Store.Location}", "longer than 64 blobs");
                        }
                        id = entry.Base;
                    }
                }
            }
        }
    }

    private async Task<(long Blobs, long Bytes, long Packs)> CopyBlobsAsync(List<IndexEntry> needed, IProgress<CopyProgress>? progress, CancellationToken ct)
    {
        long total = needed.Sum(e => (long)e.StoredLength);
        long blobs = 0, bytes = 0;
        long packs = await WritePacksAsync(writer => CopyPacksAsync(needed, writer, length =>
        {
            blobs++;
            bytes += length;
        }, () => progress?.Report(new CopyProgress(blobs, needed.Count, bytes, total)), ct), ct).ConfigureAwait(false);
        return (blobs, bytes, packs);
    }

    /// <summary>
    /// Runs <paramref name="fill"/> with a pack writer for the destination, and indexes what it
    /// stored every <see cref="PacksPerIndexFile"/> packs and at the end, or when the copy is
    /// stopped, so the next run finds those blobs. Returns the packs written.
    /// </summary>
    private async Task<long> WritePacksAsync(Func<PackWriter, Task> fill, CancellationToken ct)
    {
        var unindexed = new List<IndexEntry>();
        int unindexedPacks = 0;
        await using var writer = new PackWriter(_destination.Store, _destination.Key, _destination.Config.PackSize, async (entries, token) =>
        {
            unindexed.AddRange(entries);
            if (++unindexedPacks >= PacksPerIndexFile)
            {
                await _destination.SaveIndexAsync(unindexed, token).ConfigureAwait(false);
                unindexed.Clear();
                unindexedPacks = 0;
            }
        });
        try
        {
            await fill(writer).ConfigureAwait(false);
            await writer.FlushAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (unindexed.Count > 0)
        {
            // Stopped on purpose: the packs already stored are indexed, so the next run reuses them.
            await _destination.SaveIndexAsync(unindexed, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        if (unindexed.Count > 0)
        {
            await _destination.SaveIndexAsync(unindexed, ct).ConfigureAwait(false);
        }
        return writer.PacksWritten;
    }

    /// <summary>Reads the needed blobs pack by pack, in offset order, so neighbouring blobs come in one ranged read, and hands each, sealed for the destination, to the writer.</summary>
    private async Task CopyPacksAsync(List<IndexEntry> needed, PackWriter writer, Action<int> copied, Action runDone, CancellationToken ct)
    {
        foreach (var pack in needed.GroupBy(e => e.Pack))
        {
            var entries = pack.OrderBy(e => e.Offset).ToList();
            int i = 0;
            while (i < entries.Count)
            {
                int j = i + 1;
                long end = (long)entries[i].Offset + entries[i].StoredLength;
                while (j < entries.Count && entries[j].Offset == end && end + entries[j].StoredLength - entries[i].Offset <= MaxReadRun)
                {
                    end += entries[j].StoredLength;
                    j++;
                }
                var run = new byte[end - entries[i].Offset];
                await _source.Store.ReadAtAsync(Storage.FileKind.Pack, pack.Key.ToString(), entries[i].Offset, run, ct).ConfigureAwait(false);
                for (int k = i; k < j; k++)
                {
                    var entry = entries[k];
                    var sealedBytes = run.AsMemory((int)(entry.Offset - entries[i].Offset), (int)entry.StoredLength);
                    var (resealed, length) = Reseal(entry, sealedBytes.Span);
                    try
                    {
                        await writer.AddAsync(entry.Id, entry.Kind, entry.Codec, (int)entry.RawLength, resealed.AsMemory(0, length), entry.Base, ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        BufferPool.Shared.Return(resealed);
                    }
                    copied(length);
                }
                i = j;
                runDone();
            }
        }
    }

    /// <summary>
    /// Opens a source blob's envelope and seals its encoded payload, as stored, for the destination
    /// (a rented buffer the caller returns). The associated data (kind, codec, length, id, base) is
    /// the same in both repositories, since they share ids.
    /// </summary>
    private (byte[] Sealed, int Length) Reseal(in IndexEntry entry, ReadOnlySpan<byte> sealedBytes)
    {
        string what = $"blob {entry.Id.Short} in pack {entry.Pack.Short} of {_source.Store.Location}";
        if (sealedBytes.Length < Aead.Overhead || entry.RawLength > PackFormat.MaxBlobRawLength)
        {
            throw KintsugiException.Corrupt(what, "shorter than its envelope, or lengths out of range");
        }
        Span<byte> ad = stackalloc byte[PackEntry.AssociatedDataSize];
        ad = ad[..PackEntry.WriteAssociatedData(ad, entry.Id, entry.Kind, entry.Codec, entry.RawLength, entry.Base)];
        var encoded = BufferPool.Shared.Rent(sealedBytes.Length - Aead.Overhead);
        try
        {
            var encodedSpan = encoded.AsSpan(0, sealedBytes.Length - Aead.Overhead);
            // Authenticated before it is copied: a damaged blob must not get a fresh, valid-looking home.
            if (!Aead.TryOpen(_source.Key.EncryptionKey, sealedBytes, ad, encodedSpan))
            {
                throw KintsugiException.Corrupt(what, "authentication failed: the bytes were altered");
            }
            return BlobSealer.SealEncodedPooled(_destination.Key, entry.Id, entry.Kind, entry.Codec, entry.RawLength, encodedSpan, entry.Base);
        }
        finally
        {
            BufferPool.Shared.Return(encoded);
        }
    }

    /// <summary>As after a backup: where the destination keeps parity, the new files join it; a failure is a warning, the snapshots being committed.</summary>
    private async Task ProtectWithParityAsync(List<string> warnings, CancellationToken ct)
    {
        try
        {
            var cover = await new Parity.ParityEngine(_destination.Store).CoverAsync(ct: ct).ConfigureAwait(false);
            warnings.AddRange(cover.Skipped.Select(s => $"not protected by parity: {s}"));
        }
        catch (Exception e) when (e is KintsugiException or IOException)
        {
            warnings.Add($"the copied files are not yet protected by parity ({e.Message}); run `kintsugi parity update`");
        }
    }
}
