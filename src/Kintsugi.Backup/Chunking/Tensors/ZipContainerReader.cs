using System.Buffers.Binary;
using System.Text;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// Zip containers of tensors: PyTorch <c>torch.save</c> files ("pytorch-zip": &lt;archive&gt;/data.pkl
/// plus one stored entry per storage, &lt;archive&gt;/data/&lt;key&gt;) and NumPy .npz files ("npz": one
/// .npy per array). Only stored (uncompressed) entries can be tensors; deflated entries stay opaque
/// bytes. The directory is found from the end-of-central-directory record (zip64 too, which torch
/// always writes), and each entry's data start from its local header, whose extra field (torch's
/// alignment padding) may differ from the central one.
/// </summary>
internal static class ZipContainerReader
{
    private const uint LocalHeaderSignature = 0x04034b50;
    private const uint CentralHeaderSignature = 0x02014b50;
    private const uint EndSignature = 0x06054b50;
    private const uint Zip64EndSignature = 0x06064b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const int EndRecordLength = 22;
    private const int CentralHeaderLength = 46;
    private const int LocalHeaderLength = 30;

    /// <summary>A local file header, or the end record of an empty archive.</summary>
    public static bool Matches(ReadOnlySpan<byte> head) =>
        head.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) is LocalHeaderSignature or EndSignature;

    private sealed record Entry(string Name, bool Stored, long Size, long LocalHeaderOffset);

    public static TensorLayout? Read(ContainerFile file)
    {
        var entries = ReadCentralDirectory(file);
        var pickle = entries.FirstOrDefault(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Name.IndexOf('/', StringComparison.Ordinal) == e.Name.Length - "/data.pkl".Length);
        if (pickle is not null)
        {
            return ReadPyTorch(file, entries, pickle);
        }
        if (entries.Any(e => e.Stored && e.Name.EndsWith(".npy", StringComparison.Ordinal)))
        {
            return ReadNpz(file, entries);
        }
        return null;
    }

    private static TensorLayout ReadPyTorch(ContainerFile file, List<Entry> entries, Entry pickle)
    {
        string prefix = pickle.Name[..^"data.pkl".Length] + "data/";
        // A compressed or unreadable pickle leaves every storage's dtype unknown, not the file unusable.
        var storages = pickle.Stored ? TorchPickleReader.Read(file, DataStart(file, pickle), pickle.Size) : null;
        var tensors = new List<TensorSegment>();
        foreach (var entry in entries)
        {
            if (!entry.Stored || !entry.Name.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }
            string key = entry.Name[prefix.Length..];
            if (key.Length == 0 || key.Contains('/', StringComparison.Ordinal))
            {
                continue;
            }
            long offset = DataStart(file, entry);
            // torch.save names the archive's folder after the file (step-100/data/0), so the storage is
            // named without it: the same storage of the next checkpoint (step-200/data/0) is the same tensor.
            string name = "data/" + key;
            if (storages is not null && storages.TryGetValue(key, out var info))
            {
                var (dtype, elementSize) = StorageDType(info.Class);
                if (elementSize > 0 && checked(info.Numel * elementSize) != entry.Size)
                {
                    throw ContainerFile.Malformed($"storage {key} has {entry.Size} bytes for {info.Numel} elements of {elementSize}");
                }
                tensors.Add(new TensorSegment(name, dtype, [info.Numel], offset, entry.Size, elementSize));
            }
            else
            {
                tensors.Add(new TensorSegment(name, "UNKNOWN", [], offset, entry.Size, 0));
            }
        }
        return new TensorLayout("pytorch-zip", tensors);
    }

    private static TensorLayout ReadNpz(ContainerFile file, List<Entry> entries)
    {
        var tensors = new List<TensorSegment>();
        foreach (var entry in entries)
        {
            if (!entry.Stored || !entry.Name.EndsWith(".npy", StringComparison.Ordinal))
            {
                continue;
            }
            long start = DataStart(file, entry);
            // An array of objects or records is a valid member that simply is not listed.
            var array = NpyReader.ReadArray(file, start, start + entry.Size, entry.Name[..^".npy".Length]);
            if (array is not null)
            {
                tensors.Add(array);
            }
        }
        return new TensorLayout("npz", tensors);
    }

    /// <summary>torch's storage classes, by the name pickled as GLOBAL torch.&lt;Name&gt;.</summary>
    private static (string DType, int ElementSize) StorageDType(string storageClass) => storageClass switch
    {
        "FloatStorage" => ("F32", 4),
        "DoubleStorage" => ("F64", 8),
        "HalfStorage" => ("F16", 2),
        "BFloat16Storage" => ("BF16", 2),
        "LongStorage" => ("I64", 8),
        "IntStorage" => ("I32", 4),
        "ShortStorage" => ("I16", 2),
        "CharStorage" => ("I8", 1),
        "ByteStorage" => ("U8", 1),
        "BoolStorage" => ("BOOL", 1),
        "UInt16Storage" => ("U16", 2),
        "UInt32Storage" => ("U32", 4),
        "UInt64Storage" => ("U64", 8),
        "Float8_e4m3fnStorage" => ("F8_E4M3", 1),
        "Float8_e5m2Storage" => ("F8_E5M2", 1),
        _ => ("UNKNOWN", 0),
    };

    /// <summary>Where an entry's data begins: after its local header, name and (local) extra field.</summary>
    private static long DataStart(ContainerFile file, Entry entry)
    {
        if (file.ReadUInt32(entry.LocalHeaderOffset) != LocalHeaderSignature)
        {
            throw ContainerFile.Malformed($"entry '{entry.Name}' has no local header at {entry.LocalHeaderOffset}");
        }
        long nameLength = file.ReadUInt16(entry.LocalHeaderOffset + 26);
        long extraLength = file.ReadUInt16(entry.LocalHeaderOffset + 28);
        long start = entry.LocalHeaderOffset + LocalHeaderLength + nameLength + extraLength;
        file.Require(start, entry.Size);
        return start;
    }

    private static List<Entry> ReadCentralDirectory(ContainerFile file)
    {
        long endRecord = FindEndRecord(file);
        long entryCount = file.ReadUInt16(endRecord + 10);
        long directorySize = file.ReadUInt32(endRecord + 12);
        long directoryOffset = file.ReadUInt32(endRecord + 16);
        if (file.ReadUInt16(endRecord + 4) != 0 && file.ReadUInt16(endRecord + 4) != 0xFFFF)
        {
            throw ContainerFile.Malformed("multi-disk zip archives are not read");
        }
        long directoryLimit = endRecord;
        if (endRecord >= 20 && file.ReadUInt32(endRecord - 20) == Zip64LocatorSignature)
        {
            // The zip64 record holds the real counts and offsets when the classic fields overflowed.
            long zip64Record = checked((long)file.ReadUInt64(endRecord - 20 + 8));
            if (file.ReadUInt32(zip64Record) != Zip64EndSignature || zip64Record > endRecord - 20 - 56)
            {
                throw ContainerFile.Malformed("the zip64 locator does not point at a zip64 end record");
            }
            if (file.ReadUInt32(zip64Record + 16) != 0 || file.ReadUInt32(zip64Record + 20) != 0)
            {
                throw ContainerFile.Malformed("multi-disk zip archives are not read");
            }
            entryCount = checked((long)file.ReadUInt64(zip64Record + 32));
            directorySize = checked((long)file.ReadUInt64(zip64Record + 40));
            directoryOffset = checked((long)file.ReadUInt64(zip64Record + 48));
            directoryLimit = zip64Record;
        }
        if (directoryOffset > directoryLimit || directorySize > directoryLimit - directoryOffset || entryCount > directorySize / CentralHeaderLength)
        {
            throw ContainerFile.Malformed("the zip central directory does not fit before its end record");
        }
        var cursor = new ContainerCursor(file, directoryOffset, directoryOffset + directorySize);
        var entries = new List<Entry>();
        Span<byte> header = stackalloc byte[CentralHeaderLength];
        for (long i = 0; i < entryCount; i++)
        {
            cursor.Read(header);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != CentralHeaderSignature)
            {
                throw ContainerFile.Malformed($"zip central directory entry {i} has no signature");
            }
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(header[8..]);
            ushort method = BinaryPrimitives.ReadUInt16LittleEndian(header[10..]);
            long compressedSize = BinaryPrimitives.ReadUInt32LittleEndian(header[20..]);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(header[24..]);
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(header[28..]);
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(header[30..]);
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(header[32..]);
            long localOffset = BinaryPrimitives.ReadUInt32LittleEndian(header[42..]);
            string name = Encoding.UTF8.GetString(cursor.ReadBytes(nameLength, ushort.MaxValue));
            byte[] extra = cursor.ReadBytes(extraLength, ushort.MaxValue);
            cursor.Skip(commentLength);
            ApplyZip64Extra(extra, ref size, ref compressedSize, ref localOffset);
            // Encrypted entries' bytes are not the tensor's bytes, whatever the method says.
            bool stored = method == 0 && (flags & 1) == 0;
            if (stored && compressedSize != size)
            {
                throw ContainerFile.Malformed($"stored entry '{name}' has different compressed and uncompressed sizes");
            }
            if (localOffset > directoryOffset)
            {
                throw ContainerFile.Malformed($"entry '{name}' starts after the central directory");
            }
            entries.Add(new Entry(name, stored, compressedSize, localOffset));
        }
        return entries;
    }

    /// <summary>
    /// Replaces the 32-bit fields that are 0xFFFFFFFF by the zip64 extra field's values, which come in
    /// a fixed order and only for the fields that overflowed.
    /// </summary>
    private static void ApplyZip64Extra(ReadOnlySpan<byte> extra, ref long size, ref long compressedSize, ref long localOffset)
    {
        while (extra.Length >= 4)
        {
            ushort id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            int length = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
            if (length > extra.Length - 4)
            {
                throw ContainerFile.Malformed("a zip extra field overruns its entry");
            }
            var data = extra.Slice(4, length);
            if (id == 0x0001)
            {
                if (size == 0xFFFFFFFF)
                {
                    size = TakeUInt64(ref data);
                }
                if (compressedSize == 0xFFFFFFFF)
                {
                    compressedSize = TakeUInt64(ref data);
                }
                if (localOffset == 0xFFFFFFFF)
                {
                    localOffset = TakeUInt64(ref data);
                }
                return;
            }
            extra = extra[(4 + length)..];
        }
    }

    private static long TakeUInt64(ref ReadOnlySpan<byte> data)
    {
        if (data.Length < 8)
        {
            throw ContainerFile.Malformed("a zip64 extra field is too short");
        }
        long value = checked((long)BinaryPrimitives.ReadUInt64LittleEndian(data));
        data = data[8..];
        return value;
    }

    /// <summary>
    /// The end-of-central-directory record: searched backwards over the last 64 KiB (the longest
    /// comment) and accepted only where its comment ends exactly at the end of the file, so a
    /// signature inside a comment or appended bytes are not mistaken for it.
    /// </summary>
    private static long FindEndRecord(ContainerFile file)
    {
        long tailLength = Math.Min(file.Length, ushort.MaxValue + EndRecordLength);
        long tailStart = file.Length - tailLength;
        byte[] tail = file.ReadBytes(tailStart, tailLength, ushort.MaxValue + EndRecordLength);
        for (int i = tail.Length - EndRecordLength; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndSignature
                && i + EndRecordLength + BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(i + 20)) == tail.Length)
            {
                return tailStart + i;
            }
        }
        throw ContainerFile.Malformed("no zip end-of-central-directory record ends the file");
    }
}
