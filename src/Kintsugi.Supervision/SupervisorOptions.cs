using Kintsugi.Backup;

namespace Kintsugi.Supervision;

/// <summary>What the supervisor needs from whoever runs it; the CLI composes these.</summary>
public sealed record SupervisorOptions
{
    /// <summary>Opens the repository for checkpoint backups and rollbacks (called lazily, at most once at a time).</summary>
    public required Func<CancellationToken, Task<Repository>> OpenRepository { get; init; }

    /// <summary>Opens one of the config's copies (for copying checkpoints to it and restoring from it); required when the config has copies.</summary>
    public Func<Config.CopySpec, CancellationToken, Task<Repository>>? OpenCopy { get; init; }

    /// <summary>Copies protected checkpoints to the config's copies; null: each is backed up into them (<see cref="Checkpoints.BackupCheckpointCopier"/>).</summary>
    public Checkpoints.ICheckpointCopier? Copier { get; init; }

    /// <summary>Runs every checkpoint backup (main repository and copies); null: in this process (<see cref="Checkpoints.InProcessCheckpointBackup"/>).</summary>
    public Checkpoints.ICheckpointBackupRunner? CheckpointBackup { get; init; }

    /// <summary>Receives every output line of every replica: workload, replica, line, whether it came from stderr.</summary>
    public Action<string, int, string, bool>? OnOutput { get; init; }

    /// <summary>The environment the workloads inherit (the supervisor's own, as the CLI reads it).</summary>
    public IReadOnlyDictionary<string, string> BaseEnvironment { get; init; } = new Dictionary<string, string>();

    public string Host { get; init; } = "localhost";

    public Random Random { get; init; } = Random.Shared;

    /// <summary>How often the count of monitoring evaluations is written to the journal.</summary>
    public TimeSpan EvaluationsEvery { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>How a supervisor run ended.</summary>
public enum SupervisorOutcome
{
    /// <summary>Every workload finished successfully.</summary>
    Completed,
    /// <summary>At least one workload failed (gave up, or exhausted its restart budget).</summary>
    Failed,
    /// <summary>Stopped from outside (Ctrl-C, SIGTERM).</summary>
    Stopped,
}
