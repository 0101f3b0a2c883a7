using Kintsugi.Backup.Engine;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Checkpoints;

/// <summary>A checkpoint protected in the main repository, to be copied to one of the config's 'copies'.</summary>
public sealed record CheckpointCopyRequest
{
    public required string Workload { get; init; }

    /// <summary>The checkpoint; its <see cref="CheckpointInfo.Snapshot"/> is its snapshot in the main repository.</summary>
    public required CheckpointInfo Checkpoint { get; init; }

    /// <summary>The snapshot, in the copy's repository, of the previous checkpoint copied there (the base of deltas), or null.</summary>
    public string? Parent { get; init; }

    /// <summary>What the checkpoint's backup leaves out.</summary>
    public PathFilter Exclude { get; init; } = new([]);
}

/// <summary>What a copy stored: its snapshot in the copy's repository and the bytes it uploaded there.</summary>
public sealed record CopyOutcome(string Snapshot, long Bytes);

/// <summary>
/// Puts a protected checkpoint into a copy repository. The supervisor calls it after the main
/// repository holds the checkpoint, one copy at a time; a failure is journaled and retried at the
/// next checkpoint.
/// </summary>
public interface ICheckpointCopier
{
    Task<CopyOutcome> CopyAsync(CheckpointCopyRequest request, CopySpec target, CancellationToken ct);
}
