using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// Finds, in the data.pkl of a <c>torch.save</c> zip, which storage class each storage key has. Each
/// storage is pickled as a persistent id ('storage', &lt;GLOBAL torch.FloatStorage…&gt;, key, location,
/// numel) followed by BINPERSID. This is a stack machine over the opcodes pickle writes (not an
/// unpickler: nothing is called or built, values other than strings, small integers, globals and
/// tuples are opaque placeholders), so it is only as exact as it needs to be to see those tuples.
/// </summary>
internal static class TorchPickleReader
{
    /// <summary>A data.pkl this large is not a state dict's; leave its storages unknown rather than walk it.</summary>
    public const long MaxPickleLength = 64L * 1024 * 1024;

    private const int MaxStack = 1 << 20;
    private const int MaxMemo = 1 << 22;
    private const int MaxText = 4096;

    /// <summary>A storage's class name (as in torch.&lt;Name&gt;) and element count.</summary>
    public readonly record struct StorageInfo(string Class, long Numel);

    /// <summary>
    /// The storages described in the pickle at [start, start + length), by key; null when the pickle
    /// uses something this walker does not follow, so the caller knows nothing rather than something wrong.
    /// </summary>
    public static Dictionary<string, StorageInfo>? Read(ContainerFile file, long start, long length)
    {
        if (length > MaxPickleLength)
        {
            return null;
        }
        try
        {
            return new Machine(new ContainerCursor(file, start, start + length)).Run();
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>The values the walker distinguishes; everything else is <see cref="Opaque"/>.</summary>
    private abstract record Value;

    private sealed record Opaque : Value
    {
        public static readonly Opaque Instance = new();
    }

    private sealed record TextValue(string Value) : Value;

    private sealed record IntegerValue(long Value) : Value;

    private sealed record GlobalValue(string Module, string Name) : Value;

    private sealed record TupleValue(Value[] Items) : Value;

    private sealed class Machine(ContainerCursor cursor)
    {
        private readonly List<Value> _stack = [];
        private readonly List<int> _marks = [];
        private readonly Dictionary<long, Value> _memo = [];
        private readonly Dictionary<string, StorageInfo> _storages = new(StringComparer.Ordinal);

        public Dictionary<string, StorageInfo> Run()
        {
            // Every opcode consumes at least one byte, so the loop ends with the region at the latest.
            while (true)
            {
                byte op = cursor.ReadByte();
                switch (op)
                {
                    case 0x80: // PROTO
                        cursor.ReadByte();
                        break;
                    case 0x95: // FRAME: only a hint for buffering
                        cursor.ReadUInt64();
                        break;
                    case (byte)'.': // STOP
                        return _storages;
                    case (byte)'(': // MARK
                        Limit(_marks.Count);
                        _marks.Add(_stack.Count);
                        break;
                    case (byte)'}': // EMPTY_DICT
                    case (byte)']': // EMPTY_LIST
                    case 0x8f: // EMPTY_SET
                    case (byte)'N': // NONE
                    case 0x88: // NEWTRUE
                    case 0x89: // NEWFALSE
                        Push(Opaque.Instance);
                        break;
                    case (byte)')': // EMPTY_TUPLE
                        Push(new TupleValue([]));
                        break;
                    case (byte)'t': // TUPLE
                        Push(new TupleValue(PopToMark()));
                        break;
                    case 0x85: // TUPLE1
                    case 0x86: // TUPLE2
                    case 0x87: // TUPLE3
                        Push(new TupleValue(PopN(op - 0x84)));
                        break;
                    case (byte)'d': // DICT
                    case (byte)'l': // LIST
                    case 0x91: // FROZENSET
                    case (byte)'o': // OBJ
                        PopToMark();
                        Push(Opaque.Instance);
                        break;
                    case (byte)'i': // INST module\nname\n
                        ReadLine();
                        ReadLine();
                        PopToMark();
                        Push(Opaque.Instance);
                        break;
                    case (byte)'u': // SETITEMS
                    case (byte)'e': // APPENDS
                    case 0x90: // ADDITEMS
                    case (byte)'1': // POP_MARK
                        PopToMark();
                        break;
                    case (byte)'s': // SETITEM
                        PopN(2);
                        break;
                    case (byte)'a': // APPEND
                    case (byte)'b': // BUILD
                        PopN(1);
                        break;
                    case (byte)'0': // POP: a value, or the topmost mark when the stack above it is empty
                        if (_marks.Count > 0 && _marks[^1] == _stack.Count)
                        {
                            PopToMark();
                        }
                        else
                        {
                            PopN(1);
                        }
                        break;
                    case (byte)'2': // DUP
                        Push(Top());
                        break;
                    case (byte)'R': // REDUCE: callable, args -> result
                    case 0x81: // NEWOBJ: class, args -> instance
                        PopN(2);
                        Push(Opaque.Instance);
                        break;
                    case 0x92: // NEWOBJ_EX: class, args, kwargs -> instance
                        PopN(3);
                        Push(Opaque.Instance);
                        break;
                    case (byte)'c': // GLOBAL module\nname\n
                        {
                            string module = ReadLine();
                            string name = ReadLine();
                            Push(new GlobalValue(module, name));
                            break;
                        }
                    case 0x93: // STACK_GLOBAL
                        {
                            var items = PopN(2);
                            Push(items is [TextValue module, TextValue name] ? new GlobalValue(module.Value, name.Value) : Opaque.Instance);
                            break;
                        }
                    case (byte)'Q': // BINPERSID
                        Persist(PopN(1)[0]);
                        Push(Opaque.Instance);
                        break;
                    case (byte)'P': // PERSID: a text id, which torch never writes
                        ReadLine();
                        Push(Opaque.Instance);
                        break;
                    case 0x8c: // SHORT_BINUNICODE
                        Push(ReadText(cursor.ReadByte()));
                        break;
                    case (byte)'X': // BINUNICODE
                        Push(ReadText(cursor.ReadUInt32()));
                        break;
                    case 0x8d: // BINUNICODE8
                        Push(ReadText((long)Math.Min(cursor.ReadUInt64(), long.MaxValue)));
                        break;
                    case (byte)'U': // SHORT_BINSTRING
                    case (byte)'C': // SHORT_BINBYTES
                        Push(ReadText(cursor.ReadByte()));
                        break;
                    case (byte)'T': // BINSTRING
                    case (byte)'B': // BINBYTES
                        Push(ReadText(cursor.ReadUInt32()));
                        break;
                    case 0x8e: // BINBYTES8
                    case 0x96: // BYTEARRAY8
                        Push(ReadText((long)Math.Min(cursor.ReadUInt64(), long.MaxValue)));
                        break;
                    case (byte)'V': // UNICODE (text, raw-unicode-escaped)
                    case (byte)'S': // STRING (text, quoted)
                        Push(new TextValue(ReadLine()));
                        break;
                    case (byte)'J': // BININT
                        Push(new IntegerValue((int)cursor.ReadUInt32()));
                        break;
                    case (byte)'K': // BININT1
                        Push(new IntegerValue(cursor.ReadByte()));
                        break;
                    case (byte)'M': // BININT2
                        Push(new IntegerValue(cursor.ReadUInt16()));
                        break;
                    case 0x8a: // LONG1
                        Push(ReadLong(cursor.ReadByte()));
                        break;
                    case 0x8b: // LONG4
                        Push(ReadLong(cursor.ReadUInt32()));
                        break;
                    case (byte)'I': // INT (text; "00"/"01" are False/True)
                    case (byte)'L': // LONG (text, with an L suffix)
                        {
                            string line = ReadLine().TrimEnd('L');
                            Push(long.TryParse(line, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v) ? new IntegerValue(v) : Opaque.Instance);
                            break;
                        }
                    case (byte)'G': // BINFLOAT
                        cursor.ReadUInt64();
                        Push(Opaque.Instance);
                        break;
                    case (byte)'F': // FLOAT (text)
                        ReadLine();
                        Push(Opaque.Instance);
                        break;
                    case (byte)'q': // BINPUT
                        Put(cursor.ReadByte());
                        break;
                    case (byte)'r': // LONG_BINPUT
                        Put(cursor.ReadUInt32());
                        break;
                    case (byte)'p': // PUT (text index)
                        Put(ParseIndex(ReadLine()));
                        break;
                    case 0x94: // MEMOIZE
                        Put(_memo.Count);
                        break;
                    case (byte)'h': // BINGET
                        Push(Get(cursor.ReadByte()));
                        break;
                    case (byte)'j': // LONG_BINGET
                        Push(Get(cursor.ReadUInt32()));
                        break;
                    case (byte)'g': // GET (text index)
                        Push(Get(ParseIndex(ReadLine())));
                        break;
                    default:
                        // Extension codes, out-of-band buffers and anything newer: not followed.
                        throw ContainerFile.Malformed($"pickle opcode 0x{op:x2} is not followed");
                }
            }
        }

        /// <summary>Records ('storage', torch.&lt;Class&gt;, key, location, numel) persistent ids.</summary>
        private void Persist(Value pid)
        {
            if (pid is TupleValue { Items: [TextValue { Value: "storage" }, GlobalValue { Module: "torch" } type, TextValue key, _, IntegerValue numel] } && numel.Value >= 0)
            {
                _storages.TryAdd(key.Value, new StorageInfo(type.Name, numel.Value));
            }
        }

        private void Push(Value value)
        {
            Limit(_stack.Count);
            _stack.Add(value);
        }

        private Value Top() => _stack.Count > (_marks.Count > 0 ? _marks[^1] : 0) ? _stack[^1] : throw ContainerFile.Malformed("pickle stack underflow");

        private Value[] PopN(int n)
        {
            int floor = _marks.Count > 0 ? _marks[^1] : 0;
            if (_stack.Count - floor < n)
            {
                throw ContainerFile.Malformed("pickle stack underflow");
            }
            var items = _stack.GetRange(_stack.Count - n, n).ToArray();
            _stack.RemoveRange(_stack.Count - n, n);
            return items;
        }

        private Value[] PopToMark()
        {
            if (_marks.Count == 0)
            {
                throw ContainerFile.Malformed("pickle pops to a mark that is not there");
            }
            int mark = _marks[^1];
            _marks.RemoveAt(_marks.Count - 1);
            var items = _stack.GetRange(mark, _stack.Count - mark).ToArray();
            _stack.RemoveRange(mark, _stack.Count - mark);
            return items;
        }

        private void Put(long index)
        {
            if (!_memo.ContainsKey(index))
            {
                Limit(_memo.Count, MaxMemo);
            }
            _memo[index] = Top();
        }

        private Value Get(long index) =>
            _memo.TryGetValue(index, out var value) ? value : throw ContainerFile.Malformed($"pickle memo {index} is unset");

        /// <summary>A string or byte string: short ones are kept (keys, locations), long ones skipped.</summary>
        private Value ReadText(long length)
        {
            if (length > MaxText)
            {
                cursor.Skip(length);
                return Opaque.Instance;
            }
            return new TextValue(Encoding.UTF8.GetString(cursor.ReadBytes(length, MaxText)));
        }

        /// <summary>A little-endian two's-complement integer of <paramref name="length"/> bytes.</summary>
        private Value ReadLong(long length)
        {
            if (length > 8)
            {
                cursor.Skip(length);
                return Opaque.Instance;
            }
            Span<byte> bytes = stackalloc byte[8];
            bytes.Clear();
            cursor.Read(bytes[..(int)length]);
            if (length > 0 && length < 8 && (bytes[(int)length - 1] & 0x80) != 0)
            {
                bytes[(int)length..].Fill(0xFF);
            }
            return new IntegerValue(BinaryPrimitives.ReadInt64LittleEndian(bytes));
        }

        private string ReadLine()
        {
            var bytes = new List<byte>();
            while (true)
            {
                byte b = cursor.ReadByte();
                if (b == (byte)'\n')
                {
                    return Encoding.UTF8.GetString([.. bytes]);
                }
                if (bytes.Count >= MaxText)
                {
                    throw ContainerFile.Malformed("a pickle text line is too long");
                }
                bytes.Add(b);
            }
        }

        private static long ParseIndex(string line) =>
            long.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out long index) ? index : throw ContainerFile.Malformed("a pickle memo index is not a number");

        private static void Limit(int count, int max = MaxStack)
        {
            if (count >= max)
            {
                throw ContainerFile.Malformed("the pickle is deeper or larger than a state dict's");
            }
        }
    }
}
