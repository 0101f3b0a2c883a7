using System.Buffers;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Codecs;

/// <summary>An encoded blob payload: what kind of blob it makes, how it is encoded, and the bytes (rented from <see cref="ArrayPool{T}.Shared"/>: the caller returns them).</summary>
internal readonly record struct EncodedPiece(BlobKind Kind, BlobCodec Codec, byte[] Bytes, int Length);

/// <summary>
/// Encodes a piece of a tensor as the smallest of: stored, zstd, zstd of byte planes, and — where a
/// base (the same piece of the same tensor in the parent snapshot) is given — the XOR against the
/// base, itself coded the same ways. The choices are judged first from byte histograms of a quarter of the piece (order-0
/// entropy: zstd codes literals by such statistics, and float pieces have few long matches), and
/// only where two candidates come within a few percent are both compressed and the smaller kept,
/// so a piece is usually compressed once.
/// </summary>
internal static class PieceEncoder
{
    /// <summary>Candidates whose estimates differ by less than this factor are both tried in full.</summary>
    private const double Margin = 0.85;

    public static EncodedPiece Encode(ReadOnlySpan<byte> plain, int planeWidth, ReadOnlySpan<byte> basePlain)
    {
        if (!BytePlanes.IsSupportedWidth(planeWidth))
        {
            planeWidth = 0;
        }
        var full = Estimate.Of(plain, planeWidth);
        if (basePlain.Length != plain.Length || plain.Length == 0)
        {
            var (codec, bytes, length) = EncodeBest(plain, planeWidth, full);
            return new EncodedPiece(BlobKind.TensorPiece, codec, bytes, length);
        }
        var xor = BufferPool.Shared.Rent(plain.Length);
        try
        {
            var xorSpan = xor.AsSpan(0, plain.Length);
            BytePlanes.Xor(plain, basePlain, xorSpan);
            var delta = Estimate.Of(xorSpan, planeWidth);
            (BlobCodec Codec, byte[] Bytes, int Length)? d = null, f = null;
            if (delta.Bits < full.Bits / Margin)
            {
                d = EncodeBest(xorSpan, planeWidth, delta);
            }
            if (full.Bits < delta.Bits / Margin || d is null)
            {
                f = EncodeBest(plain, planeWidth, full);
            }
            if (f is null || (d is { } dd && dd.Length < f.Value.Length))
            {
                Return(f);
                return new EncodedPiece(BlobKind.Delta, d!.Value.Codec, d.Value.Bytes, d.Value.Length);
            }
            Return(d);
            return new EncodedPiece(BlobKind.TensorPiece, f.Value.Codec, f.Value.Bytes, f.Value.Length);
        }
        finally
        {
            BufferPool.Shared.Return(xor);
        }
    }

    private static void Return((BlobCodec Codec, byte[] Bytes, int Length)? encoded)
    {
        if (encoded is { } e)
        {
            BufferPool.Shared.Return(e.Bytes);
        }
    }

    private static (BlobCodec Codec, byte[] Bytes, int Length) EncodeBest(ReadOnlySpan<byte> data, int planeWidth, Estimate estimate)
    {
        (BlobCodec Codec, byte[] Bytes, int Length)? planes = null;
        if (estimate.Choice != Choice.Plain)
        {
            var encoded = EncodePlanes(data, planeWidth, out int length);
            if (BlobEncoder.Saves(length, data.Length))
            {
                planes = (BlobCodec.Planes, encoded, length);
                if (estimate.Choice == Choice.Planes)
                {
                    return planes.Value;
                }
            }
            else
            {
                BufferPool.Shared.Return(encoded);
            }
        }
        var buffer = BufferPool.Shared.Rent(BlobEncoder.MaxEncodedLength(data.Length) + 1);
        var (codec, n) = BlobEncoder.Encode(data, buffer);
        if (planes is { } p && p.Length < n)
        {
            BufferPool.Shared.Return(buffer);
            return p;
        }
        Return(planes);
        return (codec, buffer, n);
    }

    private enum Choice { Plain, Planes, Both }

    /// <summary>
    /// The expected coded size of some bytes, in bits, and the coding to try: byte planes when their
    /// order-0 entropy is clearly lower than that of the bytes taken together, plain zstd when the
    /// bytes look random (zstd's own sample test then stores them), both in full when it is close.
    /// Nibble planes (width 1) are always tried in full: a byte histogram cannot judge them.
    /// </summary>
    private readonly record struct Estimate(Choice Choice, double Bits)
    {
        public static Estimate Of(ReadOnlySpan<byte> data, int width)
        {
            if (data.Length < 4096)
            {
                return new Estimate(width == 0 ? Choice.Plain : Choice.Both, 8.0 * data.Length);
            }
            int w = Math.Max(width, 1);
            Span<int> counts = stackalloc int[256 * 8];
            counts = counts[..(256 * w)];
            counts.Clear();
            // Every fourth 4 KiB block: a quarter of the bytes judge the whole piece as well.
            int whole = 0;
            for (int start = 0; start < data.Length; start += 4 * SampleBlock)
            {
                var block = data.Slice(start, Math.Min(SampleBlock, data.Length - start));
                block = block[..(block.Length - block.Length % w)];
                whole += block.Length;
                Count(block, counts, w);
            }
            Span<int> mixed = stackalloc int[256];
            mixed.Clear();
            double planesBits = 0;
            for (int p = 0; p < w; p++)
            {
                var plane = counts.Slice(p * 256, 256);
                planesBits += BlobEncoder.Order0EntropyBits(plane, whole / w);
                for (int b = 0; b < 256; b++)
                {
                    mixed[b] += plane[b];
                }
            }
            double plainBits = BlobEncoder.Order0EntropyBits(mixed, whole);
            double scale = (double)data.Length / Math.Max(1, whole);
            planesBits *= scale;
            plainBits *= scale;
            whole = data.Length;
            if (width == 0)
            {
                return new Estimate(Choice.Plain, plainBits);
            }
            if (width == 1)
            {
                return new Estimate(Choice.Both, plainBits);
            }
            if (plainBits > 0.97 * 8 * whole)
            {
                return new Estimate(Choice.Plain, plainBits);
            }
            return planesBits < 0.97 * plainBits ? new Estimate(Choice.Planes, planesBits) : new Estimate(Choice.Both, Math.Min(planesBits, plainBits));
        }

        private const int SampleBlock = 4096;

        private static void Count(ReadOnlySpan<byte> block, Span<int> counts, int w)
        {
            switch (w)
            {
                case 1:
                    foreach (byte b in block)
                    {
                        counts[b]++;
                    }
                    break;
                case 2:
                    for (int i = 0; i + 1 < block.Length; i += 2)
                    {
                        counts[block[i]]++;
                        counts[256 + block[i + 1]]++;
                    }
                    break;
                case 4:
                    for (int i = 0; i + 3 < block.Length; i += 4)
                    {
                        counts[block[i]]++;
                        counts[256 + block[i + 1]]++;
                        counts[512 + block[i + 2]]++;
                        counts[768 + block[i + 3]]++;
                    }
                    break;
                default:
                    for (int i = 0; i + w - 1 < block.Length; i += w)
                    {
                        for (int p = 0; p < w; p++)
                        {
                            counts[p * 256 + block[i + p]]++;
                        }
                    }
                    break;
            }
        }
    }

    private static byte[] EncodePlanes(ReadOnlySpan<byte> data, int width, out int length)
    {
        int planesLength = BytePlanes.PlanesLength(data.Length, width);
        var planes = BufferPool.Shared.Rent(planesLength);
        try
        {
            BytePlanes.Split(data, planes.AsSpan(0, planesLength), width);
            var encoded = BufferPool.Shared.Rent(1 + BlobEncoder.MaxEncodedLength(planesLength));
            encoded[0] = (byte)width;
            length = 1 + BlobEncoder.CompressPlanes(planes.AsSpan(0, planesLength), encoded.AsSpan(1));
            return encoded;
        }
        finally
        {
            BufferPool.Shared.Return(planes);
        }
    }
}
