namespace Kintsugi.Supervision.Config;

/// <summary>What the supervisor does about a signal.</summary>
public abstract record ActionSpec
{
    public abstract string Kind { get; }
}

/// <summary>Stop the replica (if running) and start it again after the backoff, applying adjustments first.</summary>
public sealed record RestartActionSpec : ActionSpec
{
    public IReadOnlyList<Adjustment> Adjustments { get; init; } = [];
    public override string Kind => Adjustments.Count > 0 ? "adjust" : "restart";
}

/// <summary>Stop, restore the newest good checkpoint (older than the fault), mark newer ones bad, restart resuming from it, skipping steps.</summary>
public sealed record RollbackActionSpec : ActionSpec
{
    public int SkipSteps { get; init; }
    public override string Kind => "rollback";
}

/// <summary>Take the replica out and start a fresh one in its place (a new attempt counter).</summary>
public sealed record FailoverActionSpec : ActionSpec
{
    public override string Kind => "failover";
}

/// <summary>Stop and mark the workload failed; no restart.</summary>
public sealed record GiveUpActionSpec : ActionSpec
{
    public override string Kind => "give-up";
}

/// <summary>Only record the event (for monitors that inform, like checkpoint appearances).</summary>
public sealed record RecordActionSpec : ActionSpec
{
    public override string Kind => "record";
}

public enum AdjustTarget
{
    Env,
    Arg,
}

public enum AdjustOp
{
    Set,
    Halve,
    Double,
    Multiply,
}

/// <summary>
/// A change to an environment variable or a command-line option value before a restart. Two adjustments
/// are equal when they make the same change; where they are written (<see cref="At"/>, <see cref="Field"/>) is not compared.
/// </summary>
public sealed record Adjustment(AdjustTarget Target, string Name, AdjustOp Op, string? Value)
{
    /// <summary>"file:line:column" of its value in the configuration, when loaded from one.</summary>
    public string? At { get; init; }

    /// <summary>The dotted path of its field (workloads.job.monitors[0].then.restart.adjust.env.BATCH_SIZE), when loaded.</summary>
    public string? Field { get; init; }

    /// <summary>Where it is written, for a message: "kintsugi.yaml:9:40: workloads.job…env.BATCH_SIZE", or <paramref name="fallback"/>.</summary>
    public string Where(string fallback) => At is null ? fallback : Field is null ? At : $"{At}: {Field}";

    public bool Equals(Adjustment? other) =>
        other is not null && Target == other.Target && Name == other.Name && Op == other.Op && Value == other.Value;

    public override int GetHashCode() => HashCode.Combine(Target, Name, Op, Value);
}
