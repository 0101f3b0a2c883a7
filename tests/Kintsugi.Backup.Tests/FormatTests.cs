using System.Buffers.Binary;
using System.Security.Cryptography;
using Kintsugi.Backup.Codecs;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class FormatTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();
    private readonly MasterKey _key = MasterKey.Generate();

    public void Dispose() => _box.Dispose();

    private static void AssertCorrupt(Action action, string because)
    {
        var e = Assert.Throws<KintsugiException>(action);
        Assert.True(e.Kind == ErrorKind.Corrupt, $"{because}: expected Corrupt, got {e.Kind}: {e.Message}");
    }

    // ----- BlobId -----

    [Fact]
    public void BlobId_round_trips_through_its_text_and_bytes()
    {
        var rng = new Random(TestSeed.Get(output));
        for (int i = 0; i < 100; i++)
        {
            var bytes = Files.RandomBytes(rng, BlobId.Size);
            var id = BlobId.Read(bytes);
            string text = id.ToString();
            Assert.Matches("^[0-9a-f]{64}$", text);
            Assert.Equal(Convert.ToHexStringLower(bytes), text);
            Assert.Equal(id, BlobId.Parse(text));
            Assert.Equal(id, BlobId.Parse(text.ToUpperInvariant()));
            Assert.Equal(bytes, id.ToArray());
            Assert.Equal(text[..8], id.Short);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg")]
    [InlineData(" 123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    public void BlobId_parse_refuses_what_is_not_64_hex_digits(string? text)
    {
        Assert.False(BlobId.TryParse(text, out _));
        if (text is not null)
        {
            Assert.Throws<FormatException>(() => BlobId.Parse(text));
        }
    }

    // ----- sealed blobs -----

    public static TheoryData<string, int, BlobCodec> BlobCases => new()
    {
        { "empty", 0, BlobCodec.Stored },
        { "random-small", 1000, BlobCodec.Stored },
        { "random-large", 300 * 1024, BlobCodec.Stored },
        { "text-small", 4096, BlobCodec.Zstd },
        { "text-large", 300 * 1024, BlobCodec.Zstd },
        { "zeros", 256 * 1024, BlobCodec.Zstd },
    };

    private static byte[] Content(string name, int size, Random rng) => name switch
    {
        _ when name.StartsWith("random", StringComparison.Ordinal) => Files.RandomBytes(rng, size),
        _ when name.StartsWith("text", StringComparison.Ordinal) => Files.CompressibleBytes(rng, size),
        _ => new byte[size],
    };

    private (IndexEntry Entry, byte[] Sealed, byte[] Plain) SealBlob(byte[] plain, BlobKind kind = BlobKind.Data)
    {
        var id = _key.IdOf(plain);
        var (codec, sealedBytes) = BlobSealer.Seal(_key, id, kind, plain);
        var entry = new IndexEntry(id, kind, codec, default, 0, (uint)sealedBytes.Length, (uint)plain.Length);
        return (entry, sealedBytes, plain);
    }

    [Theory]
    [MemberData(nameof(BlobCases))]
    public void Sealed_blob_round_trips_with_the_expected_codec(string name, int size, BlobCodec expectedCodec)
    {
        var plain = Content(name, size, new Random(TestSeed.Get(output)));
        var (entry, sealedBytes, _) = SealBlob(plain);

        Assert.Equal(expectedCodec, entry.Codec);
        if (expectedCodec == BlobCodec.Zstd)
        {
            Assert.True(sealedBytes.Length < plain.Length, "compressible content was not made smaller");
        }
        Assert.Equal(plain, BlobSealer.Open(_key, entry, sealedBytes));
        var into = new byte[plain.Length];
        BlobSealer.Open(_key, entry, sealedBytes, into);
        Assert.Equal(plain, into);
    }

    [Theory]
    [InlineData(BlobCodec.Stored)]
    [InlineData(BlobCodec.Zstd)]
    public void Any_flipped_bit_in_a_sealed_blob_is_detected(BlobCodec codec)
    {
        var rng = new Random(TestSeed.Get(output));
        var plain = codec == BlobCodec.Zstd ? Files.CompressibleBytes(rng, 2000) : Files.RandomBytes(rng, 200);
        var (entry, sealedBytes, _) = SealBlob(plain);
        Assert.Equal(codec, entry.Codec);
        for (int bit = 0; bit < sealedBytes.Length * 8; bit++)
        {
            var damaged = (byte[])sealedBytes.Clone();
            damaged[bit / 8] ^= (byte)(1 << (bit % 8));
            AssertCorrupt(() => BlobSealer.Open(_key, entry, damaged), $"bit {bit} flipped");
        }
    }

    [Theory]
    [InlineData("kind")]
    [InlineData("codec")]
    [InlineData("length+1")]
    [InlineData("length-1")]
    [InlineData("id")]
    public void A_blob_under_a_changed_header_is_detected(string change)
    {
        var rng = new Random(TestSeed.Get(output));
        var (entry, sealedBytes, _) = SealBlob(Files.CompressibleBytes(rng, 5000));
        var other = BlobId.Read(Files.RandomBytes(rng, 32));
        var changed = change switch
        {
            "kind" => entry with { Kind = BlobKind.Tree },
            "codec" => entry with { Codec = BlobCodec.Stored },
            "length+1" => entry with { RawLength = entry.RawLength + 1 },
            "length-1" => entry with { RawLength = entry.RawLength - 1 },
            "id" => entry with { Id = other },
            _ => throw new ArgumentOutOfRangeException(nameof(change)),
        };
        AssertCorrupt(() => BlobSealer.Open(_key, changed, sealedBytes), change);
    }

    [Theory]
    [InlineData(int.MaxValue + 1u)]
    [InlineData(uint.MaxValue)]
    public void Opening_a_blob_with_a_raw_length_beyond_the_maximum_reports_corruption(uint rawLength)
    {
        // BlobSealer.Open guards the raw length ("raw length out of range"); the guard must come before any allocation.
        var rng = new Random(TestSeed.Get(output));
        var (entry, sealedBytes, _) = SealBlob(Files.RandomBytes(rng, 100));
        AssertCorrupt(() => BlobSealer.Open(_key, entry with { RawLength = rawLength }, sealedBytes), $"raw length {rawLength}");
    }

    [Theory]
    [InlineData(PackFormat.MaxBlobRawLength + 1u, 100u)]
    [InlineData(uint.MaxValue, 100u)]
    [InlineData(100u, uint.MaxValue)]
    public async Task Reading_a_blob_whose_entry_has_lengths_out_of_range_reports_corruption(uint rawLength, uint storedLength)
    {
        var repo = await _box.InitAsync();
        var rng = new Random(TestSeed.Get(output));
        var (entry, _, _) = SealBlob(Files.RandomBytes(rng, 100));
        var bad = entry with { RawLength = rawLength, StoredLength = storedLength, Pack = BlobId.Read(Files.RandomBytes(rng, 32)) };
        var e = await Assert.ThrowsAsync<KintsugiException>(() => repo.ReadBlobAsync(bad));
        Assert.Equal(ErrorKind.Corrupt, e.Kind);
    }

    [Fact]
    public void Decode_refuses_a_zstd_frame_that_does_not_declare_its_size()
    {
        var rng = new Random(TestSeed.Get(output));
        using var buffer = new MemoryStream();
        using (var zstd = new ZstdSharp.CompressionStream(buffer))
        {
            zstd.Write(Files.CompressibleBytes(rng, 100_000));
        }
        var frame = buffer.ToArray();
        AssertCorrupt(() => BlobEncoder.Decode(BlobCodec.Zstd, frame, 1 << 20, "blob"), "frame without a content size");
    }

    [Fact]
    public void A_blob_sealed_under_another_key_or_cut_short_is_detected()
    {
        var rng = new Random(TestSeed.Get(output));
        var (entry, sealedBytes, _) = SealBlob(Files.RandomBytes(rng, 300));
        AssertCorrupt(() => BlobSealer.Open(MasterKey.Generate(), entry, sealedBytes), "another key");
        AssertCorrupt(() => BlobSealer.Open(_key, entry, sealedBytes.AsSpan(0, sealedBytes.Length - 1).ToArray()), "last byte cut");
        AssertCorrupt(() => BlobSealer.Open(_key, entry, sealedBytes.AsSpan(0, 10).ToArray()), "shorter than the envelope");
    }

    [Fact]
    public void A_blob_with_the_right_header_but_other_content_fails_its_id_check()
    {
        // Sealed under a wrong id by someone holding the key: authentication passes, the keyed hash does not.
        var rng = new Random(TestSeed.Get(output));
        var plain = Files.RandomBytes(rng, 500);
        var wrongId = _key.IdOf(Files.RandomBytes(rng, 500));
        var (codec, sealedBytes) = BlobSealer.Seal(_key, wrongId, BlobKind.Data, plain);
        var entry = new IndexEntry(wrongId, BlobKind.Data, codec, default, 0, (uint)sealedBytes.Length, (uint)plain.Length);
        AssertCorrupt(() => BlobSealer.Open(_key, entry, sealedBytes), "content does not match its id");
    }

    // ----- packs -----

    private async Task<(BlobId Pack, byte[] Bytes, List<IndexEntry> Entries, Dictionary<BlobId, byte[]> Plain)> WritePackAsync(Random rng, int blobs)
    {
        var store = new LocalBlobStore(_box.RepoPath);
        await store.CreateAsync();
        var stored = new List<IndexEntry>();
        var writer = new PackWriter(store, _key, 1 << 20, (entries, _) =>
        {
            stored.AddRange(entries);
            return Task.CompletedTask;
        });
        var plain = new Dictionary<BlobId, byte[]>();
        for (int i = 0; i < blobs; i++)
        {
            var data = i % 2 == 0 ? Files.RandomBytes(rng, rng.Next(1, 3000)) : Files.CompressibleBytes(rng, rng.Next(1, 3000));
            var (entry, sealedBytes, _) = SealBlob(data, i % 3 == 0 ? BlobKind.Tree : BlobKind.Data);
            plain[entry.Id] = data;
            await writer.AddAsync(entry.Id, entry.Kind, entry.Codec, data.Length, sealedBytes, default, default);
        }
        await writer.FlushAsync(default);
        var packs = (await store.ListAsync(FileKind.Pack));
        Assert.Single(packs);
        var bytes = await store.GetAsync(FileKind.Pack, packs[0].Name);
        return (BlobId.Parse(packs[0].Name), bytes, stored, plain);
    }

    [Fact]
    public async Task Pack_is_named_by_its_hash_and_its_header_lists_every_blob()
    {
        var rng = new Random(TestSeed.Get(output));
        var (pack, bytes, entries, plain) = await WritePackAsync(rng, 20);

        Assert.Equal(BlobId.HashOf(bytes), pack);
        Assert.Equal(20, entries.Count);
        Assert.All(entries, e => Assert.Equal(pack, e.Pack));
        var header = PackFormat.ReadHeader(_key, bytes, "pack");
        Assert.Equal(entries, header.Select(h => h.InPack(pack)).ToList());
        foreach (var e in entries)
        {
            Assert.Equal(plain[e.Id], BlobSealer.Open(_key, e, bytes.AsSpan((int)e.Offset, (int)e.StoredLength)));
        }
    }

    [Fact]
    public async Task Blobs_smaller_and_larger_than_the_write_buffer_keep_their_offsets_in_the_pack()
    {
        // Small blobs are gathered before they are written, large ones written at once: in any mix,
        // each lies where its entry says and the pack is named by the hash of all its bytes.
        var rng = new Random(TestSeed.Get(output));
        var store = new LocalBlobStore(_box.RepoPath);
        await store.CreateAsync();
        var stored = new List<IndexEntry>();
        var writer = new PackWriter(store, _key, 64 << 20, (entries, _) =>
        {
            stored.AddRange(entries);
            return Task.CompletedTask;
        });
        var plain = new Dictionary<BlobId, byte[]>();
        int[] sizes = [1, PackWriter.WriteBufferSize - 100, 5000, PackWriter.WriteBufferSize + 1, 3, PackWriter.WriteBufferSize - Aead.Overhead, 700_000, 2, 90_000, 90_000, 90_000];
        foreach (int size in sizes)
        {
            var data = Files.RandomBytes(rng, size);
            var (entry, sealedBytes, _) = SealBlob(data);
            plain[entry.Id] = data;
            await writer.AddAsync(entry.Id, entry.Kind, entry.Codec, data.Length, sealedBytes, default, default);
        }
        await writer.FlushAsync(default);
        var packs = (await store.ListAsync(FileKind.Pack));
        Assert.Single(packs);
        var bytes = await store.GetAsync(FileKind.Pack, packs[0].Name);
        var pack = BlobId.Parse(packs[0].Name);
        Assert.Equal(BlobId.HashOf(bytes), pack);
        Assert.Equal(sizes.Length, stored.Count);
        Assert.Equal(stored, PackFormat.ReadHeader(_key, bytes, "pack").Select(h => h.InPack(pack)).ToList());
        foreach (var e in stored)
        {
            Assert.Equal(plain[e.Id], BlobSealer.Open(_key, e, bytes.AsSpan((int)e.Offset, (int)e.StoredLength)));
        }
    }

    [Fact]
    public void A_blob_id_is_the_hmac_of_its_content_under_its_own_key_when_keys_are_used_in_turn()
    {
        // Each thread keeps the HMAC of the key it used last: switching keys must switch it.
        var rng = new Random(TestSeed.Get(output));
        var other = MasterKey.Generate();
        for (int i = 0; i < 50; i++)
        {
            var key = i % 3 == 0 ? other : _key;
            var data = Files.RandomBytes(rng, rng.Next(0, 5000));
            Assert.Equal(BlobId.Read(HMACSHA256.HashData(key.IdKey, data)), key.IdOf(data));
        }
    }

    [Fact]
    public void Every_sealed_blob_has_a_nonce_of_its_own_under_keys_used_in_turn()
    {
        // The cipher of the last key is kept per thread and nonces are drawn ahead: neither may repeat
        // a nonce or seal under the wrong key when keys alternate.
        var rng = new Random(TestSeed.Get(output));
        var other = MasterKey.Generate();
        var nonces = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < 1000; i++)
        {
            var key = i % 3 == 0 ? other : _key;
            var data = Files.RandomBytes(rng, rng.Next(0, 200));
            var sealedBytes = Aead.Seal(key.EncryptionKey, data, [1, 2, 3]);
            Assert.True(nonces.Add(Convert.ToHexString(sealedBytes, 0, Aead.NonceSize)), $"nonce repeated at blob {i}");
            Assert.Equal(data, Aead.TryOpen(key.EncryptionKey, sealedBytes, [1, 2, 3]));
            Assert.Null(Aead.TryOpen((key == other ? _key : other).EncryptionKey, sealedBytes, [1, 2, 3]));
        }
    }

    [Fact]
    public async Task Every_truncation_of_a_pack_is_refused_as_corrupt()
    {
        var rng = new Random(TestSeed.Get(output));
        var (_, bytes, _, _) = await WritePackAsync(rng, 6);
        for (int length = 0; length < bytes.Length; length++)
        {
            var cut = bytes.AsSpan(0, length).ToArray();
            AssertCorrupt(() => PackFormat.ReadHeader(_key, cut, "pack"), $"pack cut to {length} of {bytes.Length} bytes");
        }
        for (int drop = 1; drop < 200; drop++)
        {
            var cut = bytes.AsSpan(drop).ToArray();
            AssertCorrupt(() => PackFormat.ReadHeader(_key, cut, "pack"), $"pack without its first {drop} bytes");
        }
    }

    [Fact]
    public async Task Garbage_and_damaged_pack_headers_are_refused_as_corrupt()
    {
        var rng = new Random(TestSeed.Get(output));
        var (_, bytes, _, _) = await WritePackAsync(rng, 6);
        for (int i = 0; i < 300; i++)
        {
            var garbage = Files.RandomBytes(rng, rng.Next(0, 400));
            if (i % 2 == 0 && garbage.Length >= 8)
            {
                // Plausible trailer: the magic and a header length that fits.
                "KSGP"u8.CopyTo(garbage.AsSpan(garbage.Length - 4));
                BinaryPrimitives.WriteUInt32LittleEndian(garbage.AsSpan(garbage.Length - 8), (uint)rng.Next(0, garbage.Length));
            }
            AssertCorrupt(() => PackFormat.ReadHeader(_key, garbage, "pack"), $"garbage #{i} of {garbage.Length} bytes");
        }
        // Any flipped bit in the sealed header or the trailer.
        int headerLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(bytes.Length - 8));
        for (int bit = (bytes.Length - 8 - headerLength) * 8; bit < bytes.Length * 8; bit++)
        {
            var damaged = (byte[])bytes.Clone();
            damaged[bit / 8] ^= (byte)(1 << (bit % 8));
            AssertCorrupt(() => PackFormat.ReadHeader(_key, damaged, "pack"), $"bit {bit} of the header flipped");
        }
        AssertCorrupt(() => PackFormat.ReadHeader(MasterKey.Generate(), bytes, "pack"), "another key");
    }

    [Fact]
    public void A_header_entry_pointing_outside_the_pack_is_refused()
    {
        var rng = new Random(TestSeed.Get(output));
        var (entry, sealedBytes, _) = SealBlob(Files.RandomBytes(rng, 100));
        var good = new PackEntry(entry.Id, entry.Kind, entry.Codec, 0, (uint)sealedBytes.Length, entry.RawLength);
        foreach (var bad in new[]
        {
            good with { Offset = 1 },
            good with { StoredLength = (uint)sealedBytes.Length + 1 },
            good with { Offset = uint.MaxValue },
            good with { RawLength = PackFormat.MaxBlobRawLength + 1 },
            good with { StoredLength = 5, Offset = 0 },
        })
        {
            var pack = sealedBytes.Concat(PackFormat.SealHeader(_key, [bad])).ToArray();
            AssertCorrupt(() => PackFormat.ReadHeader(_key, pack, "pack"), $"entry {bad}");
        }
        var fine = sealedBytes.Concat(PackFormat.SealHeader(_key, [good])).ToArray();
        Assert.Equal(good, Assert.Single(PackFormat.ReadHeader(_key, fine, "pack")));
    }

    // ----- index files -----

    private static List<IndexEntry> RandomEntries(Random rng, int packs, bool withDeltas = false)
    {
        var entries = new List<IndexEntry>();
        for (int p = 0; p < packs; p++)
        {
            var pack = BlobId.Read(Files.RandomBytes(rng, 32));
            int count = rng.Next(1, 50);
            for (int i = 0; i < count; i++)
            {
                var kind = (BlobKind)rng.Next(0, withDeltas ? 4 : 2);
                entries.Add(new IndexEntry(BlobId.Read(Files.RandomBytes(rng, 32)), kind, (BlobCodec)rng.Next(0, withDeltas ? 3 : 2), pack,
                    (uint)rng.Next(), (uint)rng.Next(Aead.Overhead, 1 << 24), (uint)rng.Next(0, 1 << 24),
                    kind == BlobKind.Delta ? BlobId.Read(Files.RandomBytes(rng, 32)) : default));
            }
        }
        return entries;
    }

    [Fact]
    public void Index_file_round_trips()
    {
        var rng = new Random(TestSeed.Get(output));
        var entries = RandomEntries(rng, 5);
        var bytes = IndexFile.Serialize(entries.GroupBy(e => e.Pack).ToList());
        Assert.Equal(entries, IndexFile.Parse(bytes, "index"));

        var empty = IndexFile.Serialize([]);
        Assert.Empty(IndexFile.Parse(empty, "index"));
    }

    [Fact]
    public void Master_index_finds_every_loaded_entry_and_keeps_the_first_location_of_a_blob_listed_twice()
    {
        var rng = new Random(TestSeed.Get(output));
        var first = RandomEntries(rng, 30, withDeltas: true);
        var second = RandomEntries(rng, 20, withDeltas: true);
        // The second file lists two blobs of the first again, in another pack (as after an interrupted prune).
        var elsewhere = BlobId.Read(Files.RandomBytes(rng, 32));
        var copies = new[] { first[3] with { Pack = elsewhere, Offset = 1 }, first[^1] with { Pack = elsewhere, Offset = 2 } };
        var tables = new[] { first, [.. second, .. copies] }
            .Select(entries => IndexFile.ParseTable(IndexFile.Serialize(entries.GroupBy(e => e.Pack).ToList()), "index"))
            .ToList();
        var index = new MasterIndex(tables);

        Assert.Equal(first.Count + second.Count, index.Count);
        foreach (var e in first.Concat(second))
        {
            Assert.True(index.TryGet(e.Id, out var found));
            Assert.Equal(e, found);
            Assert.True(index.Contains(e.Id));
        }
        Assert.Equal(first.Concat(second).OrderBy(e => e.Id).ToList(), index.Entries.OrderBy(e => e.Id).ToList());
        var unknown = BlobId.Read(Files.RandomBytes(rng, 32));
        Assert.False(index.TryGet(unknown, out _));
        Assert.False(index.Contains(unknown));

        // Added after loading: a new blob is found; a known one keeps its loaded location.
        var added = RandomEntries(rng, 1)[0];
        index.Add(added);
        index.Add(first[0] with { Pack = elsewhere });
        Assert.Equal(added, index.Get(added.Id));
        Assert.Equal(first[0], index.Get(first[0].Id));
        Assert.Equal(first.Count + second.Count + 1, index.Count);
        Assert.Equal(index.Count, index.Entries.Count());
    }

    [Fact]
    public void Index_files_with_delta_entries_round_trip_as_version_2_and_version_1_refuses_deltas()
    {
        var rng = new Random(TestSeed.Get(output));
        var entries = RandomEntries(rng, 4, withDeltas: true);
        Assert.Contains(entries, e => e.IsDelta);
        var bytes = IndexFile.Serialize(entries.GroupBy(e => e.Pack).ToList());
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(bytes));
        Assert.Equal(entries, IndexFile.Parse(bytes, "index"));
        var asVersion1 = (byte[])bytes.Clone();
        asVersion1[0] = 1;
        AssertCorrupt(() => IndexFile.Parse(asVersion1, "index"), "a delta entry in a version 1 index");
        var plain = IndexFile.Serialize(RandomEntries(rng, 2).GroupBy(e => e.Pack).ToList());
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(plain));
    }

    [Fact]
    public void Every_truncation_of_an_index_file_and_trailing_bytes_are_refused()
    {
        var rng = new Random(TestSeed.Get(output));
        var bytes = IndexFile.Serialize(RandomEntries(rng, 3).GroupBy(e => e.Pack).ToList());
        for (int length = 0; length < bytes.Length; length++)
        {
            var cut = bytes.AsSpan(0, length).ToArray();
            AssertCorrupt(() => IndexFile.Parse(cut, "index"), $"index cut to {length} of {bytes.Length} bytes");
        }
        var longer = bytes.Concat(new byte[] { 0 }).ToArray();
        AssertCorrupt(() => IndexFile.Parse(longer, "index"), "a trailing byte");
        var otherVersion = (byte[])bytes.Clone();
        otherVersion[0] = 3;
        AssertCorrupt(() => IndexFile.Parse(otherVersion, "index"), "version 3");
        var hugeCount = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(hugeCount.AsSpan(8 + 32), uint.MaxValue);
        AssertCorrupt(() => IndexFile.Parse(hugeCount, "index"), "an entry count of 2^32-1");
    }

    [Theory]
    [InlineData("unknown kind")]
    [InlineData("reserved byte")]
    [InlineData("raw length")]
    [InlineData("stored length too large")]
    [InlineData("stored length below the envelope")]
    public void Index_entries_out_of_range_are_refused(string problem)
    {
        var rng = new Random(TestSeed.Get(output));
        var bytes = IndexFile.Serialize(RandomEntries(rng, 1).GroupBy(e => e.Pack).ToList());
        var entry = bytes.AsSpan(8 + BlobId.Size + 4, PackFormat.EntrySize);
        switch (problem)
        {
            case "unknown kind":
                entry[0] = 200;
                break;
            case "reserved byte":
                entry[3] = 1;
                break;
            case "raw length":
                BinaryPrimitives.WriteUInt32LittleEndian(entry[12..], PackFormat.MaxBlobRawLength + 1u);
                break;
            case "stored length too large":
                BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], uint.MaxValue);
                break;
            default:
                BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], Aead.Overhead - 1);
                break;
        }
        AssertCorrupt(() => IndexFile.Parse(bytes, "index"), problem);
    }

    // ----- sealed files (config, index, snapshot) -----

    [Fact]
    public void Sealed_file_round_trips_and_refuses_another_type_or_damage()
    {
        var rng = new Random(TestSeed.Get(output));
        foreach (var payload in new[] { Files.RandomBytes(rng, 3000), Files.CompressibleBytes(rng, 100_000), Array.Empty<byte>() })
        {
            var sealedFile = SealedFile.Seal(_key, SealedFileType.Index, payload);
            Assert.Equal(payload, SealedFile.Open(_key, SealedFileType.Index, sealedFile, "file"));
            AssertCorrupt(() => SealedFile.Open(_key, SealedFileType.Snapshot, sealedFile, "file"), "opened as another type");
            AssertCorrupt(() => SealedFile.Open(MasterKey.Generate(), SealedFileType.Index, sealedFile, "file"), "another key");
            for (int i = 0; i < sealedFile.Length; i += Math.Max(1, sealedFile.Length / 200))
            {
                var damaged = (byte[])sealedFile.Clone();
                damaged[i] ^= 0x10;
                AssertCorrupt(() => SealedFile.Open(_key, SealedFileType.Index, damaged, "file"), $"byte {i} changed");
            }
            AssertCorrupt(() => SealedFile.Open(_key, SealedFileType.Index, sealedFile.AsSpan(0, sealedFile.Length - 1), "file"), "cut short");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Sealed_file_with_a_payload_above_the_limit_is_refused(bool compressible)
    {
        var rng = new Random(TestSeed.Get(output));
        var payload = compressible ? new byte[2 << 20] : Files.RandomBytes(rng, 2 << 20);
        var sealedFile = SealedFile.Seal(_key, SealedFileType.Snapshot, payload);
        Assert.Equal(compressible ? (byte)BlobCodec.Zstd : (byte)BlobCodec.Stored, sealedFile[5]);
        AssertCorrupt(() => SealedFile.Open(_key, SealedFileType.Snapshot, sealedFile, "snapshot", 1 << 20), "2 MiB payload with a 1 MiB limit");
        Assert.Equal(payload.Length, SealedFile.Open(_key, SealedFileType.Snapshot, sealedFile, "snapshot", 2 << 20).Length);
    }

    // ----- decoding limits -----

    [Fact]
    public void Decode_refuses_compressed_content_that_declares_more_than_the_limit()
    {
        // 64 MiB of zeros compress to a few KiB: a decompression bomb.
        var bomb = new ZstdSharp.Compressor(3).Wrap(new byte[64 << 20]).ToArray();
        Assert.True(bomb.Length < 64 * 1024);
        AssertCorrupt(() => BlobEncoder.Decode(BlobCodec.Zstd, bomb, 1 << 20, "blob"), "64 MiB declared, 1 MiB allowed");

        var small = new ZstdSharp.Compressor(3).Wrap(new byte[1 << 20]).ToArray();
        Assert.Equal(1 << 20, BlobEncoder.Decode(BlobCodec.Zstd, small, 1 << 20, "blob").Length);
        AssertCorrupt(() => BlobEncoder.Decode(BlobCodec.Zstd, small, (1 << 20) - 1, "blob"), "one byte over the limit");
    }

    [Fact]
    public void Decode_refuses_stored_content_above_the_limit_and_unknown_codecs()
    {
        AssertCorrupt(() => BlobEncoder.Decode(BlobCodec.Stored, new byte[1001], 1000, "blob"), "stored content over the limit");
        Assert.Equal(1000, BlobEncoder.Decode(BlobCodec.Stored, new byte[1000], 1000, "blob").Length);
        AssertCorrupt(() => BlobEncoder.Decode((BlobCodec)7, new byte[10], 1000, "blob"), "codec 7");
        AssertCorrupt(() => BlobEncoder.Decode((BlobCodec)7, new byte[10], new byte[10], "blob"), "codec 7 into a buffer");
    }

    [Fact]
    public void Decode_into_a_buffer_refuses_content_longer_or_shorter_than_the_raw_length()
    {
        var compressed = new ZstdSharp.Compressor(3).Wrap(new byte[1 << 20]).ToArray();
        AssertCorrupt(() => BlobEncoder.Decode(BlobCodec.Zstd, compressed, new byte[64 * 1024], "blob"), "1 MiB into 64 KiB");
        AssertCorrupt(() => BlobEncoder.Decode(BlobCodec.Zstd, compressed, new byte[(1 << 20) + 1], "blob"), "1 MiB into 1 MiB + 1");
        AssertCorrupt(() => BlobEncoder.Decode(BlobCodec.Stored, new byte[10], new byte[11], "blob"), "stored 10 bytes into 11");
    }

    [Fact]
    public void Decode_refuses_zstd_garbage_as_corrupt()
    {
        var rng = new Random(TestSeed.Get(output));
        var frame = new ZstdSharp.Compressor(3).Wrap(Files.CompressibleBytes(rng, 50_000)).ToArray();
        for (int i = 0; i < 200; i++)
        {
            byte[] garbage;
            if (i % 2 == 0)
            {
                garbage = Files.RandomBytes(rng, rng.Next(0, 200));
            }
            else
            {
                // A real frame with a damaged body or cut short.
                garbage = (byte[])frame.Clone();
                if (i % 4 == 1)
                {
                    garbage[rng.Next(12, garbage.Length)] ^= (byte)(1 << rng.Next(8));
                }
                else
                {
                    garbage = garbage[..rng.Next(0, garbage.Length)];
                }
            }
            int n = i;
            try
            {
                var decoded = BlobEncoder.Decode(BlobCodec.Zstd, garbage, 1 << 20, "blob");
                // A flipped bit can leave a valid frame (in a literal); then the length must still be right.
                Assert.True(n % 4 == 1, $"garbage #{n} decoded to {decoded.Length} bytes");
            }
            catch (KintsugiException e)
            {
                Assert.True(e.Kind == ErrorKind.Corrupt, $"garbage #{n}: {e.Kind}");
            }
        }
    }

    // ----- stored repository files -----

    [Fact]
    public async Task Stored_index_and_snapshot_files_whose_bytes_changed_are_refused()
    {
        var repo = await _box.InitAsync();
        var rng = new Random(TestSeed.Get(output));
        string index = Assert.Single(await repo.SaveIndexAsync(RandomEntries(rng, 1)));
        var snapshot = await repo.SaveSnapshotAsync(new Snapshot { Time = DateTimeOffset.UnixEpoch, Host = "h", Paths = ["/x"], Tree = new string('0', 64), Kind = "full" });
        Assert.NotEmpty(await repo.LoadIndexFileAsync(index));
        Assert.Equal(snapshot, (await repo.LoadSnapshotAsync(snapshot.ToString())).Id);

        foreach (var (kind, name) in new[] { (FileKind.Index, index), (FileKind.Snapshot, snapshot.ToString()) })
        {
            string path = _box.Store.PathOf(kind, name);
            var bytes = await File.ReadAllBytesAsync(path);
            bytes[bytes.Length / 2] ^= 1;
            await File.WriteAllBytesAsync(path, bytes);
        }
        var e1 = await Assert.ThrowsAsync<KintsugiException>(() => repo.LoadIndexFileAsync(index));
        Assert.Equal(ErrorKind.Corrupt, e1.Kind);
        var e2 = await Assert.ThrowsAsync<KintsugiException>(() => repo.LoadSnapshotAsync(snapshot.ToString()));
        Assert.Equal(ErrorKind.Corrupt, e2.Kind);
    }
}
