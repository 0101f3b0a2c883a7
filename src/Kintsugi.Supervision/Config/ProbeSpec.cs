namespace Kintsugi.Supervision.Config;

/// <summary>
/// A time-based check, run every <see cref="Every"/>. The replica is unhealthy after
/// <see cref="FailureThreshold"/> failures in a row and healthy again after
/// <see cref="SuccessThreshold"/> successes. No probe runs before <see cref="InitialDelay"/>;
/// during <see cref="StartupBudget"/> after a start, failures do not count (a slow start is not a failure).
/// </summary>
public abstract record ProbeSpec
{
    public TimeSpan Every { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan InitialDelay { get; init; } = TimeSpan.Zero;
    public TimeSpan StartupBudget { get; init; } = TimeSpan.Zero;
    public int FailureThreshold { get; init; } = 3;
    public int SuccessThreshold { get; init; } = 1;
    /// <summary>What to do when the probe declares the replica unhealthy (default: restart).</summary>
    public ActionSpec Then { get; init; } = new RestartActionSpec();
    /// <summary>Short name for events and messages, e.g. "http", "heartbeat".</summary>
    public abstract string Kind { get; }
}

/// <summary>GET a URL; healthy on a 2xx or 3xx answer within the timeout. "{port}" is the replica's port.</summary>
public sealed record HttpProbeSpec(string Url) : ProbeSpec
{
    public override string Kind => "http";
}

/// <summary>Connect to host:port within the timeout. A port of 0 means the replica's port.</summary>
public sealed record TcpProbeSpec(string Host, int Port) : ProbeSpec
{
    public override string Kind => "tcp";
}

/// <summary>Run a command; healthy when it exits 0 within the timeout.</summary>
public sealed record ExecProbeSpec(IReadOnlyList<string> Command) : ProbeSpec
{
    public override string Kind => "exec";
}

/// <summary>Healthy while the file's mtime is younger than <see cref="StaleAfter"/> (a hung process stops touching it).</summary>
public sealed record HeartbeatProbeSpec(string File, TimeSpan StaleAfter) : ProbeSpec
{
    public override string Kind => "heartbeat";
}

/// <summary>Healthy while the reported metric (e.g. "step") changed within <see cref="StallsAfter"/>.</summary>
public sealed record ProgressProbeSpec(string Metric, TimeSpan StallsAfter) : ProbeSpec
{
    public override string Kind => "progress";
}
