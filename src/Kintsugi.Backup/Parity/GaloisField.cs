using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kintsugi.Backup.Parity;

/// <summary>
/// Arithmetic in GF(2⁸) with the polynomial x⁸ + x⁴ + x³ + x² + 1 (0x11d), the field of most
/// Reed–Solomon erasure codes. Addition is XOR; multiplication goes through log/exp tables, and
/// <see cref="MulAdd"/> — the inner loop of encoding and decoding — multiplies a whole buffer by a
/// constant with two 16-entry nibble tables and a byte shuffle (AVX2 or SSSE3 where present).
/// </summary>
internal static class GaloisField
{
    private static readonly byte[] Exp = new byte[512];
    private static readonly byte[] Log = new byte[256];

    static GaloisField()
    {
        int x = 1;
        for (int i = 0; i < 255; i++)
        {
            Exp[i] = (byte)x;
            Log[x] = (byte)i;
            x <<= 1;
            if ((x & 0x100) != 0)
            {
                x ^= 0x11d;
            }
        }
        for (int i = 255; i < Exp.Length; i++)
        {
            Exp[i] = Exp[i - 255];
        }
    }

    public static byte Mul(byte a, byte b) => a == 0 || b == 0 ? (byte)0 : Exp[Log[a] + Log[b]];

    public static byte Inverse(byte a)
    {
        if (a == 0)
        {
            throw new DivideByZeroException("0 has no inverse in GF(256)");
        }
        return Exp[255 - Log[a]];
    }

    /// <summary><paramref name="dst"/>[i] ^= <paramref name="c"/> · <paramref name="src"/>[i] for every i.</summary>
    public static void MulAdd(byte c, ReadOnlySpan<byte> src, Span<byte> dst)
    {
        if (dst.Length < src.Length)
        {
            throw new ArgumentException("the destination is shorter than the source", nameof(dst));
        }
        if (c == 0)
        {
            return;
        }
        if (c == 1)
        {
            Xor(src, dst);
            return;
        }
        Span<byte> lo = stackalloc byte[16];
        Span<byte> hi = stackalloc byte[16];
        for (int i = 0; i < 16; i++)
        {
            lo[i] = Mul(c, (byte)i);
            hi[i] = Mul(c, (byte)(i << 4));
        }
        int done = 0;
        if (Avx2.IsSupported && src.Length >= 32)
        {
            var tlo = Vector256.Create(Vector128.Create(lo), Vector128.Create(lo));
            var thi = Vector256.Create(Vector128.Create(hi), Vector128.Create(hi));
            var mask = Vector256.Create((byte)0x0f);
            for (; done + 32 <= src.Length; done += 32)
            {
                var s = Vector256.Create(src.Slice(done, 32));
                var l = Avx2.Shuffle(tlo, s & mask);
                var h = Avx2.Shuffle(thi, Vector256.ShiftRightLogical(s.AsUInt16(), 4).AsByte() & mask);
                (Vector256.Create(dst.Slice(done, 32)) ^ l ^ h).CopyTo(dst.Slice(done, 32));
            }
        }
        else if (Ssse3.IsSupported && src.Length >= 16)
        {
            var tlo = Vector128.Create(lo);
            var thi = Vector128.Create(hi);
            var mask = Vector128.Create((byte)0x0f);
            for (; done + 16 <= src.Length; done += 16)
            {
                var s = Vector128.Create(src.Slice(done, 16));
                var l = Ssse3.Shuffle(tlo, s & mask);
                var h = Ssse3.Shuffle(thi, Vector128.ShiftRightLogical(s.AsUInt16(), 4).AsByte() & mask);
                (Vector128.Create(dst.Slice(done, 16)) ^ l ^ h).CopyTo(dst.Slice(done, 16));
            }
        }
        for (; done < src.Length; done++)
        {
            byte b = src[done];
            dst[done] ^= (byte)(lo[b & 0x0f] ^ hi[b >> 4]);
        }
    }

    /// <summary><paramref name="dst"/>[i] ^= <paramref name="src"/>[i].</summary>
    public static void Xor(ReadOnlySpan<byte> src, Span<byte> dst)
    {
        int done = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; done + 32 <= src.Length; done += 32)
            {
                (Vector256.Create(dst.Slice(done, 32)) ^ Vector256.Create(src.Slice(done, 32))).CopyTo(dst.Slice(done, 32));
            }
        }
        for (; done < src.Length; done++)
        {
            dst[done] ^= src[done];
        }
    }

    /// <summary>Inverts a square matrix (row-major) by Gauss–Jordan elimination; throws when it is singular.</summary>
    public static byte[,] Invert(byte[,] matrix)
    {
        int n = matrix.GetLength(0);
        var a = (byte[,])matrix.Clone();
        var inv = new byte[n, n];
        for (int i = 0; i < n; i++)
        {
            inv[i, i] = 1;
        }
        for (int col = 0; col < n; col++)
        {
            int pivot = col;
            while (pivot < n && a[pivot, col] == 0)
            {
                pivot++;
            }
            if (pivot == n)
            {
                throw new InvalidOperationException("the matrix is singular");
            }
            if (pivot != col)
            {
                for (int j = 0; j < n; j++)
                {
                    (a[pivot, j], a[col, j]) = (a[col, j], a[pivot, j]);
                    (inv[pivot, j], inv[col, j]) = (inv[col, j], inv[pivot, j]);
                }
            }
            byte scale = Inverse(a[col, col]);
            for (int j = 0; j < n; j++)
            {
                a[col, j] = Mul(a[col, j], scale);
                inv[col, j] = Mul(inv[col, j], scale);
            }
            for (int row = 0; row < n; row++)
            {
                byte f = a[row, col];
                if (row == col || f == 0)
                {
                    continue;
                }
                for (int j = 0; j < n; j++)
                {
                    a[row, j] ^= Mul(f, a[col, j]);
                    inv[row, j] ^= Mul(f, inv[col, j]);
                }
            }
        }
        return inv;
    }
}
