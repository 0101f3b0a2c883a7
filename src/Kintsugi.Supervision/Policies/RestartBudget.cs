using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Policies;

/// <summary>At most <see cref="BudgetSpec.Restarts"/> restarts within any sliding window of <see cref="BudgetSpec.Within"/>. Thread-safe.</summary>
public sealed class RestartBudget
{
    // Two records closer than this are one restart seen twice (once live, once read back from the
    // journal, which may store times with less precision); real restarts are far apart.
    private static readonly TimeSpan SameRestart = TimeSpan.FromMilliseconds(1);

    private readonly BudgetSpec _spec;
    private readonly List<DateTimeOffset> _restarts = [];
    private readonly Lock _gate = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the field when <paramref name="spec"/> is out of range.</summary>
    public RestartBudget(BudgetSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Restarts < 0)
        {
            throw new ArgumentException($"budget Restarts cannot be negative, got {spec.Restarts}", nameof(spec));
        }
        if (spec.Within <= TimeSpan.Zero)
        {
            throw new ArgumentException($"budget Within must be longer than 0, got {spec.Within}", nameof(spec));
        }
        _spec = spec;
    }

    /// <summary>True, and records a restart at <paramref name="now"/>, when fewer than Restarts were made in the window ending at <paramref name="now"/>.</summary>
    public bool TryConsume(DateTimeOffset now)
    {
        lock (_gate)
        {
            // Restarts at or before now − Within have left the window for good (time only moves on).
            _restarts.RemoveAll(t => t <= now - _spec.Within);
            if (CountIn(now) >= _spec.Restarts)
            {
                return false;
            }
            Insert(now);
            return true;
        }
    }

    /// <summary>Restarts made in the window (now − Within, now].</summary>
    public int UsedAt(DateTimeOffset now)
    {
        lock (_gate)
        {
            return CountIn(now);
        }
    }

    private int CountIn(DateTimeOffset now) => _restarts.Count(t => t > now - _spec.Within && t <= now);

    /// <summary>
    /// Restarts already made (read back from the journal after a supervisor restart). One already
    /// known (within a millisecond) is not counted twice, so seeding the same history again changes nothing.
    /// </summary>
    public void Seed(IEnumerable<DateTimeOffset> restarts)
    {
        ArgumentNullException.ThrowIfNull(restarts);
        lock (_gate)
        {
            foreach (var t in restarts)
            {
                if (!_restarts.Exists(known => (known - t).Duration() < SameRestart))
                {
                    Insert(t);
                }
            }
        }
    }

    private void Insert(DateTimeOffset t)
    {
        int i = _restarts.BinarySearch(t);
        _restarts.Insert(i < 0 ? ~i : i, t);
    }
}
