namespace Kintsugi.Backup.Engine;

/// <summary>What to back up and how.</summary>
public sealed record BackupRequest
{
    /// <summary>Paths to back up; made absolute by the caller.</summary>
    public required IReadOnlyList<string> Paths { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    /// <summary>Re-read and re-hash every file instead of trusting the parent's metadata.</summary>
    public bool Full { get; init; }
    public required string Host { get; init; }
    public string? User { get; init; }
    /// <summary>An explicit parent snapshot (id or prefix); null picks the newest of the same host and paths.</summary>
    public string? Parent { get; init; }
    /// <summary>Files read at once, and blobs sealed at once. Defaults to the number of cores.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;
    /// <summary>Chunks waiting to be sealed; with the chunk size this bounds memory.</summary>
    public int QueuedChunks { get; init; } = 4;
    public string? Program { get; init; }
    /// <summary>Split tensor containers (safetensors, PyTorch, NumPy, GGUF, ONNX) at tensor boundaries and code their pieces as floats and deltas; false treats every file as opaque bytes.</summary>
    public bool TensorAware { get; init; } = true;
    /// <summary>
    /// The longest delta chain: a piece is stored whole at least every this many versions, so a
    /// restore reads at most this many blobs for it. 1 turns deltas off.
    /// </summary>
    public int DeltaChain { get; init; } = DefaultDeltaChain;

    public const int DefaultDeltaChain = 8;

    /// <summary>Paths left out of the snapshot, a named path included; a folder left out is not entered.</summary>
    public PathFilter Exclude { get; init; } = new([]);

    /// <summary>A folder holding one of these files is stored with that file only; the rest of it is left out.</summary>
    public IReadOnlyList<ExcludeMarker> ExcludeIfPresent { get; init; } = [];

    /// <summary>Files larger than this many bytes are left out; null keeps every size.</summary>
    public long? ExcludeLargerThan { get; init; }

    /// <summary>
    /// Do not cross into other file systems below the named paths: a folder on another device (a
    /// mount point) is stored empty, as restic does.
    /// </summary>
    public bool OneFileSystem { get; init; }

    /// <summary>Read and hash everything as a backup would, but store nothing: no packs, no index, no snapshot, no lock.</summary>
    public bool DryRun { get; init; }

    /// <summary>Told of each file stored (or, in a dry run, that would be), from any thread.</summary>
    public Action<string, FileChange>? OnFile { get; init; }
}

/// <summary>
/// A file whose presence leaves the rest of its folder out of a backup: restic's <c>--exclude-if-present
/// name[:header]</c>. With a header, the file must start with those bytes (UTF-8).
/// </summary>
public sealed record ExcludeMarker(string FileName, string? Header = null)
{
    /// <summary>The cache directory tag (https://bford.info/cachedir/) that --exclude-caches looks for.</summary>
    public static ExcludeMarker CacheDirTag { get; } = new("CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55");

    /// <summary>Reads restic's form <c>name[:header]</c>.</summary>
    public static ExcludeMarker Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        int colon = spec.IndexOf(':', StringComparison.Ordinal);
        string name = colon < 0 ? spec : spec[..colon];
        string? header = colon < 0 ? null : spec[(colon + 1)..];
        if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name is "." or "..")
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"exclude marker \"{spec}\" must start with a file name (no '/'), optionally followed by :header");
        }
        return new ExcludeMarker(name, string.IsNullOrEmpty(header) ? null : header);
    }
}

/// <summary>How a file in a backup compares with the parent snapshot.</summary>
public enum FileChange
{
    New,
    Modified,
    Unchanged,
}

/// <summary>A file or folder that could not be backed up, or was backed up with a caveat.</summary>
public sealed record BackupIssue(string Path, string Message);

/// <summary>The outcome of a backup.</summary>
public sealed record BackupResult(Format.SnapshotRef Snapshot, IReadOnlyList<BackupIssue> Issues)
{
    /// <summary>A dry run: the snapshot was not stored, and its summary counts what a backup would add.</summary>
    public bool DryRun { get; init; }
}

/// <summary>Live counters for a progress display; written by the engine, read by anyone.</summary>
public sealed class BackupProgress
{
    internal long TotalFilesField, TotalBytesField, FilesDoneField, BytesDoneField, BytesReadField;
    internal volatile bool ScanDoneField;

    public long TotalFiles => Interlocked.Read(ref TotalFilesField);
    public long TotalBytes => Interlocked.Read(ref TotalBytesField);
    public bool ScanDone => ScanDoneField;
    public long FilesDone => Interlocked.Read(ref FilesDoneField);
    /// <summary>Bytes of files processed, whether read or found unchanged.</summary>
    public long BytesDone => Interlocked.Read(ref BytesDoneField);
    public long BytesRead => Interlocked.Read(ref BytesReadField);
}
