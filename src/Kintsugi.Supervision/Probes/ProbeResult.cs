namespace Kintsugi.Supervision.Probes;

/// <summary>The outcome of one probe run: healthy or not, and a line saying why.</summary>
public readonly record struct ProbeResult(bool Healthy, string Detail);
