using System.Buffers.Binary;

namespace Kintsugi.Backup.Format;

/// <summary>
/// A pack: sealed blobs one after another, then the sealed header that lists them, then
/// <c>header length (u32 LE) ‖ "KSGP"</c>. The pack's name is the SHA-256 of all its bytes.
/// Header entries are 48 bytes: kind, codec, 2 reserved zero bytes, offset, stored length,
/// raw length (u32 LE each), id (32). See docs/FORMAT.md.
/// </summary>
public static class PackFormat
{
    public const int EntrySize = 4 + 12 + BlobId.Size;
    public const int TrailerSize = 8;
    /// <summary>The largest blob a reader accepts: a tree of ~250k entries, or of a ~4 TiB file's content list, fits.</summary>
    public const int MaxBlobRawLength = 256 * 1024 * 1024;

    /// <summary>The largest stored length a reader accepts: raw length plus zstd's worst-case growth and the AEAD envelope.</summary>
    public const long MaxBlobStoredLength = MaxBlobRawLength + MaxBlobRawLength / 128 + 64 * 1024;

    /// <summary>Checks an entry read from a header or index: known kind, zero reserved bytes, lengths in range.</summary>
    internal static string? Validate(ReadOnlySpan<byte> entry)
    {
        if (entry[0] > (byte)BlobKind.Parity)
        {
            return $"unknown blob kind {entry[0]}; a newer kintsugi may be needed";
        }
        if (entry[2] != 0 || entry[3] != 0)
        {
            return "reserved bytes are not zero";
        }
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]);
        uint raw = BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]);
        if (raw > MaxBlobRawLength || stored > MaxBlobStoredLength || stored < Aead.Overhead)
        {
            return $"blob lengths out of range (raw {raw}, stored {stored})";
        }
        return null;
    }
    public static ReadOnlySpan<byte> Magic => "KSGP"u8;

    /// <summary>Associated data of the pack header: the magic and a format version byte.</summary>
    private static ReadOnlySpan<byte> HeaderAssociatedData => "KSGP\u0001"u8;

    internal static byte[] SealHeader(MasterKey key, IReadOnlyList<PackEntry> entries)
    {
        var plain = new byte[4 + entries.Count * EntrySize];
        BinaryPrimitives.WriteUInt32LittleEndian(plain, (uint)entries.Count);
        var span = plain.AsSpan(4);
        foreach (var e in entries)
        {
            span[0] = (byte)e.Kind;
            span[1] = (byte)e.Codec;
            span[2] = 0;
            span[3] = 0;
            BinaryPrimitives.WriteUInt32LittleEndian(span[4..], e.Offset);
            BinaryPrimitives.WriteUInt32LittleEndian(span[8..], e.StoredLength);
            BinaryPrimitives.WriteUInt32LittleEndian(span[12..], e.RawLength);
            e.Id.Write(span[16..]);
            span = span[EntrySize..];
        }
        var sealedHeader = Aead.Seal(key.EncryptionKey, plain, HeaderAssociatedData);
        var result = new byte[sealedHeader.Length + TrailerSize];
        sealedHeader.CopyTo(result, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(sealedHeader.Length), (uint)sealedHeader.Length);
        Magic.CopyTo(result.AsSpan(sealedHeader.Length + 4));
        return result;
    }

    /// <summary>Reads the header of a whole pack held in memory, checking every entry lies inside the pack.</summary>
    public static IReadOnlyList<PackEntry> ReadHeader(MasterKey key, ReadOnlySpan<byte> pack, string what)
    {
        if (pack.Length < TrailerSize + Aead.Overhead || !pack[^4..].SequenceEqual(Magic))
        {
            throw KintsugiException.Corrupt(what, "no pack trailer; the pack is truncated or not a pack");
        }
        uint headerLength = BinaryPrimitives.ReadUInt32LittleEndian(pack[^8..]);
        if (headerLength < Aead.Overhead + 4 || headerLength > pack.Length - TrailerSize)
        {
            throw KintsugiException.Corrupt(what, $"header length {headerLength} does not fit the pack");
        }
        int headerStart = pack.Length - TrailerSize - (int)headerLength;
        var plain = Aead.TryOpen(key.EncryptionKey, pack.Slice(headerStart, (int)headerLength), HeaderAssociatedData)
            ?? throw KintsugiException.Corrupt(what, "header authentication failed");
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(plain);
        if ((ulong)count * EntrySize != (ulong)(plain.Length - 4))
        {
            throw KintsugiException.Corrupt(what, "header entry count does not match its length");
        }
        var entries = new List<PackEntry>((int)count);
        var span = plain.AsSpan(4);
        for (int i = 0; i < count; i++)
        {
            if (Validate(span) is { } problem)
            {
                throw KintsugiException.Corrupt(what, $"entry {i}: {problem}");
            }
            var e = new PackEntry(
                BlobId.Read(span[16..]),
                (BlobKind)span[0],
                (BlobCodec)span[1],
                BinaryPrimitives.ReadUInt32LittleEndian(span[4..]),
                BinaryPrimitives.ReadUInt32LittleEndian(span[8..]),
                BinaryPrimitives.ReadUInt32LittleEndian(span[12..]));
            if ((ulong)e.Offset + e.StoredLength > (ulong)headerStart)
            {
                throw KintsugiException.Corrupt(what, $"entry {i} lies outside the pack");
            }
            entries.Add(e);
            span = span[EntrySize..];
        }
        return entries;
    }
}
