using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kintsugi.Backup.Codecs;

/// <summary>
/// Regroups the bytes of fixed-size elements by their position in the element ("byte planes"),
/// so the slowly varying sign/exponent bytes of floats sit together and compress well, apart from
/// the noisy low mantissa bytes. Width 2, 4 or 8: plane p holds byte p of every element, the bytes
/// after the last whole element follow unchanged. Width 1 (8-bit floats): two nibble planes, the
/// high nibbles of all bytes then the low ones, two per byte; an odd length pads each plane with
/// a zero nibble. The transform is exact for any bytes: NaN payloads, -0.0 and subnormals included.
/// </summary>
internal static class BytePlanes
{
    public static bool IsSupportedWidth(int width) => width is 1 or 2 or 4 or 8;

    /// <summary>The length of the planes of <paramref name="length"/> bytes.</summary>
    public static int PlanesLength(int length, int width) => width == 1 ? 2 * ((length + 1) / 2) : length;

    public static void Split(ReadOnlySpan<byte> source, Span<byte> planes, int width)
    {
        if (planes.Length != PlanesLength(source.Length, width))
        {
            throw new ArgumentException("planes length does not match the source", nameof(planes));
        }
        switch (width)
        {
            case 1:
                SplitNibbles(source, planes);
                return;
            case 2:
                Split2(source, planes);
                break;
            case 4:
                Split4(source, planes);
                break;
            case 8:
                Split8(source, planes);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(width), width, "element width must be 1, 2, 4 or 8");
        }
        int whole = source.Length - source.Length % width;
        source[whole..].CopyTo(planes[whole..]);
    }

    public static void Join(ReadOnlySpan<byte> planes, Span<byte> destination, int width)
    {
        if (planes.Length != PlanesLength(destination.Length, width))
        {
            throw new ArgumentException("planes length does not match the destination", nameof(planes));
        }
        switch (width)
        {
            case 1:
                JoinNibbles(planes, destination);
                return;
            case 2:
                Join2(planes, destination);
                break;
            case 4:
                Join4(planes, destination);
                break;
            case 8:
                Join8(planes, destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(width), width, "element width must be 1, 2, 4 or 8");
        }
        int whole = destination.Length - destination.Length % width;
        planes[whole..].CopyTo(destination[whole..]);
    }

    private static void Split2(ReadOnlySpan<byte> s, Span<byte> d)
    {
        int n = s.Length / 2;
        var p0 = d[..n];
        var p1 = d.Slice(n, n);
        int i = 0;
        if (Ssse3.IsSupported)
        {
            // 16 elements a step: each vector's bytes sorted by plane, then the halves paired up.
            var byPlane = Vector128.Create((byte)0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
            ref byte src = ref MemoryMarshal.GetReference(s);
            ref byte dst = ref MemoryMarshal.GetReference(d);
            for (; i + 16 <= n; i += 16)
            {
                var v0 = Ssse3.Shuffle(Vector128.LoadUnsafe(ref src, (nuint)(2 * i)), byPlane).AsUInt64();
                var v1 = Ssse3.Shuffle(Vector128.LoadUnsafe(ref src, (nuint)(2 * i + 16)), byPlane).AsUInt64();
                Sse2.UnpackLow(v0, v1).AsByte().StoreUnsafe(ref dst, (nuint)i);
                Sse2.UnpackHigh(v0, v1).AsByte().StoreUnsafe(ref dst, (nuint)(n + i));
            }
        }
        for (; i < n; i++)
        {
            ushort v = BinaryPrimitives.ReadUInt16LittleEndian(s[(2 * i)..]);
            p0[i] = (byte)v;
            p1[i] = (byte)(v >> 8);
        }
    }

    private static void Join2(ReadOnlySpan<byte> s, Span<byte> d)
    {
        int n = d.Length / 2;
        var p0 = s[..n];
        var p1 = s.Slice(n, n);
        int i = 0;
        if (Sse2.IsSupported)
        {
            ref byte src = ref MemoryMarshal.GetReference(s);
            ref byte dst = ref MemoryMarshal.GetReference(d);
            for (; i + 16 <= n; i += 16)
            {
                var a = Vector128.LoadUnsafe(ref src, (nuint)i);
                var b = Vector128.LoadUnsafe(ref src, (nuint)(n + i));
                Sse2.UnpackLow(a, b).StoreUnsafe(ref dst, (nuint)(2 * i));
                Sse2.UnpackHigh(a, b).StoreUnsafe(ref dst, (nuint)(2 * i + 16));
            }
        }
        for (; i < n; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(d[(2 * i)..], (ushort)(p0[i] | (p1[i] << 8)));
        }
    }

    private static void Split4(ReadOnlySpan<byte> s, Span<byte> d)
    {
        int n = s.Length / 4;
        var p0 = d[..n];
        var p1 = d.Slice(n, n);
        var p2 = d.Slice(2 * n, n);
        var p3 = d.Slice(3 * n, n);
        int i = 0;
        if (Ssse3.IsSupported)
        {
            // 16 elements a step: each vector's bytes sorted by plane (four per plane), then a 4 x 4
            // transpose of those 4-byte groups gives each plane its 16 bytes.
            var byPlane = Vector128.Create((byte)0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            ref byte src = ref MemoryMarshal.GetReference(s);
            ref byte dst = ref MemoryMarshal.GetReference(d);
            for (; i + 16 <= n; i += 16)
            {
                nuint at = (nuint)(4 * i);
                var v0 = Ssse3.Shuffle(Vector128.LoadUnsafe(ref src, at), byPlane).AsUInt32();
                var v1 = Ssse3.Shuffle(Vector128.LoadUnsafe(ref src, at + 16), byPlane).AsUInt32();
                var v2 = Ssse3.Shuffle(Vector128.LoadUnsafe(ref src, at + 32), byPlane).AsUInt32();
                var v3 = Ssse3.Shuffle(Vector128.LoadUnsafe(ref src, at + 48), byPlane).AsUInt32();
                var planes01Low = Sse2.UnpackLow(v0, v1).AsUInt64();
                var planes23Low = Sse2.UnpackHigh(v0, v1).AsUInt64();
                var planes01High = Sse2.UnpackLow(v2, v3).AsUInt64();
                var planes23High = Sse2.UnpackHigh(v2, v3).AsUInt64();
                Sse2.UnpackLow(planes01Low, planes01High).AsByte().StoreUnsafe(ref dst, (nuint)i);
                Sse2.UnpackHigh(planes01Low, planes01High).AsByte().StoreUnsafe(ref dst, (nuint)(n + i));
                Sse2.UnpackLow(planes23Low, planes23High).AsByte().StoreUnsafe(ref dst, (nuint)(2 * n + i));
                Sse2.UnpackHigh(planes23Low, planes23High).AsByte().StoreUnsafe(ref dst, (nuint)(3 * n + i));
            }
        }
        for (; i < n; i++)
        {
            uint v = BinaryPrimitives.ReadUInt32LittleEndian(s[(4 * i)..]);
            p0[i] = (byte)v;
            p1[i] = (byte)(v >> 8);
            p2[i] = (byte)(v >> 16);
            p3[i] = (byte)(v >> 24);
        }
    }

    private static void Join4(ReadOnlySpan<byte> s, Span<byte> d)
    {
        int n = d.Length / 4;
        var p0 = s[..n];
        var p1 = s.Slice(n, n);
        var p2 = s.Slice(2 * n, n);
        var p3 = s.Slice(3 * n, n);
        int i = 0;
        if (Sse2.IsSupported)
        {
            // 16 elements a step: planes 0 and 1, and 2 and 3, interleaved by byte, then the two
            // results by 16-bit pairs.
            ref byte src = ref MemoryMarshal.GetReference(s);
            ref byte dst = ref MemoryMarshal.GetReference(d);
            for (; i + 16 <= n; i += 16)
            {
                var a = Vector128.LoadUnsafe(ref src, (nuint)i);
                var b = Vector128.LoadUnsafe(ref src, (nuint)(n + i));
                var c = Vector128.LoadUnsafe(ref src, (nuint)(2 * n + i));
                var e = Vector128.LoadUnsafe(ref src, (nuint)(3 * n + i));
                var ab0 = Sse2.UnpackLow(a, b).AsUInt16();
                var ab1 = Sse2.UnpackHigh(a, b).AsUInt16();
                var ce0 = Sse2.UnpackLow(c, e).AsUInt16();
                var ce1 = Sse2.UnpackHigh(c, e).AsUInt16();
                nuint at = (nuint)(4 * i);
                Sse2.UnpackLow(ab0, ce0).AsByte().StoreUnsafe(ref dst, at);
                Sse2.UnpackHigh(ab0, ce0).AsByte().StoreUnsafe(ref dst, at + 16);
                Sse2.UnpackLow(ab1, ce1).AsByte().StoreUnsafe(ref dst, at + 32);
                Sse2.UnpackHigh(ab1, ce1).AsByte().StoreUnsafe(ref dst, at + 48);
            }
        }
        for (; i < n; i++)
        {
            uint v = p0[i] | ((uint)p1[i] << 8) | ((uint)p2[i] << 16) | ((uint)p3[i] << 24);
            BinaryPrimitives.WriteUInt32LittleEndian(d[(4 * i)..], v);
        }
    }

    private static void Split8(ReadOnlySpan<byte> s, Span<byte> d)
    {
        int n = s.Length / 8;
        for (int i = 0; i < n; i++)
        {
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(s[(8 * i)..]);
            for (int p = 0; p < 8; p++)
            {
                d[p * n + i] = (byte)(v >> (8 * p));
            }
        }
    }

    private static void Join8(ReadOnlySpan<byte> s, Span<byte> d)
    {
        int n = d.Length / 8;
        for (int i = 0; i < n; i++)
        {
            ulong v = 0;
            for (int p = 0; p < 8; p++)
            {
                v |= (ulong)s[p * n + i] << (8 * p);
            }
            BinaryPrimitives.WriteUInt64LittleEndian(d[(8 * i)..], v);
        }
    }

    private static void SplitNibbles(ReadOnlySpan<byte> s, Span<byte> d)
    {
        int half = d.Length / 2;
        var high = d[..half];
        var low = d[half..];
        for (int i = 0; i < half; i++)
        {
            byte a = s[2 * i];
            byte b = 2 * i + 1 < s.Length ? s[2 * i + 1] : (byte)0;
            high[i] = (byte)((a & 0xF0) | (b >> 4));
            low[i] = (byte)((a << 4) | (b & 0x0F));
        }
    }

    private static void JoinNibbles(ReadOnlySpan<byte> s, Span<byte> d)
    {
        int half = s.Length / 2;
        var high = s[..half];
        var low = s[half..];
        for (int i = 0; i < half; i++)
        {
            d[2 * i] = (byte)((high[i] & 0xF0) | (low[i] >> 4));
            if (2 * i + 1 < d.Length)
            {
                d[2 * i + 1] = (byte)((high[i] << 4) | (low[i] & 0x0F));
            }
        }
    }

    /// <summary>XORs <paramref name="other"/> into <paramref name="target"/> (same length).</summary>
    public static void Xor(Span<byte> target, ReadOnlySpan<byte> other)
    {
        if (target.Length != other.Length)
        {
            throw new ArgumentException("XOR needs equal lengths", nameof(other));
        }
        int i = 0;
        int vec = Vector<byte>.Count;
        for (; i <= target.Length - vec; i += vec)
        {
            (new Vector<byte>(target[i..]) ^ new Vector<byte>(other[i..])).CopyTo(target[i..]);
        }
        for (; i < target.Length; i++)
        {
            target[i] ^= other[i];
        }
    }

    /// <summary>Writes <c>a XOR b</c> into <paramref name="destination"/>.</summary>
    public static void Xor(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> destination)
    {
        a.CopyTo(destination);
        Xor(destination[..a.Length], b);
    }
}
