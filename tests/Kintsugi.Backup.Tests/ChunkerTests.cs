using System.Security.Cryptography;
using Kintsugi.Backup.Chunking;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class ChunkerTests(ITestOutputHelper output)
{
    private const int Min = 16 * 1024, Average = 64 * 1024, Max = 256 * 1024;

    private static Chunker NewChunker(byte[] seed) => new(seed, Min, Average, Max);

    private static byte[] SeedOf(Random rng) => Files.RandomBytes(rng, 32);

    /// <summary>Cuts data the way the backup engine does: each call sees at least Max bytes unless the data ends sooner.</summary>
    private static List<(int Offset, int Length)> Split(Chunker chunker, byte[] data)
    {
        var chunks = new List<(int, int)>();
        int pos = 0;
        while (pos < data.Length)
        {
            int length = chunker.NextBoundary(data.AsSpan(pos, Math.Min(data.Length - pos, chunker.MaxSize + 4096)));
            Assert.InRange(length, 1, data.Length - pos);
            chunks.Add((pos, length));
            pos += length;
        }
        return chunks;
    }

    private static List<string> Hashes(byte[] data, List<(int Offset, int Length)> chunks) =>
        chunks.Select(c => Convert.ToHexString(SHA256.HashData(data.AsSpan(c.Offset, c.Length)))).ToList();

    [Fact]
    public void Boundaries_are_deterministic_for_a_seed()
    {
        var rng = new Random(TestSeed.Get(output));
        var seed = SeedOf(rng);
        var data = Files.RandomBytes(rng, 3 << 20);

        var chunker = NewChunker(seed);
        var first = Split(chunker, data);
        Assert.Equal(first, Split(chunker, data));
        Assert.Equal(first, Split(NewChunker(seed), data));
    }

    [Fact]
    public void Chunks_concatenate_to_the_input()
    {
        var rng = new Random(TestSeed.Get(output));
        var chunker = NewChunker(SeedOf(rng));
        foreach (int size in new[] { 0, 1, Min - 1, Min, Min + 1, Average, Max - 1, Max, Max + 1, 2 * Max + 17, 3 << 20 })
        {
            var data = Files.RandomBytes(rng, size);
            var chunks = Split(chunker, data);
            var joined = chunks.SelectMany(ch => data.AsSpan(ch.Offset, ch.Length).ToArray()).ToArray();
            Assert.Equal(data, joined);
            // Chunks follow each other with no gap and no overlap.
            int expected = 0;
            foreach (var (offset, length) in chunks)
            {
                Assert.Equal(expected, offset);
                expected += length;
            }
            Assert.Equal(size, expected);
        }
    }

    [Fact]
    public void Every_chunk_but_the_last_is_between_min_and_max()
    {
        var rng = new Random(TestSeed.Get(output));
        var chunker = NewChunker(SeedOf(rng));
        // Random data, and data that never triggers a cut (zeros), which must be cut at the maximum.
        foreach (var data in new[] { Files.RandomBytes(rng, 6 << 20), new byte[(3 << 20) + 5], Files.CompressibleBytes(rng, 2 << 20) })
        {
            var chunks = Split(chunker, data);
            Assert.True(chunks.Count > 1);
            foreach (var (offset, length) in chunks.Take(chunks.Count - 1))
            {
                Assert.True(length >= Min && length <= Max, $"chunk at {offset} is {length} bytes, outside [{Min}, {Max}]");
            }
            Assert.InRange(chunks[^1].Length, 1, Max);
        }
    }

    [Fact]
    public void Chunk_sizes_cluster_around_the_average()
    {
        var rng = new Random(TestSeed.Get(output));
        var data = Files.RandomBytes(rng, 16 << 20);
        var chunks = Split(NewChunker(SeedOf(rng)), data);
        double mean = chunks.Take(chunks.Count - 1).Average(ch => ch.Length);
        output.WriteLine($"{chunks.Count} chunks, mean {mean:F0} bytes");
        Assert.InRange(mean, Average / 2.0, Average * 2.0);
    }

    [Fact]
    public void Inserting_bytes_leaves_earlier_chunks_alone_and_later_chunks_resynchronise()
    {
        var rng = new Random(TestSeed.Get(output));
        int suffixTotal = 0, reappearTotal = 0;
        for (int trial = 0; trial < 10; trial++)
        {
            var chunker = NewChunker(SeedOf(rng));
            var data = Files.RandomBytes(rng, 8 << 20);
            int at = rng.Next(0, data.Length / 2);
            var inserted = Files.RandomBytes(rng, rng.Next(1, 2000));
            var changed = new byte[data.Length + inserted.Length];
            data.AsSpan(0, at).CopyTo(changed);
            inserted.CopyTo(changed, at);
            data.AsSpan(at).CopyTo(changed.AsSpan(at + inserted.Length));

            var before = Split(chunker, data);
            var after = Split(chunker, changed);

            // Chunks that end at or before the insertion point are the same chunks.
            int prefix = before.Count(ch => ch.Offset + ch.Length <= at);
            Assert.True(before.Take(prefix).SequenceEqual(after.Take(prefix)), $"trial {trial}: a chunk before the insertion at {at} changed");

            // Chunks after it line up again: their hashes reappear in the changed data's chunks.
            var afterHashes = Hashes(changed, after).ToHashSet();
            var suffix = Hashes(data, before).Skip(prefix).ToList();
            int reappear = suffix.Count(afterHashes.Contains);
            output.WriteLine($"trial {trial}: {inserted.Length} bytes inserted at {at}; {reappear} of the {suffix.Count} chunks after it reappear");
            Assert.True(reappear * 2 > suffix.Count, $"trial {trial}: only {reappear} of the {suffix.Count} chunks after the insertion at {at} reappear");
            // The very last chunk is always found again once the boundaries have lined up.
            Assert.Contains(suffix[^1], afterHashes);
            suffixTotal += suffix.Count;
            reappearTotal += reappear;
        }
        // Typically only the chunk holding the insertion changes (about 98% reappear).
        Assert.True(reappearTotal >= suffixTotal * 0.9, $"only {reappearTotal} of {suffixTotal} chunks after the insertions reappear");
    }

    [Fact]
    public void Different_seeds_give_different_boundaries()
    {
        var rng = new Random(TestSeed.Get(output));
        var data = Files.RandomBytes(rng, 4 << 20);
        var a = Split(NewChunker(SeedOf(rng)), data).Select(ch => ch.Offset).ToHashSet();
        var b = Split(NewChunker(SeedOf(rng)), data).Select(ch => ch.Offset).ToHashSet();
        // Offset 0 is always shared; content-defined cuts of unrelated gear tables almost never coincide.
        int shared = a.Intersect(b).Count();
        Assert.True(shared < Math.Min(a.Count, b.Count) / 4, $"{shared} of {a.Count}/{b.Count} boundaries are the same under two seeds");
    }

    [Theory]
    [InlineData(63, 128, 1024)]
    [InlineData(1024, 1024, 4096)]
    [InlineData(1024, 3000, 8192)]
    [InlineData(1024, 4096, 4096)]
    public void Invalid_sizes_are_refused(int min, int average, int max)
    {
        Assert.Throws<ArgumentException>(() => new Chunker(new byte[32], min, average, max));
    }
}
