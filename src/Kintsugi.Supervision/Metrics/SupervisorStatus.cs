namespace Kintsugi.Supervision.Metrics;

/// <summary>
/// The supervisor as the journal tells it. <see cref="Running"/> says only that the newest
/// supervisor.started has no supervisor.stopped after it: a supervisor that died wrote no stop, so
/// whoever can should also check that <see cref="Pid"/> is alive.
/// </summary>
public sealed record SupervisorStatus
{
    public bool Running { get; init; }

    /// <summary>The pid of the newest supervisor.started.</summary>
    public int? Pid { get; init; }

    /// <summary>The configuration file of the newest supervisor.started.</summary>
    public string? Config { get; init; }

    public DateTimeOffset? Started { get; init; }

    /// <summary>Whether the newest run found an earlier one in the journal.</summary>
    public bool Resumed { get; init; }

    /// <summary>When the newest run stopped, if it did.</summary>
    public DateTimeOffset? Stopped { get; init; }

    public string? StopReason { get; init; }

    /// <summary>How many times a supervisor started on this journal.</summary>
    public int Runs { get; init; }

    /// <summary>The time of the newest event of any kind.</summary>
    public DateTimeOffset? LastEvent { get; init; }
}
