using Kintsugi.Backup;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Checkpoints;

/// <summary>
/// Copies a checkpoint by backing its folder or file up into the copy repository, tagged like the
/// main repository's snapshot. Correct while the checkpoint is still on disk (the guard only copies
/// checkpoints that are); its deltas are against the previous checkpoint copied there.
/// </summary>
public sealed class BackupCheckpointCopier(ICheckpointBackupRunner runner, string host) : ICheckpointCopier
{
    /// <summary>Backs up in this process, opening copies with <paramref name="openRepository"/>.</summary>
    public BackupCheckpointCopier(Func<CopySpec, CancellationToken, Task<Repository>> openRepository, string host)
        : this(new InProcessCheckpointBackup(_ => throw new InvalidOperationException("a copier backs up into copies only"), openRepository), host)
    {
    }

    public Task<CopyOutcome> CopyAsync(CheckpointCopyRequest request, CopySpec target, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(target);
        return runner.BackupAsync(new CheckpointBackupJob
        {
            Workload = request.Workload,
            Path = request.Checkpoint.Path,
            Step = request.Checkpoint.Step,
            Parent = request.Parent,
            Host = host,
            Exclude = request.Exclude.Patterns,
            Copy = target,
        }, ct);
    }
}
