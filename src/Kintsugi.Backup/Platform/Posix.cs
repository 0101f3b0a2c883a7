using System.Runtime.InteropServices;
using System.Text;

namespace Kintsugi.Backup.Platform;

/// <summary>What lstat says of a path: the fields a tree node and change detection need.</summary>
public readonly record struct FileStatus(
    uint Mode, uint Uid, uint Gid, ulong Inode, ulong Device, uint Links, long Size, long Blocks,
    long MtimeNs, long CtimeNs, ulong RDevice)
{
    private const uint TypeMask = 0xF000;

    public bool IsDirectory => (Mode & TypeMask) == 0x4000;

    public bool IsRegular => (Mode & TypeMask) == 0x8000;

    public bool IsSymlink => (Mode & TypeMask) == 0xA000;

    public bool IsFifo => (Mode & TypeMask) == 0x1000;

    public bool IsSocket => (Mode & TypeMask) == 0xC000;

    public bool IsCharDevice => (Mode & TypeMask) == 0x2000;

    public bool IsBlockDevice => (Mode & TypeMask) == 0x6000;

    public uint Permissions => Mode & 0xFFF;
}

/// <summary>
/// The few POSIX calls .NET does not expose: statx (inode, ctime, owner, blocks), lchown,
/// utimensat without following links, link and mknod. statx is used because its struct has the
/// same layout on every architecture.
/// </summary>
internal static partial class Posix
{
    private const int AT_FDCWD = -100;
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_BASIC_STATS = 0x7ff;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lchown(string path, uint owner, uint group);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int utimensat(int dirfd, string path, long* times, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int link(string oldpath, string newpath);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkfifo(string path, uint mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rename(string oldpath, string newpath);

    [LibraryImport("libc")]
    private static partial uint geteuid();

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    /// <summary>
    /// flock(LOCK_EX | LOCK_NB) on an open file: true when taken, false when another open file
    /// description holds it. The kernel drops it when the file is closed or its holder dies. (The
    /// CLI turns .NET's own FileShare locking off, so this is the one way to take such a lock.)
    /// </summary>
    public static bool TryLockExclusive(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        const int LOCK_EX = 2, LOCK_NB = 4, EWOULDBLOCK = 11, EINTR = 4;
        while (true)
        {
            if (flock((int)handle.DangerousGetHandle(), LOCK_EX | LOCK_NB) == 0)
            {
                return true;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EWOULDBLOCK)
            {
                return false;
            }
            if (errno != EINTR)
            {
                throw new IOException($"cannot lock: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
            }
        }
    }

    /// <summary>Flushes a folder's entries to disk, so a rename into it survives a power loss.</summary>
    public static void FsyncDirectory(string path)
    {
        int fd = open(path, 0);
        if (fd < 0)
        {
            throw Error(path);
        }
        try
        {
            if (fsync(fd) != 0)
            {
                throw Error(path);
            }
        }
        finally
        {
            _ = close(fd);
        }
    }

    /// <summary>The pid namespace of this process ("pid:[4026531836]"), so two containers with one host name are told apart.</summary>
    public static string PidNamespace
    {
        get
        {
            try
            {
                return new FileInfo("/proc/self/ns/pid").LinkTarget ?? "";
            }
            catch (IOException)
            {
                return "";
            }
            catch (UnauthorizedAccessException)
            {
                return "";
            }
        }
    }

    public static bool IsRoot => geteuid() == 0;

    /// <summary>How many names an open file still has (0 once it was deleted or replaced by a rename); 1 when that cannot be told.</summary>
    public static unsafe uint LinkCount(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        const int AT_EMPTY_PATH = 0x1000;
        const uint STATX_NLINK = 0x4;
        byte* buf = stackalloc byte[256];
        if (statx((int)handle.DangerousGetHandle(), "", AT_EMPTY_PATH, STATX_NLINK, buf) != 0)
        {
            return 1;
        }
        return MemoryMarshal.Read<uint>(new ReadOnlySpan<byte>(buf, 256)[16..]);
    }

    /// <summary>lstat via statx; throws an IOException-derived error with the errno message.</summary>
    public static FileStatus LStat(string path) => StatX(path, AT_SYMLINK_NOFOLLOW);

    /// <summary>stat via statx: symlinks are followed.</summary>
    public static FileStatus Stat(string path) => StatX(path, 0);

    private static unsafe FileStatus StatX(string path, int flags)
    {
        byte* buf = stackalloc byte[256];
        if (statx(AT_FDCWD, path, flags, STATX_BASIC_STATS, buf) != 0)
        {
            throw Error(path);
        }
        var s = new ReadOnlySpan<byte>(buf, 256);
        uint nlink = MemoryMarshal.Read<uint>(s[16..]);
        uint uid = MemoryMarshal.Read<uint>(s[20..]);
        uint gid = MemoryMarshal.Read<uint>(s[24..]);
        uint mode = MemoryMarshal.Read<ushort>(s[28..]);
        ulong ino = MemoryMarshal.Read<ulong>(s[32..]);
        long size = MemoryMarshal.Read<long>(s[40..]);
        long blocks = MemoryMarshal.Read<long>(s[48..]);
        long ctime = Ns(s[96..]);
        long mtime = Ns(s[112..]);
        ulong rdev = ((ulong)MemoryMarshal.Read<uint>(s[128..]) << 32) | MemoryMarshal.Read<uint>(s[132..]);
        ulong dev = ((ulong)MemoryMarshal.Read<uint>(s[136..]) << 32) | MemoryMarshal.Read<uint>(s[140..]);
        return new FileStatus(mode, uid, gid, ino, dev, nlink, size, blocks, mtime, ctime, rdev);
    }

    private static long Ns(ReadOnlySpan<byte> ts) => MemoryMarshal.Read<long>(ts) * 1_000_000_000L + MemoryMarshal.Read<uint>(ts[8..]);

    public static void LChown(string path, uint uid, uint gid)
    {
        if (lchown(path, uid, gid) != 0)
        {
            throw Error(path);
        }
    }

    /// <summary>Sets access and modification time to <paramref name="mtimeNs"/> without following a symlink.</summary>
    public static unsafe void SetTimes(string path, long mtimeNs)
    {
        long* times = stackalloc long[4];
        long sec = Math.DivRem(mtimeNs, 1_000_000_000L, out long ns);
        if (ns < 0)
        {
            sec--;
            ns += 1_000_000_000L;
        }
        times[0] = sec;
        times[1] = ns;
        times[2] = sec;
        times[3] = ns;
        if (utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) != 0)
        {
            throw Error(path);
        }
    }

    public static void Link(string existing, string newPath)
    {
        if (link(existing, newPath) != 0)
        {
            throw Error(newPath);
        }
    }

    /// <summary>rename(2): moves the entry itself (a symlink is not followed; a folder moves with what is in it).</summary>
    public static void Rename(string oldPath, string newPath)
    {
        if (rename(oldPath, newPath) != 0)
        {
            throw Error(oldPath);
        }
    }

    public static void MkFifo(string path, uint mode)
    {
        if (mkfifo(path, mode) != 0)
        {
            throw Error(path);
        }
    }

    private static IOException Error(string path)
    {
        int errno = Marshal.GetLastPInvokeError();
        string message = Marshal.GetPInvokeErrorMessage(errno);
        return errno switch
        {
            2 => new FileNotFoundException($"{path}: {message}", path) { HResult = errno },
            13 or 1 => new UnauthorizedIOException($"{path}: {message}") { HResult = errno },
            _ => new IOException($"{path}: {message}", errno),
        };
    }

    /// <summary>The start time of a process in clock ticks since boot, or -1 if it does not exist or is a zombie (dead, not yet reaped).</summary>
    public static long ProcessStartTicks(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat", Encoding.ASCII);
            int close = stat.LastIndexOf(')');
            var fields = stat[(close + 2)..].Split(' ');
            if (fields[0] == "Z")
            {
                return -1;
            }
            // Field 22 of /proc/PID/stat (starttime) is the 20th after the command name.
            return long.Parse(fields[19], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return -1;
        }
    }
}

/// <summary>Permission denied, as an <see cref="IOException"/> so callers catch one type.</summary>
public sealed class UnauthorizedIOException : IOException
{
    public UnauthorizedIOException(string message) : base(message) { }

    public UnauthorizedIOException() { }

    public UnauthorizedIOException(string message, Exception inner) : base(message, inner) { }
}
