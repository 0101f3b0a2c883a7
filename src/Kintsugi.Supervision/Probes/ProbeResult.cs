namespace Kintsugi.Supervision.Probes;

/// <summary>
/// The outcome of one probe run: healthy or not, and a line saying why. A <see cref="Pending"/> result
/// is neither: the probe has nothing to judge yet (a heartbeat file not touched since the start, no
/// progress reported yet) and its grace has not run out, so it neither fails nor makes the replica
/// healthy: a replica that is still importing its libraries is not yet serving or training.
/// </summary>
public readonly record struct ProbeResult(bool Healthy, string Detail)
{
    public bool Pending { get; init; }

    public static ProbeResult Waiting(string detail) => new(true, detail) { Pending = true };
}
