using System.Buffers.Binary;

namespace Kintsugi.Backup.Format;

/// <summary>
/// A pack: sealed blobs one after another, then the sealed header that lists them, then
/// <c>header length (u32 LE) ‖ "KSGP"</c>. The pack's name is the SHA-256 of all its bytes.
/// Header entries are 48 bytes: kind, codec, 2 reserved zero bytes, offset, stored length,
/// raw length (u32 LE each), id (32); a delta blob's entry is followed by its base's id (32 more
/// bytes). See docs/FORMAT.md.
/// </summary>
public static class PackFormat
{
    public const int EntrySize = 4 + 12 + BlobId.Size;
    /// <summary>The size of a delta blob's entry: the entry, then the base's id.</summary>
    public const int DeltaEntrySize = EntrySize + BlobId.Size;
    public const int TrailerSize = 8;
    /// <summary>The largest blob a reader accepts: a tree of ~250k entries, or of a ~4 TiB file's content list, fits.</summary>
    public const int MaxBlobRawLength = 256 * 1024 * 1024;

    /// <summary>The largest stored length a reader accepts: raw length plus zstd's worst-case growth and the AEAD envelope.</summary>
    public const long MaxBlobStoredLength = MaxBlobRawLength + MaxBlobRawLength / 128 + 64 * 1024;

    /// <summary>Checks an entry read from a header or index: known kind and codec, zero reserved bytes, lengths in range.</summary>
    internal static string? Validate(ReadOnlySpan<byte> entry)
    {
        if (entry[0] > (byte)BlobKind.Parity)
        {
            return $"unknown blob kind {entry[0]}; a newer kintsugi may be needed";
        }
        if (entry[1] > (byte)BlobCodec.Planes)
        {
            return $"unknown codec {entry[1]}; a newer kintsugi may be needed";
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

    /// <summary>The bytes an entry takes in a header or index.</summary>
    internal static int SizeOf(BlobKind kind) => kind == BlobKind.Delta ? DeltaEntrySize : EntrySize;

    /// <summary>Writes an entry (with the base's id for a delta); returns the bytes written.</summary>
    internal static int WriteEntry(Span<byte> span, in PackEntry e)
    {
        span[0] = (byte)e.Kind;
        span[1] = (byte)e.Codec;
        span[2] = 0;
        span[3] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], e.Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], e.StoredLength);
        BinaryPrimitives.WriteUInt32LittleEndian(span[12..], e.RawLength);
        e.Id.Write(span[16..]);
        if (e.Kind == BlobKind.Delta)
        {
            e.Base.Write(span[EntrySize..]);
            return DeltaEntrySize;
        }
        return EntrySize;
    }

    /// <summary>Reads and validates one entry; returns the bytes it took, or a problem.</summary>
    internal static int ReadEntry(ReadOnlySpan<byte> span, out PackEntry entry, out string? problem)
    {
        entry = default;
        if (span.Length < EntrySize)
        {
            problem = "truncated entry";
            return 0;
        }
        problem = Validate(span);
        if (problem is not null)
        {
            return 0;
        }
        var kind = (BlobKind)span[0];
        int size = SizeOf(kind);
        if (span.Length < size)
        {
            problem = "truncated delta entry";
            return 0;
        }
        var id = BlobId.Read(span[16..]);
        var baseId = kind == BlobKind.Delta ? BlobId.Read(span[EntrySize..]) : default;
        if (kind == BlobKind.Delta && baseId == id)
        {
            problem = "a delta blob names itself as its base";
            return 0;
        }
        entry = new PackEntry(
            id,
            kind,
            (BlobCodec)span[1],
            BinaryPrimitives.ReadUInt32LittleEndian(span[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(span[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(span[12..]),
            baseId);
        return size;
    }

    public static ReadOnlySpan<byte> Magic => "KSGP"u8;

    /// <summary>
    /// Associated data of the pack header: the magic and a format version byte. Version 2 headers
    /// may hold delta entries (80 bytes); version 1 headers may not, so older readers never misread one.
    /// </summary>
    private static ReadOnlySpan<byte> HeaderAssociatedData(byte version) => version == 2 ? "KSGP\u0002"u8 : "KSGP\u0001"u8;

    internal static byte[] SealHeader(MasterKey key, IReadOnlyList<PackEntry> entries)
    {
        var plain = new byte[4 + entries.Sum(e => SizeOf(e.Kind))];
        BinaryPrimitives.WriteUInt32LittleEndian(plain, (uint)entries.Count);
        var span = plain.AsSpan(4);
        foreach (var e in entries)
        {
            span = span[WriteEntry(span, e)..];
        }
        var sealedHeader = Aead.Seal(key.EncryptionKey, plain, HeaderAssociatedData(entries.Any(e => e.Kind == BlobKind.Delta) ? (byte)2 : (byte)1));
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
        var sealedHeader = pack.Slice(headerStart, (int)headerLength);
        bool deltasAllowed = false;
        var plain = Aead.TryOpen(key.EncryptionKey, sealedHeader, HeaderAssociatedData(1));
        if (plain is null)
        {
            plain = Aead.TryOpen(key.EncryptionKey, sealedHeader, HeaderAssociatedData(2)) ?? throw KintsugiException.Corrupt(what, "header authentication failed");
            deltasAllowed = true;
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(plain);
        if ((ulong)count * EntrySize > (ulong)(plain.Length - 4))
        {
            throw KintsugiException.Corrupt(what, "header entry count does not match its length");
        }
        var entries = new List<PackEntry>((int)count);
        var span = plain.AsSpan(4);
        for (int i = 0; i < count; i++)
        {
            int size = ReadEntry(span, out var e, out var problem);
            if (problem is not null)
            {
                throw KintsugiException.Corrupt(what, $"entry {i}: {problem}");
            }
            if (e.Kind == BlobKind.Delta && !deltasAllowed)
            {
                throw KintsugiException.Corrupt(what, $"entry {i}: a delta in a version 1 header");
            }
            if ((ulong)e.Offset + e.StoredLength > (ulong)headerStart)
            {
                throw KintsugiException.Corrupt(what, $"entry {i} lies outside the pack");
            }
            entries.Add(e);
            span = span[size..];
        }
        if (!span.IsEmpty)
        {
            throw KintsugiException.Corrupt(what, "header entry count does not match its length");
        }
        return entries;
    }
}
