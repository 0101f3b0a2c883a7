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
