using System.Security.Cryptography;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Format;

/// <summary>
/// Collects sealed blobs into packs of about the repository's pack size. Blobs are appended to a
/// pending file of the store as they come, with the pack's hash computed along the way, so a pack
/// never sits in memory; a full pack gets its header and trailer and is committed under its hash by
/// the adder that filled it, outside the lock, so several packs can be committed at once.
/// Safe for concurrent adders. Dispose to discard a pack that was never finished.
/// </summary>
internal sealed class PackWriter : IAsyncDisposable
{
    private readonly IBlobStore _store;
    private readonly MasterKey _key;
    private readonly int _packSize;
    private readonly Func<IReadOnlyList<IndexEntry>, CancellationToken, Task> _onPackStored;
    private readonly Lock _lock = new();
    private OpenPack? _current;
    private long _packsWritten;
    private long _bytesWritten;

    public PackWriter(IBlobStore store, MasterKey key, int packSize, Func<IReadOnlyList<IndexEntry>, CancellationToken, Task> onPackStored)
    {
        _store = store;
        _key = key;
        _packSize = packSize;
        _onPackStored = onPackStored;
    }

    public long PacksWritten => Interlocked.Read(ref _packsWritten);

    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    /// <summary>
    /// Blobs smaller than this are gathered before they are written: a pack of small files' blobs
    /// (a few KiB each) took a write call per blob.
    /// </summary>
    internal const int WriteBufferSize = 256 * 1024;

    private sealed class OpenPack(IPendingFile file)
    {
        private byte[]? _buffer;
        private int _buffered;

        public IPendingFile File { get; } = file;
        public IncrementalHash Hash { get; } = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        public List<PackEntry> Entries { get; } = [];

        /// <summary>The pack's length so far, what is gathered but not yet written included.</summary>
        public long Length => File.Length + _buffered;

        public void Append(ReadOnlySpan<byte> bytes)
        {
            if (bytes.Length >= WriteBufferSize)
            {
                Flush();
                Write(bytes);
                return;
            }
            _buffer ??= BufferPool.Shared.Rent(WriteBufferSize);
            if (_buffered + bytes.Length > _buffer.Length)
            {
                Flush();
            }
            bytes.CopyTo(_buffer.AsSpan(_buffered));
            _buffered += bytes.Length;
        }

        /// <summary>Writes what is gathered.</summary>
        public void Flush()
        {
            if (_buffered > 0)
            {
                Write(_buffer.AsSpan(0, _buffered));
                _buffered = 0;
            }
        }

        private void Write(ReadOnlySpan<byte> bytes)
        {
            File.Write(bytes);
            Hash.AppendData(bytes);
        }

        public async ValueTask DiscardAsync()
        {
            Hash.Dispose();
            if (_buffer is not null)
            {
                BufferPool.Shared.Return(_buffer);
                _buffer = null;
            }
            await File.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Appends one sealed blob; stores the pack when it is full.</summary>
    public async Task AddAsync(BlobId id, BlobKind kind, BlobCodec codec, int rawLength, ReadOnlyMemory<byte> sealedBytes, BlobId baseId, CancellationToken ct)
    {
        OpenPack? full = null;
        lock (_lock)
        {
            var pack = _current ??= new OpenPack(_store.CreatePending(FileKind.Pack));
            long offset = pack.Length;
            if (offset + sealedBytes.Length > uint.MaxValue)
            {
                throw new InvalidOperationException("a pack grew past 4 GiB; the pack size is far smaller than that");
            }
            pack.Append(sealedBytes.Span);
            pack.Entries.Add(new PackEntry(id, kind, codec, (uint)offset, (uint)sealedBytes.Length, (uint)rawLength, baseId));
            if (pack.Length >= _packSize)
            {
                full = pack;
                _current = null;
            }
        }
        if (full is not null)
        {
            await StoreAsync(full, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Stores the last, partly filled pack.</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        OpenPack? pack;
        lock (_lock)
        {
            pack = _current;
            _current = null;
        }
        if (pack is not null)
        {
            await StoreAsync(pack, ct).ConfigureAwait(false);
        }
    }

    private async Task StoreAsync(OpenPack pack, CancellationToken ct)
    {
        BlobId name;
        long total;
        try
        {
            pack.Append(PackFormat.SealHeader(_key, pack.Entries));
            pack.Flush();
            total = pack.File.Length;
            name = BlobId.Read(pack.Hash.GetHashAndReset());
            await pack.File.CommitAsync(name.ToString(), overwrite: false, ct).ConfigureAwait(false);
        }
        finally
        {
            await pack.DiscardAsync().ConfigureAwait(false);
        }
        Interlocked.Increment(ref _packsWritten);
        Interlocked.Add(ref _bytesWritten, total);
        await _onPackStored(pack.Entries.Select(e => e.InPack(name)).ToList(), ct).ConfigureAwait(false);
    }

    /// <summary>Discards the pack being filled, if any (after a failure: nothing of it is referenced).</summary>
    public async ValueTask DisposeAsync()
    {
        OpenPack? pack;
        lock (_lock)
        {
            pack = _current;
            _current = null;
        }
        if (pack is not null)
        {
            await pack.DiscardAsync().ConfigureAwait(false);
        }
    }
}
