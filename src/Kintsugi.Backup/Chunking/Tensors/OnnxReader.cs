using System.Text;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// ONNX: a protobuf ModelProto whose graph (field 7) holds initializers (GraphProto field 5), each a
/// TensorProto with dims (1), data_type (2), name (8) and raw_data (9). raw_data is the tensor's
/// bytes, little-endian, in place in the file. ONNX has no magic, so the whole file must parse as a
/// ModelProto with an ir_version, a graph and at least one raw_data initializer before it is believed.
/// The walk streams: nested messages are read field by field and raw_data payloads are skipped by
/// offset, never loaded. Initializers without raw_data (typed fields, external data) are not listed.
/// </summary>
internal static class OnnxReader
{
    private const int MaxNameLength = 64 * 1024;
    private const int MaxDims = 64;

    private enum WireType
    {
        Varint = 0,
        Fixed64 = 1,
        Length = 2,
        Fixed32 = 5,
    }

    public static TensorLayout? Read(ContainerFile file)
    {
        var cursor = new ContainerCursor(file, 0, file.Length);
        bool irVersion = false, graph = false;
        var tensors = new List<TensorSegment>();
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
                ReadGraph(cursor, end, tensors);
                graph = true;
            }
            else
            {
                SkipField(cursor, wire);
            }
        }
        return irVersion && graph && tensors.Count > 0 ? new TensorLayout("onnx", tensors) : null;
    }

    private static void ReadGraph(ContainerCursor cursor, long end, List<TensorSegment> tensors)
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
                if (ReadTensor(cursor, tensorEnd) is { } tensor)
                {
                    tensors.Add(tensor);
                }
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

    private static TensorSegment? ReadTensor(ContainerCursor cursor, long end)
    {
        var dims = new List<long>();
        long dataType = 0, rawOffset = -1, rawLength = 0, location = 0;
        string name = "";
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
        // data_location EXTERNAL (1) means the bytes live in another file, whatever raw_data says.
        if (rawOffset < 0 || location == 1)
        {
            return null;
        }
        var (dtype, elementSize, bitsPerElement) = DataType(dataType);
        long elements = TensorLayoutReader.ElementCount(dims);
        if (bitsPerElement > 0 && checked((elements * bitsPerElement) + 7) / 8 != rawLength)
        {
            throw ContainerFile.Malformed($"initializer '{name}' has {rawLength} bytes for {elements} elements of {bitsPerElement} bits");
        }
        return new TensorSegment(name, dtype, dims.ToArray(), rawOffset, rawLength, elementSize);
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
