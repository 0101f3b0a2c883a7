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
