namespace Kintsugi.Backup.Format;

/// <summary>
/// Where a blob is: its pack, its place in the pack, and how it is encoded. A <see cref="BlobKind.Delta"/>
/// blob also names its <see cref="Base"/>, the blob its plaintext is XORed against.
/// </summary>
public readonly record struct IndexEntry(BlobId Id, BlobKind Kind, BlobCodec Codec, BlobId Pack, uint Offset, uint StoredLength, uint RawLength, BlobId Base = default)
{
    public bool IsDelta => Kind == BlobKind.Delta;

    /// <summary>The entry as it is listed in its pack's header.</summary>
    public PackEntry InHeader => new(Id, Kind, Codec, Offset, StoredLength, RawLength, Base);
}

/// <summary>A blob's description inside a pack header (the pack's own id is implied).</summary>
public readonly record struct PackEntry(BlobId Id, BlobKind Kind, BlobCodec Codec, uint Offset, uint StoredLength, uint RawLength, BlobId Base = default)
{
    /// <summary>
    /// The associated data a blob is sealed with: kind, codec, raw length and id — and a delta's
    /// base id — so a blob cannot be moved under another header. Returns the length written.
    /// </summary>
    public static int WriteAssociatedData(Span<byte> ad, BlobId id, BlobKind kind, BlobCodec codec, uint rawLength, BlobId baseId = default)
    {
        ad[0] = (byte)kind;
        ad[1] = (byte)codec;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(ad[2..], rawLength);
        id.Write(ad[6..]);
        if (kind != BlobKind.Delta)
        {
            return 6 + BlobId.Size;
        }
        baseId.Write(ad[(6 + BlobId.Size)..]);
        return AssociatedDataSize;
    }

    /// <summary>The longest associated data (a delta's).</summary>
    public const int AssociatedDataSize = 6 + 2 * BlobId.Size;

    public IndexEntry InPack(BlobId pack) => new(Id, Kind, Codec, pack, Offset, StoredLength, RawLength, Base);
}

/// <summary>
/// Index entries held compactly, as an index file lists them: each pack id once, each entry naming
/// its pack (and a delta its base) by number. An entry takes 56 bytes in one array instead of an
/// <see cref="IndexEntry"/> of 112 bytes in a list and a dictionary node, so a repository of
/// hundreds of thousands of blobs loads without an allocation per entry.
/// </summary>
internal sealed class IndexEntryTable
{
    /// <summary>One entry: its pack and a delta's base are numbers in the table's lists (-1: not a delta).</summary>
    internal struct Slot
    {
        public BlobId Id;
        public int Pack;
        public int Base;
        public uint Offset;
        public uint StoredLength;
        public uint RawLength;
        public BlobKind Kind;
        public BlobCodec Codec;
    }

    private BlobId[] _packs;
    private int _packCount;
    private Slot[] _slots;
    private int _count;
    private BlobId[] _bases = [];
    private int _baseCount;

    public IndexEntryTable(int packCapacity = 4, int entryCapacity = 16)
    {
        _packs = new BlobId[Math.Max(1, packCapacity)];
        _slots = new Slot[Math.Max(1, entryCapacity)];
    }

    public int Count => _count;

    public int AddPack(BlobId pack)
    {
        if (_packCount == _packs.Length)
        {
            Array.Resize(ref _packs, _packs.Length * 2);
        }
        _packs[_packCount] = pack;
        return _packCount++;
    }

    public void Add(int pack, in PackEntry e)
    {
        if (_count == _slots.Length)
        {
            Array.Resize(ref _slots, _slots.Length * 2);
        }
        int baseIndex = -1;
        if (e.Kind == BlobKind.Delta)
        {
            if (_baseCount == _bases.Length)
            {
                Array.Resize(ref _bases, Math.Max(4, _bases.Length * 2));
            }
            baseIndex = _baseCount;
            _bases[_baseCount++] = e.Base;
        }
        _slots[_count++] = new Slot
        {
            Id = e.Id,
            Pack = pack,
            Base = baseIndex,
            Offset = e.Offset,
            StoredLength = e.StoredLength,
            RawLength = e.RawLength,
            Kind = e.Kind,
            Codec = e.Codec,
        };
    }

    internal ref readonly Slot SlotAt(int i) => ref _slots[i];

    public IndexEntry this[int i]
    {
        get
        {
            ref readonly var s = ref _slots[i];
            return new IndexEntry(s.Id, s.Kind, s.Codec, _packs[s.Pack], s.Offset, s.StoredLength, s.RawLength, s.Base < 0 ? default : _bases[s.Base]);
        }
    }
}
