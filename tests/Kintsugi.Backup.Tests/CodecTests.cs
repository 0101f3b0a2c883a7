using System.Buffers.Binary;
using System.Text;
using Kintsugi.Backup.Codecs;
using Kintsugi.Backup.Format;
using Xunit;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

/// <summary>Byte planes, XOR deltas and the piece encoder: every encoding decodes to the exact bytes.</summary>
public sealed class CodecTests(ITestOutputHelper output)
{
    private static readonly int[] Widths = [1, 2, 4, 8];

    /// <summary>Floats as a training run leaves them: mostly small normals, plus the awkward values.</summary>
    private static byte[] Floats(Random rng, int count, int width)
    {
        var bytes = new byte[count * width];
        for (int i = 0; i < count; i++)
        {
            float v = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
            switch (rng.Next(40))
            {
                case 0: v = float.NaN; break;
                case 1: v = -0.0f; break;
                case 2: v = BitConverter.Int32BitsToSingle(rng.Next(1, 0x007FFFFF)); break; // subnormal
                case 3: v = float.PositiveInfinity; break;
                case 4: v = BitConverter.Int32BitsToSingle(0x7FC00000 | rng.Next(1, 0x3FFFFF)); break; // NaN with a payload
                default: break;
            }
            var span = bytes.AsSpan(i * width);
            switch (width)
            {
                case 1: span[0] = (byte)(BitConverter.SingleToInt32Bits(v) >> 24); break;
                case 2: BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)(BitConverter.SingleToInt32Bits(v) >> 16)); break;
                case 4: BinaryPrimitives.WriteSingleLittleEndian(span, v); break;
                default: BinaryPrimitives.WriteDoubleLittleEndian(span, v); break;
            }
        }
        return bytes;
    }

    /// <summary>Moves every value a little (a training step) or rewrites a few rows (an embedding update).</summary>
    private static byte[] Mutate(Random rng, byte[] data, int width)
    {
        var next = (byte[])data.Clone();
        switch (rng.Next(3))
        {
            case 0:
                for (int i = 0; i + width <= next.Length; i += width)
                {
                    next[i] ^= (byte)rng.Next(4); // the lowest mantissa bits move
                }
                break;
            case 1:
                for (int k = 0; k < 1 + next.Length / 5000; k++)
                {
                    int at = rng.Next(next.Length);
                    var fresh = Floats(rng, 8, width);
                    fresh.AsSpan(0, Math.Min(fresh.Length, next.Length - at)).CopyTo(next.AsSpan(at));
                }
                break;
            default:
                rng.NextBytes(next.AsSpan(rng.Next(next.Length)));
                break;
        }
        return next;
    }

    private static byte[] Decode(EncodedPiece piece, int rawLength, byte[]? basePlain)
    {
        var plain = new byte[rawLength];
        BlobEncoder.Decode(piece.Codec, piece.Bytes.AsSpan(0, piece.Length), plain, "test");
        if (piece.Kind == BlobKind.Delta)
        {
            Assert.NotNull(basePlain);
            BytePlanes.Xor(plain, basePlain);
        }
        return plain;
    }

    [Fact]
    public void Byte_planes_round_trip_any_bytes_at_any_length()
    {
        var rng = new Random(TestSeed.Get(output));
        for (int round = 0; round < 400; round++)
        {
            int width = Widths[rng.Next(Widths.Length)];
            var data = new byte[rng.Next(0, 3000)];
            rng.NextBytes(data);
            var planes = new byte[BytePlanes.PlanesLength(data.Length, width)];
            BytePlanes.Split(data, planes, width);
            var back = new byte[data.Length];
            BytePlanes.Join(planes, back, width);
            Assert.True(data.AsSpan().SequenceEqual(back), $"width {width}, length {data.Length}, round {round}");
        }
    }

    [Fact]
    public void Byte_planes_group_bytes_by_their_place_in_the_element()
    {
        byte[] data = [0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x23, 0xAA];
        var planes = new byte[data.Length];
        BytePlanes.Split(data, planes, 4);
        Assert.Equal(new byte[] { 0x10, 0x20, 0x11, 0x21, 0x12, 0x22, 0x13, 0x23, 0xAA }, planes);
        var nibbles = new byte[BytePlanes.PlanesLength(3, 1)];
        BytePlanes.Split(new byte[] { 0xAB, 0xCD, 0xEF }, nibbles, 1);
        Assert.Equal(new byte[] { 0xAC, 0xE0, 0xBD, 0xF0 }, nibbles);
    }

    [Fact]
    public void Byte_planes_match_their_definition_at_every_length_around_the_vector_step()
    {
        // Plane p holds byte p of every whole element, the tail follows unchanged: checked against
        // that definition for widths 2, 4 and 8 and every length up to 40 elements, so the
        // 16-element vector loops and the scalar tails meet at every offset.
        var rng = new Random(TestSeed.Get(output));
        foreach (int width in new[] { 2, 4, 8 })
        {
            for (int length = 0; length <= 40 * width + width; length++)
            {
                var data = new byte[length];
                rng.NextBytes(data);
                int n = length / width;
                var expected = new byte[length];
                for (int i = 0; i < n; i++)
                {
                    for (int p = 0; p < width; p++)
                    {
                        expected[p * n + i] = data[i * width + p];
                    }
                }
                data.AsSpan(n * width).CopyTo(expected.AsSpan(n * width));
                var planes = new byte[length];
                BytePlanes.Split(data, planes, width);
                Assert.True(expected.AsSpan().SequenceEqual(planes), $"split, width {width}, length {length}");
                var back = new byte[length];
                BytePlanes.Join(planes, back, width);
                Assert.True(data.AsSpan().SequenceEqual(back), $"join, width {width}, length {length}");
            }
        }
    }

    [Fact]
    public void Piece_encoder_round_trips_random_tensors_and_mutations_bit_exact()
    {
        var rng = new Random(TestSeed.Get(output));
        int deltas = 0, planes = 0;
        for (int round = 0; round < 60; round++)
        {
            int width = Widths[rng.Next(Widths.Length)];
            int count = rng.Next(1, 70_000);
            var first = Floats(rng, count, width);
            if (rng.Next(4) == 0)
            {
                Array.Resize(ref first, first.Length + rng.Next(1, width + 1)); // odd lengths
            }
            var second = Mutate(rng, first, width);
            int planeWidth = rng.Next(5) == 0 ? 0 : width;

            var whole = PieceEncoder.Encode(first, planeWidth, default);
            Assert.Equal(BlobKind.TensorPiece, whole.Kind);
            Assert.True(first.AsSpan().SequenceEqual(Decode(whole, first.Length, null)), $"round {round}: whole piece");

            var delta = PieceEncoder.Encode(second, planeWidth, first);
            Assert.True(second.AsSpan().SequenceEqual(Decode(delta, second.Length, first)), $"round {round}: {delta.Kind} {delta.Codec}");
            var alone = PieceEncoder.Encode(second, planeWidth, default);
            Assert.True(delta.Length <= alone.Length, $"round {round}: the delta path never stores more than the piece alone ({delta.Length} > {alone.Length})");
            deltas += delta.Kind == BlobKind.Delta ? 1 : 0;
            planes += whole.Codec == BlobCodec.Planes ? 1 : 0;
        }
        output.WriteLine($"{deltas} of 60 mutated pieces stored as deltas, {planes} whole pieces as byte planes");
        Assert.True(deltas > 0 && planes > 0, "the test exercises both the delta and the byte-plane path");
    }

    [Fact]
    public void A_slightly_moved_bf16_tensor_is_stored_as_a_small_delta()
    {
        var rng = new Random(TestSeed.Get(output));
        var first = Floats(new Random(rng.Next()), 512 * 1024, 2);
        var second = (byte[])first.Clone();
        for (int i = 0; i < second.Length; i += 2)
        {
            second[i] ^= (byte)rng.Next(4);
        }
        var alone = PieceEncoder.Encode(second, 2, default);
        var delta = PieceEncoder.Encode(second, 2, first);
        output.WriteLine($"alone: {alone.Codec} {alone.Length} bytes (zstd only: {PieceEncoder.Encode(second, 0, default).Length}); with base: {delta.Kind} {delta.Codec} {delta.Length} bytes of {second.Length}");
        Assert.Equal(BlobKind.Delta, delta.Kind);
        Assert.True(delta.Length < alone.Length / 2, "a delta of low-bit changes is much smaller than the piece");
        Assert.Equal(BlobCodec.Planes, alone.Codec);
    }

    [Fact]
    public void Incompressible_pieces_are_stored_and_a_base_of_another_length_is_ignored()
    {
        var rng = new Random(TestSeed.Get(output));
        var noise = new byte[300_000];
        rng.NextBytes(noise);
        var piece = PieceEncoder.Encode(noise, 4, new byte[10]);
        Assert.Equal(BlobKind.TensorPiece, piece.Kind);
        Assert.Equal(BlobCodec.Stored, piece.Codec);
        Assert.True(noise.AsSpan().SequenceEqual(Decode(piece, noise.Length, null)));
    }

    [Fact]
    public void Planes_with_a_bad_width_or_a_lying_length_are_reported_as_corrupt()
    {
        var floats = Floats(new Random(1), 100_000, 2);
        var piece = PieceEncoder.Encode(floats, 2, default);
        Assert.Equal(BlobCodec.Planes, piece.Codec);
        var bad = piece.Bytes.AsSpan(0, piece.Length).ToArray();
        bad[0] = 3;
        var decoded = new byte[200_000];
        BlobEncoder.Decode(BlobCodec.Planes, piece.Bytes.AsSpan(0, piece.Length), decoded, "test");
        Assert.Equal(floats, decoded);
        Assert.Throws<KintsugiException>(() => BlobEncoder.Decode(BlobCodec.Planes, bad, new byte[200_000], "test"));
        Assert.Throws<KintsugiException>(() => BlobEncoder.Decode(BlobCodec.Planes, piece.Bytes.AsSpan(0, piece.Length), new byte[199_999], "test"));
        Assert.Throws<KintsugiException>(() => BlobEncoder.Decode(BlobCodec.Planes, ReadOnlySpan<byte>.Empty, new byte[8], "test"));
    }
    [Fact]
    public void The_zstd_level_follows_what_a_sample_shows_and_every_choice_round_trips()
    {
        var rng = new Random(TestSeed.Get(output));
        // Random bytes: stored.
        var noise = new byte[1 << 20];
        rng.NextBytes(noise);
        // int16 samples of a noisy tone: compressible by byte frequencies alone, no repeats.
        var samples = new byte[1 << 20];
        for (int i = 0; i < samples.Length / 2; i++)
        {
            short v = (short)(3000 * Math.Sin(i * 0.01) + rng.Next(-200, 200));
            BitConverter.TryWriteBytes(samples.AsSpan(2 * i), v);
        }
        // Text from a small vocabulary: repeats everywhere.
        string[] words = [.. Enumerable.Range(0, 400).Select(_ => new string([.. Enumerable.Range(0, rng.Next(2, 9)).Select(_ => (char)('a' + rng.Next(26)))]))];
        var text = new StringBuilder();
        while (text.Length < 1 << 20)
        {
            text.Append(words[Math.Min(words.Length - 1, (int)(-40 * Math.Log(1 - rng.NextDouble())))]).Append(rng.Next(12) == 0 ? ".\n" : " ");
        }
        var prose = Encoding.ASCII.GetBytes(text.ToString(0, 1 << 20));
        var small = prose.AsSpan(0, 100_000).ToArray();
        // Mostly zeros where the sample is taken: nearly no byte-frequency entropy, all runs.
        var holey = prose.ToArray();
        holey.AsSpan(holey.Length / 2 - 40_000, 80_000).Clear();

        Assert.Equal(0, BlobEncoder.LevelFor(noise));
        Assert.Equal(BlobEncoder.FastLevel, BlobEncoder.LevelFor(samples));
        Assert.Equal(BlobEncoder.Level, BlobEncoder.LevelFor(prose));
        Assert.Equal(BlobEncoder.Level, BlobEncoder.LevelFor(small));
        Assert.Equal(BlobEncoder.Level, BlobEncoder.LevelFor(holey));
        foreach (var (data, codec) in new[] { (noise, BlobCodec.Stored), (samples, BlobCodec.Zstd), (prose, BlobCodec.Zstd), (small, BlobCodec.Zstd), (holey, BlobCodec.Zstd) })
        {
            var buffer = new byte[BlobEncoder.MaxEncodedLength(data.Length)];
            var (c, n) = BlobEncoder.Encode(data, buffer);
            Assert.Equal(codec, c);
            var decoded = new byte[data.Length];
            BlobEncoder.Decode(c, buffer.AsSpan(0, n), decoded, "test");
            Assert.Equal(data, decoded);
        }
    }
}
