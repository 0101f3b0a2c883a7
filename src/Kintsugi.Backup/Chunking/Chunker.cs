using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Kintsugi.Backup.Chunking;

/// <summary>
/// Content-defined chunking, FastCDC style: a gear rolling hash, cut-point skipping up to the
/// minimum size, and normalized chunking (a stricter mask before the average size, a looser one
/// after) so sizes cluster around the average. The gear table is derived from the repository's
/// secret seed, so chunk boundaries (and so sizes) do not reveal content to someone without the key.
/// A boundary depends only on the bytes since the previous boundary, which is what makes chunks
/// line up again after an insertion.
/// </summary>
public sealed class Chunker
{
    private readonly ulong[] _gear = new ulong[256];
    private readonly ulong _maskStrict;
    private readonly ulong _maskLoose;

    public Chunker(ReadOnlySpan<byte> seed, int minSize, int averageSize, int maxSize)
    {
        if (minSize < 64 || averageSize <= minSize || maxSize <= averageSize || !System.Numerics.BitOperations.IsPow2(averageSize))
        {
            throw new ArgumentException($"chunk sizes must satisfy 64 <= min < avg < max and avg a power of two (got {minSize}/{averageSize}/{maxSize})");
        }
        MinSize = minSize;
        AverageSize = averageSize;
        MaxSize = maxSize;
        Span<byte> block = stackalloc byte[32];
        Span<byte> counter = stackalloc byte[4];
        for (int i = 0; i < 256; i += 4)
        {
            BinaryPrimitives.WriteInt32LittleEndian(counter, i);
            HMACSHA256.HashData(seed, counter, block);
            for (int j = 0; j < 4; j++)
            {
                _gear[i + j] = BinaryPrimitives.ReadUInt64LittleEndian(block[(j * 8)..]);
            }
        }
        int bits = System.Numerics.BitOperations.Log2((uint)averageSize);
        _maskStrict = ulong.MaxValue << (64 - (bits + 2));
        _maskLoose = ulong.MaxValue << (64 - (bits - 2));
    }

    public int MinSize { get; }

    public int AverageSize { get; }

    public int MaxSize { get; }

    /// <summary>
    /// The length of the next chunk at the start of <paramref name="data"/>. The caller passes at
    /// least <see cref="MaxSize"/> bytes unless the data ends sooner.
    /// </summary>
    [SkipLocalsInit]
    public int NextBoundary(ReadOnlySpan<byte> data)
    {
        int n = data.Length;
        if (n <= MinSize)
        {
            return n;
        }
        int limit = Math.Min(n, MaxSize);
        int normal = Math.Min(limit, AverageSize);
        ulong h = 0;
        ref byte start = ref MemoryMarshal.GetReference(data);
        ref ulong gear = ref MemoryMarshal.GetArrayDataReference(_gear);
        ulong mask = _maskStrict;
        int i = MinSize;
        for (; i < normal; i++)
        {
            h = (h << 1) + Unsafe.Add(ref gear, Unsafe.Add(ref start, i));
            if ((h & mask) == 0)
            {
                return i + 1;
            }
        }
        mask = _maskLoose;
        for (; i < limit; i++)
        {
            h = (h << 1) + Unsafe.Add(ref gear, Unsafe.Add(ref start, i));
            if ((h & mask) == 0)
            {
                return i + 1;
            }
        }
        return limit;
    }
}
