using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Policies;

/// <summary>Exponential backoff with jitter, reset after stable uptime (<see cref="BackoffSpec.ResetAfter"/>). Thread-safe.</summary>
public sealed class Backoff
{
    // Below TimeSpan.MaxValue.Ticks by a margin double can represent, so the conversion back cannot overflow.
    private const double MaxTicks = 9.2e18;

    private readonly BackoffSpec _spec;
    private readonly Random _random;
    private readonly Lock _gate = new();
    private int _consecutiveFailures;

    /// <summary>Throws <see cref="ArgumentException"/> naming the field when <paramref name="spec"/> is out of range.</summary>
    public Backoff(BackoffSpec spec, Random random)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(random);
        if (spec.Initial < TimeSpan.Zero)
        {
            throw new ArgumentException($"backoff Initial cannot be negative, got {spec.Initial}", nameof(spec));
        }
        if (spec.Max < spec.Initial)
        {
            throw new ArgumentException($"backoff Max ({spec.Max}) is shorter than Initial ({spec.Initial})", nameof(spec));
        }
        if (!(spec.Factor >= 1) || double.IsInfinity(spec.Factor))
        {
            throw new ArgumentException($"backoff Factor must be a number of at least 1, got {spec.Factor}", nameof(spec));
        }
        if (!(spec.Jitter is >= 0 and <= 1))
        {
            throw new ArgumentException($"backoff Jitter must be between 0 and 1, got {spec.Jitter}", nameof(spec));
        }
        if (spec.ResetAfter < TimeSpan.Zero)
        {
            throw new ArgumentException($"backoff ResetAfter cannot be negative, got {spec.ResetAfter}", nameof(spec));
        }
        _spec = spec;
        _random = random;
    }

    /// <summary>Failures counted into the current sequence (the last <see cref="NextDelay"/> included).</summary>
    public int ConsecutiveFailures
    {
        get
        {
            lock (_gate)
            {
                return _consecutiveFailures;
            }
        }
    }

    /// <summary>
    /// Delay before the next start, given the failure happened at <paramref name="failedAt"/> after a
    /// process that started at <paramref name="startedAt"/>: if it ran at least ResetAfter, the
    /// sequence restarts at Initial. Otherwise Initial × Factor^n for the n-th consecutive failure
    /// (n from 0), capped at Max, then ± Jitter × delay (uniform), never negative and never above
    /// Max × (1 + Jitter).
    /// </summary>
    public TimeSpan NextDelay(DateTimeOffset startedAt, DateTimeOffset failedAt)
    {
        lock (_gate)
        {
            if (failedAt - startedAt >= _spec.ResetAfter)
            {
                _consecutiveFailures = 0;
            }
            // Past 1024 doublings every finite factor > 1 has long reached Max; the cap keeps Pow finite.
            double exponent = Math.Min(_consecutiveFailures, 1024);
            if (_consecutiveFailures < int.MaxValue)
            {
                _consecutiveFailures++;
            }
            double ticks = Math.Min(_spec.Initial.Ticks * Math.Pow(_spec.Factor, exponent), _spec.Max.Ticks);
            double jittered = ticks * (1 + (_spec.Jitter * ((2 * _random.NextDouble()) - 1)));
            double ceiling = _spec.Max.Ticks * (1 + _spec.Jitter);
            return TimeSpan.FromTicks((long)Math.Clamp(jittered, 0, Math.Min(ceiling, MaxTicks)));
        }
    }

    /// <summary>Starts the sequence over: the next failure waits Initial (± jitter).</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _consecutiveFailures = 0;
        }
    }
}
