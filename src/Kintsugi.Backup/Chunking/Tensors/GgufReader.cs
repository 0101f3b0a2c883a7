namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// GGUF (versions 2 and 3): "GGUF", u32 version, u64 tensor count, u64 key-value count, the
/// key-values, the tensor infos (name, dims, ggml type, offset into the data section), then the data
/// section at the next multiple of general.alignment (32 unless set). Plain types are listed with
/// their element size, block-quantised ones with element size 0; an unknown ggml type makes the
/// tensor's length unknowable, so such a file is refused.
/// </summary>
internal static class GgufReader
{
    private const int MaxNameLength = 64 * 1024;
    private const int MaxDims = 16;
    private const int MaxArrayNesting = 8;
    private const uint DefaultAlignment = 32;

    public static bool Matches(ReadOnlySpan<byte> head) => head.StartsWith("GGUF"u8);

    public static TensorLayout? Read(ContainerFile file)
    {
        var cursor = new ContainerCursor(file, 0, file.Length);
        cursor.Skip(4);
        uint version = cursor.ReadUInt32();
        if (version is not (2 or 3))
        {
            throw ContainerFile.Malformed($"GGUF version {version} is not read");
        }
        ulong tensorCount = cursor.ReadUInt64();
        ulong kvCount = cursor.ReadUInt64();
        // The smallest key-value takes 13 bytes and the smallest tensor info 24: counts beyond that are lies.
        if (kvCount > (ulong)file.Length / 13 || tensorCount > (ulong)file.Length / 24)
        {
            throw ContainerFile.Malformed("GGUF counts exceed what the file can hold");
        }
        uint alignment = DefaultAlignment;
        for (ulong i = 0; i < kvCount; i++)
        {
            string key = ReadString(cursor);
            uint type = cursor.ReadUInt32();
            if (key == "general.alignment")
            {
                alignment = type == 4 ? cursor.ReadUInt32() : throw ContainerFile.Malformed("general.alignment is not a u32");
                if (alignment == 0 || (alignment & (alignment - 1)) != 0)
                {
                    throw ContainerFile.Malformed($"GGUF alignment {alignment} is not a power of two");
                }
            }
            else
            {
                SkipValue(cursor, type, 0);
            }
        }
        var infos = new List<(string Name, long[] Shape, uint Type, long Offset)>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = ReadString(cursor);
            uint dims = cursor.ReadUInt32();
            if (dims > MaxDims)
            {
                throw ContainerFile.Malformed($"tensor '{name}' has {dims} dimensions");
            }
            var shape = new long[dims];
            for (int d = 0; d < shape.Length; d++)
            {
                shape[d] = checked((long)cursor.ReadUInt64());
            }
            uint type = cursor.ReadUInt32();
            long offset = checked((long)cursor.ReadUInt64());
            infos.Add((name, shape, type, offset));
        }
        long dataStart = checked((cursor.Position + alignment - 1) / alignment * alignment);
        var tensors = new List<TensorSegment>(infos.Count);
        foreach (var (name, shape, type, offset) in infos)
        {
            var (dtype, blockElements, blockBytes) = GgmlType(type);
            if (blockElements == 0)
            {
                throw ContainerFile.Malformed($"tensor '{name}' has unknown ggml type {type}");
            }
            if (offset % alignment != 0)
            {
                throw ContainerFile.Malformed($"tensor '{name}' is not aligned to {alignment}");
            }
            long elements = TensorLayoutReader.ElementCount(shape);
            if (elements % blockElements != 0)
            {
                throw ContainerFile.Malformed($"tensor '{name}' has {elements} elements, not whole blocks of {blockElements}");
            }
            long length = checked(elements / blockElements * blockBytes);
            long start = checked(dataStart + offset);
            file.Require(start, length);
            tensors.Add(new TensorSegment(name, dtype, shape, start, length, blockElements == 1 ? blockBytes : 0));
        }
        return new TensorLayout("gguf", tensors);
    }

    private static string ReadString(ContainerCursor cursor)
    {
        ulong length = cursor.ReadUInt64();
        if (length > MaxNameLength)
        {
            throw ContainerFile.Malformed($"a GGUF key or tensor name of {length} bytes");
        }
        return cursor.ReadUtf8((long)length, MaxNameLength);
    }

    /// <summary>Skips one metadata value without materialising it; strings and arrays by their lengths.</summary>
    private static void SkipValue(ContainerCursor cursor, uint type, int depth)
    {
        int size = FixedSize(type);
        if (size > 0)
        {
            cursor.Skip(size);
            return;
        }
        switch (type)
        {
            case 8: // string
                cursor.Skip(checked((long)cursor.ReadUInt64()));
                return;
            case 9: // array: element type, count, elements
                {
                    if (depth >= MaxArrayNesting)
                    {
                        throw ContainerFile.Malformed("GGUF arrays nest too deep");
                    }
                    uint elementType = cursor.ReadUInt32();
                    ulong count = cursor.ReadUInt64();
                    int elementSize = FixedSize(elementType);
                    if (elementSize > 0)
                    {
                        if (count > (ulong)cursor.Remaining / (ulong)elementSize)
                        {
                            throw ContainerFile.Malformed("a GGUF array reaches past the end of the file");
                        }
                        cursor.Skip((long)count * elementSize);
                        return;
                    }
                    // Each string or array element takes at least 8 bytes, so the loop is bounded by the file.
                    if (count > (ulong)cursor.Remaining / 8)
                    {
                        throw ContainerFile.Malformed("a GGUF array reaches past the end of the file");
                    }
                    for (ulong i = 0; i < count; i++)
                    {
                        SkipValue(cursor, elementType, depth + 1);
                    }
                    return;
                }
            default:
                throw ContainerFile.Malformed($"GGUF value type {type} is unknown");
        }
    }

    /// <summary>Sizes of the fixed-size GGUF value types; 0 for string, array and unknown.</summary>
    private static int FixedSize(uint type) => type switch
    {
        0 or 1 or 7 => 1, // u8, i8, bool
        2 or 3 => 2, // u16, i16
        4 or 5 or 6 => 4, // u32, i32, f32
        10 or 11 or 12 => 8, // u64, i64, f64
        _ => 0,
    };

    /// <summary>
    /// The ggml tensor types: name, elements per block and bytes per block (plain types are blocks of
    /// one element). Elements per block 0 means unknown.
    /// </summary>
    private static (string DType, int BlockElements, int BlockBytes) GgmlType(uint type) => type switch
    {
        0 => ("F32", 1, 4),
        1 => ("F16", 1, 2),
        2 => ("Q4_0", 32, 18),
        3 => ("Q4_1", 32, 20),
        6 => ("Q5_0", 32, 22),
        7 => ("Q5_1", 32, 24),
        8 => ("Q8_0", 32, 34),
        9 => ("Q8_1", 32, 36),
        10 => ("Q2_K", 256, 84),
        11 => ("Q3_K", 256, 110),
        12 => ("Q4_K", 256, 144),
        13 => ("Q5_K", 256, 176),
        14 => ("Q6_K", 256, 210),
        15 => ("Q8_K", 256, 292),
        16 => ("IQ2_XXS", 256, 66),
        17 => ("IQ2_XS", 256, 74),
        18 => ("IQ3_XXS", 256, 98),
        19 => ("IQ1_S", 256, 50),
        20 => ("IQ4_NL", 32, 18),
        21 => ("IQ3_S", 256, 110),
        22 => ("IQ2_S", 256, 82),
        23 => ("IQ4_XS", 256, 136),
        24 => ("I8", 1, 1),
        25 => ("I16", 1, 2),
        26 => ("I32", 1, 4),
        27 => ("I64", 1, 8),
        28 => ("F64", 1, 8),
        29 => ("IQ1_M", 256, 56),
        30 => ("BF16", 1, 2),
        34 => ("TQ1_0", 256, 54),
        35 => ("TQ2_0", 256, 66),
        39 => ("MXFP4", 32, 17),
        _ => ("UNKNOWN", 0, 0),
    };
}
