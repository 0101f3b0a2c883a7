namespace Kintsugi.Supervision.Config;

/// <summary>How a failure of one workload affects the others.</summary>
public enum Strategy
{
    /// <summary>Each workload (and replica) is restarted on its own.</summary>
    OneForOne,
    /// <summary>The workloads form a gang: when one fails, all are stopped and restarted together.</summary>
    OneForAll,
}

/// <summary>How checkpoints are backed up beside the workload ('protection: priority').</summary>
public enum ProtectionPriority
{
    /// <summary>In the supervisor's own process, at its priority.</summary>
    Normal,
    /// <summary>In a helper process at nice 10 and best-effort I/O priority 7 (the default).</summary>
    Low,
    /// <summary>In a helper process at nice 19 and the idle I/O class: only when nothing else wants the CPU or disk.</summary>
    Idle,
}

/// <summary>The whole supervisor configuration (kintsugi.yaml), validated at load. See docs/CONFIG.md.</summary>
public sealed record SupervisorConfig
{
    /// <summary>The file it was loaded from; relative paths in it are relative to its folder.</summary>
    public required string SourcePath { get; init; }
    /// <summary>Repository for checkpoint backups: an absolute folder, or a remote URL (s3:…, azure:…) as written.</summary>
    public required string Repository { get; init; }
    /// <summary>Password file of the repository (absolute), or null to take it from the environment.</summary>
    public string? PasswordFile { get; init; }
    /// <summary>Key file of the repository (absolute; `kintsugi key add --new-key-file`), or null.</summary>
    public string? KeyFile { get; init; }
    /// <summary>The SQLite journal (absolute).</summary>
    public required string Journal { get; init; }
    /// <summary>Further repositories each protected checkpoint is copied to, in order, after the primary one.</summary>
    public IReadOnlyList<CopySpec> Copies { get; init; } = [];
    /// <summary>The CPU and I/O priority checkpoints are backed up at ('protection: priority').</summary>
    public ProtectionPriority ProtectionPriority { get; init; } = ProtectionPriority.Low;
    /// <summary>Upload limit in bytes per second for the main repository ('protection: limit-upload'), 0 for none.</summary>
    public long LimitUpload { get; init; }
    public Strategy Strategy { get; init; } = Strategy.OneForOne;
    public required IReadOnlyList<WorkloadSpec> Workloads { get; init; }
}

/// <summary>A repository that protected checkpoints are copied to (typically off-site), with its own credentials.</summary>
public sealed record CopySpec
{
    /// <summary>An absolute folder, or a remote URL (s3:…, azure:…) as written.</summary>
    public required string Repository { get; init; }
    /// <summary>Password file of this repository (absolute), or null: the main repository's password (its file or the environment).</summary>
    public string? PasswordFile { get; init; }
    /// <summary>Key file of this repository (absolute), or null.</summary>
    public string? KeyFile { get; init; }
    /// <summary>Upload limit in bytes per second while copying to it, 0 for none.</summary>
    public long LimitUpload { get; init; }
    /// <summary>Where the item is written, "file:line:column"; null when not loaded from a file.</summary>
    public string? At { get; init; }
}

/// <summary>One supervised program, run as <see cref="Replicas"/> copies.</summary>
public sealed record WorkloadSpec
{
    public required string Name { get; init; }
    public required IReadOnlyList<string> Command { get; init; }
    /// <summary>Working folder (absolute).</summary>
    public required string WorkingDirectory { get; init; }
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();
    public int Replicas { get; init; } = 1;
    /// <summary>First port; replica i gets <c>Port + i</c> as KINTSUGI_PORT and in "{port}" of probe URLs.</summary>
    public int? Port { get; init; }
    public CheckpointSpec? Checkpoints { get; init; }
    public RestartSpec Restart { get; init; } = new();
    public StopSpec Stop { get; init; } = new();
    public IReadOnlyList<ProbeSpec> Probes { get; init; } = [];
    public IReadOnlyList<MonitorSpec> Monitors { get; init; } = [];
    /// <summary>When a replica without probes counts as healthy (with probes: when they pass).</summary>
    public HealthyWhen Healthy { get; init; } = HealthyWhen.Progress;
    /// <summary>Where the program (the command's first item) is written, "file:line:column", for messages about it; null when not loaded from a file.</summary>
    public string? CommandAt { get; init; }
    /// <summary>Where 'cwd' is written, "file:line:column"; null when it is not (the config's folder).</summary>
    public string? WorkingDirectoryAt { get; init; }
}

/// <summary>Where a workload writes checkpoints and how they are protected.</summary>
public sealed record CheckpointSpec
{
    /// <summary>Checkpoint folder (absolute). Each checkpoint is a file or folder directly inside it.</summary>
    public required string Directory { get; init; }
    /// <summary>Back up each new complete checkpoint as it appears.</summary>
    public bool BackupOnChange { get; init; } = true;
    /// <summary>Protected checkpoints kept in the repository (older snapshots are forgotten).</summary>
    public int KeepLast { get; init; } = 5;
    /// <summary>A checkpoint counts as complete when its size and mtime have not changed for this long.</summary>
    public TimeSpan SettleTime { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>What a checkpoint's backup leaves out, as `kintsugi backup --exclude` takes it; the last match wins.</summary>
    public IReadOnlyList<Kintsugi.Backup.Engine.PathPattern> Exclude { get; init; } = [];
    /// <summary>Where 'dir' is written, "file:line:column", for messages about it; null when not loaded from a file.</summary>
    public string? DirectoryAt { get; init; }
}

/// <summary>When a replica without probes counts as healthy: serving or training, not merely started.</summary>
public enum HealthyWhen
{
    /// <summary>At its first progress: a metric line, or a new complete checkpoint of its workload.</summary>
    Progress,
    /// <summary>As soon as its process has started (for a process that shows no progress of its own).</summary>
    Started,
}

public enum RestartWhen
{
    OnFailure,
    Always,
    Never,
}

public sealed record RestartSpec
{
    public RestartWhen When { get; init; } = RestartWhen.OnFailure;
    public BackoffSpec Backoff { get; init; } = new();
    public BudgetSpec Budget { get; init; } = new();
}

/// <summary>Exponential backoff: initial × factor^n, capped at max, ± jitter; reset after stable uptime.</summary>
public sealed record BackoffSpec
{
    public TimeSpan Initial { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan Max { get; init; } = TimeSpan.FromMinutes(5);
    public double Factor { get; init; } = 2;
    /// <summary>Fraction of the delay added or removed at random (0.2 = ±20%).</summary>
    public double Jitter { get; init; } = 0.2;
    /// <summary>After running this long without failing, the next failure starts again from <see cref="Initial"/>.</summary>
    public TimeSpan ResetAfter { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>At most <see cref="Restarts"/> restarts within <see cref="Within"/>; beyond that the workload is failed.</summary>
public sealed record BudgetSpec
{
    public int Restarts { get; init; } = 10;
    public TimeSpan Within { get; init; } = TimeSpan.FromHours(1);
}

/// <summary>Graceful stop: this signal to the process group, then SIGKILL after the grace period.</summary>
public sealed record StopSpec
{
    public int Signal { get; init; } = 15;
    public TimeSpan Grace { get; init; } = TimeSpan.FromSeconds(30);
}
