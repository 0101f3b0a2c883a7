using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Kintsugi.Backup.Format;

/// <summary>A 32-byte identifier: a keyed hash of a blob's plaintext, or the SHA-256 of a stored file.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct BlobId : IEquatable<BlobId>, IComparable<BlobId>
{
    public const int Size = 32;
    private readonly ulong _a, _b, _c, _d;

    private BlobId(ulong a, ulong b, ulong c, ulong d)
    {
        _a = a;
        _b = b;
        _c = c;
        _d = d;
    }

    public static BlobId Read(ReadOnlySpan<byte> bytes)
    {
        var s = MemoryMarshal.Cast<byte, ulong>(bytes[..Size]);
        return new BlobId(s[0], s[1], s[2], s[3]);
    }

    public void Write(Span<byte> destination)
    {
        var d = MemoryMarshal.Cast<byte, ulong>(destination[..Size]);
        d[0] = _a;
        d[1] = _b;
        d[2] = _c;
        d[3] = _d;
    }

    public byte[] ToArray()
    {
        var bytes = new byte[Size];
        Write(bytes);
        return bytes;
    }

    /// <summary>SHA-256 of stored bytes: the name of a repository file.</summary>
    public static BlobId HashOf(ReadOnlySpan<byte> data)
    {
        Span<byte> h = stackalloc byte[Size];
        SHA256.HashData(data, h);
        return Read(h);
    }

    public static BlobId Parse(string hex)
    {
        if (!TryParse(hex, out var id))
        {
            throw new FormatException($"'{hex}' is not a 64-digit hexadecimal id");
        }
        return id;
    }

    public static bool TryParse(string? hex, out BlobId id)
    {
        id = default;
        if (hex is null || hex.Length != Size * 2)
        {
            return false;
        }
        Span<byte> bytes = stackalloc byte[Size];
        if (Convert.FromHexString(hex, bytes, out _, out int written) != System.Buffers.OperationStatus.Done || written != Size)
        {
            return false;
        }
        id = Read(bytes);
        return true;
    }

    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[Size];
        Write(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    public string Short => ToString()[..8];

    public bool Equals(BlobId other) => _a == other._a && _b == other._b && _c == other._c && _d == other._d;

    public override bool Equals(object? obj) => obj is BlobId other && Equals(other);

    public override int GetHashCode() => (int)_a ^ (int)(_a >> 32);

    public int CompareTo(BlobId other) => string.CompareOrdinal(ToString(), other.ToString());

    public static bool operator ==(BlobId left, BlobId right) => left.Equals(right);

    public static bool operator !=(BlobId left, BlobId right) => !left.Equals(right);

    public static bool operator <(BlobId left, BlobId right) => left.CompareTo(right) < 0;

    public static bool operator >(BlobId left, BlobId right) => left.CompareTo(right) > 0;

    public static bool operator <=(BlobId left, BlobId right) => left.CompareTo(right) <= 0;

    public static bool operator >=(BlobId left, BlobId right) => left.CompareTo(right) >= 0;
}
