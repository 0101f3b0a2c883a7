using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>One file of a snapshot: its size, and what its distinct blobs take in the repository.</summary>
public sealed record FileStats(string Path, string? Layout, long BytesIn, long BytesStored, int Blobs);

/// <summary>The distinct blobs of a snapshot that share a kind and a codec ("tensor planes", "delta zstd", …).</summary>
public sealed record CodecStats(string Codec, long Blobs, long BytesIn, long BytesStored);

/// <summary>
/// What a snapshot holds and what it takes. <see cref="BytesStored"/> counts each blob the snapshot
/// names once; <see cref="BaseBytesStored"/> is what the delta chains of those blobs reach beyond
/// them (bases stored for older snapshots), which a restore of this snapshot alone also needs.
/// </summary>
public sealed record SnapshotStats(
    string Snapshot, IReadOnlyList<FileStats> Files, IReadOnlyList<CodecStats> Codecs,
    long BytesIn, long BytesStored, long Blobs, long BaseBlobs, long BaseBytesStored);

/// <summary>What <c>stats --mode</c> counts over a set of snapshots, as restic's modes do.</summary>
public enum StatsMode
{
    /// <summary>Per file and per codec, for one snapshot (<see cref="SnapshotStats"/>).</summary>
    Files,
    /// <summary>What a restore of each snapshot writes: every file, a duplicate each time, a hard-linked file once per snapshot.</summary>
    RestoreSize,
    /// <summary>Files with distinct content, counted once however many paths and snapshots hold them.</summary>
    FilesByContents,
    /// <summary>The distinct blobs the snapshots need (trees, content, delta bases), raw and as stored.</summary>
    RawData,
    /// <summary>The distinct content blobs of the files, and the files with distinct content.</summary>
    BlobsPerFile,
}

/// <summary>
/// The totals of one <see cref="StatsMode"/> over <see cref="Snapshots"/> snapshots. For
/// <see cref="StatsMode.RawData"/>, <see cref="TotalSize"/> is the stored bytes of the blobs and
/// <see cref="TotalUncompressedSize"/> their plaintext; otherwise both are file bytes.
/// </summary>
public sealed record ModeStats(StatsMode Mode, int Snapshots, long TotalFileCount, long TotalSize, long TotalBlobCount, long TotalUncompressedSize);

/// <summary>
/// The whole repository: its packs on disk, the blobs its index lists, and what a restore of every
/// snapshot would write (<see cref="RestoreSize"/>) against the content stored once for it.
/// </summary>
public sealed record RepositoryStats(
    int Snapshots, int Packs, long PackBytes, long Blobs, long UncompressedBytes, long StoredBytes,
    long RestoreFiles, long RestoreSize, long ContentUncompressedBytes);

/// <summary>Computes <see cref="SnapshotStats"/> from a snapshot's trees and the index; reads no data.</summary>
public sealed class StatsEngine
{
    private readonly Repository _repo;

    public StatsEngine(Repository repository) => _repo = repository;

    public async Task<SnapshotStats> RunAsync(SnapshotRef snapshot, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var index = await _repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
        var reader = new BlobReader(_repo, index);
        var files = new List<FileStats>();
        var blobs = new Dictionary<BlobId, IndexEntry>();
        long bytesIn = 0;
        var root = TreeWalker.RootOf(snapshot);
        if (index.TryGet(root, out var rootEntry))
        {
            blobs.TryAdd(root, rootEntry);
        }
        await foreach (var walked in TreeWalker.WalkAsync(_repo, index, root, ct).ConfigureAwait(false))
        {
            var node = walked.Node;
            if (node.Subtree is not null && BlobId.TryParse(node.Subtree, out var treeId) && index.TryGet(treeId, out var treeEntry))
            {
                blobs.TryAdd(treeId, treeEntry);
            }
            if (node.Type != NodeType.File)
            {
                continue;
            }
            var mine = new HashSet<BlobId>();
            long stored = 0;
            foreach (var c in node.Content ?? [])
            {
                var entry = index.Get(BlobId.Parse(c));
                if (mine.Add(entry.Id))
                {
                    stored += entry.StoredLength;
                }
                blobs.TryAdd(entry.Id, entry);
            }
            files.Add(new FileStats(walked.Path, node.Layout, node.Size, stored, mine.Count));
            bytesIn += node.Size;
        }
        var bases = new Dictionary<BlobId, IndexEntry>();
        foreach (var entry in blobs.Values.Where(e => e.IsDelta))
        {
            foreach (var link in reader.ChainOf(entry).Skip(1).Where(l => !blobs.ContainsKey(l.Id)))
            {
                bases.TryAdd(link.Id, link);
            }
        }
        var codecs = blobs.Values
            .GroupBy(Label)
            .Select(g => new CodecStats(g.Key, g.Count(), g.Sum(e => (long)e.RawLength), g.Sum(e => (long)e.StoredLength)))
            .OrderByDescending(c => c.BytesIn)
            .ToList();
        return new SnapshotStats(
            snapshot.Id.ToString(), files, codecs, bytesIn,
            blobs.Values.Sum(e => (long)e.StoredLength), blobs.Count,
            bases.Count, bases.Values.Sum(e => (long)e.StoredLength));
    }

    /// <summary>
    /// Counts <paramref name="mode"/> over <paramref name="snapshots"/>; each distinct tree is read
    /// once. <see cref="StatsMode.Files"/> is <see cref="RunAsync"/>, for one snapshot.
    /// </summary>
    public async Task<ModeStats> RunAsync(IReadOnlyList<SnapshotRef> snapshots, StatsMode mode, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshots);
        if (mode == StatsMode.Files)
        {
            throw new ArgumentException("per-file statistics are for one snapshot: RunAsync(snapshot)", nameof(mode));
        }
        var index = await _repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
        if (mode == StatsMode.RawData)
        {
            var (fileCount, needed) = await NeededAsync(snapshots, index, ct).ConfigureAwait(false);
            return new ModeStats(mode, snapshots.Count, fileCount, needed.Values.Sum(e => (long)e.StoredLength), needed.Count, needed.Values.Sum(e => (long)e.RawLength));
        }
        var trees = new TreeCache();
        long files = 0, size = 0;
        var blobs = new Dictionary<BlobId, IndexEntry>();
        var contents = new HashSet<string>(StringComparer.Ordinal);
        foreach (var snapshot in snapshots)
        {
            var root = TreeWalker.RootOf(snapshot);
            var linked = new HashSet<(ulong, ulong)>();
            await foreach (var walked in TreeWalker.WalkPreOrderAsync(_repo, index, root, trees: trees, ct: ct).ConfigureAwait(false))
            {
                var node = walked.Node;
                if (node.Type == NodeType.Directory)
                {
                    continue;
                }
                switch (mode)
                {
                    case StatsMode.RestoreSize:
                        // A restore writes a hard-linked file once and links its other names.
                        if (node.Type == NodeType.File && (node.Links <= 1 || linked.Add((node.Device, node.Inode))))
                        {
                            size += node.Size;
                        }
                        files++;
                        break;
                    case StatsMode.FilesByContents or StatsMode.BlobsPerFile when node.Type == NodeType.File:
                        if (contents.Add(string.Join(',', node.Content ?? [])))
                        {
                            files++;
                            size += node.Size;
                        }
                        if (mode == StatsMode.BlobsPerFile)
                        {
                            foreach (var c in node.Content ?? [])
                            {
                                var id = BlobId.Parse(c);
                                blobs.TryAdd(id, index.Get(id));
                            }
                        }
                        break;
                }
            }
        }
        long uncompressed = blobs.Values.Sum(e => (long)e.RawLength);
        return mode switch
        {
            StatsMode.BlobsPerFile => new ModeStats(mode, snapshots.Count, files, uncompressed, blobs.Count, uncompressed),
            _ => new ModeStats(mode, snapshots.Count, files, size, 0, size),
        };
    }

    /// <summary>
    /// The repository's packs on disk, what restoring <paramref name="snapshots"/> would write, and the
    /// blobs: with <paramref name="onlyThese"/> false (every snapshot), every blob of the index; with it
    /// true (the snapshots a filter chose), only the blobs those snapshots need (trees, content, delta
    /// bases), so the compression and deduplication figures are theirs.
    /// </summary>
    public async Task<RepositoryStats> RepositoryAsync(IReadOnlyList<SnapshotRef> snapshots, bool onlyThese = false, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshots);
        var restore = await RunAsync(snapshots, StatsMode.RestoreSize, ct).ConfigureAwait(false);
        var index = await _repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
        var packs = await _repo.Store.ListAsync(Storage.FileKind.Pack, ct).ConfigureAwait(false);
        var entries = onlyThese ? (await NeededAsync(snapshots, index, ct).ConfigureAwait(false)).Blobs.Values.ToList() : index.Entries.ToList();
        return new RepositoryStats(
            snapshots.Count, packs.Count, packs.Sum(p => p.Size), entries.Count,
            entries.Sum(e => (long)e.RawLength), entries.Sum(e => (long)e.StoredLength),
            restore.TotalFileCount, restore.TotalSize,
            entries.Where(e => e.Kind.IsContent()).Sum(e => (long)e.RawLength));
    }

    /// <summary>
    /// The files of <paramref name="snapshots"/> (each time a snapshot holds one) and the distinct
    /// blobs they need: their trees, their content, and the bases the delta chains of that content reach.
    /// </summary>
    private async Task<(long Files, Dictionary<BlobId, IndexEntry> Blobs)> NeededAsync(IReadOnlyList<SnapshotRef> snapshots, MasterIndex index, CancellationToken ct)
    {
        var trees = new TreeCache();
        var reader = new BlobReader(_repo, index);
        var blobs = new Dictionary<BlobId, IndexEntry>();
        long files = 0;
        foreach (var snapshot in snapshots)
        {
            var root = TreeWalker.RootOf(snapshot);
            blobs.TryAdd(root, index.Get(root));
            await foreach (var walked in TreeWalker.WalkPreOrderAsync(_repo, index, root, trees: trees, ct: ct).ConfigureAwait(false))
            {
                var node = walked.Node;
                if (node.Type == NodeType.Directory)
                {
                    if (node.Subtree is not null)
                    {
                        var tree = BlobId.Parse(node.Subtree);
                        blobs.TryAdd(tree, index.Get(tree));
                    }
                    continue;
                }
                if (node.Type != NodeType.File)
                {
                    continue;
                }
                files++;
                foreach (var c in node.Content ?? [])
                {
                    var id = BlobId.Parse(c);
                    if (blobs.TryAdd(id, index.Get(id)) && blobs[id].IsDelta)
                    {
                        foreach (var link in reader.ChainOf(blobs[id]).Skip(1))
                        {
                            blobs.TryAdd(link.Id, link);
                        }
                    }
                }
            }
        }
        return (files, blobs);
    }

    /// <summary>"data zstd", "tensor planes", "delta stored", …</summary>
    public static string Label(IndexEntry entry)
    {
        string kind = entry.Kind switch
        {
            BlobKind.Data => "data",
            BlobKind.Tree => "tree",
            BlobKind.TensorPiece => "tensor",
            BlobKind.Delta => "delta",
            _ => entry.Kind.ToString().ToLowerInvariant(),
        };
        string codec = entry.Codec switch
        {
            BlobCodec.Stored => "stored",
            BlobCodec.Zstd => "zstd",
            BlobCodec.Planes => "planes+zstd",
            _ => ((int)entry.Codec).ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        return kind + " " + codec;
    }
}
