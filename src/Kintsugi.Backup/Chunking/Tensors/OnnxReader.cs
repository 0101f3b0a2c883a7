using System.Text;
using System.Text.Unicode;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// ONNX: a protobuf ModelProto whose graph (field 7) holds initializers (GraphProto field 5), each a
/// TensorProto with dims (1), data_type (2), name (8), raw_data (9), external_data (13) and
/// data_location (14). raw_data is the tensor's bytes, little-endian, in place in the file. ONNX has
/// no magic, so the whole file must parse as a ModelProto with an ir_version and a graph before it is
/// believed. The walk streams: nested messages are read field by field and raw_data payloads are
/// skipped by offset, never loaded. <see cref="Read"/> lists raw_data initializers (and needs at least
/// one); <see cref="ReadExternalLayouts"/> lists the initializers whose bytes live in files beside the
/// model. Both go through the one walk, <see cref="WalkInitializers"/>.
/// </summary>
internal static partial class OnnxReader
{
    private const int MaxNameLength = 64 * 1024;
    private const int MaxDims = 64;

    /// <summary>external_data entries accepted on one initializer (ONNX writes at most five keys).</summary>
    private const int MaxExternalEntries = 64;

    /// <summary>TensorProto.DataLocation.EXTERNAL.</summary>
    private const long DataLocationExternal = 1;

    private enum WireType
    {
        Varint = 0,
        Fixed64 = 1,
        Length = 2,
        Fixed32 = 5,
    }

    /// <summary>
    /// What one graph initializer holds, as far as the readers need it. <see cref="RawOffset"/> is -1
    /// without raw_data. <see cref="External"/> is external_data's key/value pairs in file order; it is
    /// empty unless the walk was asked to read them.
    /// </summary>
    private sealed record Initializer(
        string Name,
        long DataType,
        long[] Dims,
        long RawOffset,
        long RawLength,
        long DataLocation,
        IReadOnlyList<KeyValuePair<string, string>> External);

    public static TensorLayout? Read(ContainerFile file)
    {
        var tensors = new List<TensorSegment>();
        bool model = WalkInitializers(file, readExternalData: false, initializer =>
        {
            if (RawSegment(initializer) is { } tensor)
            {
                tensors.Add(tensor);
            }
        });
        return model && tensors.Count > 0 ? new TensorLayout("onnx", tensors) : null;
    }

    /// <summary>
    /// The initializer's raw_data as a segment of the model file, or null where it has none or its
    /// data_location is EXTERNAL (the bytes then live in another file, whatever raw_data says).
    /// </summary>
    private static TensorSegment? RawSegment(Initializer initializer)
    {
        if (initializer.RawOffset < 0 || initializer.DataLocation == DataLocationExternal)
        {
            return null;
        }
        var (dtype, elementSize, bitsPerElement) = DataType(initializer.DataType);
        long elements = TensorLayoutReader.ElementCount(initializer.Dims);
        if (bitsPerElement > 0 && ByteSize(elements, bitsPerElement) != initializer.RawLength)
        {
            throw ContainerFile.Malformed($"initializer '{initializer.Name}' has {initializer.RawLength} bytes for {elements} elements of {bitsPerElement} bits");
        }
        return new TensorSegment(initializer.Name, dtype, initializer.Dims, initializer.RawOffset, initializer.RawLength, elementSize);
    }

    /// <summary>The bytes of <paramref name="elements"/> elements of <paramref name="bitsPerElement"/> bits, rounded up; overflow throws.</summary>
    private static long ByteSize(long elements, int bitsPerElement) => checked((elements * bitsPerElement) + 7) / 8;

    /// <summary>
    /// Walks the ModelProto in <paramref name="file"/> and hands every graph initializer to
    /// <paramref name="visit"/>, in file order, as soon as it is read. True when the model has an
    /// ir_version and a graph. external_data is only parsed when <paramref name="readExternalData"/>
    /// is set; otherwise it is skipped like any unknown field, so <see cref="Read"/> judges a file
    /// exactly as it did before external data was understood. Anything malformed throws
    /// <see cref="InvalidDataException"/>.
    /// </summary>
    private static bool WalkInitializers(ContainerFile file, bool readExternalData, Action<Initializer> visit)
    {
        var cursor = new ContainerCursor(file, 0, file.Length);
        bool irVersion = false, graph = false;
        while (!cursor.AtEnd)
        {
            var (field, wire) = ReadTag(cursor);
            if (field == 1)
            {
                Expect(wire, WireType.Varint);
                ReadVarint(cursor);
                irVersion = true;
            }
            else if (field == 7)
            {
                Expect(wire, WireType.Length);
                long end = EndOfLength(cursor);
                WalkGraph(cursor, end, readExternalData, visit);
                graph = true;
            }
            else
            {
                SkipField(cursor, wire);
            }
        }
        return irVersion && graph;
    }

    private static void WalkGraph(ContainerCursor cursor, long end, bool readExternalData, Action<Initializer> visit)
    {
        while (cursor.Position < end)
        {
            var (field, wire) = ReadTag(cursor);
            if (field == 5)
            {
                Expect(wire, WireType.Length);
                long tensorEnd = EndOfLength(cursor);
                if (tensorEnd > end)
                {
                    throw ContainerFile.Malformed("an initializer reaches past its graph");
                }
                visit(ReadInitializer(cursor, tensorEnd, readExternalData));
            }
            else
            {
                SkipField(cursor, wire);
            }
        }
        if (cursor.Position != end)
        {
            throw ContainerFile.Malformed("a graph field reaches past the graph");
        }
    }

    private static Initializer ReadInitializer(ContainerCursor cursor, long end, bool readExternalData)
    {
        var dims = new List<long>();
        long dataType = 0, rawOffset = -1, rawLength = 0, location = 0;
        string name = "";
        List<KeyValuePair<string, string>>? external = null;
        while (cursor.Position < end)
        {
            var (field, wire) = ReadTag(cursor);
            switch (field)
            {
                case 1 when wire == WireType.Varint:
                    AddDim(dims, ReadVarint(cursor));
                    break;
                case 1 when wire == WireType.Length:
                    {
                        // Packed dims: a run of varints.
                        long dimsEnd = EndOfLength(cursor);
                        while (cursor.Position < dimsEnd)
                        {
                            AddDim(dims, ReadVarint(cursor));
                        }
                        if (cursor.Position != dimsEnd)
                        {
                            throw ContainerFile.Malformed("packed dims overrun their field");
                        }
                        break;
                    }
                case 1:
                    throw ContainerFile.Malformed("dims has the wrong wire type");
                case 2:
                    Expect(wire, WireType.Varint);
                    dataType = (long)ReadVarint(cursor);
                    break;
                case 8:
                    {
                        Expect(wire, WireType.Length);
                        long length = EndOfLength(cursor) - cursor.Position;
                        name = Encoding.UTF8.GetString(cursor.ReadBytes(length, MaxNameLength));
                        break;
                    }
                case 9:
                    {
                        Expect(wire, WireType.Length);
                        long rawEnd = EndOfLength(cursor);
                        rawOffset = cursor.Position;
                        rawLength = rawEnd - rawOffset;
                        cursor.Seek(rawEnd);
                        break;
                    }
                case 13 when readExternalData:
                    {
                        Expect(wire, WireType.Length);
                        long entryEnd = EndOfLength(cursor);
                        external ??= [];
                        if (external.Count >= MaxExternalEntries)
                        {
                            throw ContainerFile.Malformed($"an initializer has more than {MaxExternalEntries} external_data entries");
                        }
                        external.Add(ReadStringEntry(cursor, entryEnd));
                        break;
                    }
                case 14:
                    Expect(wire, WireType.Varint);
                    location = (long)ReadVarint(cursor);
                    break;
                default:
                    SkipField(cursor, wire);
                    break;
            }
        }
        if (cursor.Position != end)
        {
            throw ContainerFile.Malformed("a tensor field reaches past the tensor");
        }
        return new Initializer(name, dataType, dims.ToArray(), rawOffset, rawLength, location, external ?? []);
    }

    /// <summary>
    /// A StringStringEntryProto: key (1) and value (2), each missing one being empty and a repeated one
    /// taking its last value, as protobuf does. Both must be UTF-8: they name files, so a byte string
    /// that only decodes with replacement characters is refused rather than silently changed.
    /// </summary>
    private static KeyValuePair<string, string> ReadStringEntry(ContainerCursor cursor, long end)
    {
        string key = "", value = "";
        while (cursor.Position < end)
        {
            var (field, wire) = ReadTag(cursor);
            if (field is 1 or 2)
            {
                Expect(wire, WireType.Length);
                long length = EndOfLength(cursor) - cursor.Position;
                var bytes = cursor.ReadBytes(length, MaxNameLength);
                if (!Utf8.IsValid(bytes))
                {
                    throw ContainerFile.Malformed("an external_data entry is not UTF-8");
                }
                string text = Encoding.UTF8.GetString(bytes);
                if (field == 1)
                {
                    key = text;
                }
                else
                {
                    value = text;
                }
            }
            else
            {
                SkipField(cursor, wire);
            }
        }
        if (cursor.Position != end)
        {
            throw ContainerFile.Malformed("an external_data field reaches past its entry");
        }
        return new KeyValuePair<string, string>(key, value);
    }

    private static void AddDim(List<long> dims, ulong value)
    {
        if (value > long.MaxValue || dims.Count >= MaxDims)
        {
            throw ContainerFile.Malformed("dims are negative or too many");
        }
        dims.Add((long)value);
    }

    /// <summary>
    /// ONNX TensorProto.DataType: name, element size for plain types (0 otherwise) and bits per element
    /// where the raw length is known (0 where it is not, e.g. strings or undefined).
    /// </summary>
    private static (string DType, int ElementSize, int Bits) DataType(long type) => type switch
    {
        1 => ("F32", 4, 32),
        2 => ("U8", 1, 8),
        3 => ("I8", 1, 8),
        4 => ("U16", 2, 16),
        5 => ("I16", 2, 16),
        6 => ("I32", 4, 32),
        7 => ("I64", 8, 64),
        9 => ("BOOL", 1, 8),
        10 => ("F16", 2, 16),
        11 => ("F64", 8, 64),
        12 => ("U32", 4, 32),
        13 => ("U64", 8, 64),
        14 => ("C64", 0, 64),
        15 => ("C128", 0, 128),
        16 => ("BF16", 2, 16),
        17 => ("F8_E4M3", 1, 8),
        18 => ("F8_E4M3FNUZ", 1, 8),
        19 => ("F8_E5M2", 1, 8),
        20 => ("F8_E5M2FNUZ", 1, 8),
        21 => ("U4", 0, 4),
        22 => ("I4", 0, 4),
        23 => ("F4_E2M1", 0, 4),
        24 => ("F8_E8M0", 1, 8),
        _ => ("UNKNOWN", 0, 0),
    };

    private static (long Field, WireType Wire) ReadTag(ContainerCursor cursor)
    {
        ulong tag = ReadVarint(cursor);
        ulong field = tag >> 3;
        int wire = (int)(tag & 7);
        if (field == 0 || field > 0x1FFFFFFF)
        {
            throw ContainerFile.Malformed($"protobuf field number {field} is invalid");
        }
        if (wire is not (0 or 1 or 2 or 5))
        {
            // Groups (3, 4) are not in ONNX; 6 and 7 do not exist.
            throw ContainerFile.Malformed($"protobuf wire type {wire} is not accepted");
        }
        return ((long)field, (WireType)wire);
    }

    private static void Expect(WireType actual, WireType expected)
    {
        if (actual != expected)
        {
            throw ContainerFile.Malformed($"a field has wire type {actual}, expected {expected}");
        }
    }

    private static void SkipField(ContainerCursor cursor, WireType wire)
    {
        switch (wire)
        {
            case WireType.Varint:
                ReadVarint(cursor);
                break;
            case WireType.Fixed64:
                cursor.Skip(8);
                break;
            case WireType.Fixed32:
                cursor.Skip(4);
                break;
            default:
                cursor.Seek(EndOfLength(cursor));
                break;
        }
    }

    /// <summary>Reads a length prefix and returns where the field ends, which must be inside the cursor's region.</summary>
    private static long EndOfLength(ContainerCursor cursor)
    {
        ulong length = ReadVarint(cursor);
        if (length > (ulong)cursor.Remaining)
        {
            throw ContainerFile.Malformed($"a protobuf field of {length} bytes reaches past the end");
        }
        return cursor.Position + (long)length;
    }

    private static ulong ReadVarint(ContainerCursor cursor)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = cursor.ReadByte();
            if (shift == 63 && b > 1)
            {
                throw ContainerFile.Malformed("a protobuf varint overflows 64 bits");
            }
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return value;
            }
        }
        throw ContainerFile.Malformed("a protobuf varint is longer than 10 bytes");
    }
}
