using System.Buffers;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Codecs;

/// <summary>An encoded blob payload: what kind of blob it makes, how it is encoded, and the bytes.</summary>
internal readonly record struct EncodedPiece(BlobKind Kind, BlobCodec Codec, byte[] Bytes, int Length);

/// <summary>
/// Encodes a piece of a tensor as the smallest of: stored, zstd, zstd of byte planes, and — where a
/// base (the same piece of the same tensor in the parent snapshot) is given — the XOR against the
/// base, itself coded the same ways. Byte planes against plain zstd is judged from byte histograms
/// and tried both ways only when close, so a piece is usually compressed once; delta against
/// whole is decided on the full encodings unless the delta is already under an eighth of the piece.
/// </summary>
internal static class PieceEncoder
{
    public static EncodedPiece Encode(ReadOnlySpan<byte> plain, int planeWidth, ReadOnlySpan<byte> basePlain)
    {
        if (!BytePlanes.IsSupportedWidth(planeWidth))
        {
            planeWidth = 0;
        }
        if (basePlain.Length == plain.Length && plain.Length > 0)
        {
            var xor = ArrayPool<byte>.Shared.Rent(plain.Length);
            try
            {
                BytePlanes.Xor(plain, basePlain, xor);
                var (dCodec, dBytes, dLength) = EncodeBest(xor.AsSpan(0, plain.Length), planeWidth);
                if (dLength <= plain.Length / 8)
                {
                    return new EncodedPiece(BlobKind.Delta, dCodec, dBytes, dLength);
                }
                var (fCodec, fBytes, fLength) = EncodeBest(plain, planeWidth);
                return dLength < fLength
                    ? new EncodedPiece(BlobKind.Delta, dCodec, dBytes, dLength)
                    : new EncodedPiece(BlobKind.TensorPiece, fCodec, fBytes, fLength);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(xor);
            }
        }
        var (codec, bytes, length) = EncodeBest(plain, planeWidth);
        return new EncodedPiece(BlobKind.TensorPiece, codec, bytes, length);
    }

    /// <summary>Stored, zstd or byte planes + zstd, whichever is smallest (planes only for a known element width).</summary>
    internal static (BlobCodec Codec, byte[] Bytes, int Length) EncodeBest(ReadOnlySpan<byte> data, int planeWidth)
    {
        var choice = planeWidth == 0 ? Choice.Plain : Choose(data, planeWidth);
        (BlobCodec Codec, byte[] Bytes, int Length)? planes = null;
        if (choice != Choice.Plain)
        {
            var encoded = EncodePlanes(data, planeWidth, out int length);
            if (BlobEncoder.Saves(length, data.Length))
            {
                planes = (BlobCodec.Planes, encoded, length);
                if (choice == Choice.Planes)
                {
                    return planes.Value;
                }
            }
        }
        var buffer = new byte[BlobEncoder.MaxEncodedLength(data.Length) + 1];
        var (codec, n) = BlobEncoder.Encode(data, buffer);
        return planes is { } p && p.Length < n ? p : (codec, buffer, n);
    }

    private enum Choice { Plain, Planes, Both }

    /// <summary>
    /// Estimates both codings from byte histograms (zstd's literals are coded by such statistics, and
    /// float pieces have few long matches): planes when their order-0 entropy is clearly lower,
    /// plain zstd when the bytes look random, both tried in full when it is close. Nibble planes
    /// (width 1) are always tried in full: a byte histogram cannot judge them.
    /// </summary>
    private static Choice Choose(ReadOnlySpan<byte> data, int width)
    {
        if (width == 1 || data.Length < 4096)
        {
            return Choice.Both;
        }
        Span<int> counts = stackalloc int[256 * 8];
        counts = counts[..(256 * width)];
        counts.Clear();
        int whole = data.Length - data.Length % width;
        for (int i = 0; i < whole; i += width)
        {
            for (int p = 0; p < width; p++)
            {
                counts[p * 256 + data[i + p]]++;
            }
        }
        Span<int> mixed = stackalloc int[256];
        mixed.Clear();
        double planesBits = 0;
        for (int p = 0; p < width; p++)
        {
            var plane = counts.Slice(p * 256, 256);
            planesBits += Entropy(plane, whole / width);
            for (int b = 0; b < 256; b++)
            {
                mixed[b] += plane[b];
            }
        }
        double plainBits = Entropy(mixed, whole);
        if (plainBits > 0.97 * 8 * whole)
        {
            return Choice.Plain;
        }
        return planesBits < 0.97 * plainBits ? Choice.Planes : Choice.Both;
    }

    /// <summary>Order-0 entropy, in bits, of <paramref name="total"/> symbols with these counts.</summary>
    private static double Entropy(ReadOnlySpan<int> counts, int total)
    {
        double bits = 0;
        foreach (int c in counts)
        {
            if (c > 0)
            {
                bits += c * Math.Log2((double)total / c);
            }
        }
        return bits;
    }

    private static byte[] EncodePlanes(ReadOnlySpan<byte> data, int width, out int length)
    {
        int planesLength = BytePlanes.PlanesLength(data.Length, width);
        var planes = ArrayPool<byte>.Shared.Rent(planesLength);
        try
        {
            BytePlanes.Split(data, planes.AsSpan(0, planesLength), width);
            var encoded = new byte[1 + BlobEncoder.MaxEncodedLength(planesLength)];
            encoded[0] = (byte)width;
            length = 1 + BlobEncoder.Compress(planes.AsSpan(0, planesLength), encoded.AsSpan(1));
            return encoded;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(planes);
        }
    }
}
