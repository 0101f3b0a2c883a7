using Kintsugi.Backup.Chunking.Tensors;
using Kintsugi.Backup.Codecs;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>
/// A copy between repositories whose id keys differ: a blob's id in the destination is the
/// destination's keyed hash of its plaintext, so every blob is re-identified. Each snapshot's tree
/// is walked bottom-up: a file's content blobs are read as plaintext from the source (delta chains
/// rebuilt), named by the destination's key and stored where the destination lacks them; each tree
/// is rewritten with the new content and subtree ids and stored under its own new id. A tensor
/// delta becomes a whole tensor piece, since its base has another id and possibly another encoding
/// in the destination; the next backup into the destination deltas against it again. Dedup still
/// holds within the destination, ids being by content. A source id is translated once per run (a
/// map of one entry per blob); a resumed copy re-reads content to learn its new ids, but finds the
/// blobs an interrupted run indexed and does not store them again.
/// </summary>
public sealed partial class CopyEngine
{
    /// <summary>State of one re-identifying copy.</summary>
    private sealed class Translation(MasterIndex sourceIndex, MasterIndex destinationIndex, BlobReader reader, PackWriter writer, IProgress<CopyProgress>? progress, long blobsToCopy, long bytesToCopy)
    {
        public MasterIndex SourceIndex { get; } = sourceIndex;

        public MasterIndex DestinationIndex { get; } = destinationIndex;

        public BlobReader Reader { get; } = reader;

        public PackWriter Writer { get; } = writer;

        /// <summary>Source id → destination id, for trees and content alike.</summary>
        public Dictionary<BlobId, BlobId> Ids { get; } = [];

        /// <summary>Destination ids stored by this run, indexed or not yet.</summary>
        public HashSet<BlobId> Stored { get; } = [];

        public long BlobsStored { get; private set; }

        public long BytesStored { get; private set; }

        private long _processed;
        private long _processedBytes;

        /// <summary>Whether the destination lacks <paramref name="id"/> (and claims it for this run).</summary>
        public bool Lacks(BlobId id) => !DestinationIndex.Contains(id) && Stored.Add(id);

        public void CountStored(int sealedLength)
        {
            BlobsStored++;
            BytesStored += sealedLength;
        }

        public void CountProcessed(long rawLength)
        {
            _processed++;
            _processedBytes += rawLength;
            progress?.Report(new CopyProgress(_processed, blobsToCopy, _processedBytes, bytesToCopy));
        }
    }

    private async Task<(Dictionary<BlobId, BlobId> Trees, long Blobs, long Bytes, long Packs)> TranslateAsync(
        List<SnapshotRef> toCopy, MasterIndex sourceIndex, MasterIndex destinationIndex, IProgress<CopyProgress>? progress, CancellationToken ct)
    {
        var (blobsToCopy, bytesToCopy) = await CountReachedAsync(toCopy, sourceIndex, ct).ConfigureAwait(false);
        var trees = new Dictionary<BlobId, BlobId>();
        Translation? state = null;
        long packs = await WritePacksAsync(async writer =>
        {
            state = new Translation(sourceIndex, destinationIndex, new BlobReader(_source, sourceIndex), writer, progress, blobsToCopy, bytesToCopy);
            foreach (var snap in toCopy)
            {
                trees[snap.Id] = await TranslateTreeAsync(snap, BlobId.Parse(snap.Snapshot.Tree), state, ct).ConfigureAwait(false);
            }
        }, ct).ConfigureAwait(false);
        return (trees, state!.BlobsStored, state.BytesStored, packs);
    }

    /// <summary>The blobs (trees and content, each once) the snapshots reach, and their raw bytes: what a re-identifying copy processes.</summary>
    private async Task<(long Blobs, long Bytes)> CountReachedAsync(List<SnapshotRef> toCopy, MasterIndex sourceIndex, CancellationToken ct)
    {
        var seen = new HashSet<BlobId>();
        long bytes = 0;
        foreach (var snap in toCopy)
        {
            var trees = new Stack<BlobId>();
            trees.Push(BlobId.Parse(snap.Snapshot.Tree));
            while (trees.Count > 0)
            {
                var treeId = trees.Pop();
                if (!seen.Add(treeId))
                {
                    continue;
                }
                var treeEntry = SourceEntry(sourceIndex, snap, treeId, "tree");
                bytes += treeEntry.RawLength;
                var tree = await _source.LoadTreeAsync(sourceIndex, treeId, ct).ConfigureAwait(false);
                foreach (var node in tree.Nodes)
                {
                    if (node.Subtree is not null)
                    {
                        trees.Push(BlobId.Parse(node.Subtree));
                    }
                    foreach (var content in node.Content ?? [])
                    {
                        var id = BlobId.Parse(content);
                        if (seen.Add(id))
                        {
                            bytes += SourceEntry(sourceIndex, snap, id, "blob").RawLength;
                        }
                    }
                }
            }
        }
        return (seen.Count, bytes);
    }

    private IndexEntry SourceEntry(MasterIndex sourceIndex, SnapshotRef snap, BlobId id, string what) =>
        sourceIndex.TryGet(id, out var entry) ? entry
            : throw new KintsugiException(ErrorKind.Corrupt, $"copy stopped before writing a snapshot: {what} {id.Short} of snapshot {snap.ShortId} is not in the source's index; run `kintsugi check` on {_source.Store.Location}");

    /// <summary>Translates a tree after everything under it, so a tree is stored only after the blobs it names.</summary>
    private async Task<BlobId> TranslateTreeAsync(SnapshotRef snap, BlobId sourceId, Translation state, CancellationToken ct)
    {
        if (state.Ids.TryGetValue(sourceId, out var known))
        {
            return known;
        }
        var entry = SourceEntry(state.SourceIndex, snap, sourceId, "tree");
        var tree = await _source.LoadTreeAsync(state.SourceIndex, sourceId, ct).ConfigureAwait(false);
        var nodes = new List<Node>(tree.Nodes.Count);
        foreach (var node in tree.Nodes)
        {
            string? subtree = node.Subtree is null ? null : (await TranslateTreeAsync(snap, BlobId.Parse(node.Subtree), state, ct).ConfigureAwait(false)).ToString();
            List<string>? content = null;
            if (node.Content is { } sourceContent)
            {
                var widths = PlaneWidths(node, state.SourceIndex);
                content = new List<string>(sourceContent.Count);
                for (int i = 0; i < sourceContent.Count; i++)
                {
                    var id = await TranslateContentAsync(snap, BlobId.Parse(sourceContent[i]), widths?[i], state, ct).ConfigureAwait(false);
                    content.Add(id.ToString());
                }
            }
            nodes.Add(node with { Subtree = subtree, Content = content });
        }
        var bytes = Repository.SerializeTree(new Tree { Nodes = nodes });
        var newId = _destination.Key.IdOf(bytes);
        if (state.Lacks(newId))
        {
            var (codec, sealedBytes, length) = BlobSealer.SealPooled(_destination.Key, newId, BlobKind.Tree, bytes);
            await AddAsync(state, newId, BlobKind.Tree, codec, bytes.Length, sealedBytes, length, ct).ConfigureAwait(false);
        }
        state.Ids[sourceId] = newId;
        state.CountProcessed(entry.RawLength);
        return newId;
    }

    /// <summary>
    /// Reads a content blob's plaintext from the source and stores it in the destination under its
    /// new id where lacking: data as backup seals it (zstd or stored), a tensor piece or delta as a
    /// whole tensor piece (byte planes where <paramref name="planeWidth"/> is known).
    /// </summary>
    private async Task<BlobId> TranslateContentAsync(SnapshotRef snap, BlobId sourceId, int? planeWidth, Translation state, CancellationToken ct)
    {
        if (state.Ids.TryGetValue(sourceId, out var known))
        {
            return known;
        }
        var entry = SourceEntry(state.SourceIndex, snap, sourceId, "blob");
        if (!entry.Kind.IsContent() || entry.RawLength > PackFormat.MaxBlobRawLength)
        {
            throw KintsugiException.Corrupt($"blob {sourceId.Short} of snapshot {snap.ShortId} in {_source.Store.Location}", "file content that is not a content blob, or of a length out of range");
        }
        int length = (int)entry.RawLength;
        var plain = BufferPool.Shared.Rent(length);
        try
        {
            await state.Reader.ReadAsync(entry, plain.AsMemory(0, length), ct).ConfigureAwait(false);
            var newId = _destination.Key.IdOf(plain.AsSpan(0, length));
            if (state.Lacks(newId))
            {
                if (entry.Kind == BlobKind.Data)
                {
                    var (codec, sealedBytes, sealedLength) = BlobSealer.SealPooled(_destination.Key, newId, BlobKind.Data, plain.AsSpan(0, length));
                    await AddAsync(state, newId, BlobKind.Data, codec, length, sealedBytes, sealedLength, ct).ConfigureAwait(false);
                }
                else
                {
                    // A delta's base has another id (and may be stored otherwise) in the destination: store it whole.
                    var piece = PieceEncoder.Encode(plain.AsSpan(0, length), planeWidth ?? 0, default);
                    byte[] sealedBytes;
                    int sealedLength;
                    try
                    {
                        (sealedBytes, sealedLength) = BlobSealer.SealEncodedPooled(_destination.Key, newId, piece.Kind, piece.Codec, (uint)length, piece.Bytes.AsSpan(0, piece.Length));
                    }
                    finally
                    {
                        BufferPool.Shared.Return(piece.Bytes);
                    }
                    await AddAsync(state, newId, piece.Kind, piece.Codec, length, sealedBytes, sealedLength, ct).ConfigureAwait(false);
                }
            }
            state.Ids[sourceId] = newId;
            state.CountProcessed(length);
            return newId;
        }
        finally
        {
            BufferPool.Shared.Return(plain);
        }
    }

    /// <summary>Hands a sealed blob (a rented buffer, returned here) to the pack writer.</summary>
    private static async Task AddAsync(Translation state, BlobId id, BlobKind kind, BlobCodec codec, int rawLength, byte[] sealedBytes, int sealedLength, CancellationToken ct)
    {
        try
        {
            await state.Writer.AddAsync(id, kind, codec, rawLength, sealedBytes.AsMemory(0, sealedLength), default, ct).ConfigureAwait(false);
        }
        finally
        {
            BufferPool.Shared.Return(sealedBytes);
        }
        state.CountStored(sealedLength);
    }

    /// <summary>
    /// The byte-plane width for each content entry of a file split at tensor boundaries, as backup
    /// chose it (<see cref="TensorSplitter.PlaneWidth"/>), the element size being the tensor's bytes
    /// over its elements; null for a file that is not split so. Only compression depends on it.
    /// </summary>
    private static int[]? PlaneWidths(Node node, MasterIndex sourceIndex)
    {
        if (node.Tensors is not { Count: > 0 } tensors || node.Content is not { } content)
        {
            return null;
        }
        var widths = new int[content.Count];
        foreach (var tensor in tensors)
        {
            if (tensor.First < 0 || tensor.Pieces <= 0 || tensor.First > content.Count - tensor.Pieces)
            {
                continue;
            }
            long bytes = 0;
            for (int i = tensor.First; i < tensor.First + tensor.Pieces; i++)
            {
                bytes += sourceIndex.TryGet(BlobId.Parse(content[i]), out var entry) ? entry.RawLength : 0;
            }
            long elements = 1;
            foreach (long d in tensor.Shape)
            {
                elements = d > 0 && elements <= long.MaxValue / d ? elements * d : 0;
            }
            int elementSize = elements > 0 && bytes % elements == 0 && bytes / elements <= 16 ? (int)(bytes / elements) : 0;
            int width = TensorSplitter.PlaneWidth(new TensorSegment(tensor.Name, tensor.DType, tensor.Shape, 0, bytes, elementSize));
            Array.Fill(widths, width, tensor.First, tensor.Pieces);
        }
        return widths;
    }
}
