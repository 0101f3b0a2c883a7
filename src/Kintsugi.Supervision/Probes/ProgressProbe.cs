using System.Globalization;

namespace Kintsugi.Supervision.Probes;

/// <summary>
/// Healthy while the metric (e.g. "step") changed within <c>stallsAfter</c>, measured from the later
/// of its last change and the process start (a restarted process gets the full time for its first report).
/// </summary>
internal sealed class ProgressProbe(
    string metric,
    TimeSpan stallsAfter,
    TimeProvider time,
    Func<DateTimeOffset> startedAt,
    Func<string, (double Value, DateTimeOffset ChangedAt)?> lastMetric) : IProbe
{
    public Task<ProbeResult> CheckAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var now = time.GetUtcNow();
        var started = startedAt();
        var last = lastMetric(metric);
        if (last is not (double value, DateTimeOffset changedAt) || changedAt < started)
        {
            var sinceStart = now - started;
            string what = last is (double previous, _)
                ? $"{metric} {previous.ToString(CultureInfo.InvariantCulture)} unchanged since start"
                : $"no '{metric}' reported";
            return Task.FromResult(sinceStart <= stallsAfter
                ? ProbeResult.Waiting($"{what} ({DurationText.Format(sinceStart)} ago)")
                : new ProbeResult(false, $"{what} ({DurationText.Format(sinceStart)} ago; stalls after {DurationText.Format(stallsAfter)})"));
        }
        var age = now - changedAt;
        string shown = value.ToString(CultureInfo.InvariantCulture);
        return Task.FromResult(age <= stallsAfter
            ? new ProbeResult(true, $"{metric} {shown}, changed {DurationText.Format(age)} ago")
            : new ProbeResult(false, $"{metric} {shown} unchanged for {DurationText.Format(age)} (stalls after {DurationText.Format(stallsAfter)})"));
    }
}
