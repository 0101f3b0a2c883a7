using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using Kintsugi.Backup.Chunking.Tensors;
using Kintsugi.Backup.Engine;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class TensorLayoutTests(ITestOutputHelper output) : IDisposable
{
    private const string Python = "/usr/bin/python3";

    private static readonly string[] Formats = ["safetensors", "npy", "npz", "pytorch-zip", "gguf", "onnx"];

    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>What one tensor in a built file must look like, with its exact bytes.</summary>
    private sealed record Expected(string Name, string DType, long[] Shape, int ElementSize, byte[] Data);

    /// <summary>A built container and where its header (the interesting part to corrupt) ends.</summary>
    private sealed record Sample(byte[] Bytes, int HeaderEnd);

    private string WriteFile(string name, byte[] content)
    {
        string path = Path.Combine(_box.Root, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    private static TensorLayout? Read(string path)
    {
        using var handle = File.OpenHandle(path);
        return TensorLayoutReader.TryRead(handle, RandomAccess.GetLength(handle));
    }

    private TensorLayout? ReadBytes(byte[] content, string name = "file.bin") => Read(WriteFile(name, content));

    /// <summary>The layout lists exactly the expected tensors, each pointing at exactly its bytes.</summary>
    private static void AssertLayout(byte[] file, TensorLayout? layout, string format, params Expected[] expected)
    {
        Assert.NotNull(layout);
        Assert.Equal(format, layout.Format);
        AssertInvariants(layout, file.Length, "well-formed file");
        Assert.Equal(expected.Select(e => e.Name).Order(StringComparer.Ordinal), layout.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
        foreach (var e in expected)
        {
            var t = layout.Tensors.Single(t => t.Name == e.Name);
            Assert.Equal(e.DType, t.DType);
            Assert.Equal(e.Shape, t.Shape);
            Assert.Equal(e.ElementSize, t.ElementSize);
            Assert.Equal(e.Data.Length, t.Length);
            Assert.True(file.AsSpan((int)t.Offset, (int)t.Length).SequenceEqual(e.Data), $"tensor {e.Name}: bytes at {t.Offset} are not its data");
        }
    }

    /// <summary>What every layout TryRead returns must satisfy, whatever the input.</summary>
    private static void AssertInvariants(TensorLayout layout, long fileLength, string context)
    {
        Assert.True(Formats.Contains(layout.Format), $"{context}: unknown format {layout.Format}");
        Assert.True(layout.Tensors.Count > 0, $"{context}: a layout without tensors");
        long previousEnd = 0;
        foreach (var t in layout.Tensors)
        {
            Assert.True(t.Name is not null && !string.IsNullOrEmpty(t.DType), $"{context}: tensor without name or dtype");
            Assert.True(t.Offset >= previousEnd, $"{context}: tensor {t.Name} at {t.Offset} overlaps or precedes the previous one ending at {previousEnd}");
            Assert.True(t.Length > 0 && t.Length <= fileLength - t.Offset, $"{context}: tensor {t.Name} [{t.Offset}, +{t.Length}) is not inside the file of {fileLength}");
            Assert.True(t.ElementSize is 0 or 1 or 2 or 4 or 8, $"{context}: tensor {t.Name} has element size {t.ElementSize}");
            Assert.True(t.Shape.All(d => d >= 0), $"{context}: tensor {t.Name} has a negative dimension");
            if (t.ElementSize > 0)
            {
                Int128 elements = 1;
                foreach (long d in t.Shape)
                {
                    elements *= d;
                    elements = Int128.Min(elements, long.MaxValue);
                }
                Assert.True(elements * t.ElementSize == t.Length, $"{context}: tensor {t.Name} has {t.Length} bytes for shape [{string.Join(',', t.Shape)}] of {t.ElementSize}");
            }
            previousEnd = t.Offset + t.Length;
        }
    }

    // ----- builders -----

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private static byte[] U32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }

    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    private static string Shape(long[] shape) => string.Join(',', shape);

    /// <summary>A safetensors file: the JSON header padded with spaces to 8 bytes, then each tensor's data in order.</summary>
    private static Sample Safetensors(IEnumerable<(string Name, string DType, long[] Shape, byte[] Data)> tensors, Func<long, long, (long, long)>? offsets = null)
    {
        var json = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\",\"note\":\"{[\\\"x\\\"]}\"}");
        long offset = 0;
        var data = new List<byte>();
        foreach (var (name, dtype, shape, bytes) in tensors)
        {
            var (begin, end) = offsets?.Invoke(offset, offset + bytes.Length) ?? (offset, offset + bytes.Length);
            json.Append(CultureInfo.InvariantCulture, $",\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{Shape(shape)}],\"data_offsets\":[{begin},{end}]}}");
            offset += bytes.Length;
            data.AddRange(bytes);
        }
        json.Append('}');
        while ((json.Length + 8) % 8 != 0)
        {
            json.Append(' ');
        }
        var header = Ascii(json.ToString());
        return new Sample(Concat(U64((ulong)header.Length), header, [.. data]), 8 + header.Length);
    }

    /// <summary>An .npy file as numpy writes it: header padded with spaces to 64 bytes, ending in a newline.</summary>
    private static Sample Npy(string descr, long[] shape, byte[] data, int version = 1)
    {
        string shapeText = shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shapeText}, }}";
        int prefix = version == 1 ? 10 : 12;
        int padding = (64 - ((prefix + dict.Length + 1) % 64)) % 64;
        var header = Ascii(dict + new string(' ', padding) + "\n");
        var start = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)version, 0 };
        if (version == 1)
        {
            start.AddRange(BitConverter.GetBytes((ushort)header.Length));
        }
        else
        {
            start.AddRange(U32((uint)header.Length));
        }
        return new Sample(Concat([.. start], header, data), prefix + header.Length);
    }

    /// <summary>A zip made by .NET: NoCompression entries are stored, others deflated.</summary>
    private static byte[] Zip(params (string Name, byte[] Data, bool Stored)[] entries)
    {
        using var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, data, stored) in entries)
            {
                var entry = zip.CreateEntry(name, stored ? CompressionLevel.NoCompression : CompressionLevel.Optimal);
                using var s = entry.Open();
                s.Write(data);
            }
        }
        return stream.ToArray();
    }

    /// <summary>
    /// A data.pkl like torch.save writes for a dict of tensors: each value is
    /// _rebuild_tensor_v2((persistent id), offset, size, stride, requires_grad, OrderedDict()), the
    /// persistent id being ('storage', torch.&lt;Class&gt;, key, 'cpu', numel). Strings, globals and the
    /// 'storage' and 'cpu' constants are memoized and fetched again, as pickle does. Protocol 2 uses
    /// BINUNICODE, GLOBAL and BINPUT; protocol 4 uses FRAME, SHORT_BINUNICODE, STACK_GLOBAL and MEMOIZE.
    /// </summary>
    private static byte[] TorchPickle(bool protocol4, params (string Key, string Class, long Numel)[] storages)
    {
        var p = new List<byte> { 0x80, (byte)(protocol4 ? 4 : 2) };
        if (protocol4)
        {
            // The frame length is only a buffering hint, so any value will do here.
            p.Add(0x95);
            p.AddRange(U64(0));
        }
        int memoCount = 0;
        var memo = new Dictionary<string, int>();
        int Put()
        {
            if (protocol4)
            {
                p.Add(0x94);
            }
            else
            {
                p.Add((byte)'q');
                p.Add((byte)memoCount);
            }
            return memoCount++;
        }
        void Str(string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            if (protocol4)
            {
                p.Add(0x8c);
                p.Add((byte)b.Length);
            }
            else
            {
                p.Add((byte)'X');
                p.AddRange(U32((uint)b.Length));
            }
            p.AddRange(b);
        }
        void Memoized(string id, Action write)
        {
            if (memo.TryGetValue(id, out int index))
            {
                p.Add((byte)'h');
                p.Add((byte)index);
            }
            else
            {
                write();
                memo[id] = Put();
            }
        }
        void Global(string module, string name) => Memoized(module + "." + name, () =>
        {
            if (protocol4)
            {
                Str(module);
                Put();
                Str(name);
                Put();
                p.Add(0x93);
            }
            else
            {
                p.Add((byte)'c');
                p.AddRange(Ascii(module + "\n" + name + "\n"));
            }
        });
        void Int(long v)
        {
            if (v < 256)
            {
                p.Add((byte)'K');
                p.Add((byte)v);
            }
            else if (v < 65536)
            {
                p.Add((byte)'M');
                p.AddRange(BitConverter.GetBytes((ushort)v));
            }
            else
            {
                p.Add((byte)'J');
                p.AddRange(U32((uint)v));
            }
        }
        p.Add((byte)'}');
        Put();
        p.Add((byte)'(');
        foreach (var (key, cls, numel) in storages)
        {
            Str("t" + key);
            Put();
            Global("torch._utils", "_rebuild_tensor_v2");
            p.Add((byte)'(');
            p.Add((byte)'(');
            Memoized("'storage'", () => Str("storage"));
            Global("torch", cls);
            Str(key);
            Put();
            Memoized("'cpu'", () => Str("cpu"));
            Int(numel);
            p.Add((byte)'t');
            Put();
            p.Add((byte)'Q');
            Int(0);
            Int(numel);
            p.Add(0x85);
            Put();
            Int(1);
            p.Add(0x85);
            Put();
            p.Add(0x89);
            Global("collections", "OrderedDict");
            p.Add((byte)')');
            p.Add((byte)'R');
            Put();
            p.Add((byte)'t');
            Put();
            p.Add((byte)'R');
            Put();
        }
        p.Add((byte)'u');
        p.Add((byte)'.');
        return [.. p];
    }

    private static readonly (string Key, string Class, long Numel, string DType, int Size)[] TorchStorages =
    [
        ("0", "FloatStorage", 12, "F32", 4),
        ("1", "BFloat16Storage", 5, "BF16", 2),
        ("2", "LongStorage", 3, "I64", 8),
        ("3", "FloatStorage", 4, "F32", 4),
        ("4", "BoolStorage", 7, "BOOL", 1),
    ];

    /// <summary>A torch.save-like zip built without torch: data.pkl, one stored entry per storage, a version file.</summary>
    private static (byte[] File, Expected[] Tensors) TorchZip(Random rng, bool protocol4 = false, byte[]? pickle = null)
    {
        pickle ??= TorchPickle(protocol4, TorchStorages.Select(s => (s.Key, s.Class, s.Numel)).ToArray());
        var expected = TorchStorages.Select(s => new Expected("data/" + s.Key, s.DType, [s.Numel], s.Size, Files.RandomBytes(rng, (int)(s.Numel * s.Size)))).ToArray();
        var entries = new List<(string, byte[], bool)> { ("archive/data.pkl", pickle, true) };
        entries.AddRange(expected.Select(e => ("archive/" + e.Name, e.Data, true)));
        entries.Add(("archive/version", Ascii("3\n"), true));
        return (Zip([.. entries]), expected);
    }

    private sealed class GgufWriter
    {
        private readonly List<byte> _b = [];

        public void Bytes(byte[] b) => _b.AddRange(b);

        public void U32(uint v) => _b.AddRange(TensorLayoutTests.U32(v));

        public void U64(ulong v) => _b.AddRange(TensorLayoutTests.U64(v));

        public void Str(string s)
        {
            var b = Encoding.UTF8.GetBytes(s);
            U64((ulong)b.Length);
            _b.AddRange(b);
        }

        public void Pad(int alignment)
        {
            while (_b.Count % alignment != 0)
            {
                _b.Add(0);
            }
        }

        public int Count => _b.Count;

        public byte[] ToArray() => [.. _b];
    }

    /// <summary>
    /// A GGUF v3 file with assorted metadata (strings, string and u32 arrays, scalars) and the given
    /// tensors, each at an aligned offset in the data section.
    /// </summary>
    private static Sample Gguf(uint? alignment, params (string Name, uint Type, long[] Dims, byte[] Data)[] tensors)
    {
        var w = new GgufWriter();
        w.Bytes(Ascii("GGUF"));
        w.U32(3);
        w.U64((ulong)tensors.Length);
        w.U64(alignment is null ? 5UL : 6UL);
        w.Str("general.architecture");
        w.U32(8);
        w.Str("llama");
        w.Str("tokenizer.ggml.tokens");
        w.U32(9);
        w.U32(8);
        w.U64(3);
        w.Str("a");
        w.Str("bb");
        w.Str("ccc");
        w.Str("llama.block_sizes");
        w.U32(9);
        w.U32(4);
        w.U64(3);
        w.U32(1);
        w.U32(2);
        w.U32(3);
        w.Str("llama.rope.freq_base");
        w.U32(6);
        w.Bytes(BitConverter.GetBytes(10000f));
        w.Str("general.flag");
        w.U32(7);
        w.Bytes([1]);
        if (alignment is { } a)
        {
            w.Str("general.alignment");
            w.U32(4);
            w.U32(a);
        }
        int align = (int)(alignment ?? 32);
        long offset = 0;
        foreach (var (name, type, dims, data) in tensors)
        {
            w.Str(name);
            w.U32((uint)dims.Length);
            foreach (long d in dims)
            {
                w.U64((ulong)d);
            }
            w.U32(type);
            w.U64((ulong)offset);
            offset += (data.Length + align - 1) / align * align;
        }
        w.Pad(align);
        int headerEnd = w.Count;
        foreach (var (_, _, _, data) in tensors)
        {
            w.Bytes(data);
            w.Pad(align);
        }
        return new Sample(w.ToArray(), headerEnd);
    }

    private static (string, uint, long[], byte[])[] GgufTensors(Random rng) =>
    [
        ("token_embd.weight", 0, [4, 3], Files.RandomBytes(rng, 48)),
        ("output_norm.weight", 1, [8], Files.RandomBytes(rng, 16)),
        ("blk.0.attn_q.weight", 8, [64], Files.RandomBytes(rng, 68)),
        ("blk.0.ffn_up.weight", 12, [256, 2], Files.RandomBytes(rng, 288)),
        ("blk.0.ffn_norm.weight", 30, [3], Files.RandomBytes(rng, 6)),
    ];

    /// <summary>Protocol buffer wire format, enough to write an ONNX model by hand.</summary>
    private sealed class Proto
    {
        private readonly List<byte> _b = [];

        public Proto Varint(int field, ulong value) => Tag(field, 0).Raw(value);

        public Proto Bytes(int field, byte[] payload)
        {
            Tag(field, 2).Raw((ulong)payload.Length);
            _b.AddRange(payload);
            return this;
        }

        public Proto Bytes(int field, string text) => Bytes(field, Encoding.UTF8.GetBytes(text));

        public Proto Message(int field, Proto message) => Bytes(field, message.ToArray());

        public Proto Packed(int field, params long[] values)
        {
            var inner = new Proto();
            foreach (long v in values)
            {
                inner.Raw((ulong)v);
            }
            return Bytes(field, inner.ToArray());
        }

        public Proto Fixed32(int field, uint value)
        {
            Tag(field, 5);
            _b.AddRange(U32(value));
            return this;
        }

        public byte[] ToArray() => [.. _b];

        private Proto Tag(int field, int wire) => Raw((ulong)((field << 3) | wire));

        private Proto Raw(ulong v)
        {
            while (v >= 0x80)
            {
                _b.Add((byte)(v | 0x80));
                v >>= 7;
            }
            _b.Add((byte)v);
            return this;
        }
    }

    /// <summary>
    /// An ONNX model: ir_version, producer, opset, and a graph with a node, raw_data initializers
    /// (packed and unpacked dims, name before and after raw_data) and a typed initializer without raw_data.
    /// </summary>
    private static (byte[] File, Expected[] Tensors) Onnx(Random rng, bool withIrVersion = true)
    {
        var w = Files.RandomBytes(rng, 48);
        var idx = Files.RandomBytes(rng, 40);
        var half = Files.RandomBytes(rng, 12);
        var graph = new Proto()
            .Message(1, new Proto().Bytes(1, "x").Bytes(1, "W").Bytes(2, "y").Bytes(4, "MatMul"))
            .Bytes(2, "main")
            .Message(5, new Proto().Packed(1, 3, 4).Varint(2, 1).Bytes(8, "W").Bytes(9, w))
            .Message(5, new Proto().Varint(1, 5).Varint(2, 7).Bytes(9, idx).Bytes(8, "idx").Fixed32(99, 7))
            .Message(5, new Proto().Packed(1, 2).Varint(2, 1).Bytes(8, "typed").Bytes(4, new byte[8]))
            .Message(5, new Proto().Varint(1, 2).Varint(1, 3).Varint(2, 10).Bytes(8, "h").Bytes(9, half))
            .Message(11, new Proto().Bytes(1, "x"));
        var model = new Proto();
        if (withIrVersion)
        {
            model.Varint(1, 8);
        }
        model.Bytes(2, "kintsugi-test").Message(8, new Proto().Bytes(1, "").Varint(2, 17)).Message(7, graph);
        return (model.ToArray(),
        [
            new("W", "F32", [3, 4], 4, w),
            new("idx", "I64", [5], 8, idx),
            new("h", "F16", [2, 3], 2, half),
        ]);
    }

    /// <summary>
    /// An initializer whose bytes live in another file: dims, data_type, name, the external_data entries
    /// in the given order, and data_location EXTERNAL when <paramref name="markedExternal"/>.
    /// </summary>
    private static Proto ExternalInitializer(string name, ulong dataType, long[] dims, bool markedExternal, params (string Key, string Value)[] entries)
    {
        var tensor = new Proto().Packed(1, dims).Varint(2, dataType).Bytes(8, name);
        foreach (var (key, value) in entries)
        {
            tensor.Message(13, new Proto().Bytes(1, key).Bytes(2, value));
        }
        return markedExternal ? tensor.Varint(14, 1) : tensor;
    }

    /// <summary>An ONNX model: ir_version, producer, opset and a graph with a node, the given initializers and an output.</summary>
    private static byte[] OnnxModel(params Proto[] initializers)
    {
        var graph = new Proto().Message(1, new Proto().Bytes(1, "x").Bytes(1, "W").Bytes(2, "y").Bytes(4, "MatMul")).Bytes(2, "main");
        foreach (var initializer in initializers)
        {
            graph.Message(5, initializer);
        }
        graph.Message(11, new Proto().Bytes(1, "x"));
        return new Proto().Varint(1, 8).Bytes(2, "kintsugi-test").Message(8, new Proto().Bytes(1, "").Varint(2, 17)).Message(7, graph).ToArray();
    }

    /// <summary>
    /// The backup engine splits an ONNX model's external data file by the tensors the model places
    /// in it, stores the next version of a tensor as a delta, and restores both bit-exact.
    /// </summary>
    [Fact]
    public async Task External_data_of_an_onnx_model_is_backed_up_by_tensor_and_restored_bit_exact()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        const int count = 400_000; // 1.6 MB of fp32: two pieces
        var model = OnnxModel(ExternalInitializer("decoder.weight", 1, [count], true, ("location", "decoder.bin"), ("offset", "4096"), ("length", (count * 4).ToString(CultureInfo.InvariantCulture))));
        File.WriteAllBytes(Path.Combine(_box.Source, "model.onnx"), model);
        var weights = new byte[4096 + count * 4];
        for (int i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(weights.AsSpan(4096 + i * 4), (float)(rng.NextDouble() - 0.5) * 0.04f);
        }
        string data = Path.Combine(_box.Source, "decoder.bin");
        File.WriteAllBytes(data, weights);
        var first = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        var firstBytes = (byte[])weights.Clone();
        for (int i = 0; i < 2000; i++)
        {
            weights[4096 + rng.Next(count) * 4] ^= 1;
        }
        File.WriteAllBytes(data, weights);
        var second = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;

        var stats = await new StatsEngine(repo).RunAsync(second);
        Assert.Equal("onnx-external", stats.Files.Single(f => f.Path.EndsWith("/decoder.bin", StringComparison.Ordinal)).Layout);
        Assert.Contains(stats.Codecs, c => c.Codec.StartsWith("delta ", StringComparison.Ordinal));
        foreach (var (snap, bytes) in new[] { (first, firstBytes), (second, weights) })
        {
            var (target, result) = await _box.RestoreAsync(repo, snap, snap.ShortId);
            Assert.Empty(result.Issues);
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Sandbox.Restored(target, data))), $"decoder.bin of {snap.ShortId} is not restored bit-exact");
        }
    }

    /// <summary>
    /// A model with two external initializers in weights.bin (the one at 4096 first; the one at 0 without
    /// "length"), one in other.bin marked by its "location" entry alone (no data_location, keys out of
    /// order, an extra "checksum"), a raw_data initializer and a typed one. Returns the raw_data bytes too.
    /// </summary>
    private static (byte[] File, byte[] Raw) OnnxWithExternalData(Random rng)
    {
        var raw = Files.RandomBytes(rng, 16);
        var file = OnnxModel(
            ExternalInitializer("layer.1.weight", 10, [2048], true, ("location", "weights.bin"), ("offset", "4096"), ("length", "4096")),
            ExternalInitializer("layer.0.weight", 1, [32, 32], true, ("location", "weights.bin"), ("offset", "0")),
            new Proto().Packed(1, 4).Varint(2, 1).Bytes(8, "bias").Bytes(9, raw),
            ExternalInitializer("embedding", 7, [3, 5], false, ("checksum", "abc"), ("length", "120"), ("offset", "128"), ("location", "other.bin")),
            new Proto().Packed(1, 2).Varint(2, 1).Bytes(8, "typed").Bytes(4, new byte[8]));
        return (file, raw);
    }

    private IReadOnlyDictionary<string, TensorLayout> ReadExternal(byte[] model)
    {
        using var handle = File.OpenHandle(WriteFile("model.onnx", model));
        return OnnxReader.ReadExternalLayouts(handle, RandomAccess.GetLength(handle));
    }

    /// <summary>One external file's layout lists exactly these tensors, in this (offset) order.</summary>
    private static void AssertExternal(TensorLayout layout, params (string Name, string DType, long[] Shape, int ElementSize, long Offset, long Length)[] expected)
    {
        Assert.Equal("onnx-external", layout.Format);
        Assert.Equal(expected.Select(e => e.Name), layout.Tensors.Select(t => t.Name));
        foreach (var (e, t) in expected.Zip(layout.Tensors))
        {
            Assert.Equal(e.DType, t.DType);
            Assert.Equal(e.Shape, t.Shape);
            Assert.Equal(e.ElementSize, t.ElementSize);
            Assert.Equal(e.Offset, t.Offset);
            Assert.Equal(e.Length, t.Length);
        }
    }

    /// <summary>
    /// What every result of ReadExternalLayouts must satisfy, whatever the model: plain file names only,
    /// and per file tensors sorted, non-overlapping, non-empty, at non-negative offsets, with lengths
    /// consistent with their shapes. (Whether they fit the external file is the caller's check.)
    /// </summary>
    private static void AssertExternalInvariants(IReadOnlyDictionary<string, TensorLayout> layouts, string context)
    {
        foreach (var (location, layout) in layouts)
        {
            Assert.True(
                location.Length > 0 && location != "." && !location.Contains("..", StringComparison.Ordinal)
                && location.IndexOfAny(['/', '\\', '\0']) < 0 && !Path.IsPathRooted(location),
                $"{context}: location '{location}' is not a plain file name");
            Assert.True(layout.Format == "onnx-external", $"{context}: {location} has format {layout.Format}");
            Assert.True(layout.Tensors.Count > 0, $"{context}: {location} has a layout without tensors");
            long previousEnd = 0;
            foreach (var t in layout.Tensors)
            {
                string where = $"{context}: {location} tensor {t.Name} [{t.Offset}, +{t.Length})";
                Assert.True(t.Name is not null && !string.IsNullOrEmpty(t.DType), $"{where} has no name or dtype");
                Assert.True(t.Offset >= previousEnd, $"{where} overlaps or precedes the previous one ending at {previousEnd}");
                Assert.True(t.Length > 0 && t.Length <= long.MaxValue - t.Offset, $"{where} is empty or ends past long.MaxValue");
                Assert.True(t.ElementSize is 0 or 1 or 2 or 4 or 8, $"{where} has element size {t.ElementSize}");
                Assert.True(t.Shape.All(d => d >= 0), $"{where} has a negative dimension");
                if (t.ElementSize > 0)
                {
                    Int128 elements = 1;
                    foreach (long d in t.Shape)
                    {
                        elements *= d;
                        elements = Int128.Min(elements, long.MaxValue);
                    }
                    Assert.True(elements * t.ElementSize == t.Length, $"{where} disagrees with shape [{string.Join(',', t.Shape)}] of {t.ElementSize}");
                }
                previousEnd = t.Offset + t.Length;
            }
        }
    }

    /// <summary>A valid file of each format, built without Python, for the mutation tests.</summary>
    private static Sample SampleOf(string format, Random rng)
    {
        switch (format)
        {
            case "safetensors":
                return Safetensors(
                [
                    ("a.weight", "F32", [4, 3], Files.RandomBytes(rng, 48)),
                    ("a.bias", "BF16", [5], Files.RandomBytes(rng, 10)),
                    ("steps", "I64", [], Files.RandomBytes(rng, 8)),
                ]);
            case "npy":
                return Npy("<f4", [6, 5], Files.RandomBytes(rng, 120));
            case "npz":
                {
                    var file = Zip(("x.npy", Npy("<f8", [4], Files.RandomBytes(rng, 32)).Bytes, true), ("y.npy", Npy("<i2", [2, 3], Files.RandomBytes(rng, 12)).Bytes, true));
                    return new Sample(file, file.Length);
                }
            case "pytorch-zip":
                {
                    var (file, _) = TorchZip(rng);
                    return new Sample(file, file.Length);
                }
            case "gguf":
                return Gguf(64, GgufTensors(rng));
            case "onnx":
                {
                    var (file, _) = Onnx(rng);
                    return new Sample(file, file.Length);
                }
            default:
                throw new ArgumentException(format);
        }
    }

    // ----- well-formed files -----

    [Fact]
    public void Safetensors_lists_each_tensor_with_its_dtype_shape_and_bytes()
    {
        var rng = new Random(TestSeed.Get(output));
        var tensors = new (string, string, long[], byte[])[]
        {
            ("model.embed.weight", "F32", [4, 3], Files.RandomBytes(rng, 48)),
            ("model.norm.bias", "BF16", [5], Files.RandomBytes(rng, 10)),
            ("empty", "F16", [0, 7], []),
            ("positions", "I64", [2, 2], Files.RandomBytes(rng, 32)),
            ("mask", "BOOL", [3], Files.RandomBytes(rng, 3)),
            ("fp8", "F8_E4M3", [2, 2], Files.RandomBytes(rng, 4)),
            ("scalar", "F64", [], Files.RandomBytes(rng, 8)),
            ("future", "F4", [6], Files.RandomBytes(rng, 3)),
        };
        var sample = Safetensors(tensors);

        var layout = ReadBytes(sample.Bytes, "model.bin");

        AssertLayout(sample.Bytes, layout, "safetensors",
            new("model.embed.weight", "F32", [4, 3], 4, tensors[0].Item4),
            new("model.norm.bias", "BF16", [5], 2, tensors[1].Item4),
            new("positions", "I64", [2, 2], 8, tensors[3].Item4),
            new("mask", "BOOL", [3], 1, tensors[4].Item4),
            new("fp8", "F8_E4M3", [2, 2], 1, tensors[5].Item4),
            new("scalar", "F64", [], 8, tensors[6].Item4),
            // A dtype the reader does not know is still one tensor, with its length unchecked.
            new("future", "F4", [6], 0, tensors[7].Item4));
        Assert.Equal(layout!.Tensors.OrderBy(t => t.Offset).Select(t => t.Name), layout.Tensors.Select(t => t.Name));
    }

    [Fact]
    public void Safetensors_that_lie_about_offsets_or_lengths_are_refused()
    {
        var rng = new Random(TestSeed.Get(output));
        var tensors = new (string, string, long[], byte[])[]
        {
            ("a", "F32", [4], Files.RandomBytes(rng, 16)),
            ("b", "F32", [4], Files.RandomBytes(rng, 16)),
        };
        // Overlapping tensors.
        Assert.Null(ReadBytes(Safetensors(tensors, (b, e) => (b / 2, e / 2 + 8)).Bytes));
        // A tensor past the end of the file.
        Assert.Null(ReadBytes(Safetensors(tensors, (b, e) => (b + 100, e + 100)).Bytes));
        // A length that does not match its shape.
        Assert.Null(ReadBytes(Safetensors([("a", "F32", [5], Files.RandomBytes(rng, 16))]).Bytes));
        // A header length far larger than the file, and one over the 100 MiB cap.
        var good = Safetensors(tensors).Bytes;
        foreach (ulong lie in new[] { 1UL << 40, ulong.MaxValue, (ulong)good.Length, 101UL << 20 })
        {
            var bad = (byte[])good.Clone();
            BinaryPrimitives.WriteUInt64LittleEndian(bad, lie);
            Assert.Null(ReadBytes(bad));
        }
        // A header that is not JSON, and JSON that is not a header.
        Assert.Null(ReadBytes(Concat(U64(8), Ascii("{\"a\":[1,"), new byte[16])));
        Assert.Null(ReadBytes(Concat(U64(8), Ascii("{\"a\":1} "), new byte[16])));
        Assert.Null(ReadBytes(Concat(U64(2), Ascii("{}"), new byte[16])));
    }

    [Fact]
    public void Npy_lists_its_array_for_versions_1_and_2()
    {
        var rng = new Random(TestSeed.Get(output));
        var data = Files.RandomBytes(rng, 120);
        var v1 = Npy("<f4", [6, 5], data).Bytes;
        AssertLayout(v1, ReadBytes(v1), "npy", new Expected("array", "F32", [6, 5], 4, data));
        var v2 = Npy("<i8", [15], data, version: 2).Bytes;
        AssertLayout(v2, ReadBytes(v2), "npy", new Expected("array", "I64", [15], 8, data));
        var big = Npy(">u2", [3, 4, 5], data).Bytes;
        AssertLayout(big, ReadBytes(big), "npy", new Expected("array", "U16", [3, 4, 5], 2, data));
        var bools = Npy("|b1", [120], data).Bytes;
        AssertLayout(bools, ReadBytes(bools), "npy", new Expected("array", "BOOL", [120], 1, data));
    }

    [Fact]
    public void Npy_that_is_not_plain_numbers_or_is_truncated_is_refused()
    {
        var rng = new Random(TestSeed.Get(output));
        var data = Files.RandomBytes(rng, 64);
        Assert.Null(ReadBytes(Npy("|O", [8], data).Bytes));
        Assert.Null(ReadBytes(Npy("<c8", [8], data).Bytes));
        Assert.Null(ReadBytes(Npy("<U4", [4], data).Bytes));
        var structured = Npy("<f4", [8], data).Bytes;
        int headerLength = BinaryPrimitives.ReadUInt16LittleEndian(structured.AsSpan(8));
        var text = Encoding.ASCII.GetString(structured, 10, headerLength).Replace("'<f4'", "[('a', '<f4')]", StringComparison.Ordinal);
        Assert.Null(ReadBytes(Concat(structured[..8], BitConverter.GetBytes((ushort)text.Length), Ascii(text), data)));
        // Data shorter than the shape says.
        Assert.Null(ReadBytes(Npy("<f4", [8, 3], data).Bytes));
        // Version 9 does not exist.
        var v9 = Npy("<f4", [16], data).Bytes;
        v9[6] = 9;
        Assert.Null(ReadBytes(v9));
    }

    [Fact]
    public void Npz_lists_its_stored_arrays_by_member_name_and_skips_deflated_and_object_ones()
    {
        var rng = new Random(TestSeed.Get(output));
        var x = Files.RandomBytes(rng, 32);
        var y = Files.RandomBytes(rng, 12);
        var z = Files.RandomBytes(rng, 4000);
        var file = Zip(
            ("x.npy", Npy("<f8", [4], x).Bytes, true),
            ("dir/y.npy", Npy("<i2", [2, 3], y).Bytes, true),
            ("z.npy", Npy("<f4", [1000], z).Bytes, false),
            ("objects.npy", Npy("|O", [2], new byte[16]).Bytes, true),
            ("readme.txt", Ascii("not an array"), true));

        AssertLayout(file, ReadBytes(file), "npz",
            new Expected("x", "F64", [4], 8, x),
            new Expected("dir/y", "I16", [2, 3], 2, y));

        // savez_compressed: every member deflated, so nothing to list.
        var compressed = Zip(("x.npy", Npy("<f8", [4], x).Bytes, false), ("y.npy", Npy("<i2", [2, 3], y).Bytes, false));
        Assert.Null(ReadBytes(compressed));
        // A zip that holds no arrays at all is no container.
        Assert.Null(ReadBytes(Zip(("hello.txt", Ascii("hello"), true))));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PyTorch_zip_storages_get_their_dtype_from_the_pickle(bool protocol4)
    {
        var rng = new Random(TestSeed.Get(output));
        var (file, expected) = TorchZip(rng, protocol4);
        AssertLayout(file, ReadBytes(file, "model.pt"), "pytorch-zip", expected);
    }

    [Fact]
    public void PyTorch_zip_with_an_unfollowed_pickle_lists_storages_as_unknown()
    {
        var rng = new Random(TestSeed.Get(output));
        var pickle = TorchPickle(false, TorchStorages.Select(s => (s.Key, s.Class, s.Numel)).ToArray());
        // EXT1 (0x82) in place of the final SETITEMS: the walker stops and knows nothing.
        pickle[^2] = 0x82;
        var (file, expected) = TorchZip(rng, pickle: pickle);
        AssertLayout(file, ReadBytes(file), "pytorch-zip", expected.Select(e => e with { DType = "UNKNOWN", Shape = [], ElementSize = 0 }).ToArray());
    }

    [Fact]
    public void PyTorch_zip_whose_storage_size_disagrees_with_the_pickle_is_refused()
    {
        var rng = new Random(TestSeed.Get(output));
        var pickle = TorchPickle(false, [("0", "FloatStorage", 10)]);
        var file = Zip(("archive/data.pkl", pickle, true), ("archive/data/0", Files.RandomBytes(rng, 44), true));
        Assert.Null(ReadBytes(file));
    }

    [Fact]
    public void PyTorch_file_saved_by_torch_lists_its_storages_with_their_dtypes()
    {
        string dir = Path.Combine(_box.Root, "torch");
        Directory.CreateDirectory(dir);
        RunPython("torch", dir, """
            import sys, torch
            out = sys.argv[1]
            torch.manual_seed(1)
            d = {'w': torch.randn(300, 200), 'b': torch.randn(5).to(torch.bfloat16), 'i': torch.arange(10)}
            torch.save(d, out + '/model.pt')
            for k, t in d.items():
                raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
                open(out + '/' + k + '.bin', 'wb').write(raw.numpy().tobytes())
            """);
        string model = Path.Combine(dir, "model.pt");
        var file = File.ReadAllBytes(model);

        var layout = Read(model);

        Assert.NotNull(layout);
        AssertInvariants(layout, file.Length, "torch.save file");
        Assert.Equal("pytorch-zip", layout.Format);
        Assert.Equal(3, layout.Tensors.Count);
        foreach (var (key, dtype, numel, size) in new[] { ("w", "F32", 60000L, 4), ("b", "BF16", 5L, 2), ("i", "I64", 10L, 8) })
        {
            var t = Assert.Single(layout.Tensors, t => t.DType == dtype);
            Assert.StartsWith("data/", t.Name, StringComparison.Ordinal);
            Assert.Equal(new[] { numel }, t.Shape);
            Assert.Equal(size, t.ElementSize);
            Assert.True(file.AsSpan((int)t.Offset, (int)t.Length).SequenceEqual(File.ReadAllBytes(Path.Combine(dir, key + ".bin"))), $"{key}: bytes differ");
        }
    }

    [Fact]
    public void NumPy_files_saved_by_numpy_are_read()
    {
        string dir = Path.Combine(_box.Root, "numpy");
        Directory.CreateDirectory(dir);
        RunPython("numpy", dir, """
            import sys, numpy as np
            out = sys.argv[1]
            r = np.random.default_rng(1)
            a = r.standard_normal((7, 3)).astype(np.float32)
            np.save(out + '/a.npy', a)
            open(out + '/a.bin', 'wb').write(a.tobytes())
            x = r.standard_normal(4)
            y = np.arange(6, dtype='>i2').reshape(2, 3)
            np.savez(out + '/b.npz', x=x, y=y, o=np.array([1, 'a'], dtype=object))
            open(out + '/x.bin', 'wb').write(x.tobytes())
            open(out + '/y.bin', 'wb').write(y.tobytes())
            np.savez_compressed(out + '/c.npz', x=x)
            """);
        var npy = File.ReadAllBytes(Path.Combine(dir, "a.npy"));
        AssertLayout(npy, Read(Path.Combine(dir, "a.npy")), "npy", new Expected("array", "F32", [7, 3], 4, File.ReadAllBytes(Path.Combine(dir, "a.bin"))));
        var npz = File.ReadAllBytes(Path.Combine(dir, "b.npz"));
        AssertLayout(npz, Read(Path.Combine(dir, "b.npz")), "npz",
            new Expected("x", "F64", [4], 8, File.ReadAllBytes(Path.Combine(dir, "x.bin"))),
            new Expected("y", "I16", [2, 3], 2, File.ReadAllBytes(Path.Combine(dir, "y.bin"))));
        Assert.Null(Read(Path.Combine(dir, "c.npz")));
    }

    [Fact]
    public void Gguf_lists_plain_and_quantised_tensors_after_the_aligned_header()
    {
        var rng = new Random(TestSeed.Get(output));
        foreach (uint? alignment in new uint?[] { null, 64, 8 })
        {
            var tensors = GgufTensors(rng);
            var sample = Gguf(alignment, tensors);
            var layout = ReadBytes(sample.Bytes);
            AssertLayout(sample.Bytes, layout, "gguf",
                new Expected("token_embd.weight", "F32", [4, 3], 4, tensors[0].Item4),
                new Expected("output_norm.weight", "F16", [8], 2, tensors[1].Item4),
                new Expected("blk.0.attn_q.weight", "Q8_0", [64], 0, tensors[2].Item4),
                new Expected("blk.0.ffn_up.weight", "Q4_K", [256, 2], 0, tensors[3].Item4),
                new Expected("blk.0.ffn_norm.weight", "BF16", [3], 2, tensors[4].Item4));
            Assert.All(layout!.Tensors, t => Assert.Equal(0, t.Offset % (alignment ?? 32)));
        }
    }

    [Fact]
    public void Gguf_with_an_unknown_type_or_version_is_refused()
    {
        var rng = new Random(TestSeed.Get(output));
        Assert.Null(ReadBytes(Gguf(null, ("x", 31, [4], Files.RandomBytes(rng, 16))).Bytes));
        // Q4_0 needs whole blocks of 32 elements.
        Assert.Null(ReadBytes(Gguf(null, ("x", 2, [40], Files.RandomBytes(rng, 36))).Bytes));
        var v1 = Gguf(null, ("x", 0, [4], Files.RandomBytes(rng, 16))).Bytes;
        v1[4] = 1;
        Assert.Null(ReadBytes(v1));
        // Alignment must be a power of two.
        Assert.Null(ReadBytes(Gguf(24, ("x", 0, [4], Files.RandomBytes(rng, 16))).Bytes));
    }

    [Fact]
    public void Onnx_lists_raw_data_initializers_and_skips_typed_ones()
    {
        var rng = new Random(TestSeed.Get(output));
        var (file, expected) = Onnx(rng);
        AssertLayout(file, ReadBytes(file, "model.onnx"), "onnx", expected);
    }

    [Fact]
    public void Onnx_needs_an_ir_version_a_graph_and_a_raw_data_initializer()
    {
        var rng = new Random(TestSeed.Get(output));
        var (noIrVersion, _) = Onnx(rng, withIrVersion: false);
        Assert.Null(ReadBytes(noIrVersion));
        var onlyTyped = new Proto().Varint(1, 8).Message(7, new Proto().Message(5, new Proto().Packed(1, 2).Varint(2, 1).Bytes(8, "t").Bytes(4, new byte[8]))).ToArray();
        Assert.Null(ReadBytes(onlyTyped));
        var noGraph = new Proto().Varint(1, 8).Bytes(2, "producer").ToArray();
        Assert.Null(ReadBytes(noGraph));
        var (good, _) = Onnx(rng);
        // A trailing byte that is no field, a truncated last field, a group.
        Assert.Null(ReadBytes(Concat(good, [0])));
        Assert.Null(ReadBytes(good[..^1]));
        Assert.Null(ReadBytes(Concat(good, [0x0B, 0x0C])));
        // raw_data whose length disagrees with dims and data_type.
        var wrong = new Proto().Varint(1, 8).Message(7, new Proto().Message(5, new Proto().Packed(1, 2).Varint(2, 1).Bytes(9, new byte[12]))).ToArray();
        Assert.Null(ReadBytes(wrong));
    }

    [Fact]
    public void Onnx_external_initializers_are_listed_per_location_with_offsets_and_lengths()
    {
        var rng = new Random(TestSeed.Get(output));
        var (file, raw) = OnnxWithExternalData(rng);

        var layouts = ReadExternal(file);

        Assert.Equal(["other.bin", "weights.bin"], layouts.Keys.Order(StringComparer.Ordinal));
        AssertExternal(layouts["weights.bin"],
            ("layer.0.weight", "F32", [32, 32], 4, 0, 4096),
            ("layer.1.weight", "F16", [2048], 2, 4096, 4096));
        AssertExternal(layouts["other.bin"], ("embedding", "I64", [3, 5], 8, 128, 120));
        AssertExternalInvariants(layouts, "well-formed model");
        // TryRead still sees only the raw_data initializer, and a model with no raw_data is still no container.
        AssertLayout(file, ReadBytes(file, "model.onnx"), "onnx", new Expected("bias", "F32", [4], 4, raw));
        var allExternal = OnnxModel(ExternalInitializer("w", 1, [4], true, ("location", "w.bin")));
        Assert.Null(ReadBytes(allExternal));
        AssertExternal(ReadExternal(allExternal)["w.bin"], ("w", "F32", [4], 4, 0, 16));
        // A model with no external initializer has no external layouts.
        var (plain, _) = Onnx(rng);
        Assert.Empty(ReadExternal(plain));
    }

    [Fact]
    public void Onnx_external_locations_outside_the_model_folder_are_not_listed()
    {
        string[] outside = ["../x", "/etc/passwd", "sub/x", "sub\\x", "..", ".", "", "x/../y", "..\\x", "C:\\x", "C:x", "a\0b", "/"];
        var initializers = outside.Select((location, i) => ExternalInitializer("t" + i, 1, [16], true, ("location", location), ("offset", (i * 64).ToString(CultureInfo.InvariantCulture)))).ToList();
        initializers.Add(ExternalInitializer("ok", 1, [16], true, ("location", "ok.bin")));
        // EXTERNAL with nowhere to look, and a location given twice (which one a loader takes is anyone's guess).
        initializers.Add(ExternalInitializer("nowhere", 1, [16], true, ("offset", "64")));
        initializers.Add(ExternalInitializer("twice", 1, [16], true, ("location", "ok.bin"), ("offset", "64"), ("location", "../secret")));

        var layouts = ReadExternal(OnnxModel([.. initializers]));

        Assert.Equal(["ok.bin"], layouts.Keys);
        AssertExternal(layouts["ok.bin"], ("ok", "F32", [16], 4, 0, 64));
    }

    [Fact]
    public void Onnx_external_tensors_that_overlap_or_lie_drop_their_location()
    {
        var layouts = ReadExternal(OnnxModel(
            // Overlapping, and the same range twice.
            ExternalInitializer("a", 1, [1024], true, ("location", "overlap.bin")),
            ExternalInitializer("b", 1, [1024], true, ("location", "overlap.bin"), ("offset", "2048")),
            ExternalInitializer("a", 1, [16], true, ("location", "same.bin"), ("offset", "64")),
            ExternalInitializer("b", 2, [64], true, ("location", "same.bin"), ("offset", "64")),
            // A length that disagrees with dims and data_type poisons the whole file, valid neighbours too.
            ExternalInitializer("fine", 1, [32], true, ("location", "short.bin")),
            ExternalInitializer("short", 1, [32], true, ("location", "short.bin"), ("offset", "128"), ("length", "100")),
            // Offsets and lengths that are no plain decimal, or that run past long.MaxValue.
            ExternalInitializer("s", 1, [4], true, ("location", "sign.bin"), ("offset", "-16")),
            ExternalInitializer("h", 1, [4], true, ("location", "hex.bin"), ("offset", "0x10")),
            ExternalInitializer("p", 1, [4], true, ("location", "space.bin"), ("length", " 16")),
            ExternalInitializer("e", 1, [4], true, ("location", "empty.bin"), ("offset", "")),
            ExternalInitializer("o", 1, [4], true, ("location", "overflow.bin"), ("offset", "99999999999999999999")),
            ExternalInitializer("m", 1, [4], true, ("location", "end.bin"), ("offset", "9223372036854775800")),
            ExternalInitializer("d", 1, [1L << 40, 1L << 40], true, ("location", "dims.bin")),
            // What stays: two adjacent tensors, an empty one (not listed), a type of unknown size with a
            // length (listed, unchecked) and one without (left out, the file kept).
            ExternalInitializer("second", 1, [4], true, ("location", "good.bin"), ("offset", "16"), ("length", "16")),
            ExternalInitializer("first", 6, [2, 2], true, ("location", "good.bin")),
            ExternalInitializer("empty", 1, [0, 4], true, ("location", "good.bin"), ("offset", "8")),
            ExternalInitializer("strings", 8, [2], true, ("location", "good.bin"), ("offset", "32"), ("length", "10")),
            ExternalInitializer("unsized", 8, [2], true, ("location", "good.bin"), ("offset", "64"))));

        Assert.Equal(["good.bin"], layouts.Keys);
        AssertExternal(layouts["good.bin"],
            ("first", "I32", [2, 2], 4, 0, 16),
            ("second", "F32", [4], 4, 16, 16),
            ("strings", "UNKNOWN", [2], 0, 32, 10));
    }

    [Fact]
    public void Onnx_external_layouts_of_what_is_no_well_formed_model_are_empty()
    {
        var rng = new Random(TestSeed.Get(output));
        var (good, raw) = OnnxWithExternalData(rng);
        Assert.Empty(ReadExternal([]));
        Assert.Empty(ReadExternal(Files.RandomBytes(rng, 5000)));
        Assert.Empty(ReadExternal(good[..^1]));
        Assert.Empty(ReadExternal(Concat(good, [0x0B, 0x0C])));
        Assert.Empty(ReadExternal(new Proto().Varint(1, 8).Bytes(2, "no graph").ToArray()));
        var external = ExternalInitializer("w", 1, [4], true, ("location", "w.bin"));
        Assert.Empty(ReadExternal(new Proto().Message(7, new Proto().Message(5, external)).ToArray()));
        // A group inside an external_data entry, an entry that is no message, a location that is not UTF-8.
        Assert.Empty(ReadExternal(OnnxModel(new Proto().Packed(1, 4).Varint(2, 1).Bytes(8, "w").Bytes(13, [0x0B, 0x0C]).Varint(14, 1))));
        Assert.Empty(ReadExternal(OnnxModel(new Proto().Packed(1, 4).Varint(2, 1).Bytes(8, "w").Varint(13, 5).Varint(14, 1))));
        Assert.Empty(ReadExternal(OnnxModel(new Proto().Packed(1, 4).Varint(2, 1).Bytes(8, "w").Message(13, new Proto().Bytes(1, "location").Bytes(2, [0x77, 0xFF, 0x2E])).Varint(14, 1))));
        // TryRead does not read external_data, so what ReadExternalLayouts refuses there it still accepts.
        var odd = OnnxModel(new Proto().Packed(1, 4).Varint(2, 1).Bytes(8, "bias").Bytes(9, raw).Varint(13, 5));
        AssertLayout(odd, ReadBytes(odd, "model.onnx"), "onnx", new Expected("bias", "F32", [4], 4, raw));
        Assert.Empty(ReadExternal(odd));
    }

    // ----- what is not a container -----

    [Fact]
    public void Empty_tiny_random_and_text_files_are_no_container()
    {
        var rng = new Random(TestSeed.Get(output));
        Assert.Null(ReadBytes([]));
        Assert.Null(ReadBytes([0x93]));
        Assert.Null(ReadBytes(Ascii("GGUF")));
        Assert.Null(ReadBytes(Ascii("PK\u0003\u0004")));
        Assert.Null(ReadBytes(Ascii("# Kintsugi\n\nA backup tool for AI checkpoints.\n\n- fast\n- safe\n")));
        Assert.Null(ReadBytes(Ascii("{\"dtype\": \"F32\", \"shape\": [1, 2], \"data_offsets\": [0, 8]}\n")));
        Assert.Null(ReadBytes(Ascii("import torch\nprint(torch.randn(3))\n")));
        Assert.Null(ReadBytes(Files.CompressibleBytes(rng, 100_000)));
        byte[][] magics = [[], Ascii("GGUF"), NpyMagic, Ascii("PK\u0003\u0004"), Ascii("PK\u0005\u0006"), [8, 0, 0, 0, 0, 0, 0, 0, (byte)'{'], [0x08, 0x07]];
        for (int i = 0; i < 300; i++)
        {
            var magic = magics[i % magics.Length];
            var bytes = Concat(magic, Files.RandomBytes(rng, rng.Next(0, i % 10 == 0 ? 70_000 : 2_000)));
            Assert.Null(ReadBytes(bytes));
        }
    }

    private static byte[] NpyMagic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    // ----- malformed input -----

    public static TheoryData<string> FormatNames => new(Formats);

    /// <summary>
    /// Random corruption of a valid file (bit flips and overwrites mostly in the header, truncation,
    /// appended garbage, huge length fields) never makes TryRead throw, and whatever layout it still
    /// returns is sorted, non-overlapping, inside the file and consistent with its shapes.
    /// </summary>
    [Theory]
    [MemberData(nameof(FormatNames))]
    public void Corrupted_files_never_throw_and_any_layout_keeps_the_invariants(string format)
    {
        const int iterations = 400;
        int seed = TestSeed.Get(output);
        var rng = new Random(seed);
        var sample = SampleOf(format, rng);
        Assert.Equal(format, ReadBytes(sample.Bytes)?.Format);
        string path = Path.Combine(_box.Root, "mutated.bin");
        int stillRead = 0;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++)
        {
            var (mutated, what) = Mutate(rng, sample);
            string context = $"{format}, seed {seed} (KINTSUGI_TEST_SEED={seed}), iteration {i}: {what}";
            File.WriteAllBytes(path, mutated);
            TensorLayout? layout = null;
            var e = Record.Exception(() => layout = Read(path));
            Assert.True(e is null, $"{context}: TryRead threw {e}");
            if (layout is not null)
            {
                stillRead++;
                AssertInvariants(layout, mutated.Length, context);
            }
        }
        output.WriteLine($"{format}: {iterations} mutations, {stillRead} still gave a layout, {clock.ElapsedMilliseconds} ms");
    }

    /// <summary>
    /// The same corruption applied to a model with external data never makes ReadExternalLayouts
    /// throw, and whatever it still returns names plain files and keeps each file's tensors sorted,
    /// non-overlapping, at non-negative offsets and consistent with their shapes.
    /// </summary>
    [Fact]
    public void Corrupted_onnx_external_data_never_throws_and_any_external_layout_keeps_the_invariants()
    {
        const int iterations = 400;
        int seed = TestSeed.Get(output);
        var rng = new Random(seed);
        var (file, _) = OnnxWithExternalData(rng);
        var sample = new Sample(file, file.Length);
        Assert.Equal(2, ReadExternal(sample.Bytes).Count);
        string path = Path.Combine(_box.Root, "mutated.onnx");
        int stillRead = 0;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++)
        {
            var (mutated, what) = Mutate(rng, sample);
            string context = $"onnx external data, seed {seed} (KINTSUGI_TEST_SEED={seed}), iteration {i}: {what}";
            File.WriteAllBytes(path, mutated);
            IReadOnlyDictionary<string, TensorLayout>? layouts = null;
            var e = Record.Exception(() =>
            {
                using var handle = File.OpenHandle(path);
                layouts = OnnxReader.ReadExternalLayouts(handle, RandomAccess.GetLength(handle));
            });
            Assert.True(e is null, $"{context}: ReadExternalLayouts threw {e}");
            Assert.NotNull(layouts);
            if (layouts.Count > 0)
            {
                stillRead++;
                AssertExternalInvariants(layouts, context);
            }
        }
        output.WriteLine($"onnx external data: {iterations} mutations, {stillRead} still gave a layout, {clock.ElapsedMilliseconds} ms");
    }

    private static (byte[] Bytes, string What) Mutate(Random rng, Sample sample)
    {
        var bytes = (byte[])sample.Bytes.Clone();
        var what = new List<string>();
        int rounds = rng.Next(4) == 0 ? rng.Next(2, 4) : 1;
        for (int r = 0; r < rounds; r++)
        {
            if (bytes.Length == 0)
            {
                break;
            }
            switch (rng.Next(6))
            {
                case 0:
                    for (int k = rng.Next(1, 5); k > 0; k--)
                    {
                        int at = Position(rng, bytes.Length, sample.HeaderEnd);
                        int bit = rng.Next(8);
                        bytes[at] ^= (byte)(1 << bit);
                        what.Add($"flip bit {bit} at {at}");
                    }
                    break;
                case 1:
                    {
                        int at = Position(rng, bytes.Length, sample.HeaderEnd);
                        int count = Math.Min(rng.Next(1, 9), bytes.Length - at);
                        rng.NextBytes(bytes.AsSpan(at, count));
                        what.Add($"overwrite {count} bytes at {at}");
                        break;
                    }
                case 2:
                    {
                        int length = rng.Next(bytes.Length);
                        bytes = bytes[..length];
                        what.Add($"truncate to {length}");
                        break;
                    }
                case 3:
                    {
                        int count = rng.Next(1, 1000);
                        bytes = Concat(bytes, Files.RandomBytes(rng, count));
                        what.Add($"append {count} bytes");
                        break;
                    }
                case 4:
                    {
                        // A huge or subtly wrong length: all ones, a large random value, or off by a little.
                        int width = rng.Next(2) == 0 ? 4 : 8;
                        int at = Math.Max(0, Math.Min(Position(rng, bytes.Length, sample.HeaderEnd), bytes.Length - width));
                        if (bytes.Length < width)
                        {
                            break;
                        }
                        var span = bytes.AsSpan(at, width);
                        ulong old = width == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(span) : BinaryPrimitives.ReadUInt64LittleEndian(span);
                        ulong value = rng.Next(3) switch
                        {
                            0 => ulong.MaxValue,
                            1 => (ulong)rng.NextInt64(long.MaxValue) << rng.Next(8),
                            _ => old + (ulong)rng.Next(-16, 17),
                        };
                        if (width == 4)
                        {
                            BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)value);
                        }
                        else
                        {
                            BinaryPrimitives.WriteUInt64LittleEndian(span, value);
                        }
                        what.Add($"write {width}-byte {value} at {at}");
                        break;
                    }
                default:
                    {
                        // Swap two bytes in the header: structure kept, values scrambled.
                        int a = Position(rng, bytes.Length, sample.HeaderEnd), b = Position(rng, bytes.Length, sample.HeaderEnd);
                        (bytes[a], bytes[b]) = (bytes[b], bytes[a]);
                        what.Add($"swap bytes {a} and {b}");
                        break;
                    }
            }
        }
        return (bytes, string.Join("; ", what));
    }

    /// <summary>Half the time in the header, a quarter in the last 256 bytes (zip directories), a quarter anywhere.</summary>
    private static int Position(Random rng, int length, int headerEnd) => rng.Next(4) switch
    {
        0 or 1 => rng.Next(Math.Clamp(headerEnd, 1, length)),
        2 => rng.Next(Math.Max(0, length - 256), length),
        _ => rng.Next(length),
    };

    // ----- Python fixtures -----

    /// <summary>
    /// Runs a fixture script with /usr/bin/python3 (sys.argv[1] is <paramref name="outDir"/>). False, with
    /// the reason, only when Python or <paramref name="module"/> is missing; any other failure fails the test.
    /// </summary>
    /// <summary>Runs a fixture script; these tests need Debian's python3-torch and python3-numpy, which ./test.sh installs.</summary>
    private static void RunPython(string module, string outDir, string script)
    {
        Assert.True(File.Exists(Python), $"{Python} is not installed; ./test.sh installs python3-torch");
        var (code, stdout, stderr) = Run(Python, "-c", script, outDir);
        Assert.True(code == 0, $"python fixture (needs {module}) failed ({code}): {stdout}{stderr}");
    }

    private static (int Code, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr);
    }
}
