namespace Kintsugi.Supervision.Probes;

/// <summary>What a probe may know about the replica it checks.</summary>
public sealed class ProbeContext
{
    /// <summary>The replica's port, substituted for "{port}" in URLs and for tcp port 0.</summary>
    public int? Port { get; init; }

    /// <summary>Relative heartbeat files and exec commands resolve here.</summary>
    public required string WorkingDirectory { get; init; }

    public required TimeProvider Time { get; init; }

    /// <summary>The last reported value of a metric and when it last CHANGED; null if never reported.</summary>
    public Func<string, (double Value, DateTimeOffset ChangedAt)?> LastMetric { get; init; } = _ => null;

    /// <summary>
    /// When the replica's current process started. Progress and heartbeat probes measure from here
    /// until the first report or touch, so a fresh process is not judged by its predecessor's file or metric.
    /// </summary>
    public required Func<DateTimeOffset> StartedAt { get; init; }
}
