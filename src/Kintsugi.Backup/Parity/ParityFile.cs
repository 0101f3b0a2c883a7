using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Parity;

/// <summary>A repository file protected by a parity group: where it lies in which data column, and its SHA-256.</summary>
public sealed record ParityMember(FileKind Kind, string Name, int Column, long Offset, long Length, byte[] Sha256)
{
    public long End => Offset + Length;

    public override string ToString() => ParityFile.Describe(Kind, Name);
}

/// <summary>
/// One parity group (docs/FORMAT.md §15): k data columns, each the concatenation of some repository
/// files, and m Reed–Solomon parity columns over them, cut into stripes that each carry a
/// truncated SHA-256 so that damage is located to the stripe. Immutable once written; a group that
/// gains or loses members is written anew under its new hash and the old file deleted.
/// </summary>
public sealed class ParityGroup
{
    public const int Version = 1;
    public const int StripeHashLength = 16;
    public const int MaxDataColumns = 128;
    public const int MaxParityColumns = 32;
    public const int MinStripe = 4096;
    public const int MaxStripe = 16 << 20;
    public const int MaxRows = 1 << 20;
    public const int MaxMembers = 1 << 20;
    public const long MaxColumnBytes = 1L << 36;
    public const int MaxHeaderLength = 256 << 20;
    internal const int FixedHeader = 40;
    internal static ReadOnlySpan<byte> Magic => "KSGR"u8;

    public required int DataColumns { get; init; }
    public required int ParityColumns { get; init; }
    public required int StripeSize { get; init; }
    public required int Rows { get; init; }
    /// <summary>How many bytes a column takes before new members go to another group (a soft limit: a larger file takes an empty column alone).</summary>
    public required long ColumnCapacity { get; init; }
    /// <summary>Grows with every group written: the newest group is the one that takes new members.</summary>
    public required long Sequence { get; init; }
    public required IReadOnlyList<ParityMember> Members { get; init; }
    /// <summary>(k + m) × rows stripe hashes (XXH128, <see cref="HashStripe"/>): data columns first, then parity columns, row by row within a column.</summary>
    public required byte[] StripeHashes { get; init; }

    public long ColumnLength => (long)Rows * StripeSize;

    /// <summary>This group's geometry as settings, for writing groups like it when the repository's settings are gone.</summary>
    internal ParitySettings Geometry => new() { DataColumns = DataColumns, ParityColumns = ParityColumns, StripeSize = StripeSize, ColumnCapacity = ColumnCapacity };

    public long ParityBytes => ParityColumns * ColumnLength;

    /// <summary>Bytes before the parity data: the header and its hash.</summary>
    public long HeaderLength => HeaderLengthFor(Members, DataColumns + ParityColumns, Rows);

    public long FileLength => HeaderLength + ParityBytes;

    /// <summary>
    /// The 16-byte hash of a stripe (XXH128): it only locates damage, which the SHA-256 of each
    /// rebuilt file then rules out, so a fast non-cryptographic hash serves. Writes the first 16
    /// bytes of <paramref name="destination"/>.
    /// </summary>
    internal static void HashStripe(ReadOnlySpan<byte> stripe, Span<byte> destination) =>
        System.IO.Hashing.XxHash128.Hash(stripe, destination[..StripeHashLength]);

    public ReadOnlySpan<byte> StripeHash(int column, int row) =>
        StripeHashes.AsSpan(((column * Rows) + row) * StripeHashLength, StripeHashLength);

    internal static long HeaderLengthFor(IReadOnlyList<ParityMember> members, int columns, int rows) =>
        FixedHeader + members.Sum(m => 1 + 1 + Encoding.ASCII.GetByteCount(m.Name) + 1 + 8 + 8 + 32) + ((long)columns * rows * StripeHashLength) + 32;

    public byte[] SerializeHeader()
    {
        long length = HeaderLength;
        var buffer = new byte[length];
        var span = buffer.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Version);
        span[6] = (byte)DataColumns;
        span[7] = (byte)ParityColumns;
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], (uint)StripeSize);
        BinaryPrimitives.WriteUInt32LittleEndian(span[12..], (uint)Rows);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], ColumnCapacity);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], Sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(span[32..], (uint)Members.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(span[36..], (uint)length);
        int at = FixedHeader;
        foreach (var m in Members)
        {
            span[at++] = ParityFile.KindCode(m.Kind);
            int n = Encoding.ASCII.GetBytes(m.Name, span[(at + 1)..]);
            span[at++] = (byte)n;
            at += n;
            span[at++] = (byte)m.Column;
            BinaryPrimitives.WriteInt64LittleEndian(span[at..], m.Offset);
            at += 8;
            BinaryPrimitives.WriteInt64LittleEndian(span[at..], m.Length);
            at += 8;
            m.Sha256.CopyTo(span[at..]);
            at += 32;
        }
        StripeHashes.CopyTo(span[at..]);
        at += StripeHashes.Length;
        SHA256.HashData(span[..at], span[at..]);
        return buffer;
    }

    /// <summary>
    /// Reads the fixed part of a header: the header length, and the file length it implies,
    /// checked against <paramref name="fileLength"/>, before anything is allocated.
    /// </summary>
    public static long ReadHeaderLength(ReadOnlySpan<byte> fixedPart, long fileLength, string what)
    {
        if (fixedPart.Length < FixedHeader || !fixedPart[..4].SequenceEqual(Magic))
        {
            throw KintsugiException.Corrupt(what, "it does not start with a parity group header");
        }
        int version = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[4..]);
        if (version != Version)
        {
            throw KintsugiException.Corrupt(what, $"parity group version {version}; this kintsugi reads version {Version}");
        }
        int k = fixedPart[6], m = fixedPart[7];
        uint stripe = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[8..]);
        uint rows = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[12..]);
        uint headerLength = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[36..]);
        if (k is < 1 or > MaxDataColumns || m is < 1 or > MaxParityColumns || stripe is < MinStripe or > MaxStripe || !uint.IsPow2(stripe) || rows > MaxRows)
        {
            throw KintsugiException.Corrupt(what, "its geometry (columns, stripe size or rows) is out of range");
        }
        if (headerLength < FixedHeader + 32 || headerLength > MaxHeaderLength || headerLength > fileLength || fileLength - headerLength != (long)m * rows * stripe)
        {
            throw KintsugiException.Corrupt(what, $"its header length {headerLength} does not fit a file of {fileLength} bytes");
        }
        return headerLength;
    }

    /// <summary>Parses and validates a whole header (whose length <see cref="ReadHeaderLength"/> gave); throws <see cref="KintsugiException"/> on anything malformed.</summary>
    public static ParityGroup Parse(ReadOnlySpan<byte> header, string what)
    {
        if (header.Length < FixedHeader + 32)
        {
            throw KintsugiException.Corrupt(what, "its header is cut short");
        }
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(header[..^32], hash);
        if (!hash.SequenceEqual(header[^32..]))
        {
            throw KintsugiException.Corrupt(what, "its header fails its SHA-256");
        }
        if (!header[..4].SequenceEqual(Magic) || BinaryPrimitives.ReadUInt16LittleEndian(header[4..]) != Version)
        {
            throw KintsugiException.Corrupt(what, "it is not a version 1 parity group");
        }
        int k = header[6], m = header[7];
        uint stripe = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
        uint rows = BinaryPrimitives.ReadUInt32LittleEndian(header[12..]);
        long capacity = BinaryPrimitives.ReadInt64LittleEndian(header[16..]);
        long sequence = BinaryPrimitives.ReadInt64LittleEndian(header[24..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(header[32..]);
        uint headerLength = BinaryPrimitives.ReadUInt32LittleEndian(header[36..]);
        if (k is < 1 or > MaxDataColumns || m is < 1 or > MaxParityColumns || stripe is < MinStripe or > MaxStripe || !uint.IsPow2(stripe) || rows > MaxRows
            || count > MaxMembers || headerLength != header.Length || capacity is < 1 or > MaxColumnBytes || sequence < 0)
        {
            throw KintsugiException.Corrupt(what, "its header fields are out of range");
        }
        long columnLength = (long)rows * stripe;
        var members = new List<ParityMember>((int)Math.Min(count, 4096));
        var seen = new HashSet<(FileKind, string)>();
        int at = FixedHeader;
        long hashesLength = (long)(k + m) * rows * StripeHashLength;
        long end = header.Length - 32 - hashesLength;
        if (end < at)
        {
            throw KintsugiException.Corrupt(what, "its stripe hashes do not fit its header");
        }
        for (uint i = 0; i < count; i++)
        {
            if (at + 2 > end)
            {
                throw KintsugiException.Corrupt(what, "its member list is cut short");
            }
            var kind = ParityFile.KindOf(header[at++]) ?? throw KintsugiException.Corrupt(what, "a member has an unknown kind");
            int n = header[at++];
            if (at + n + 1 + 8 + 8 + 32 > end)
            {
                throw KintsugiException.Corrupt(what, "its member list is cut short");
            }
            string name = Encoding.ASCII.GetString(header.Slice(at, n));
            at += n;
            if (!ParityFile.IsValidName(kind, name))
            {
                throw KintsugiException.Corrupt(what, "a member has an invalid name");
            }
            int column = header[at++];
            long offset = BinaryPrimitives.ReadInt64LittleEndian(header[at..]);
            long length = BinaryPrimitives.ReadInt64LittleEndian(header[(at + 8)..]);
            at += 16;
            byte[] sha = header.Slice(at, 32).ToArray();
            at += 32;
            if (column >= k || offset < 0 || length < 0 || offset > columnLength || length > columnLength - offset)
            {
                throw KintsugiException.Corrupt(what, $"member {ParityFile.Describe(kind, name)} lies outside its column");
            }
            if (ParityFile.NamedByHash(kind) && Convert.ToHexStringLower(sha) != name)
            {
                throw KintsugiException.Corrupt(what, $"member {ParityFile.Describe(kind, name)} records a SHA-256 other than its name");
            }
            if (!seen.Add((kind, name)))
            {
                throw KintsugiException.Corrupt(what, $"member {ParityFile.Describe(kind, name)} is listed twice");
            }
            members.Add(new ParityMember(kind, name, column, offset, length, sha));
        }
        if (at != end)
        {
            throw KintsugiException.Corrupt(what, "its member list does not end where its stripe hashes begin");
        }
        foreach (var column in members.GroupBy(x => x.Column))
        {
            long last = 0;
            foreach (var x in column.OrderBy(x => x.Offset))
            {
                if (x.Offset < last)
                {
                    throw KintsugiException.Corrupt(what, $"members overlap in column {x.Column}");
                }
                last = x.End;
            }
        }
        return new ParityGroup
        {
            DataColumns = k,
            ParityColumns = m,
            StripeSize = (int)stripe,
            Rows = (int)rows,
            ColumnCapacity = capacity,
            Sequence = sequence,
            Members = members,
            StripeHashes = header.Slice(at, (int)hashesLength).ToArray(),
        };
    }
}

/// <summary>Names and kinds of the files parity protects.</summary>
public static class ParityFile
{
    /// <summary>The kinds of repository file that parity groups protect (locks and parity files themselves are not).</summary>
    public static readonly IReadOnlyList<FileKind> ProtectedKinds = [FileKind.Config, FileKind.Key, FileKind.Index, FileKind.Snapshot, FileKind.Pack];

    internal static byte KindCode(FileKind kind) => kind switch
    {
        FileKind.Config => 1,
        FileKind.Key => 2,
        FileKind.Pack => 3,
        FileKind.Index => 4,
        FileKind.Snapshot => 5,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), $"{kind} files are not protected by parity"),
    };

    internal static FileKind? KindOf(byte code) => code switch
    {
        1 => FileKind.Config,
        2 => FileKind.Key,
        3 => FileKind.Pack,
        4 => FileKind.Index,
        5 => FileKind.Snapshot,
        _ => null,
    };

    internal static bool IsValidName(FileKind kind, string name) =>
        kind == FileKind.Config ? name == "config" : name.Length == 64 && name.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>Whether the file's name is the SHA-256 of its bytes (all protected kinds but the config).</summary>
    internal static bool NamedByHash(FileKind kind) => kind != FileKind.Config;

    public static string Describe(FileKind kind, string name) => kind switch
    {
        FileKind.Config => "config",
        FileKind.Key => $"key {name}",
        FileKind.Pack => $"pack {name}",
        FileKind.Index => $"index {name}",
        FileKind.Snapshot => $"snapshot {name}",
        _ => $"{kind} {name}",
    };
}
