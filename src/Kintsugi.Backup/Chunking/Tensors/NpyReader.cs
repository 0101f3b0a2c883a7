using System.Globalization;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// NumPy .npy: the magic \x93NUMPY, a version (1, 2 or 3), a header length (u16 for version 1, u32
/// after), and a Python dict literal {'descr': '&lt;f4', 'fortran_order': False, 'shape': (3, 4), }.
/// The array's bytes follow the header. Only plain numeric and bool dtypes are listed; object,
/// string, complex, datetime and structured dtypes are valid files this reader does not describe.
/// </summary>
internal static class NpyReader
{
    /// <summary>numpy's own reader refuses headers over 10 000 bytes by default; allow far more, but not without bound.</summary>
    private const int MaxHeaderLength = 1 << 20;

    private const int MaxDims = 64;

    public static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static bool Matches(ReadOnlySpan<byte> head) => head.StartsWith(Magic);

    public static TensorLayout? Read(ContainerFile file)
    {
        var array = ReadArray(file, 0, file.Length, "array");
        return array is null ? null : new TensorLayout("npy", [array]);
    }

    /// <summary>
    /// Parses the npy file stored in [start, end) and names its data <paramref name="name"/>. Returns
    /// null for a well-formed array whose dtype is not plain numbers; throws for a malformed one.
    /// </summary>
    public static TensorSegment? ReadArray(ContainerFile file, long start, long end, string name)
    {
        var cursor = new ContainerCursor(file, start, end);
        Span<byte> magic = stackalloc byte[6];
        cursor.Read(magic);
        if (!magic.SequenceEqual(Magic))
        {
            throw ContainerFile.Malformed("the npy magic is missing");
        }
        byte major = cursor.ReadByte();
        cursor.ReadByte();
        long headerLength = major switch
        {
            1 => cursor.ReadUInt16(),
            2 or 3 => cursor.ReadUInt32(),
            _ => throw ContainerFile.Malformed($"npy version {major} is unknown"),
        };
        byte[] header = cursor.ReadBytes(headerLength, MaxHeaderLength);
        var parser = new DictParser(header);
        var dict = parser.ParseHeader();
        if (dict is null)
        {
            return null;
        }
        var (descr, shape) = dict.Value;
        var (dtype, elementSize) = DType(descr);
        if (elementSize == 0)
        {
            return null;
        }
        long elements = TensorLayoutReader.ElementCount(shape);
        long length = checked(elements * elementSize);
        if (length > cursor.Remaining)
        {
            throw ContainerFile.Malformed($"the npy data needs {length} bytes and {cursor.Remaining} remain");
        }
        return new TensorSegment(name, dtype, shape, cursor.Position, length, elementSize);
    }

    /// <summary>
    /// Maps a descr such as '&lt;f4' or '|u1' to a dtype. Big-endian descrs are listed too: the bytes are
    /// still fixed-size elements, which is all a chunker needs to know.
    /// </summary>
    private static (string DType, int ElementSize) DType(string descr)
    {
        string body = descr.Length > 0 && descr[0] is '<' or '>' or '|' or '=' ? descr[1..] : descr;
        return body switch
        {
            "f2" => ("F16", 2),
            "f4" => ("F32", 4),
            "f8" => ("F64", 8),
            "i1" => ("I8", 1),
            "i2" => ("I16", 2),
            "i4" => ("I32", 4),
            "i8" => ("I64", 8),
            "u1" => ("U8", 1),
            "u2" => ("U16", 2),
            "u4" => ("U32", 4),
            "u8" => ("U64", 8),
            "b1" => ("BOOL", 1),
            _ => ("UNKNOWN", 0),
        };
    }

    /// <summary>
    /// The subset of Python literal syntax numpy writes in headers: a dict of string keys to strings,
    /// booleans, integers and tuples. A list (a structured dtype) ends the parse as "not plain numbers".
    /// </summary>
    private ref struct DictParser(ReadOnlySpan<byte> text)
    {
        private readonly ReadOnlySpan<byte> _text = text;
        private int _pos;

        /// <summary>The descr and shape, or null for a valid header of a dtype that is not a plain string.</summary>
        public (string Descr, long[] Shape)? ParseHeader()
        {
            string? descr = null;
            long[]? shape = null;
            bool? fortran = null;
            Expect((byte)'{');
            while (true)
            {
                SkipSpace();
                if (Peek() == (byte)'}')
                {
                    _pos++;
                    break;
                }
                string key = ParseString();
                SkipSpace();
                Expect((byte)':');
                SkipSpace();
                switch (key)
                {
                    case "descr" when descr is null:
                        if (Peek() is not ((byte)'\'' or (byte)'"'))
                        {
                            // A list or dict descr is a structured dtype: valid, but not one tensor of numbers.
                            return null;
                        }
                        descr = ParseString();
                        break;
                    case "fortran_order" when fortran is null:
                        fortran = ParseBool();
                        break;
                    case "shape" when shape is null:
                        shape = ParseShape();
                        break;
                    default:
                        throw ContainerFile.Malformed($"the npy header has an unexpected or repeated key '{key}'");
                }
                SkipSpace();
                if (Peek() == (byte)',')
                {
                    _pos++;
                }
                else if (Peek() != (byte)'}')
                {
                    throw ContainerFile.Malformed("the npy header dict is not separated by commas");
                }
            }
            // numpy pads the header with spaces and ends it with a newline; nothing else may follow.
            while (_pos < _text.Length)
            {
                if (_text[_pos] is not ((byte)' ' or (byte)'\n' or (byte)'\t' or (byte)'\r' or 0))
                {
                    throw ContainerFile.Malformed("text follows the npy header dict");
                }
                _pos++;
            }
            if (descr is null || shape is null || fortran is null)
            {
                throw ContainerFile.Malformed("the npy header lacks descr, fortran_order or shape");
            }
            return (descr, shape);
        }

        private long[] ParseShape()
        {
            Expect((byte)'(');
            var dims = new List<long>();
            while (true)
            {
                SkipSpace();
                if (Peek() == (byte)')')
                {
                    _pos++;
                    return dims.ToArray();
                }
                if (dims.Count >= MaxDims)
                {
                    throw ContainerFile.Malformed("the npy shape has too many dimensions");
                }
                dims.Add(ParseInteger());
                SkipSpace();
                if (Peek() == (byte)',')
                {
                    _pos++;
                }
                else if (Peek() != (byte)')')
                {
                    throw ContainerFile.Malformed("the npy shape is not a tuple of integers");
                }
            }
        }

        private long ParseInteger()
        {
            int start = _pos;
            while (_pos < _text.Length && _text[_pos] is >= (byte)'0' and <= (byte)'9' && _pos - start < 19)
            {
                _pos++;
            }
            if (_pos == start || !long.TryParse(_text[start.._pos], NumberStyles.None, CultureInfo.InvariantCulture, out long value))
            {
                throw ContainerFile.Malformed("the npy shape holds something other than a non-negative integer");
            }
            // Python 2 wrote long integers with an L suffix.
            if (Peek() == (byte)'L')
            {
                _pos++;
            }
            return value;
        }

        private bool ParseBool()
        {
            if (_text[_pos..].StartsWith("True"u8))
            {
                _pos += 4;
                return true;
            }
            if (_text[_pos..].StartsWith("False"u8))
            {
                _pos += 5;
                return false;
            }
            throw ContainerFile.Malformed("fortran_order is not True or False");
        }

        private string ParseString()
        {
            byte quote = Peek();
            if (quote is not ((byte)'\'' or (byte)'"'))
            {
                throw ContainerFile.Malformed("the npy header has a key or value that is not a string");
            }
            _pos++;
            int start = _pos;
            while (_pos < _text.Length && _text[_pos] != quote)
            {
                // An escape keeps the quote that follows it inside the string; the keys and descrs we
                // use never contain escapes, so the text itself need not be unescaped.
                _pos += _text[_pos] == (byte)'\\' ? 2 : 1;
            }
            if (_pos >= _text.Length)
            {
                throw ContainerFile.Malformed("an npy header string is not closed");
            }
            string value = System.Text.Encoding.Latin1.GetString(_text[start.._pos]);
            _pos++;
            return value;
        }

        private void Expect(byte c)
        {
            SkipSpace();
            if (Peek() != c)
            {
                throw ContainerFile.Malformed($"the npy header lacks '{(char)c}' at {_pos}");
            }
            _pos++;
        }

        private readonly byte Peek() => _pos < _text.Length ? _text[_pos] : (byte)0;

        private void SkipSpace()
        {
            while (_pos < _text.Length && _text[_pos] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
            {
                _pos++;
            }
        }
    }
}
