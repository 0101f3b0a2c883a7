using System.Buffers.Binary;

namespace Kintsugi.Backup.Format;

/// <summary>
/// An index file: the entries of some packs. Payload (inside a sealed file of type Index):
/// <c>version u32 = 1 ‖ pack count u32 ‖ per pack: pack id(32) ‖ entry count u32 ‖ entries (as in pack headers: 48 bytes, 80 for a delta)</c>.
/// </summary>
internal static class IndexFile
{
    /// <summary>Version 2 payloads may hold delta entries (80 bytes); version 1 payloads, which older readers know, may not.</summary>
    public const uint Version = 2;

    /// <summary>Writers split index files well below the 1 GiB readers accept.</summary>
    public const int MaxEntriesPerFile = 500_000;

    private const long MaxPayload = 1L << 30;

    public static byte[] Serialize(IReadOnlyCollection<IGrouping<BlobId, IndexEntry>> packs)
    {
        long size = 8 + packs.Sum(p => BlobId.Size + 4 + p.Sum(e => (long)PackFormat.SizeOf(e.Kind)));
        if (size > MaxPayload)
        {
            throw new ArgumentException("too many entries for one index file; split them", nameof(packs));
        }
        var data = new byte[size];
        var span = data.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, packs.Any(p => p.Any(e => e.IsDelta)) ? Version : 1);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)packs.Count);
        span = span[8..];
        foreach (var pack in packs)
        {
            pack.Key.Write(span);
            var entries = pack.ToList();
            BinaryPrimitives.WriteUInt32LittleEndian(span[BlobId.Size..], (uint)entries.Count);
            span = span[(BlobId.Size + 4)..];
            foreach (var e in entries)
            {
                span = span[PackFormat.WriteEntry(span, e.InHeader)..];
            }
        }
        return data;
    }

    public static List<IndexEntry> Parse(ReadOnlySpan<byte> data, string what)
    {
        var table = ParseTable(data, what);
        var result = new List<IndexEntry>(table.Count);
        for (int i = 0; i < table.Count; i++)
        {
            result.Add(table[i]);
        }
        return result;
    }

    /// <summary>Parses and validates an index file's payload into a compact table, without an allocation per entry.</summary>
    public static IndexEntryTable ParseTable(ReadOnlySpan<byte> data, string what)
    {
        uint version = data.Length < 8 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (version is not (1 or Version))
        {
            throw KintsugiException.Corrupt(what, $"unknown index version {version}; a newer kintsugi may be needed");
        }
        uint packCount = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        var span = data[8..];
        // Capacities from what the payload can hold, so a hostile count cannot make a huge allocation.
        int maxPacks = span.Length / (BlobId.Size + 4);
        var table = new IndexEntryTable((int)Math.Min(packCount, (uint)maxPacks), span.Length / PackFormat.EntrySize);
        for (uint p = 0; p < packCount; p++)
        {
            if (span.Length < BlobId.Size + 4)
            {
                throw KintsugiException.Corrupt(what, "truncated pack record");
            }
            var pack = BlobId.Read(span);
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(span[BlobId.Size..]);
            span = span[(BlobId.Size + 4)..];
            if ((ulong)count * PackFormat.EntrySize > (ulong)span.Length)
            {
                throw KintsugiException.Corrupt(what, "entry count larger than the file");
            }
            int packIndex = table.AddPack(pack);
            for (uint i = 0; i < count; i++)
            {
                int size = PackFormat.ReadEntry(span, out var e, out var problem);
                if (problem is not null || (e.Kind == BlobKind.Delta && version == 1))
                {
                    throw KintsugiException.Corrupt(what, $"pack {pack.Short}, entry {i}: {problem ?? "a delta in a version 1 index"}");
                }
                table.Add(packIndex, e);
                span = span[size..];
            }
        }
        if (!span.IsEmpty)
        {
            throw KintsugiException.Corrupt(what, "trailing bytes after the last pack");
        }
        return table;
    }
}
