namespace Kintsugi.Backup.Storage;

/// <summary>
/// A token bucket in bytes per second shared by every transfer of one direction
/// (`--limit-upload`, `--limit-download`): a caller waits until the bytes it is about to move fit.
/// A burst of one second's worth is allowed. Zero means no limit.
/// </summary>
public sealed class BandwidthLimiter
{
    private readonly long _rate;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private double _tokens;
    private long _last;

    public BandwidthLimiter(long bytesPerSecond, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytesPerSecond);
        ArgumentNullException.ThrowIfNull(time);
        _rate = bytesPerSecond;
        _time = time;
        _tokens = bytesPerSecond;
        _last = time.GetTimestamp();
    }

    public bool Unlimited => _rate == 0;

    /// <summary>Waits until <paramref name="bytes"/> may be moved, then takes them from the bucket.</summary>
    public async ValueTask WaitAsync(long bytes, CancellationToken cancellationToken)
    {
        if (_rate == 0 || bytes <= 0)
        {
            return;
        }
        TimeSpan wait;
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            _tokens = Math.Min(_rate, _tokens + (_time.GetElapsedTime(_last, now).TotalSeconds * _rate));
            _last = now;
            _tokens -= bytes;
            wait = _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / _rate);
        }
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
        }
    }
}
