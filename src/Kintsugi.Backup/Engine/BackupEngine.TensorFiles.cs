using System.Buffers;
using Kintsugi.Backup.Chunking.Tensors;
using Kintsugi.Backup.Format;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Backup.Engine;

/// <summary>The tensor-aware part of a backup run: pieces of tensors, their bases, and the layouts ONNX models give their data files.</summary>
public sealed partial class BackupEngine
{
    private sealed partial class Run
    {
        /// <summary>A new checkpoint file (step-300.pt beside step-200.pt) finds its delta bases in the newest tensor file the parent had in its folder.</summary>
        private static Node? NewestTensorFile(Dictionary<string, Node>? parentTree) =>
            parentTree?.Values.Where(n => n.Type == NodeType.File && n.Tensors is not null).MaxBy(n => n.MtimeNs);

        /// <summary>
        /// The layout an ONNX model beside <paramref name="path"/> gives it as its external data file,
        /// if every tensor the model places there lies inside it. Models are read once per folder.
        /// </summary>
        private TensorLayout? ExternalLayoutOf(string path, long fileLength)
        {
            string dir = Path.GetDirectoryName(path) ?? "/";
            var layouts = _externalLayouts.GetOrAdd(dir, d => new Lazy<IReadOnlyDictionary<string, TensorLayout>>(() => ReadOnnxModels(d))).Value;
            return layouts.TryGetValue(Path.GetFileName(path), out var layout) && layout.Tensors.All(t => t.Offset + t.Length <= fileLength) ? layout : null;
        }

        private const int MaxOnnxModelsPerFolder = 16;

        private static IReadOnlyDictionary<string, TensorLayout> ReadOnnxModels(string dir)
        {
            var result = new Dictionary<string, TensorLayout>(StringComparer.Ordinal);
            try
            {
                foreach (var model in Directory.EnumerateFiles(dir, "*.onnx").Order(StringComparer.Ordinal).Take(MaxOnnxModelsPerFolder))
                {
                    try
                    {
                        using var handle = File.OpenHandle(model, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                        foreach (var (location, layout) in OnnxReader.ReadExternalLayouts(handle, RandomAccess.GetLength(handle)))
                        {
                            result.TryAdd(location, layout);
                        }
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        // An unreadable model only costs its external data the tensor-aware split; the model itself is reported when it is backed up.
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Likewise for a folder that cannot be listed.
            }
            return result;
        }

        private async Task StorePieceAsync(SafeFileHandle handle, SplitRange range, TensorSegment tensor, TensorRef? baseTensor, Node? baseNode, List<string> content, CancellationToken ct)
        {
            int length = (int)range.Length;
            var buffer = BufferPool.Shared.Rent(length);
            bool queued = false;
            try
            {
                int filled = 0;
                while (filled < length)
                {
                    int n = RandomAccess.Read(handle, buffer.AsSpan(filled, length - filled), range.Offset + filled);
                    if (n == 0)
                    {
                        // Shrunk while being read: what was read is stored, and the caller's stat sees the change and reads again.
                        break;
                    }
                    filled += n;
                    Interlocked.Add(ref _progress.BytesReadField, n);
                    Interlocked.Add(ref _progress.BytesDoneField, n);
                }
                var id = _key.IdOf(buffer.AsSpan(0, filled));
                content.Add(id.ToString());
                if (ClaimIfNew(id))
                {
                    var job = new ChunkJob(id, BlobKind.TensorPiece, buffer, filled)
                    {
                        PlaneWidth = TensorSplitter.PlaneWidth(tensor),
                        Base = FindBase(baseTensor, baseNode, range.Piece, filled),
                    };
                    await _chunks.Writer.WriteAsync(job, ct).ConfigureAwait(false);
                    queued = true;
                }
            }
            finally
            {
                if (!queued)
                {
                    BufferPool.Shared.Return(buffer);
                }
            }
        }

        /// <summary>The parent's same piece, if it is stored, as long, and not at the end of a full-length chain.</summary>
        private IndexEntry? FindBase(TensorRef? baseTensor, Node? baseNode, int piece, int length)
        {
            if (baseTensor is null || baseNode?.Content is not { } baseContent || _request.DeltaChain <= 1)
            {
                return null;
            }
            int at = baseTensor.First + piece;
            if (piece >= baseTensor.Pieces || at < 0 || at >= baseContent.Count
                || !BlobId.TryParse(baseContent[at], out var baseId) || !_index.TryGet(baseId, out var entry) || entry.RawLength != length)
            {
                return null;
            }
            try
            {
                return _reader.ChainOf(entry).Count < _request.DeltaChain ? entry : null;
            }
            catch (KintsugiException)
            {
                // A broken chain is no base; the piece is stored whole.
                return null;
            }
        }

        /// <summary>
        /// The base's plaintext, in an array rented from the shared pool (the caller returns it); a
        /// base that cannot be read only costs the delta (the piece is stored whole).
        /// </summary>
        private async Task<byte[]?> ReadBaseAsync(IndexEntry entry, CancellationToken ct)
        {
            var plain = BufferPool.Shared.Rent((int)entry.RawLength);
            try
            {
                await _reader.ReadAsync(entry, plain.AsMemory(0, (int)entry.RawLength), ct).ConfigureAwait(false);
                return plain;
            }
            catch (Exception e) when (e is KintsugiException or IOException)
            {
                BufferPool.Shared.Return(plain);
                _issues.Enqueue(new BackupIssue($"blob {entry.Id.Short}", $"warning: base of a delta cannot be read ({e.Message}); stored the piece whole. Run `kintsugi check --read-data`"));
                return null;
            }
        }
    }
}
