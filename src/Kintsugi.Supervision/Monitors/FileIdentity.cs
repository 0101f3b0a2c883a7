using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Supervision.Monitors;

/// <summary>
/// Which file a path or an open handle is (device and inode), so a follower sees a log rotated
/// away: the path names another file than the one it has open. .NET does not expose inodes.
/// </summary>
internal readonly partial record struct FileIdentity(ulong Device, ulong Inode)
{
    private const int AT_FDCWD = -100;
    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_INO = 0x100;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>The file the path names now (following links), or null when there is none.</summary>
    public static FileIdentity? OfPath(string path) => Stat(AT_FDCWD, path, 0);

    public static FileIdentity? OfHandle(SafeFileHandle handle)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return Stat((int)handle.DangerousGetHandle(), "", AT_EMPTY_PATH);
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static unsafe FileIdentity? Stat(int dirfd, string path, int flags)
    {
        byte* buffer = stackalloc byte[256];
        if (statx(dirfd, path, flags, STATX_INO, buffer) != 0)
        {
            return null;
        }
        var s = new ReadOnlySpan<byte>(buffer, 256);
        ulong inode = MemoryMarshal.Read<ulong>(s[32..]);
        ulong device = ((ulong)MemoryMarshal.Read<uint>(s[136..]) << 32) | MemoryMarshal.Read<uint>(s[140..]);
        return new FileIdentity(device, inode);
    }
}
