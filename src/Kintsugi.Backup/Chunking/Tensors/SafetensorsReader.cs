using System.Buffers.Binary;
using System.Text.Json;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// safetensors: a little-endian u64 header length N, N bytes of JSON mapping tensor names to
/// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to 8 + N), then the data.
/// A dtype this reader does not know (a newer one) is still listed, upper-cased with element size 0,
/// because its bytes are still one tensor; only its length cannot be checked against the shape.
/// </summary>
internal static class SafetensorsReader
{
    /// <summary>The reference implementation's own cap on the header; larger is not a real file.</summary>
    public const long MaxHeaderLength = 100L * 1024 * 1024;

    private const int MaxDims = 64;
    private const int MaxDTypeLength = 32;

    /// <summary>A plausible header length followed by the '{' that must open the JSON.</summary>
    public static bool Matches(ReadOnlySpan<byte> head, long fileLength)
    {
        if (head.Length < 9)
        {
            return false;
        }
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(head);
        return n >= 2 && n <= MaxHeaderLength && (long)n <= fileLength - 8 && head[8] == (byte)'{';
    }

    public static TensorLayout? Read(ContainerFile file)
    {
        long headerLength = (long)Math.Min(file.ReadUInt64(0), (ulong)long.MaxValue);
        byte[] header = file.ReadBytes(8, headerLength, MaxHeaderLength);
        long dataStart = 8 + headerLength;
        var reader = new Utf8JsonReader(header, new JsonReaderOptions { MaxDepth = 64, CommentHandling = JsonCommentHandling.Disallow });
        Next(ref reader, JsonTokenType.StartObject);
        var names = new HashSet<string>(StringComparer.Ordinal);
        var tensors = new List<TensorSegment>();
        while (true)
        {
            if (!reader.Read())
            {
                throw ContainerFile.Malformed("the safetensors header ends inside its object");
            }
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }
            string name = GetString(ref reader);
            if (!names.Add(name))
            {
                // Two entries with one name would make a reader's choice between them arbitrary.
                throw ContainerFile.Malformed($"tensor '{name}' appears twice");
            }
            if (!reader.Read())
            {
                throw ContainerFile.Malformed("the safetensors header ends after a name");
            }
            if (name == "__metadata__")
            {
                reader.Skip();
                continue;
            }
            tensors.Add(ReadTensor(ref reader, name, dataStart, file.Length));
        }
        // Only whitespace (the writer's padding) may follow the object.
        if (reader.Read())
        {
            throw ContainerFile.Malformed("data follows the safetensors header object");
        }
        return new TensorLayout("safetensors", tensors);
    }

    private static TensorSegment ReadTensor(ref Utf8JsonReader reader, string name, long dataStart, long fileLength)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw ContainerFile.Malformed($"tensor '{name}' is not an object");
        }
        string? dtype = null;
        List<long>? shape = null;
        List<long>? offsets = null;
        while (true)
        {
            if (!reader.Read())
            {
                throw ContainerFile.Malformed($"tensor '{name}' ends early");
            }
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }
            string field = GetString(ref reader);
            if (!reader.Read())
            {
                throw ContainerFile.Malformed($"tensor '{name}' ends early");
            }
            switch (field)
            {
                case "dtype":
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        throw ContainerFile.Malformed($"tensor '{name}' has a dtype that is not a string");
                    }
                    dtype = GetString(ref reader);
                    break;
                case "shape":
                    shape = ReadIntegers(ref reader, name, MaxDims);
                    break;
                case "data_offsets":
                    offsets = ReadIntegers(ref reader, name, 2);
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }
        if (dtype is null || shape is null || offsets is null || offsets.Count != 2)
        {
            throw ContainerFile.Malformed($"tensor '{name}' lacks dtype, shape or data_offsets");
        }
        if (dtype.Length == 0 || dtype.Length > MaxDTypeLength)
        {
            throw ContainerFile.Malformed($"tensor '{name}' has an implausible dtype");
        }
        long begin = offsets[0], end = offsets[1];
        if (begin > end || end > fileLength - dataStart)
        {
            throw ContainerFile.Malformed($"tensor '{name}' lies outside the file");
        }
        string normalised = dtype.ToUpperInvariant();
        int elementSize = ElementSize(normalised);
        long length = end - begin;
        long elements = TensorLayoutReader.ElementCount(shape);
        if (elementSize > 0 && checked(elements * elementSize) != length)
        {
            throw ContainerFile.Malformed($"tensor '{name}' has {length} bytes for {elements} elements of {elementSize}");
        }
        return new TensorSegment(name, normalised, shape.ToArray(), dataStart + begin, length, elementSize);
    }

    private static List<long> ReadIntegers(ref Utf8JsonReader reader, string name, int max)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw ContainerFile.Malformed($"tensor '{name}' has a field that is not an array");
        }
        var values = new List<long>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long value) || value < 0 || values.Count >= max)
            {
                throw ContainerFile.Malformed($"tensor '{name}' has an array that is not of at most {max} non-negative integers");
            }
            values.Add(value);
        }
        if (reader.TokenType != JsonTokenType.EndArray)
        {
            throw ContainerFile.Malformed($"tensor '{name}' ends inside an array");
        }
        return values;
    }

    private static void Next(ref Utf8JsonReader reader, JsonTokenType expected)
    {
        if (!reader.Read() || reader.TokenType != expected)
        {
            throw ContainerFile.Malformed($"the safetensors header does not start with {expected}");
        }
    }

    private static string GetString(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString() ?? "";
        }
        catch (InvalidOperationException e)
        {
            // GetString refuses text that cannot be transcoded (bad UTF-8 or escapes): malformed, not a bug.
            throw ContainerFile.Malformed($"the safetensors header has an undecodable string: {e.Message}");
        }
    }

    /// <summary>Bytes per element of the dtypes safetensors defines as plain fixed-size numbers; 0 otherwise.</summary>
    private static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "F8_E4M3" or "F8_E5M2" or "F8_E8M0" or "I8" or "U8" or "BOOL" => 1,
        _ => 0,
    };
}
