using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Format;

/// <summary>
/// Collects sealed blobs into packs of about the repository's pack size and stores each full pack.
/// Safe for concurrent adders; a full pack is stored by the adder that filled it, outside the lock,
/// so several packs can be written at once. Memory: one open pack plus the packs being stored.
/// </summary>
internal sealed class PackWriter
{
    private readonly IBlobStore _store;
    private readonly MasterKey _key;
    private readonly int _packSize;
    private readonly Func<IReadOnlyList<IndexEntry>, CancellationToken, Task> _onPackStored;
    private readonly Lock _lock = new();
    private OpenPack _current;
    private long _packsWritten;
    private long _bytesWritten;

    public PackWriter(IBlobStore store, MasterKey key, int packSize, Func<IReadOnlyList<IndexEntry>, CancellationToken, Task> onPackStored)
    {
        _store = store;
        _key = key;
        _packSize = packSize;
        _onPackStored = onPackStored;
        _current = new OpenPack(packSize);
    }

    public long PacksWritten => Interlocked.Read(ref _packsWritten);

    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    /// <summary>A pack being filled; its buffer is rented from the shared pool and given back once the pack is stored.</summary>
    private sealed class OpenPack(int capacity)
    {
        public byte[] Buffer = capacity == 0 ? [] : System.Buffers.ArrayPool<byte>.Shared.Rent(capacity + capacity / 4);
        public int Length;
        public readonly List<PackEntry> Entries = [];

        /// <summary>Makes room for <paramref name="needed"/> bytes in all, keeping what is there.</summary>
        public void Grow(int needed)
        {
            var bigger = System.Buffers.ArrayPool<byte>.Shared.Rent(needed);
            Buffer.AsSpan(0, Length).CopyTo(bigger);
            Release();
            Buffer = bigger;
        }

        public void Release()
        {
            if (Buffer.Length > 0)
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(Buffer);
            }
            Buffer = [];
        }
    }

    /// <summary>Appends one sealed blob; stores the pack when it is full.</summary>
    public async Task AddAsync(BlobId id, BlobKind kind, BlobCodec codec, int rawLength, ReadOnlyMemory<byte> sealedBytes, BlobId baseId, CancellationToken ct)
    {
        OpenPack? full = null;
        lock (_lock)
        {
            var pack = _current;
            if (pack.Length + sealedBytes.Length > pack.Buffer.Length)
            {
                pack.Grow(pack.Length + sealedBytes.Length + pack.Buffer.Length / 4);
            }
            sealedBytes.Span.CopyTo(pack.Buffer.AsSpan(pack.Length));
            pack.Entries.Add(new PackEntry(id, kind, codec, (uint)pack.Length, (uint)sealedBytes.Length, (uint)rawLength, baseId));
            pack.Length += sealedBytes.Length;
            if (pack.Length >= _packSize)
            {
                full = pack;
                _current = new OpenPack(_packSize);
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
        OpenPack pack;
        lock (_lock)
        {
            pack = _current;
            _current = new OpenPack(0);
        }
        if (pack.Entries.Count > 0)
        {
            await StoreAsync(pack, ct).ConfigureAwait(false);
        }
        else
        {
            pack.Release();
        }
    }

    private async Task StoreAsync(OpenPack pack, CancellationToken ct)
    {
        var header = PackFormat.SealHeader(_key, pack.Entries);
        if (pack.Length + header.Length > pack.Buffer.Length)
        {
            pack.Grow(pack.Length + header.Length);
        }
        header.CopyTo(pack.Buffer, pack.Length);
        int total = pack.Length + header.Length;
        var name = BlobId.HashOf(pack.Buffer.AsSpan(0, total));
        try
        {
            await _store.PutAsync(FileKind.Pack, name.ToString(), pack.Buffer.AsMemory(0, total), cancellationToken: ct).ConfigureAwait(false);
        }
        finally
        {
            pack.Release();
        }
        Interlocked.Increment(ref _packsWritten);
        Interlocked.Add(ref _bytesWritten, total);
        await _onPackStored(pack.Entries.Select(e => e.InPack(name)).ToList(), ct).ConfigureAwait(false);
    }

}
