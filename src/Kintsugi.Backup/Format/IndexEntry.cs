namespace Kintsugi.Backup.Format;

/// <summary>Where a blob is: its pack, its place in the pack, and how it is encoded.</summary>
public readonly record struct IndexEntry(BlobId Id, BlobKind Kind, BlobCodec Codec, BlobId Pack, uint Offset, uint StoredLength, uint RawLength);

/// <summary>A blob's description inside a pack header (the pack's own id is implied).</summary>
public readonly record struct PackEntry(BlobId Id, BlobKind Kind, BlobCodec Codec, uint Offset, uint StoredLength, uint RawLength)
{
    /// <summary>The associated data a blob is sealed with: kind, codec, raw length and id, so a blob cannot be moved under another header.</summary>
    public static void WriteAssociatedData(Span<byte> ad, BlobId id, BlobKind kind, BlobCodec codec, uint rawLength)
    {
        ad[0] = (byte)kind;
        ad[1] = (byte)codec;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(ad[2..], rawLength);
        id.Write(ad[6..]);
    }

    public const int AssociatedDataSize = 6 + BlobId.Size;

    public IndexEntry InPack(BlobId pack) => new(Id, Kind, Codec, pack, Offset, StoredLength, RawLength);
}
