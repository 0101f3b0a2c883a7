namespace Kintsugi.Supervision.Probes;

/// <summary>
/// Healthy while the heartbeat file was touched within <c>staleAfter</c>. Age is measured from the
/// later of the file's mtime and the process start, so neither a file the process has not created
/// yet nor one left over by its predecessor is stale before the new process had its chance.
/// </summary>
internal sealed class HeartbeatProbe(string path, TimeSpan staleAfter, TimeProvider time, Func<DateTimeOffset> startedAt) : IProbe
{
    public Task<ProbeResult> CheckAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var now = time.GetUtcNow();
        var started = startedAt();
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            var sinceStart = now - started;
            return Task.FromResult(sinceStart <= staleAfter
                ? ProbeResult.Waiting($"{path} not created yet ({DurationText.Format(sinceStart)} since start)")
                : new ProbeResult(false, $"{path} missing {DurationText.Format(sinceStart)} after start (stale after {DurationText.Format(staleAfter)})"));
        }
        var touched = new DateTimeOffset(file.LastWriteTimeUtc, TimeSpan.Zero);
        var age = now - (touched > started ? touched : started);
        if (touched <= started && age <= staleAfter)
        {
            return Task.FromResult(ProbeResult.Waiting($"{path} not touched since the start ({DurationText.Format(age)} ago)"));
        }
        return Task.FromResult(age <= staleAfter
            ? new ProbeResult(true, $"{path} touched {DurationText.Format(age)} ago")
            : new ProbeResult(false, $"{path} not touched for {DurationText.Format(age)} (stale after {DurationText.Format(staleAfter)})"));
    }
}
