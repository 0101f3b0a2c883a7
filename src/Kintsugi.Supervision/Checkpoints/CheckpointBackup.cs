using System.Globalization;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Checkpoints;

/// <summary>One checkpoint to back up: into the main repository (<see cref="Copy"/> null) or into one of the config's copies.</summary>
public sealed record CheckpointBackupJob
{
    public required string Workload { get; init; }

    /// <summary>The checkpoint's file or folder.</summary>
    public required string Path { get; init; }

    public long? Step { get; init; }

    /// <summary>The snapshot, in the target repository, of the previous checkpoint (the base of deltas), or null.</summary>
    public string? Parent { get; init; }

    /// <summary>What the backup leaves out (the workload's checkpoint 'exclude').</summary>
    public IReadOnlyList<PathPattern> Exclude { get; init; } = [];

    public required string Host { get; init; }

    /// <summary>The copy to back up into; null: the main repository.</summary>
    public CopySpec? Copy { get; init; }

    /// <summary>The snapshot's tags: kintsugi-run, workload:NAME, step:N (or step:none).</summary>
    public IReadOnlyList<string> Tags => ["kintsugi-run", "workload:" + Workload, "step:" + (Step?.ToString(CultureInfo.InvariantCulture) ?? "none")];
}

/// <summary>
/// Backs checkpoints up. The supervisor hands every checkpoint backup (main repository and copies)
/// to one of these; the CLI's runs them in a helper process at low CPU and I/O priority, so the
/// work of protecting a checkpoint does not slow the job it protects.
/// </summary>
public interface ICheckpointBackupRunner
{
    Task<CopyOutcome> BackupAsync(CheckpointBackupJob job, CancellationToken ct);
}

/// <summary>Backs a checkpoint up in this process, with the repositories it is given.</summary>
public sealed class InProcessCheckpointBackup(Func<CancellationToken, Task<Repository>> openMain, Func<CopySpec, CancellationToken, Task<Repository>>? openCopy) : ICheckpointBackupRunner
{
    public async Task<CopyOutcome> BackupAsync(CheckpointBackupJob job, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(job);
        var repo = job.Copy is null
            ? await openMain(ct).ConfigureAwait(false)
            : await (openCopy ?? throw new InvalidOperationException("no way to open the config's copies was given")).Invoke(job.Copy, ct).ConfigureAwait(false);
        var result = await new BackupEngine(repo).RunAsync(new BackupRequest
        {
            Paths = [job.Path],
            Parent = job.Parent,
            Host = job.Host,
            Tags = job.Tags,
            Program = "kintsugi run",
            Exclude = new PathFilter(job.Exclude),
        }, null, ct).ConfigureAwait(false);
        return new CopyOutcome(result.Snapshot.Id.ToString(), result.Snapshot.Snapshot.Summary?.BytesAddedStored ?? 0);
    }
}
