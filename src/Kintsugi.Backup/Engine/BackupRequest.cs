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
}

/// <summary>A file or folder that could not be backed up, or was backed up with a caveat.</summary>
public sealed record BackupIssue(string Path, string Message);

/// <summary>The outcome of a backup.</summary>
public sealed record BackupResult(Format.SnapshotRef Snapshot, IReadOnlyList<BackupIssue> Issues);

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
