namespace Kintsugi.Backup;

/// <summary>What went wrong, in terms a caller can map to an exit code and a message.</summary>
public enum ErrorKind
{
    /// <summary>A general failure.</summary>
    Failed,
    /// <summary>The user asked for something invalid (bad argument, missing path).</summary>
    InvalidInput,
    /// <summary>The path is not a Kintsugi repository.</summary>
    RepositoryNotFound,
    /// <summary>A repository already exists at the path.</summary>
    RepositoryExists,
    /// <summary>No key slot opens with the given password.</summary>
    WrongPassword,
    /// <summary>Another process holds a conflicting lock.</summary>
    Locked,
    /// <summary>A repository file is damaged or fails authentication.</summary>
    Corrupt,
    /// <summary>The disk is full.</summary>
    NoSpace,
    /// <summary>Not found (snapshot, key, path inside a snapshot).</summary>
    NotFound,
    /// <summary>The repository cannot be written: a read-only file system, or a folder this user may not write.</summary>
    NotWritable,
}

/// <summary>
/// An error meant for the user: the message names the thing and says what to do. The CLI prints
/// it on one line without a stack trace.
/// </summary>
public sealed class KintsugiException : Exception
{
    public KintsugiException(ErrorKind kind, string message, Exception? inner = null) : base(message, inner) => Kind = kind;

    public KintsugiException() : this(ErrorKind.Failed, "kintsugi failed") { }

    public KintsugiException(string message) : this(ErrorKind.Failed, message) { }

    public KintsugiException(string message, Exception inner) : this(ErrorKind.Failed, message, inner) { }

    public ErrorKind Kind { get; }

    internal static KintsugiException Corrupt(string what, string detail) =>
        new(ErrorKind.Corrupt, $"{what} is damaged ({detail}); run `kintsugi check --read-data` to see what is affected");

    /// <summary>Turns an I/O failure into a user error where the cause is one the user can act on.</summary>
    public static Exception FromIo(IOException e, string path)
    {
        const int ENOSPC = 28, EDQUOT = 122;
        int code = e.HResult & 0xFFFF;
        // .NET words a failed preallocation as "the disk was full", without the errno.
        if (code is ENOSPC or EDQUOT
            || e.Message.Contains("No space left", StringComparison.Ordinal)
            || e.Message.Contains("disk was full", StringComparison.Ordinal))
        {
            return new KintsugiException(ErrorKind.NoSpace, $"no space left on the device while writing {path}; free some space and run the command again (the repository is still valid)", e);
        }
        return new KintsugiException(ErrorKind.Failed, $"cannot write {path}: {e.Message}", e);
    }
}
