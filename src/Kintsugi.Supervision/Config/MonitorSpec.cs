namespace Kintsugi.Supervision.Config;

/// <summary>An event-based rule: when its event happens, <see cref="Then"/> is done.</summary>
public abstract record MonitorSpec
{
    public required ActionSpec Then { get; init; }
    public abstract string Kind { get; }
}

/// <summary>The process exited with one of these codes, or was killed by one of these signals.</summary>
public sealed record ExitMonitorSpec(IReadOnlyList<int> Codes, IReadOnlyList<int> Signals) : MonitorSpec
{
    public override string Kind => "exit";
}

/// <summary>Where log lines come from.</summary>
public enum LogSource
{
    Output,
    StdOut,
    StdErr,
    File,
}

/// <summary>A line matching <see cref="Pattern"/> (a .NET regular expression) appeared on the output or in a log file.</summary>
public sealed record LogMonitorSpec(string Pattern, LogSource Source, string? File) : MonitorSpec
{
    public override string Kind => "log";
}

public enum MetricRuleKind
{
    NanOrInf,
    Above,
    Below,
    AboveRunningMax,
}

/// <summary>
/// A rule on a metric the workload reports: NaN/Inf, above/below a value, or above k× its running
/// maximum (a rise above the max by more than (k−1)·|max|; k·max for a positive max; see MonitorSet).
/// </summary>
public sealed record MetricMonitorSpec(string Name, MetricRuleKind Rule, double Value) : MonitorSpec
{
    public override string Kind => "metric";
}

/// <summary>A new complete checkpoint appeared in the checkpoint folder.</summary>
public sealed record CheckpointMonitorSpec : MonitorSpec
{
    public override string Kind => "checkpoint";
}
