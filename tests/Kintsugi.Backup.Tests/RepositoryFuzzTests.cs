using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kintsugi.Backup.Codecs;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.Backup.Tests;

/// <summary>
/// Randomised mutation tests of every parser of repository data. Each starts from valid files made
/// by the real writers, mutates them (bit flips, boundary bytes, truncation, garbage, splices, huge
/// length fields; for JSON also removed, duplicated and mistyped fields, huge numbers, odd strings
/// and deep nesting) and requires that the parser either returns a value that passes its own checks
/// or refuses with a <see cref="KintsugiException"/>: never another exception, never a hang, never
/// an allocation far beyond the input. Sealed data is fuzzed on both sides of the seal: the sealed
/// bytes, which authentication must catch, and the plaintext behind it, sealed again with the real
/// key — what a bug in a writer, or someone holding the key, hands the parser.
/// KINTSUGI_FUZZ_INPUTS sets the inputs per parser (tests/fuzz.sh runs many); KINTSUGI_TEST_SEED replays a run.
/// </summary>
public sealed class RepositoryFuzzTests(ITestOutputHelper output)
{
    private const string Password = "fuzz";
    private const string Host = "fuzz-host";

    /// <summary>Inputs per parser in the default suite: the whole class runs in well under 20 s on 2 cores.</summary>
    private const int DefaultInputs = 2000;

    /// <summary>An input still running after this long counts as a hang.</summary>
    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(20);

    /// <summary>No input of a few KiB may make a parser allocate more than this.</summary>
    private const long AllocationLimit = 256L << 20;

    /// <summary>The cheapest Argon2id a slot may have, so each open costs microseconds.</summary>
    private static readonly KdfParameters CheapKdf = new(8, 1, 1);

    private static int Inputs
    {
        get
        {
            string? fromEnv = Environment.GetEnvironmentVariable("KINTSUGI_FUZZ_INPUTS");
            return string.IsNullOrWhiteSpace(fromEnv) ? DefaultInputs : int.Parse(fromEnv, CultureInfo.InvariantCulture);
        }
    }

    // ----- sealed files -----

    /// <summary>
    /// Config, index and snapshot files (types 1–3): damaged sealed bytes are refused; payloads
    /// behind the seal — stored, zstd frames damaged or declaring sizes past the per-type limit,
    /// unknown codec bytes — decode within the limit or are refused.
    /// </summary>
    [Fact]
    public async Task Sealed_files_decode_within_their_limit_or_are_refused()
    {
        var key = MasterKey.Generate();
        var rng = new Random(1);
        var config = JsonSerializer.SerializeToUtf8Bytes(SampleConfig(), FormatJson.Default.RepositoryConfig);
        var snapshot = JsonSerializer.SerializeToUtf8Bytes(SampleSnapshot(rng, paths: 2), FormatJson.Default.Snapshot);
        var bigSnapshot = JsonSerializer.SerializeToUtf8Bytes(SampleSnapshot(rng, paths: 400), FormatJson.Default.Snapshot);
        var index = IndexFile.Serialize(RandomEntries(rng, 3, withDeltas: true).GroupBy(e => e.Pack).ToList());
        var samples = new (SealedFileType Type, byte[] Payload, int Limit)[]
        {
            (SealedFileType.Config, config, 1 << 20),
            (SealedFileType.Snapshot, snapshot, 16 << 20),
            (SealedFileType.Snapshot, bigSnapshot, 16 << 20),
            (SealedFileType.Index, index, 1 << 30),
            (SealedFileType.Index, Files.CompressibleBytes(rng, 20_000), 1 << 30),
        };
        var sealedSamples = samples.Select(s => SealedFile.Seal(key, s.Type, s.Payload)).ToArray();
        Assert.Contains(sealedSamples, s => s[5] == (byte)BlobCodec.Zstd);
        Assert.Contains(sealedSamples, s => s[5] == (byte)BlobCodec.Stored);

        await FuzzAsync("sealed file", (rng, steps) =>
        {
            int pick = rng.Next(samples.Length);
            var (type, payload, limit) = samples[pick];
            byte[] file;
            if (rng.Next(3) == 0)
            {
                steps.Add($"sealed {type} #{pick}");
                file = MutateBytes(rng, sealedSamples[pick], steps, fields: [4, 5], donor: sealedSamples[rng.Next(sealedSamples.Length)]);
            }
            else
            {
                var (codec, encoded) = EncodedPayload(rng, payload, limit, steps);
                steps.Add($"{type} #{pick} payload, codec {codec}");
                file = SealWithHeader(key, type, codec, encoded);
            }
            var opened = SealedFile.Open(key, type, file, $"{type} file", limit);
            Assert.True(opened.Length <= limit, $"a payload of {opened.Length} bytes passed the limit of {limit}");
            return Task.CompletedTask;
        }, ErrorKind.Corrupt);
    }

    /// <summary>The encoded payload of a sealed file, as written (stored or zstd) or damaged behind the seal.</summary>
    private static (byte Codec, byte[] Encoded) EncodedPayload(Random rng, byte[] payload, int limit, List<string> steps)
    {
        byte codec;
        byte[] encoded;
        switch (rng.Next(6))
        {
            case 0:
                (codec, encoded) = ((byte)BlobCodec.Stored, payload);
                break;
            case 1:
                {
                    // A frame of zeros right at the limit, or just past it: a decompression bomb.
                    int size = Math.Min(limit, 32 << 20) + rng.Next(-1, 2);
                    steps.Add($"zstd frame of {size} zeros");
                    (codec, encoded) = ((byte)BlobCodec.Zstd, ZerosFrames.GetOrAdd(size, n => ZstdFrame(new byte[n])));
                    break;
                }
            default:
                (codec, encoded) = ((byte)BlobCodec.Zstd, ZstdFrame(payload));
                break;
        }
        if (rng.Next(4) != 0)
        {
            encoded = MutateBytes(rng, encoded, steps, fields: [4, 5, 6, 8]);
        }
        if (rng.Next(8) == 0)
        {
            codec = Pick<byte>(rng, [0, 1, 2, 3, 0x7F, 0xFF]);
            steps.Add($"codec byte {codec}");
        }
        return (codec, encoded);
    }

    /// <summary>Frames of zeros (decompression bombs), made once: compressing 32 MiB takes a while.</summary>
    private static readonly ConcurrentDictionary<int, byte[]> ZerosFrames = new();

    private static byte[] SealWithHeader(MasterKey key, SealedFileType type, byte codec, byte[] encoded)
    {
        byte[] header = [.. SealedFile.Magic, (byte)type, codec];
        return [.. header, .. Aead.Seal(key.EncryptionKey, encoded, header)];
    }

    // ----- index files -----

    /// <summary>
    /// Index payloads (versions 1 and 2, 48- and 80-byte entries): parsed directly and through the
    /// sealed, hash-named file a repository loads; every entry returned passes the entry checks.
    /// </summary>
    [Fact]
    public async Task Index_payloads_give_valid_entries_or_are_refused()
    {
        var (repo, store) = await NewRepositoryAsync();
        var rng = new Random(2);
        var samples = new[]
        {
            IndexFile.Serialize(RandomEntries(rng, 3, withDeltas: false).GroupBy(e => e.Pack).ToList()),
            IndexFile.Serialize(RandomEntries(rng, 3, withDeltas: true).GroupBy(e => e.Pack).ToList()),
            IndexFile.Serialize(RandomEntries(rng, 1, withDeltas: true).GroupBy(e => e.Pack).ToList()),
            IndexFile.Serialize([]),
        };
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(samples[0]));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(samples[1]));

        await FuzzAsync("index payload", async (rng, steps) =>
        {
            int pick = rng.Next(samples.Length);
            steps.Add($"index #{pick}");
            var payload = MutateBytes(rng, samples[pick], steps, fields: IndexFields(samples[pick]), donor: samples[rng.Next(samples.Length)]);
            if (rng.Next(4) != 0)
            {
                AssertValidEntries(IndexFile.Parse(payload, "index file"), payload);
                return;
            }
            var file = SealedFile.Seal(repo.Key, SealedFileType.Index, payload);
            if (rng.Next(4) == 0)
            {
                steps.Add("then the sealed file");
                file = MutateBytes(rng, file, steps, fields: [4, 5]);
            }
            string name = BlobId.HashOf(file).ToString();
            await store.PutAsync(FileKind.Index, name, file);
            try
            {
                AssertValidEntries(await repo.LoadIndexFileAsync(name), payload);
            }
            finally
            {
                await store.DeleteAsync(FileKind.Index, name);
            }
        }, ErrorKind.Corrupt);
    }

    /// <summary>Where an index payload holds counts and lengths: the pack count, each record's entry count, each entry's u32 fields.</summary>
    private static int[] IndexFields(byte[] payload)
    {
        var fields = new List<int> { 0, 4 };
        int at = 8;
        uint packs = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(4));
        for (uint p = 0; p < packs; p++)
        {
            fields.Add(at + BlobId.Size);
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(at + BlobId.Size));
            at += BlobId.Size + 4;
            for (uint i = 0; i < count; i++)
            {
                fields.AddRange([at, at + 4, at + 8, at + 12]);
                at += PackFormat.SizeOf((BlobKind)payload[at]);
            }
        }
        return [.. fields];
    }

    private static void AssertValidEntries(IEnumerable<IndexEntry> entries, byte[] payload)
    {
        uint version = payload.Length >= 4 ? BinaryPrimitives.ReadUInt32LittleEndian(payload) : 0;
        foreach (var e in entries)
        {
            AssertValidEntry(e.InHeader, deltasAllowed: version == 2);
        }
    }

    private static void AssertValidEntry(PackEntry e, bool deltasAllowed)
    {
        Assert.True((byte)e.Kind <= (byte)BlobKind.Parity, $"entry of kind {e.Kind} accepted");
        Assert.True((byte)e.Codec <= (byte)BlobCodec.Planes, $"entry of codec {e.Codec} accepted");
        Assert.True(e.RawLength <= PackFormat.MaxBlobRawLength, $"entry of raw length {e.RawLength} accepted");
        Assert.True(e.StoredLength is >= Aead.Overhead and <= (uint)PackFormat.MaxBlobStoredLength, $"entry of stored length {e.StoredLength} accepted");
        Assert.True(e.Kind != BlobKind.Delta || deltasAllowed, "a delta entry accepted where deltas are not allowed");
        Assert.True(e.Kind != BlobKind.Delta || e.Base != e.Id, "a delta entry that is its own base accepted");
    }

    // ----- pack headers -----

    /// <summary>
    /// A pack's header read from its end: damaged trailers, header lengths and sealed headers are
    /// refused; header plaintexts sealed with the real key give only valid entries inside the pack.
    /// </summary>
    [Fact]
    public async Task Pack_headers_give_valid_entries_inside_the_pack_or_are_refused()
    {
        var key = MasterKey.Generate();
        var rng = new Random(3);
        var samples = new[] { SamplePack(key, rng, withDelta: false), SamplePack(key, rng, withDelta: true) };

        await FuzzAsync("pack header", (rng, steps) =>
        {
            int pick = rng.Next(samples.Length);
            var (blobs, entries, pack) = samples[pick];
            bool deltasAllowed;
            byte[] bytes;
            if (rng.Next(3) == 0)
            {
                steps.Add($"pack #{pick}");
                int end = pack.Length;
                bytes = MutateBytes(rng, pack, steps, fields: [end - 8, end - 4, end - 9, blobs.Length, 0], donor: samples[rng.Next(samples.Length)].Pack);
                deltasAllowed = pick == 1;
            }
            else
            {
                var plain = new byte[4 + entries.Sum(e => PackFormat.SizeOf(e.Kind))];
                BinaryPrimitives.WriteUInt32LittleEndian(plain, (uint)entries.Count);
                int at = 4;
                var fields = new List<int> { 0 };
                foreach (var e in entries)
                {
                    fields.AddRange([at, at + 4, at + 8, at + 12]);
                    at += PackFormat.WriteEntry(plain.AsSpan(at), e);
                }
                steps.Add($"header plaintext of pack #{pick}");
                plain = MutateBytes(rng, plain, steps, fields: [.. fields]);
                byte version = rng.Next(4) == 0 ? (byte)(3 - (pick + 1)) : (byte)(pick + 1);
                deltasAllowed = version == 2;
                var blobBytes = rng.Next(6) == 0 ? blobs[..rng.Next(blobs.Length)] : blobs;
                steps.Add($"version {version}, {blobBytes.Length} of {blobs.Length} blob bytes");
                var sealedHeader = Aead.Seal(key.EncryptionKey, plain, [.. PackFormat.Magic, version]);
                var trailer = new byte[8];
                BinaryPrimitives.WriteUInt32LittleEndian(trailer, (uint)sealedHeader.Length);
                PackFormat.Magic.CopyTo(trailer.AsSpan(4));
                bytes = [.. blobBytes, .. sealedHeader, .. trailer];
            }
            var header = PackFormat.ReadHeader(key, bytes, "pack");
            long headerStart = bytes.Length - 8 - BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 8));
            foreach (var e in header)
            {
                AssertValidEntry(e, deltasAllowed);
                Assert.True(e.Offset + (long)e.StoredLength <= headerStart, $"entry at {e.Offset}+{e.StoredLength} accepted past the header at {headerStart}");
            }
            return Task.CompletedTask;
        }, ErrorKind.Corrupt);
    }

    /// <summary>A pack made by the writer's pieces: sealed blobs back to back, then <see cref="PackFormat.SealHeader"/>.</summary>
    private static (byte[] Blobs, List<PackEntry> Entries, byte[] Pack) SamplePack(MasterKey key, Random rng, bool withDelta)
    {
        var blobs = new List<byte>();
        var entries = new List<PackEntry>();
        foreach (var b in SampleBlobs(key, rng).Where(b => withDelta || b.Entry.Kind != BlobKind.Delta))
        {
            entries.Add(b.Entry.InHeader with { Offset = (uint)blobs.Count });
            blobs.AddRange(b.Sealed);
        }
        byte[] blobBytes = [.. blobs];
        return (blobBytes, entries, [.. blobBytes, .. PackFormat.SealHeader(key, entries)]);
    }

    // ----- sealed blobs -----

    /// <summary>
    /// Sealed blobs of every codec (stored, zstd, byte planes of widths 1, 2, 4 and 8) and kind
    /// (data, tree, tensor piece, delta): damaged sealed bytes or headers are refused, and payloads
    /// sealed with the real key decode to exactly the raw length or are refused; an opened blob
    /// always matches its id.
    /// </summary>
    [Fact]
    public async Task Sealed_blobs_decode_to_their_raw_length_or_are_refused()
    {
        var key = MasterKey.Generate();
        var samples = SampleBlobs(key, new Random(4));
        Assert.Contains(samples, s => s.Entry.Codec == BlobCodec.Planes && s.Entry.Kind == BlobKind.Delta);
        Assert.Equal(4, samples.Where(s => s.Entry.Codec == BlobCodec.Planes).Select(s => s.Encoded[0]).Distinct().Count());

        await FuzzAsync("sealed blob", (rng, steps) =>
        {
            int pick = rng.Next(samples.Count);
            var sample = samples[pick];
            var entry = sample.Entry;
            byte[] sealedBytes;
            if (rng.Next(3) == 0)
            {
                steps.Add($"sealed blob #{pick}");
                sealedBytes = rng.Next(4) == 0 ? sample.Sealed : MutateBytes(rng, sample.Sealed, steps, donor: samples[rng.Next(samples.Count)].Sealed);
                if (rng.Next(3) == 0)
                {
                    entry = MutateEntry(rng, entry, steps);
                }
            }
            else
            {
                steps.Add($"payload of blob #{pick} ({entry.Kind}, {entry.Codec})");
                var encoded = rng.Next(5) == 0 ? sample.Encoded : MutateBytes(rng, sample.Encoded, steps, fields: [0, 1, 5, 6], donor: samples[rng.Next(samples.Count)].Encoded);
                if (rng.Next(3) == 0)
                {
                    entry = MutateEntry(rng, entry, steps);
                }
                var (pooled, length) = BlobSealer.SealEncodedPooled(key, entry.Id, entry.Kind, entry.Codec, entry.RawLength, encoded, entry.Base);
                sealedBytes = pooled.AsSpan(0, length).ToArray();
                BufferPool.Shared.Return(pooled);
            }
            if (entry.IsDelta || (rng.Next(2) == 0 && entry.RawLength <= 16 << 20))
            {
                // Decode trusts the caller for the buffer; the reader sizes it from the entry, which the entry checks bound.
                var payload = new byte[Math.Min(entry.RawLength, 16u << 20)];
                BlobSealer.Decode(key, entry with { RawLength = (uint)payload.Length }, sealedBytes, payload);
            }
            else
            {
                var plain = BlobSealer.Open(key, entry, sealedBytes);
                Assert.True(key.IdOf(plain) == entry.Id, "an opened blob does not match its id");
            }
            return Task.CompletedTask;
        }, ErrorKind.Corrupt);
    }

    private sealed record BlobSample(IndexEntry Entry, byte[] Encoded, byte[] Sealed);

    /// <summary>Blobs as the writers seal them: chunks (stored and zstd), a tree, tensor pieces in byte planes of every width, and deltas.</summary>
    private static List<BlobSample> SampleBlobs(MasterKey key, Random rng)
    {
        var result = new List<BlobSample>();
        void Add(BlobKind kind, BlobCodec codec, byte[] plain, byte[] encoded, BlobId baseId = default)
        {
            var id = key.IdOf(plain);
            var (pooled, length) = BlobSealer.SealEncodedPooled(key, id, kind, codec, (uint)plain.Length, encoded, baseId);
            var sealedBytes = pooled.AsSpan(0, length).ToArray();
            BufferPool.Shared.Return(pooled);
            result.Add(new BlobSample(new IndexEntry(id, kind, codec, default, 0, (uint)length, (uint)plain.Length, baseId), encoded, sealedBytes));
        }
        void AddSealed(BlobKind kind, byte[] plain)
        {
            var buffer = new byte[BlobEncoder.MaxEncodedLength(plain.Length)];
            var (codec, n) = BlobEncoder.Encode(plain, buffer);
            Add(kind, codec, plain, buffer[..n]);
        }
        AddSealed(BlobKind.Data, Files.RandomBytes(rng, 700));
        AddSealed(BlobKind.Data, Files.CompressibleBytes(rng, 5000));
        AddSealed(BlobKind.Data, []);
        AddSealed(BlobKind.Tree, Repository.SerializeTree(SampleTree(rng, default)));
        foreach (int width in new[] { 1, 2, 4, 8 })
        {
            var plain = FloatBytes(rng, width, 3001 + width);
            Add(BlobKind.TensorPiece, BlobCodec.Planes, plain, PlanesEncoded(plain, width));
            var next = (byte[])plain.Clone();
            for (int i = 0; i < next.Length; i += 7)
            {
                next[i] ^= (byte)rng.Next(1, 4);
            }
            var xor = new byte[plain.Length];
            BytePlanes.Xor(next, plain, xor);
            Add(BlobKind.Delta, BlobCodec.Planes, next, PlanesEncoded(xor, width), key.IdOf(plain));
        }
        // What the piece encoder itself chooses for a float tensor and its next version.
        var weights = FloatBytes(rng, 2, 8192);
        var changed = (byte[])weights.Clone();
        changed[100] ^= 1;
        foreach (var (plain, basePlain) in new[] { (weights, Array.Empty<byte>()), (changed, weights) })
        {
            var piece = PieceEncoder.Encode(plain, 2, basePlain);
            Add(piece.Kind, piece.Codec, plain, piece.Bytes.AsSpan(0, piece.Length).ToArray(), piece.Kind == BlobKind.Delta ? key.IdOf(basePlain) : default);
            BufferPool.Shared.Return(piece.Bytes);
        }
        return result;
    }

    /// <summary>Codec 2: the element width, then a zstd frame of the byte planes (docs/FORMAT.md §6.2).</summary>
    private static byte[] PlanesEncoded(byte[] plain, int width)
    {
        var planes = new byte[BytePlanes.PlanesLength(plain.Length, width)];
        BytePlanes.Split(plain, planes, width);
        var frame = new byte[BlobEncoder.MaxEncodedLength(planes.Length)];
        int n = BlobEncoder.CompressPlanes(planes, frame);
        return [(byte)width, .. frame.AsSpan(0, n)];
    }

    /// <summary>Weights-like bytes: small floats of the width (fp8, bf16, fp32, fp64), with a length that is not a multiple of it.</summary>
    private static byte[] FloatBytes(Random rng, int width, int length)
    {
        var bytes = new byte[length];
        for (int at = 0; at + width <= length; at += width)
        {
            double v = (rng.NextDouble() - 0.5) * 0.05;
            switch (width)
            {
                case 1:
                    bytes[at] = (byte)(0x20 + rng.Next(32) | (v < 0 ? 0x80 : 0));
                    break;
                case 2:
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(at), (ushort)(BitConverter.SingleToUInt32Bits((float)v) >> 16));
                    break;
                case 4:
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(at), (float)v);
                    break;
                default:
                    BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(at), v);
                    break;
            }
        }
        bytes[^1] = 0x5A;
        return bytes;
    }

    /// <summary>The entry a blob is read under, changed: another kind, codec, raw length, id or base.</summary>
    private static IndexEntry MutateEntry(Random rng, IndexEntry entry, List<string> steps)
    {
        switch (rng.Next(5))
        {
            case 0:
                entry = entry with { Kind = (BlobKind)Pick<byte>(rng, [0, 1, 2, 3, 4, 5, 0xFF]) };
                break;
            case 1:
                entry = entry with { Codec = (BlobCodec)Pick<byte>(rng, [0, 1, 2, 3, 0xFF]) };
                break;
            case 2:
                entry = entry with { RawLength = Pick<uint>(rng, [0u, 1u, entry.RawLength - 1, entry.RawLength + 1, entry.RawLength * 2, entry.RawLength / 2, PackFormat.MaxBlobRawLength, PackFormat.MaxBlobRawLength + 1u, (uint)int.MaxValue, uint.MaxValue]) };
                break;
            case 3:
                entry = entry with { Id = BlobId.Read(Files.RandomBytes(rng, BlobId.Size)) };
                break;
            default:
                entry = entry with { Base = rng.Next(2) == 0 ? entry.Id : BlobId.Read(Files.RandomBytes(rng, BlobId.Size)) };
                break;
        }
        steps.Add($"read as {entry.Kind}, {entry.Codec}, raw {entry.RawLength}");
        return entry;
    }

    // ----- trees -----

    /// <summary>
    /// Tree JSON behind a valid seal, loaded and walked as a restore walks it (§9.4): every node the
    /// walk returns has a safe name, a known type and well-formed ids, or the tree is refused.
    /// </summary>
    [Fact]
    public async Task Trees_walk_to_valid_nodes_or_are_refused()
    {
        var (repo, store) = await NewRepositoryAsync();
        var rng = new Random(5);
        var child = Repository.SerializeTree(SampleTree(rng, default));
        var childEntry = await PlantTreeAsync(repo, store, child);
        var root = Repository.SerializeTree(SampleTree(rng, childEntry.Id));
        var rootEntry = await PlantTreeAsync(repo, store, root);
        Assert.Equal(17, await TreeWalker.WalkAsync(repo, IndexOf(childEntry, rootEntry), rootEntry.Id).CountAsync());

        await FuzzAsync("tree", async (rng, steps) =>
        {
            var json = rng.Next(6) == 0 ? MutateBytes(rng, root, steps, donor: child) : MutateJson(rng, root, steps);
            var entry = await PlantTreeAsync(repo, store, json);
            try
            {
                await foreach (var walked in TreeWalker.WalkAsync(repo, IndexOf(childEntry, entry), entry.Id))
                {
                    AssertUsableNode(walked.Node);
                }
            }
            finally
            {
                if (entry.Id != childEntry.Id)
                {
                    await store.DeleteAsync(FileKind.Pack, entry.Id.ToString());
                }
            }
        }, ErrorKind.Corrupt);
    }

    /// <summary>
    /// A node every reader can use: what §9.2 and §9.4 promise. (A content id that is no id is
    /// left to the readers of content, which report that one file and go on with the others.)
    /// </summary>
    private static void AssertUsableNode(Node node)
    {
        Assert.True(node is not null, "a null node");
        Assert.True(node.Name is { Length: > 0 } name && name is not ("." or "..") && !name.Contains('/', StringComparison.Ordinal) && !name.Contains('\0', StringComparison.Ordinal), $"node name '{node.Name}' accepted");
        Assert.True(Enum.IsDefined(node.Type), $"node type {(int)node.Type} accepted");
        Assert.True(node.Subtree is null || BlobId.TryParse(node.Subtree, out _), $"subtree '{node.Subtree}' accepted");
        Assert.True(node.Tensors is null || node.Tensors.All(t => t is { Name: not null, DType: not null, Shape: not null }), "a tensor without name, dtype or shape accepted");
    }

    /// <summary>Seals a tree blob into a pack of its own, named by the tree's id (so the next input with the same id replaces it).</summary>
    private static async Task<IndexEntry> PlantTreeAsync(Repository repo, MemoryStore store, byte[] json)
    {
        var id = repo.Key.IdOf(json);
        var (codec, sealedBytes) = BlobSealer.Seal(repo.Key, id, BlobKind.Tree, json);
        await store.PutAsync(FileKind.Pack, id.ToString(), sealedBytes, overwrite: true);
        return new IndexEntry(id, BlobKind.Tree, codec, id, 0, (uint)sealedBytes.Length, (uint)json.Length);
    }

    private static MasterIndex IndexOf(params IndexEntry[] entries)
    {
        var index = new MasterIndex();
        foreach (var e in entries)
        {
            index.Add(e);
        }
        return index;
    }

    /// <summary>A folder listing with one node of every type, the fields each type carries, and a sub-folder.</summary>
    private static Tree SampleTree(Random rng, BlobId subtree)
    {
        string Id() => BlobId.Read(Files.RandomBytes(rng, BlobId.Size)).ToString();
        var nodes = new List<Node>
        {
            new() { Name = "a file.bin", Type = NodeType.File, Mode = 420, Uid = 1000, Gid = 1000, MtimeNs = 1_795_739_770_522_980_491, CtimeNs = -1, Inode = ulong.MaxValue, Device = 1UL << 40, Links = 2, Size = 3 << 20, Sparse = true, Content = [Id(), Id(), Id()] },
            new()
            {
                Name = "model.safetensors", Type = NodeType.File, Mode = 384, Size = 2 << 20, Content = [Id(), Id()], Layout = "safetensors",
                Tensors = [new TensorRef { Name = "layer.0.weight", DType = "BF16", Shape = [1024, 1024], First = 0, Pieces = 2 }],
            },
            new() { Name = "link", Type = NodeType.Symlink, Mode = 511, LinkTarget = "../a file.bin" },
            new() { Name = "pipe", Type = NodeType.Fifo, Mode = 420 },
            new() { Name = "socket", Type = NodeType.Socket },
            new() { Name = "tty", Type = NodeType.CharDevice, RDevice = (4UL << 32) | 1 },
            new() { Name = "disk", Type = NodeType.BlockDevice, RDevice = 8UL << 32 },
            new() { Name = "ünïcödé 😀", Type = NodeType.File, Size = 0, Content = [] },
        };
        if (subtree != default)
        {
            nodes.Add(new Node { Name = "sub", Type = NodeType.Directory, Mode = 493, Subtree = subtree.ToString() });
        }
        return new Tree { Nodes = [.. nodes.OrderBy(n => n.Name, StringComparer.Ordinal)] };
    }

    // ----- snapshots -----

    /// <summary>Snapshot JSON behind a valid seal, loaded as a repository loads it: a usable snapshot of version 1, or a refusal.</summary>
    [Fact]
    public async Task Snapshots_load_usable_or_are_refused()
    {
        var (repo, store) = await NewRepositoryAsync();
        var sample = JsonSerializer.SerializeToUtf8Bytes(SampleSnapshot(new Random(6), paths: 2), FormatJson.Default.Snapshot);
        await FuzzAsync("snapshot", async (rng, steps) =>
        {
            var json = rng.Next(6) == 0 ? MutateBytes(rng, sample, steps) : MutateJson(rng, sample, steps);
            var file = SealedFile.Seal(repo.Key, SealedFileType.Snapshot, json);
            string name = BlobId.HashOf(file).ToString();
            await store.PutAsync(FileKind.Snapshot, name, file);
            try
            {
                var s = (await repo.LoadSnapshotAsync(name)).Snapshot;
                Assert.Equal(1, s.Version);
                Assert.True(s.Host is not null && s.Kind is not null, "a snapshot without host or kind accepted");
                Assert.True(s.Paths is not null && s.Paths.All(p => p is not null), "snapshot paths missing or null accepted");
                Assert.True(s.Tags is null || s.Tags.All(t => t is not null), "a null tag accepted");
                Assert.True(BlobId.TryParse(s.Tree, out _), $"snapshot tree '{s.Tree}' accepted");
            }
            finally
            {
                await store.DeleteAsync(FileKind.Snapshot, name);
            }
        }, ErrorKind.Corrupt, ErrorKind.Failed);
    }

    private static Snapshot SampleSnapshot(Random rng, int paths) => new()
    {
        Time = new DateTimeOffset(2026, 11, 27, 0, 36, 11, TimeSpan.Zero).AddTicks(9_277_990),
        Host = "vm",
        User = "root",
        Paths = [.. Enumerable.Range(0, paths).Select(i => $"/data/run-{i:D4}/checkpoints")],
        Tags = ["nightly", "a+b"],
        Tree = BlobId.Read(Files.RandomBytes(rng, BlobId.Size)).ToString(),
        Kind = "incremental",
        Parent = BlobId.Read(Files.RandomBytes(rng, BlobId.Size)).ToString(),
        Summary = new BackupSummary { FilesNew = 1, FilesChanged = 2, Directories = 3, BytesTotal = 17_600_993, BytesAdded = 3012, DurationSeconds = 0.194 },
        Program = "kintsugi 1.0.0",
    };

    // ----- config -----

    /// <summary>Config JSON behind a valid seal, opened as a repository is opened: a config the chunker accepts, or a refusal.</summary>
    [Fact]
    public async Task Configs_open_usable_or_are_refused()
    {
        var (repo, store) = await NewRepositoryAsync();
        var sealedConfig = await store.GetAsync(FileKind.Config, "config");
        var sample = SealedFile.Open(repo.Key, SealedFileType.Config, sealedConfig, "config");
        await FuzzAsync("config", async (rng, steps) =>
        {
            byte[] file;
            if (rng.Next(5) == 0)
            {
                file = MutateBytes(rng, sealedConfig, steps, fields: [4, 5]);
            }
            else
            {
                var json = rng.Next(6) == 0 ? MutateBytes(rng, sample, steps) : MutateJson(rng, sample, steps);
                file = SealedFile.Seal(repo.Key, SealedFileType.Config, json);
            }
            await store.PutAsync(FileKind.Config, "config", file, overwrite: true);
            var opened = await Repository.OpenAsync(store, Password, TimeProvider.System);
            var c = opened.Config;
            Assert.Equal(RepositoryConfig.CurrentVersion, c.Version);
            Assert.True(c.Id is not null, "a config without id accepted");
            Assert.True(c.PackSize is >= 1024 and <= 1 << 30, $"pack size {c.PackSize} accepted");
            Assert.True(Convert.TryFromBase64String(c.ChunkerSeed, new byte[64], out int seedLength) && seedLength == 32, $"chunker seed '{c.ChunkerSeed}' accepted");
            var chunker = opened.CreateChunker();
            Assert.True(chunker.MaxSize <= 64 << 20, $"chunk max {chunker.MaxSize} accepted");
        }, ErrorKind.Corrupt, ErrorKind.Failed);
    }

    private static RepositoryConfig SampleConfig() => new()
    {
        Id = "11fdc128825568a0f8f1a6dcbda45a53",
        ChunkerSeed = "KVsASYkNeoiYnjWlse8zHz9jRiRS7johRj5pU5saM8Q=",
        ChunkMin = 262144,
        ChunkAverage = 1048576,
        ChunkMax = 4194304,
        PackSize = 16777216,
    };

    // ----- key slots -----

    /// <summary>
    /// A repository whose key slot is damaged: the slot is read or skipped, and the repository opens
    /// with the right master key or refuses the password — and a damaged slot listed first never
    /// keeps an intact one from opening it (§3.4).
    /// </summary>
    [Fact]
    public async Task Damaged_key_slots_open_the_right_key_or_are_skipped()
    {
        var (repo, store) = await NewRepositoryAsync();
        var intactName = Assert.Single(await store.ListAsync(FileKind.Key)).Name;
        var intact = await store.GetAsync(FileKind.Key, intactName);
        await store.DeleteAsync(FileKind.Key, intactName);
        string first = new('0', 64), last = new('f', 64);
        int costly = 0;
        await FuzzAsync("key slot", async (rng, steps) =>
        {
            var slot = rng.Next(6) == 0 ? MutateBytes(rng, intact, steps) : MutateJson(rng, intact, steps);
            bool withIntact = rng.Next(2) == 0;
            await store.PutAsync(FileKind.Key, first, slot, overwrite: true);
            if (withIntact)
            {
                steps.Add("an intact slot listed after it");
                await store.PutAsync(FileKind.Key, last, intact, overwrite: true);
            }
            else
            {
                await store.DeleteAsync(FileKind.Key, last);
            }
            var read = await KeyRing.ReadAsync(store, first, default);
            if (read is not null)
            {
                Assert.True(read.Salt is not null && read.Wrapped is not null, "a slot without salt or wrapped key accepted");
                if (read.MemoryKib > 1024 || read.Iterations > 4)
                {
                    // Legal but slow Argon2id parameters: the parse is what is fuzzed, not Argon2id.
                    Interlocked.Increment(ref costly);
                    return;
                }
            }
            try
            {
                var opened = await Repository.OpenAsync(store, Password, TimeProvider.System);
                Assert.True(opened.Key.Material.AsSpan().SequenceEqual(repo.Key.Material), "a damaged slot opened another master key");
            }
            catch (KintsugiException e) when (withIntact)
            {
                Assert.Fail($"a damaged slot kept the intact one from opening the repository: {e.Kind}: {e.Message}");
            }
        }, ErrorKind.WrongPassword);
        output.WriteLine($"key slot: {costly} slots with legal but costly Argon2id parameters were parsed but not opened");
    }

    // ----- locks -----

    /// <summary>
    /// A garbage lock file among the locks: listing skips it or returns a usable record, and taking
    /// a lock beside it succeeds or is refused as locked.
    /// </summary>
    [Fact]
    public async Task Damaged_lock_files_are_skipped_or_judged()
    {
        var store = new MemoryStore();
        var samples = new List<byte[]>();
        foreach (bool exclusive in new[] { false, true })
        {
            await using (var held = await RepositoryLock.AcquireAsync(store, exclusive, Host, "backup", TimeProvider.System, default))
            {
                samples.Add(await store.GetAsync(FileKind.Lock, held.Name));
            }
        }
        var foreign = JsonSerializer.Deserialize(samples[1], FormatJson.Default.LockRecord)! with { Host = "elsewhere", PidNamespace = "pid:[4026531836]" };
        samples.Add(JsonSerializer.SerializeToUtf8Bytes(foreign, FormatJson.Default.LockRecord));

        await FuzzAsync("lock", async (rng, steps) =>
        {
            int pick = rng.Next(samples.Count);
            steps.Add($"lock #{pick}");
            var bytes = rng.Next(6) == 0 ? MutateBytes(rng, samples[pick], steps) : MutateJson(rng, samples[pick], steps);
            string name = Convert.ToHexStringLower(Files.RandomBytes(rng, 32));
            await store.PutAsync(FileKind.Lock, name, bytes);
            try
            {
                foreach (var info in await RepositoryLock.ListAsync(store, Host, TimeProvider.System, default))
                {
                    Assert.True(info.Record is { Host: not null }, "a lock record without a host accepted");
                }
                await using var own = await RepositoryLock.AcquireAsync(store, rng.Next(2) == 0, Host, "check", TimeProvider.System, default);
            }
            finally
            {
                await store.DeleteAsync(FileKind.Lock, name);
            }
        }, ErrorKind.Locked);
    }

    // ----- the fuzz loop -----

    /// <summary>
    /// Runs <see cref="Inputs"/> inputs through <paramref name="attempt"/>, each from its own random
    /// generator (seed and input number, so one input replays alone), and fails listing the distinct
    /// failures: an exception other than a <see cref="KintsugiException"/> of the
    /// <paramref name="refusals"/> kinds, a failed check, an input that allocates more than
    /// <see cref="AllocationLimit"/>, or one that runs longer than <see cref="HangLimit"/>.
    /// </summary>
    private async Task FuzzAsync(string parser, Func<Random, List<string>, Task> attempt, params ErrorKind[] refusals)
    {
        int seed = TestSeed.Get(output);
        int inputs = Inputs;
        int accepted = 0;
        var refused = new Dictionary<ErrorKind, int>();
        var failures = new Dictionary<string, string>(StringComparer.Ordinal);
        int failureCount = 0;
        long mostAllocated = 0;
        double slowestMs = 0;
        long current = -1, startedAt = 0;
        string Context(long i) => $"{parser}, seed {seed} (KINTSUGI_TEST_SEED={seed}), input {i}";
        var clock = Stopwatch.StartNew();
        var work = Task.Run(async () =>
        {
            for (int i = 0; i < inputs; i++)
            {
                var rng = new Random(unchecked((int)((uint)seed * 2654435761u ^ (uint)i * 40503u)));
                var steps = new List<string>();
                Volatile.Write(ref startedAt, Stopwatch.GetTimestamp());
                Volatile.Write(ref current, i);
                int thread = Environment.CurrentManagedThreadId;
                long before = GC.GetAllocatedBytesForCurrentThread();
                Exception? failure = null;
                try
                {
                    await attempt(rng, steps);
                    accepted++;
                }
                catch (KintsugiException e) when (refusals.Contains(e.Kind))
                {
                    refused[e.Kind] = refused.GetValueOrDefault(e.Kind) + 1;
                }
                catch (Exception e)
                {
                    failure = e;
                }
                if (Environment.CurrentManagedThreadId == thread)
                {
                    long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                    mostAllocated = Math.Max(mostAllocated, allocated);
                    if (allocated > AllocationLimit && failure is null)
                    {
                        failure = new XunitException($"allocated {allocated >> 20} MiB for one input");
                    }
                }
                slowestMs = Math.Max(slowestMs, Stopwatch.GetElapsedTime(Volatile.Read(ref startedAt)).TotalMilliseconds);
                if (failure is not null)
                {
                    failureCount++;
                    string where = failure.StackTrace?.Split('\n').FirstOrDefault(l => l.Contains("Kintsugi.Backup.", StringComparison.Ordinal) && !l.Contains(".Tests.", StringComparison.Ordinal))?.Trim() ?? "";
                    failures.TryAdd($"{failure.GetType().Name} {(failure is XunitException ? failure.Message : where)}",
                        $"{Context(i)}: {Shorten(string.Join("; ", steps))}\n  {failure.GetType().FullName}: {Shorten(failure.Message)}\n  {failure.StackTrace?.Split('\n').Take(6).Select(l => l.Trim()).Aggregate((a, b) => a + "\n  " + b)}");
                }
            }
        });
        while (!work.IsCompleted)
        {
            await Task.WhenAny(work, Task.Delay(250));
            long i = Volatile.Read(ref current);
            if (!work.IsCompleted && i >= 0 && Stopwatch.GetElapsedTime(Volatile.Read(ref startedAt)) > HangLimit)
            {
                Assert.Fail($"{Context(i)} has run for more than {HangLimit.TotalSeconds} s: a hang");
            }
        }
        await work;
        string refusalSummary = string.Join(", ", refused.OrderBy(r => r.Key).Select(r => $"{r.Value} {r.Key}"));
        output.WriteLine($"fuzz {parser}: {inputs} inputs, {accepted} accepted, {inputs - accepted - failureCount} refused ({refusalSummary}), {failureCount} failed; {clock.ElapsedMilliseconds} ms, slowest input {slowestMs:F1} ms, most allocated by one input {mostAllocated >> 10} KiB");
        Assert.True(failureCount == 0, $"{failureCount} of {inputs} inputs failed, {failures.Count} distinct:\n" + string.Join("\n", failures.Values.Take(8)));
    }

    private static string Shorten(string text) => text.Length <= 600 ? text : text[..600] + $"… ({text.Length} characters)";

    private static T Pick<T>(Random rng, T[] values) => values[rng.Next(values.Length)];

    // ----- byte mutations -----

    private static readonly byte[] BoundaryBytes = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE];

    /// <summary>
    /// One to five byte-level mutations: bit flips, boundary bytes, random overwrites, truncation
    /// at either end, appended or inserted garbage, deleted or repeated ranges, splices from
    /// <paramref name="donor"/>, and huge or boundary values written over length fields (at
    /// <paramref name="fields"/> half of the time).
    /// </summary>
    private static byte[] MutateBytes(Random rng, byte[] input, List<string> steps, int[]? fields = null, byte[]? donor = null)
    {
        var bytes = new List<byte>(input);
        int rounds = rng.Next(4) == 0 ? rng.Next(2, 6) : 1;
        for (int r = 0; r < rounds; r++)
        {
            int n = bytes.Count;
            int At() => rng.Next(Math.Max(n, 1));
            switch (n == 0 ? 5 : rng.Next(11))
            {
                case 0:
                    for (int k = rng.Next(1, 5); k > 0; k--)
                    {
                        int at = At(), bit = rng.Next(8);
                        bytes[at] ^= (byte)(1 << bit);
                        steps.Add($"flip bit {bit} at {at}");
                    }
                    break;
                case 1:
                    {
                        int at = fields is { Length: > 0 } && rng.Next(2) == 0 ? Pick(rng, fields) : At();
                        if (at < n)
                        {
                            bytes[at] = Pick(rng, BoundaryBytes);
                            steps.Add($"byte {bytes[at]:x2} at {at}");
                        }
                        break;
                    }
                case 2:
                    {
                        int at = At(), count = Math.Min(rng.Next(1, 9), n - at);
                        for (int k = 0; k < count; k++)
                        {
                            bytes[at + k] = (byte)rng.Next(256);
                        }
                        steps.Add($"overwrite {count} bytes at {at}");
                        break;
                    }
                case 3:
                    {
                        int length = rng.Next(2) == 0 ? Math.Max(0, n - rng.Next(1, 17)) : rng.Next(n);
                        bytes.RemoveRange(length, n - length);
                        steps.Add($"truncate to {length}");
                        break;
                    }
                case 4:
                    {
                        int count = Math.Min(n, rng.Next(1, 65));
                        bytes.RemoveRange(0, count);
                        steps.Add($"drop the first {count} bytes");
                        break;
                    }
                case 5:
                    {
                        int count = rng.Next(1, rng.Next(2) == 0 ? 16 : 1000);
                        byte fill = Pick(rng, BoundaryBytes);
                        bool random = rng.Next(2) == 0;
                        bytes.AddRange(Enumerable.Range(0, count).Select(_ => random ? (byte)rng.Next(256) : fill));
                        steps.Add($"append {count} {(random ? "random bytes" : $"bytes {fill:x2}")}");
                        break;
                    }
                case 6:
                    {
                        int at = At(), count = rng.Next(1, 33);
                        bytes.InsertRange(at, Files.RandomBytes(rng, count));
                        steps.Add($"insert {count} bytes at {at}");
                        break;
                    }
                case 7:
                    {
                        int at = At(), count = Math.Min(rng.Next(1, 65), n - at);
                        bytes.RemoveRange(at, count);
                        steps.Add($"delete {count} bytes at {at}");
                        break;
                    }
                case 8:
                    {
                        var from = donor is { Length: > 0 } && rng.Next(2) == 0 ? donor : [.. bytes];
                        int start = rng.Next(from.Length), count = Math.Min(rng.Next(1, 129), from.Length - start), at = At();
                        var piece = from.AsSpan(start, count).ToArray();
                        if (rng.Next(2) == 0)
                        {
                            bytes.InsertRange(at, piece);
                        }
                        else
                        {
                            for (int k = 0; k < count && at + k < bytes.Count; k++)
                            {
                                bytes[at + k] = piece[k];
                            }
                        }
                        steps.Add($"splice {count} bytes from {(ReferenceEquals(from, donor) ? "another file" : "itself")} at {start} to {at}");
                        break;
                    }
                case 9:
                    {
                        int at = fields is { Length: > 0 } && rng.Next(2) == 0 ? Pick(rng, fields) : At() & ~3;
                        ulong value = Pick<ulong>(rng, [0UL, 1, 27, 28, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1000_0000, 0x1000_0001,
                            (ulong)n, (ulong)n + 1, (ulong)n - 1, (ulong)n * 2, 0x1_0000_0000, (ulong)long.MaxValue, ulong.MaxValue]);
                        int width = Pick(rng, [2, 4, 4, 4, 8]);
                        for (int k = 0; k < width && at + k < bytes.Count; k++)
                        {
                            bytes[at + k] = (byte)(value >> (8 * k));
                        }
                        steps.Add($"u{width * 8} {value} at {at}");
                        break;
                    }
                default:
                    {
                        int at = At(), count = Math.Min(rng.Next(1, 257), n - at), times = rng.Next(1, 5);
                        var range = bytes.GetRange(at, count);
                        for (int k = 0; k < times; k++)
                        {
                            bytes.InsertRange(at, range);
                        }
                        steps.Add($"repeat {count} bytes at {at} {times} times");
                        break;
                    }
            }
        }
        return [.. bytes];
    }

    // ----- JSON mutations -----

    private static readonly string[] OddNumbers =
    [
        "0", "-1", "1", "-0", "0.5", "1e400", "-1e400", "1e-400", "2147483647", "2147483648", "-2147483649", "4294967295", "4294967296",
        "9007199254740993", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551615",
        "18446744073709551616", "123456789012345678901234567890", "1.0", "1E3", "01", "+1", "0x10", "NaN", "Infinity", "-Infinity", ".5", "1.",
    ];

    private static readonly string[] OddStrings =
    [
        "\"\"", "\".\"", "\"..\"", "\"a/b\"", "\"/\"", "\"\\u0000\"", "\"a\\u0000b\"", "\"\\ud800\"", "\"\\udc00x\"", "\"\\uD83D\\uDE00\"", "\"\\uFFFD\"",
        "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"1e400\"", "\"-1\"", "\"0x10\"", "\"true\"", "\"null\"",
        "\"9999-12-31T23:59:59.9999999-14:00\"", "\"0001-01-01T00:00:00+14:00\"", "\"2024-02-30T00:00:00Z\"", "\"2024-01-01T00:00:00+25:00\"",
        "\"2024-01-01\"", "\"2024-01-01T00:00:00.12345678+00:00\"", "\"====\"", "\"AA==\"", "\"!!!!\"", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"",
        "\"0000000000000000000000000000000000000000000000000000000000000000\"", "\"000000000000000000000000000000000000000000000000000000000000000\"",
        "\"00000000000000000000000000000000000000000000000000000000000000000\"", "\"ABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCD\"",
        "\"gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg\"", "\"file\"", "\"dir\"", "\"DIR\"", "\"argon2id\"", "\"full\"",
    ];

    private static readonly string[] WrongTypes = ["null", "true", "false", "0", "\"\"", "\"x\"", "[]", "{}", "[1]", "[null]", "{\"a\":1}", "[[]]"];

    private readonly record struct JsonSlot(JsonNode? Parent, string? Name, int Index, JsonNode? Value);

    /// <summary>
    /// One to three JSON mutations of a valid document: removed, duplicated (first or last copy
    /// different), added and mistyped fields, odd numbers and strings, deeply nested values,
    /// emptied or repeated arrays, values copied from elsewhere in the document; then, one time in
    /// five, a byte-level mutation of the text.
    /// </summary>
    private static byte[] MutateJson(Random rng, byte[] json, List<string> steps)
    {
        var root = JsonNode.Parse(json)!;
        var raw = new Dictionary<string, string>(StringComparer.Ordinal);
        JsonNode Raw(string text)
        {
            string marker = $"\u0001{raw.Count}";
            raw[JsonSerializer.Serialize(marker)] = text;
            return JsonValue.Create(marker);
        }
        string RawName(string name)
        {
            string marker = $"\u0001{raw.Count}";
            raw[JsonSerializer.Serialize(marker)] = JsonSerializer.Serialize(name);
            return marker;
        }
        string? rootRaw = null;
        int rounds = rng.Next(3) == 0 ? rng.Next(2, 4) : 1;
        for (int r = 0; r < rounds && rootRaw is null; r++)
        {
            var slots = new List<JsonSlot>();
            Collect(root, null, null, -1, slots);
            var slot = slots[rng.Next(slots.Count)];
            string where = slot.Parent is null ? "the document" : slot.Name is not null ? $"\"{slot.Name}\"" : $"[{slot.Index}]";
            void Replace(JsonNode? value)
            {
                switch (slot.Parent)
                {
                    case JsonObject o:
                        o[slot.Name!] = value;
                        break;
                    case JsonArray a:
                        a[slot.Index] = value;
                        break;
                    default:
                        rootRaw = value is null ? "null" : value.ToJsonString();
                        break;
                }
            }
            switch (rng.Next(12))
            {
                case 0:
                    if (slot.Parent is JsonObject removeFrom)
                    {
                        removeFrom.Remove(slot.Name!);
                    }
                    else if (slot.Parent is JsonArray removeAt)
                    {
                        removeAt.RemoveAt(slot.Index);
                    }
                    steps.Add($"remove {where}");
                    break;
                case 1:
                    if (slot.Parent is JsonObject o)
                    {
                        var copy = rng.Next(2) == 0 ? slot.Value?.DeepClone() : Raw(Pick(rng, WrongTypes));
                        if (rng.Next(2) == 0)
                        {
                            // The changed copy first, the original last.
                            o.Remove(slot.Name!);
                            o[RawName(slot.Name!)] = copy;
                            o[slot.Name!] = slot.Value;
                        }
                        else
                        {
                            o[RawName(slot.Name!)] = copy;
                        }
                        steps.Add($"duplicate {where}");
                    }
                    break;
                case 2:
                    {
                        string text = Pick(rng, WrongTypes);
                        Replace(Raw(text));
                        steps.Add($"{where} = {text}");
                        break;
                    }
                case 3:
                    {
                        string text = slot.Value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && BigInteger.TryParse(v.ToJsonString(), CultureInfo.InvariantCulture, out var number)
                            && rng.Next(2) == 0
                            ? Pick(rng, [number + 1, number - 1, -number, number << 32, number * BigInteger.Pow(10, 20)]).ToString(CultureInfo.InvariantCulture)
                            : Pick(rng, OddNumbers);
                        Replace(Raw(text));
                        steps.Add($"{where} = {text}");
                        break;
                    }
                case 4:
                    {
                        string text = slot.Value is JsonValue v && v.GetValueKind() == JsonValueKind.String && rng.Next(2) == 0
                            ? Escaped(EditString(rng, v.GetValue<string>()))
                            : Pick(rng, OddStrings);
                        Replace(Raw(text));
                        steps.Add($"{where} = {Shorten(text)}");
                        break;
                    }
                case 5:
                    {
                        int depth = Pick(rng, [2, 63, 64, 65, 100, 1000, 100_000]);
                        bool arrays = rng.Next(2) == 0;
                        string text = arrays ? new string('[', depth) + new string(']', depth) : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth);
                        Replace(Raw(text));
                        steps.Add($"{where} = {(arrays ? "arrays" : "objects")} nested {depth} deep");
                        break;
                    }
                case 6:
                    if (slot.Value is JsonObject extend)
                    {
                        extend[rng.Next(2) == 0 ? "unknown_field" : ""] = Raw(Pick(rng, WrongTypes));
                        steps.Add($"add a field to {where}");
                    }
                    break;
                case 7:
                    if (slot.Value is JsonArray array)
                    {
                        switch (rng.Next(4))
                        {
                            case 0:
                                array.Clear();
                                steps.Add($"empty {where}");
                                break;
                            case 1 when array.Count > 0:
                                {
                                    int times = Pick(rng, [1, 2, 10, 1000]);
                                    var element = array[rng.Next(array.Count)];
                                    for (int k = 0; k < times; k++)
                                    {
                                        array.Add(element?.DeepClone());
                                    }
                                    steps.Add($"repeat an element of {where} {times} times");
                                    break;
                                }
                            case 2:
                                array.Insert(rng.Next(array.Count + 1), Raw(Pick(rng, WrongTypes)));
                                steps.Add($"insert an odd element into {where}");
                                break;
                            default:
                                {
                                    var reversed = array.Reverse().Select(e => e?.DeepClone()).ToList();
                                    array.Clear();
                                    reversed.ForEach(array.Add);
                                    steps.Add($"reverse {where}");
                                    break;
                                }
                        }
                    }
                    break;
                case 8:
                    {
                        var other = slots[rng.Next(slots.Count)];
                        if (!ReferenceEquals(other.Value, slot.Value))
                        {
                            Replace(other.Value?.DeepClone());
                            steps.Add($"{where} = a copy of another value");
                        }
                        break;
                    }
                case 9:
                    {
                        string text = "\"" + new string('a', Pick(rng, [256, 4096, 100_000])) + "\"";
                        Replace(Raw(text));
                        steps.Add($"{where} = a string of {text.Length - 2} characters");
                        break;
                    }
                case 10:
                    {
                        string text = Pick(rng, ["null", "[]", "{}", "\"\"", "0", "[{}]", ""]);
                        rootRaw = rng.Next(2) == 0 ? text : root.ToJsonString() + Pick(rng, ["", " ", "x", "{}", "\u0000", ",", "]"]);
                        steps.Add("replace or extend the whole document");
                        break;
                    }
                default:
                    Replace(Raw(Pick(rng, OddStrings.Concat(OddNumbers).ToArray())));
                    steps.Add($"{where} = an odd value");
                    break;
            }
        }
        string result = rootRaw ?? root.ToJsonString();
        foreach (var (marker, text) in raw)
        {
            result = result.Replace(marker, text, StringComparison.Ordinal);
        }
        var bytes = Encoding.UTF8.GetBytes(result);
        return rng.Next(5) == 0 ? MutateBytes(rng, bytes, steps) : bytes;
    }

    private static void Collect(JsonNode? node, JsonNode? parent, string? name, int index, List<JsonSlot> into)
    {
        into.Add(new JsonSlot(parent, name, index, node));
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, child) in o.ToList())
                {
                    Collect(child, o, key, -1, into);
                }
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++)
                {
                    Collect(a[i], a, null, i, into);
                }
                break;
        }
    }

    private static string EditString(Random rng, string s) => rng.Next(6) switch
    {
        0 => s.ToUpperInvariant(),
        1 => s.Length > 0 ? s[..^1] : "x",
        2 => s + Pick(rng, ["x", "0", "/", "\u0000", "\ud800", "é", "😀"]),
        3 => s + s,
        4 => s.Length > 1 ? s[1..] : "",
        _ => s.Length > 0 ? s.Remove(rng.Next(s.Length), 1).Insert(rng.Next(s.Length), "g") : "..",
    };

    /// <summary>A JSON string literal written with escapes, so it may hold what no encoder writes (lone surrogates).</summary>
    private static string Escaped(string s) =>
        "\"" + string.Concat(s.Select(c => c is < ' ' or > '~' or '"' or '\\' ? $"\\u{(int)c:X4}" : c.ToString())) + "\"";

    // ----- repositories in memory -----

    private static async Task<(Repository Repo, MemoryStore Store)> NewRepositoryAsync()
    {
        var store = new MemoryStore();
        var repo = await Repository.InitAsync(store, Password, CheapKdf, Sandbox.SmallChunks, Host, "tester", TimeProvider.System);
        return (repo, store);
    }

    private static byte[] ZstdFrame(byte[] data)
    {
        var buffer = new byte[BlobEncoder.MaxEncodedLength(data.Length)];
        return buffer[..BlobEncoder.Compress(data, buffer)];
    }

    private static List<IndexEntry> RandomEntries(Random rng, int packs, bool withDeltas)
    {
        var entries = new List<IndexEntry>();
        for (int p = 0; p < packs; p++)
        {
            var pack = BlobId.Read(Files.RandomBytes(rng, 32));
            uint offset = 0;
            for (int i = rng.Next(1, 8); i > 0; i--)
            {
                var kind = (BlobKind)rng.Next(0, withDeltas ? 4 : 3);
                uint stored = (uint)rng.Next(Aead.Overhead, 1 << 20);
                entries.Add(new IndexEntry(BlobId.Read(Files.RandomBytes(rng, 32)), kind, (BlobCodec)rng.Next(0, 3), pack, offset, stored, (uint)rng.Next(0, 1 << 20),
                    kind == BlobKind.Delta ? BlobId.Read(Files.RandomBytes(rng, 32)) : default));
                offset += stored;
            }
        }
        return entries;
    }

    /// <summary>A repository held in memory, so each fuzz input costs no disk writes.</summary>
    private sealed class MemoryStore : IBlobStore
    {
        private readonly ConcurrentDictionary<(FileKind, string), byte[]> _files = new();

        public string Location => "memory";

        public Task<bool> ExistsAsync(FileKind kind, string name, CancellationToken cancellationToken = default) => Task.FromResult(_files.ContainsKey((kind, name)));

        public Task<bool> IsEmptyAsync(CancellationToken cancellationToken = default) => Task.FromResult(_files.IsEmpty);

        public Task PutAsync(FileKind kind, string name, ReadOnlyMemory<byte> data, bool overwrite = false, CancellationToken cancellationToken = default)
        {
            if (overwrite)
            {
                _files[(kind, name)] = data.ToArray();
            }
            else
            {
                _files.TryAdd((kind, name), data.ToArray());
            }
            return Task.CompletedTask;
        }

        public IPendingFile CreatePending(FileKind kind) => new Pending(this, kind);

        public Task<byte[]> GetAsync(FileKind kind, string name, CancellationToken cancellationToken = default) =>
            _files.TryGetValue((kind, name), out var data)
                ? Task.FromResult(data.ToArray())
                : throw new KintsugiException(ErrorKind.Corrupt, $"repository file {kind} {name} is missing");

        public ValueTask ReadAtAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_files.TryGetValue((kind, name), out var data) || offset + buffer.Length > data.Length)
            {
                throw KintsugiException.Corrupt($"pack {name}", $"it ends before byte {offset + buffer.Length}");
            }
            data.AsMemory((int)offset, buffer.Length).CopyTo(buffer);
            return ValueTask.CompletedTask;
        }

        public Task<IReadOnlyList<StoredFile>> ListAsync(FileKind kind, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<StoredFile>>([.. _files.Where(f => f.Key.Item1 == kind).Select(f => new StoredFile(f.Key.Item2, f.Value.Length)).OrderBy(f => f.Name, StringComparer.Ordinal)]);

        public Task DeleteAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
        {
            _files.TryRemove((kind, name), out _);
            return Task.CompletedTask;
        }

        public Task CreateAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        private sealed class Pending(MemoryStore store, FileKind kind) : IPendingFile
        {
            private readonly MemoryStream _bytes = new();

            public long Length => _bytes.Length;

            public void Write(ReadOnlySpan<byte> data) => _bytes.Write(data);

            public Task CommitAsync(string name, bool overwrite, CancellationToken cancellationToken) =>
                store.PutAsync(kind, name, _bytes.ToArray(), overwrite, cancellationToken);

            public ValueTask DisposeAsync() => _bytes.DisposeAsync();
        }
    }
}
