using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// Reads a container file at absolute offsets inside [0, <see cref="Length"/>) through a small
/// window, so the format readers can walk headers field by field without a system call per field
/// and without loading the file. Reading past the end, or finding the file shorter than its stated
/// length, is malformed content (<see cref="InvalidDataException"/>), never an I/O error.
/// </summary>
internal sealed class ContainerFile
{
    private const int WindowSize = 64 * 1024;

    private readonly SafeFileHandle _handle;
    private byte[]? _window;
    private long _windowStart;
    private int _windowCount;

    public ContainerFile(SafeFileHandle handle, long length)
    {
        _handle = handle;
        Length = length;
    }

    public long Length { get; }

    /// <summary>The error every reader throws for content it cannot accept; the caller turns it into "no layout".</summary>
    public static InvalidDataException Malformed(string why) => new(why);

    /// <summary>Throws unless [offset, offset + count) lies inside the file.</summary>
    public void Require(long offset, long count)
    {
        if (offset < 0 || count < 0 || offset > Length - count)
        {
            throw Malformed($"{count} bytes at {offset} reach past the end of the file ({Length} bytes)");
        }
    }

    /// <summary>Fills <paramref name="destination"/> with the bytes at <paramref name="offset"/>.</summary>
    public void Read(long offset, Span<byte> destination)
    {
        Require(offset, destination.Length);
        if (_window is not null && offset >= _windowStart && offset + destination.Length <= _windowStart + _windowCount)
        {
            _window.AsSpan((int)(offset - _windowStart), destination.Length).CopyTo(destination);
            return;
        }
        if (destination.Length > WindowSize / 2)
        {
            // Big reads go straight to the caller's buffer; the window is for small, close-together fields.
            ReadDirect(offset, destination);
            return;
        }
        // Allocated on first use and no larger than the file, since most files probed are no container.
        _window ??= new byte[Math.Min(WindowSize, Length)];
        int count = (int)Math.Min(_window.Length, Length - offset);
        _windowCount = 0;
        ReadDirect(offset, _window.AsSpan(0, count));
        _windowStart = offset;
        _windowCount = count;
        _window.AsSpan(0, destination.Length).CopyTo(destination);
    }

    public byte ReadByte(long offset)
    {
        Span<byte> b = stackalloc byte[1];
        Read(offset, b);
        return b[0];
    }

    public ushort ReadUInt16(long offset)
    {
        Span<byte> b = stackalloc byte[2];
        Read(offset, b);
        return BinaryPrimitives.ReadUInt16LittleEndian(b);
    }

    public uint ReadUInt32(long offset)
    {
        Span<byte> b = stackalloc byte[4];
        Read(offset, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public ulong ReadUInt64(long offset)
    {
        Span<byte> b = stackalloc byte[8];
        Read(offset, b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    /// <summary>
    /// Reads <paramref name="count"/> bytes into a new array, refusing more than <paramref name="cap"/>
    /// so a length field in the file cannot make us allocate without bound.
    /// </summary>
    public byte[] ReadBytes(long offset, long count, long cap)
    {
        if (count < 0 || count > cap)
        {
            throw Malformed($"a field of {count} bytes is larger than the {cap} bytes accepted");
        }
        Require(offset, count);
        var bytes = new byte[count];
        Read(offset, bytes);
        return bytes;
    }

    private void ReadDirect(long offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(_handle, destination, offset);
            if (n <= 0)
            {
                throw Malformed("the file ended before its stated length");
            }
            destination = destination[n..];
            offset += n;
        }
    }
}

/// <summary>
/// A forward-only position inside [start, end) of a <see cref="ContainerFile"/>, for formats whose
/// headers are a sequence of variable-length fields (GGUF, pickle, protobuf, zip directories).
/// Every read checks the end first, so a corrupt length can only make a parse fail, never overrun.
/// </summary>
internal sealed class ContainerCursor
{
    private readonly ContainerFile _file;

    public ContainerCursor(ContainerFile file, long start, long end)
    {
        file.Require(start, end - start);
        _file = file;
        Position = start;
        End = end;
    }

    public long Position { get; private set; }

    public long End { get; }

    public long Remaining => End - Position;

    public bool AtEnd => Position >= End;

    public ContainerFile File => _file;

    public byte ReadByte()
    {
        Need(1);
        return _file.ReadByte(Position++);
    }

    public ushort ReadUInt16()
    {
        Need(2);
        var value = _file.ReadUInt16(Position);
        Position += 2;
        return value;
    }

    public uint ReadUInt32()
    {
        Need(4);
        var value = _file.ReadUInt32(Position);
        Position += 4;
        return value;
    }

    public ulong ReadUInt64()
    {
        Need(8);
        var value = _file.ReadUInt64(Position);
        Position += 8;
        return value;
    }

    public void Read(Span<byte> destination)
    {
        Need(destination.Length);
        _file.Read(Position, destination);
        Position += destination.Length;
    }

    public void Skip(long count)
    {
        Need(count);
        Position += count;
    }

    /// <summary>Moves to an absolute position inside the cursor's range (forward or back).</summary>
    public void Seek(long position)
    {
        if (position < 0 || position > End)
        {
            throw ContainerFile.Malformed($"position {position} is outside the region ending at {End}");
        }
        Position = position;
    }

    /// <summary>Reads a byte string of a length given by the file, refusing more than <paramref name="cap"/> bytes.</summary>
    public byte[] ReadBytes(long count, int cap)
    {
        Need(count);
        var bytes = _file.ReadBytes(Position, count, cap);
        Position += count;
        return bytes;
    }

    /// <summary>Reads UTF-8 text; invalid sequences become U+FFFD, since names only label tensors.</summary>
    public string ReadUtf8(long count, int cap) => Encoding.UTF8.GetString(ReadBytes(count, cap));

    private void Need(long count)
    {
        if (count < 0 || count > End - Position)
        {
            throw ContainerFile.Malformed($"{count} bytes at {Position} reach past the end of the region at {End}");
        }
    }
}
