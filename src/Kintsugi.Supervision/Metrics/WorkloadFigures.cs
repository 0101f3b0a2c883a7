using Kintsugi.Supervision.Journal;

namespace Kintsugi.Supervision.Metrics;

/// <summary>
/// The RPO of one repository: the age at the window's end of the newest good checkpoint it holds
/// (checkpoint.protected for the primary, checkpoint.copied for a copy). Repository is the label the
/// journal gives it (its URL or folder, without secrets); Role is "primary" or "copy".
/// </summary>
public sealed record RepositoryRpo(string Repository, string Role, double RpoSeconds, DateTimeOffset LastCheckpoint);

/// <summary>Where a workload stands, from the newest events (docs/METRICS.md, "State").</summary>
public enum WorkloadState
{
    /// <summary>Processes are started, none is healthy yet and none is unhealthy.</summary>
    Running,
    /// <summary>Every live replica is healthy.</summary>
    Healthy,
    /// <summary>Some live replicas are healthy, not all (the others starting or unhealthy).</summary>
    Degraded,
    /// <summary>No replica is healthy and at least one is unhealthy (failing, or waiting for its restart).</summary>
    Unhealthy,
    /// <summary>The supervisor gave up on it (workload.failed).</summary>
    Failed,
    /// <summary>No replica is running: the supervisor stopped, or every process ended as expected.</summary>
    Stopped,
}

/// <summary>Where one replica stands.</summary>
public enum ReplicaState
{
    /// <summary>Its process started; it is not healthy yet.</summary>
    Running,
    Healthy,
    /// <summary>A probe failed or the process exited unexpectedly; a restart may be pending.</summary>
    Unhealthy,
    /// <summary>Its process ended as expected (stopped by the supervisor, or exit code 0).</summary>
    Stopped,
}

/// <summary>One replica of a workload.</summary>
/// <param name="Replica">The replica index (events without one count as replica 0).</param>
/// <param name="Pid">The live process, or null when none is running.</param>
/// <param name="Attempt">The attempt number of its newest process (1-based).</param>
/// <param name="Since">When it entered <paramref name="State"/>.</param>
public sealed record ReplicaStatus(int Replica, ReplicaState State, int? Pid, int? Attempt, DateTimeOffset? Since);

/// <summary>
/// The figures of one workload over a window [<see cref="From"/>, <see cref="To"/>], each computed
/// from journal events as docs/METRICS.md defines. Durations are in seconds; a figure is null where
/// it has no meaning (no failure, nothing written, nothing evaluated).
/// </summary>
public sealed record WorkloadFigures
{
    public required string Workload { get; init; }

    public required WorkloadState State { get; init; }

    public required IReadOnlyList<ReplicaStatus> Replicas { get; init; }

    public required DateTimeOffset From { get; init; }

    public required DateTimeOffset To { get; init; }

    /// <summary>The part of the window under supervision since the workload first appeared: the denominator of availability and ETTR.</summary>
    public double ObservedSeconds { get; init; }

    /// <summary>Time within the window during which at least one replica was healthy.</summary>
    public double HealthySeconds { get; init; }

    /// <summary>Healthy time summed over replicas (replica-seconds): the numerator of MTBF.</summary>
    public double ReplicaHealthySeconds { get; init; }

    /// <summary>HealthySeconds ÷ ObservedSeconds.</summary>
    public double? Availability { get; init; }

    /// <summary>replica.unhealthy events in the window (unexpected exits included).</summary>
    public int Failures { get; init; }

    /// <summary>ReplicaHealthySeconds ÷ Failures; null without failures.</summary>
    public double? MtbfSeconds { get; init; }

    /// <summary>Incidents (replica.unhealthy → that replica's next replica.healthy) that ended in the window.</summary>
    public int Recoveries { get; init; }

    /// <summary>Mean duration of those incidents; null when none.</summary>
    public double? MttrSeconds { get; init; }

    /// <summary>Duration of the newest of those incidents.</summary>
    public double? RtoLastSeconds { get; init; }

    /// <summary>Duration of the longest of those incidents.</summary>
    public double? RtoMaxSeconds { get; init; }

    /// <summary>To − checkpoint_time of the newest good protected checkpoint; null when none.</summary>
    public double? RpoSeconds { get; init; }

    /// <summary>checkpoint_time of the newest good protected checkpoint.</summary>
    public DateTimeOffset? LastProtectedCheckpoint { get; init; }

    /// <summary>RPO per repository that holds good checkpoints of the workload: the main one (primary) and each copy.</summary>
    public IReadOnlyList<RepositoryRpo> Repositories { get; init; } = [];

    /// <summary>Healthy time within the window whose work failures threw away.</summary>
    public double LostSeconds { get; init; }

    /// <summary>HealthySeconds − LostSeconds.</summary>
    public double ProductiveSeconds { get; init; }

    /// <summary>Effective training time ratio: ProductiveSeconds ÷ ObservedSeconds; null for a workload that never wrote a checkpoint.</summary>
    public double? Ettr { get; init; }

    /// <summary>B: bytes of checkpoint.protected events in the window.</summary>
    public long ProtectedBytes { get; init; }

    /// <summary>D: bytes of checkpoint.written events in the window.</summary>
    public long WrittenBytes { get; init; }

    /// <summary>R = B ÷ D; null when D = 0.</summary>
    public double? RecoveryRate { get; init; }

    /// <summary>N: the sum of monitor.evaluations counts in the window, of this workload and of the whole supervisor (workload null).</summary>
    public long Evaluations { get; init; }

    /// <summary>S: decision events with adjusts = true in the window.</summary>
    public int Adjustments { get; init; }

    /// <summary>A = S ÷ N; null when N = 0.</summary>
    public double? AdaptationRate { get; init; }

    public int Restarts { get; init; }

    public int Rollbacks { get; init; }

    public int Failovers { get; init; }

    /// <summary>The newest event of this workload at or before <see cref="To"/>.</summary>
    public JournalEvent? LastEvent { get; init; }
}
