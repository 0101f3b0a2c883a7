using Kintsugi.Backup.Format;
using ZstdNet;

namespace Kintsugi.Backup.Codecs;

/// <summary>
/// Chooses how a blob's plaintext is encoded: zstd where it pays (saves at least 1/32 of the size),
/// stored otherwise, and the zstd level by what a small sample shows (<see cref="LevelFor"/>), before
/// compressing it all.
/// </summary>
internal static class BlobEncoder
{
    /// <summary>
    /// The level for data with repeats in it (text, code, binaries): measured on 1 MiB blocks of
    /// Python packages and of shared libraries, level 3 stores them 12% and 8–10% smaller than level 1.
    /// </summary>
    public const int Level = 3;

    /// <summary>
    /// The level for data whose compression comes from byte frequencies alone (audio and sensor
    /// samples, noisy numbers): level 3's better match finder has nothing to find there (the same
    /// size to 0.1%, measured on int16 samples), and level 1 is about twice as fast.
    /// </summary>
    public const int FastLevel = 1;

    private const int SampleSize = 64 * 1024;

    /// <summary>
    /// The level for byte planes: measured on bf16 pieces, level 1 is both faster (3.1 against
    /// 5.1 ms per MiB) and smaller (717 against 744 KiB) than level 3, whose extra short matches cost
    /// more than they save on noisy mantissa bytes.
    /// </summary>
    public const int PlanesLevel = FastLevel;

    /// <summary>
    /// A sample whose level-1 size is at least this share of its order-0 entropy owes (almost) all
    /// its compression to byte frequencies: no repeats worth a stronger level. Literals coded alone
    /// come to 1.00–1.03 of the entropy; text, whose repeats level 1 already finds, to about 0.6.
    /// </summary>
    private const double FrequenciesOnly = 0.9;

    [ThreadStatic] private static Compressor? t_compressor;
    [ThreadStatic] private static Compressor? t_fastCompressor;
    [ThreadStatic] private static Decompressor? t_decompressor;

    private static Compressor Compressor => t_compressor ??= new Compressor(new CompressionOptions(Level));

    private static Compressor FastCompressor => t_fastCompressor ??= new Compressor(new CompressionOptions(FastLevel));

    private static Decompressor Decompressor => t_decompressor ??= new Decompressor();

    private static bool Pays(int encoded, int raw) => encoded < raw - (raw >> 5);

    /// <summary>Encodes into a new array; the codec says what was done.</summary>
    public static (BlobCodec Codec, byte[] Encoded) Encode(ReadOnlySpan<byte> plaintext, bool allowStored)
    {
        int level = LevelFor(plaintext);
        if (level == 0 && allowStored)
        {
            return (BlobCodec.Stored, plaintext.ToArray());
        }
        var buffer = new byte[Compressor.GetCompressBound(plaintext.Length)];
        int n = CompressorFor(level).Wrap(plaintext, buffer);
        if (!Pays(n, plaintext.Length) && allowStored)
        {
            return (BlobCodec.Stored, plaintext.ToArray());
        }
        Array.Resize(ref buffer, n);
        return (BlobCodec.Zstd, buffer);
    }

    /// <summary>Encodes into <paramref name="destination"/> (at least <see cref="MaxEncodedLength"/> long); returns codec and length.</summary>
    public static (BlobCodec Codec, int Length) Encode(ReadOnlySpan<byte> plaintext, Span<byte> destination)
    {
        int level = LevelFor(plaintext);
        if (level != 0)
        {
            int n = CompressorFor(level).Wrap(plaintext, destination);
            if (Pays(n, plaintext.Length))
            {
                return (BlobCodec.Zstd, n);
            }
        }
        plaintext.CopyTo(destination);
        return (BlobCodec.Stored, plaintext.Length);
    }

    public static int MaxEncodedLength(int rawLength) => Compressor.GetCompressBound(rawLength);

    /// <summary>The compressor for a level <see cref="LevelFor"/> chose; level 0 (stored) is compressed at <see cref="Level"/> where storing is not allowed.</summary>
    private static Compressor CompressorFor(int level) => level == FastLevel ? FastCompressor : Compressor;

    /// <summary>
    /// The zstd level for <paramref name="plaintext"/>, judged on 64 KiB from its middle compressed
    /// at level 1: 0 (store it) when the sample does not compress; <see cref="FastLevel"/> when the
    /// sample's compressed size is close to its order-0 entropy (<see cref="FrequenciesOnly"/>) and
    /// that entropy is at least 1/8 bit a byte; <see cref="Level"/> otherwise, and for anything up to
    /// twice the sample's size. The sample is judged at level 1, so data on the edge of paying (about
    /// 3% saved) is stored a little more often than when it was judged at level 3.
    /// </summary>
    internal static int LevelFor(ReadOnlySpan<byte> plaintext)
    {
        if (plaintext.Length <= SampleSize * 2)
        {
            return Level;
        }
        var sample = plaintext.Slice(plaintext.Length / 2 - SampleSize / 2, SampleSize);
        var buffer = BufferPool.Shared.Rent(Compressor.GetCompressBound(SampleSize));
        int n;
        try
        {
            n = FastCompressor.Wrap(sample, buffer);
        }
        finally
        {
            BufferPool.Shared.Return(buffer);
        }
        if (!Pays(n, SampleSize))
        {
            return 0;
        }
        // A sample of (nearly) one repeated byte has (nearly) no entropy to compare with: runs and
        // repeats are all there is, which is where level 3 does better.
        double entropy = Order0EntropyBytes(sample);
        return entropy >= SampleSize / 64.0 && n >= FrequenciesOnly * entropy ? FastLevel : Level;
    }

    /// <summary>Order-0 entropy of <paramref name="data"/>, in bytes: what coding each byte by its frequency alone would take.</summary>
    private static double Order0EntropyBytes(ReadOnlySpan<byte> data)
    {
        Span<int> counts = stackalloc int[256];
        counts.Clear();
        foreach (byte b in data)
        {
            counts[b]++;
        }
        return Order0EntropyBits(counts, data.Length) / 8;
    }

    /// <summary>Order-0 entropy, in bits, of <paramref name="total"/> symbols with these counts.</summary>
    internal static double Order0EntropyBits(ReadOnlySpan<int> counts, int total)
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

    /// <summary>
    /// The most zstd can expand its input: a frame is made of blocks, each regenerating at most
    /// 128 KiB and taking at least 4 bytes (a 3-byte header and the byte an RLE block repeats).
    /// </summary>
    private const long MaxZstdExpansion = 128 * 1024 / 4;

    /// <summary>
    /// The longest plaintext <paramref name="encodedLength"/> bytes of a codec can decode to, so a
    /// reader refuses a length no such payload can hold before allocating it.
    /// </summary>
    public static long MaxDecodedLength(BlobCodec codec, long encodedLength) => codec switch
    {
        BlobCodec.Stored => encodedLength,
        BlobCodec.Zstd => encodedLength * MaxZstdExpansion,
        BlobCodec.Planes => Math.Max(0, encodedLength - 1) * MaxZstdExpansion,
        _ => long.MaxValue,
    };

    /// <summary>What the native library reports for frames it cannot decode; all of it means a corrupt blob here.</summary>
    private static bool IsZstdFailure(Exception e) => e is ZstdException or InvalidDataException or InsufficientMemoryException or ArgumentException;

    /// <summary>zstd at <see cref="Level"/> into <paramref name="destination"/> (at least <see cref="MaxEncodedLength"/> long).</summary>
    internal static int Compress(ReadOnlySpan<byte> source, Span<byte> destination) => Compressor.Wrap(source, destination);

    /// <summary>zstd at <see cref="PlanesLevel"/>, for byte planes.</summary>
    internal static int CompressPlanes(ReadOnlySpan<byte> source, Span<byte> destination) => FastCompressor.Wrap(source, destination);

    internal static bool Saves(int encoded, int raw) => Pays(encoded, raw);

    /// <summary>Decodes; refuses output larger than <paramref name="maxLength"/> so a hostile blob cannot exhaust memory.</summary>
    public static byte[] Decode(BlobCodec codec, ReadOnlySpan<byte> encoded, int maxLength, string what)
    {
        switch (codec)
        {
            case BlobCodec.Stored:
                if (encoded.Length > maxLength)
                {
                    throw KintsugiException.Corrupt(what, "content longer than its header allows");
                }
                return encoded.ToArray();
            case BlobCodec.Planes:
                throw KintsugiException.Corrupt(what, "byte-plane coding is only used for content blobs");
            case BlobCodec.Zstd:
                ulong size;
                try
                {
                    size = Decompressor.GetDecompressedSize(encoded);
                }
                catch (Exception e) when (IsZstdFailure(e))
                {
                    throw KintsugiException.Corrupt(what, "zstd: " + e.Message);
                }
                if (size == 0 || size > (ulong)maxLength)
                {
                    throw KintsugiException.Corrupt(what, $"compressed content declares {size} bytes, more than the {maxLength} allowed");
                }
                if (size > (ulong)MaxDecodedLength(codec, encoded.Length))
                {
                    throw KintsugiException.Corrupt(what, $"compressed content declares {size} bytes, more than its {encoded.Length} bytes can hold");
                }
                var output = new byte[(int)size];
                Unwrap(encoded, output, what);
                return output;
            default:
                throw KintsugiException.Corrupt(what, $"unknown codec {(byte)codec}; a newer Kintsugi may be needed");
        }
    }

    /// <summary>Decodes into <paramref name="destination"/>, whose length is the expected raw length.</summary>
    public static void Decode(BlobCodec codec, ReadOnlySpan<byte> encoded, Span<byte> destination, string what)
    {
        switch (codec)
        {
            case BlobCodec.Stored:
                if (encoded.Length != destination.Length)
                {
                    throw KintsugiException.Corrupt(what, "stored length differs from the raw length");
                }
                encoded.CopyTo(destination);
                return;
            case BlobCodec.Zstd:
                Unwrap(encoded, destination, what);
                return;
            case BlobCodec.Planes:
                if (destination.Length > MaxDecodedLength(codec, encoded.Length))
                {
                    throw KintsugiException.Corrupt(what, $"raw length {destination.Length} is more than its {encoded.Length} encoded bytes can hold");
                }
                if (encoded.IsEmpty || !BytePlanes.IsSupportedWidth(encoded[0]))
                {
                    throw KintsugiException.Corrupt(what, $"byte planes of unsupported element width {(encoded.IsEmpty ? 0 : encoded[0])}");
                }
                int width = encoded[0];
                int planesLength = BytePlanes.PlanesLength(destination.Length, width);
                var planes = BufferPool.Shared.Rent(planesLength);
                try
                {
                    Unwrap(encoded[1..], planes.AsSpan(0, planesLength), what);
                    BytePlanes.Join(planes.AsSpan(0, planesLength), destination, width);
                }
                finally
                {
                    BufferPool.Shared.Return(planes);
                }
                return;
            default:
                throw KintsugiException.Corrupt(what, $"unknown codec {(byte)codec}; a newer Kintsugi may be needed");
        }
    }

    private static void Unwrap(ReadOnlySpan<byte> encoded, Span<byte> destination, string what)
    {
        int n;
        try
        {
            n = Decompressor.Unwrap(encoded, destination, bufferSizePrecheck: true);
        }
        catch (Exception e) when (IsZstdFailure(e))
        {
            throw KintsugiException.Corrupt(what, "zstd: " + e.Message);
        }
        if (n != destination.Length)
        {
            throw KintsugiException.Corrupt(what, "decompressed length differs from the expected one");
        }
    }
}
