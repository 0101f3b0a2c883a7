using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Policies;
using Xunit.Abstractions;

namespace Kintsugi.Supervision.Tests;

public sealed class BackoffTests(ITestOutputHelper output)
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static BackoffSpec Spec(double jitter = 0) => new()
    {
        Initial = TimeSpan.FromSeconds(1),
        Max = TimeSpan.FromSeconds(10),
        Factor = 2,
        Jitter = jitter,
        ResetAfter = TimeSpan.FromMinutes(10),
    };

    /// <summary>The delay after a process that ran <paramref name="uptime"/> before failing.</summary>
    private static TimeSpan After(Backoff backoff, TimeSpan uptime) => backoff.NextDelay(T0, T0 + uptime);

    [Fact]
    public void Doubles_from_initial_and_caps_at_max()
    {
        var backoff = new Backoff(Spec(), new Random(1));
        var delays = Enumerable.Range(0, 7).Select(_ => After(backoff, TimeSpan.FromSeconds(5)).TotalSeconds).ToList();
        Assert.Equal([1, 2, 4, 8, 10, 10, 10], delays);
        Assert.Equal(7, backoff.ConsecutiveFailures);
    }

    [Fact]
    public void Jitter_stays_within_bounds_and_spreads()
    {
        int seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var spec = Spec(jitter: 0.2);
        var backoff = new Backoff(spec, new Random(seed));
        double lowest = double.MaxValue, highest = 0;
        for (int draw = 0; draw < 2000; draw++)
        {
            if (draw % 10 == 0)
            {
                backoff.Reset();
            }
            int n = backoff.ConsecutiveFailures;
            double nominal = Math.Min(Math.Pow(2, n), 10);
            double delay = After(backoff, TimeSpan.FromSeconds(1)).TotalSeconds;
            Assert.InRange(delay, nominal * 0.8 - 1e-6, nominal * 1.2 + 1e-6);
            Assert.InRange(delay, 0, 12 + 1e-6);
            lowest = Math.Min(lowest, delay / nominal);
            highest = Math.Max(highest, delay / nominal);
        }
        Assert.True(lowest < 0.85 && highest > 1.15, $"jitter did not spread: {lowest:F3}..{highest:F3}");
    }

    [Fact]
    public void Stable_uptime_restarts_the_sequence()
    {
        var backoff = new Backoff(Spec(), new Random(1));
        Assert.Equal(TimeSpan.FromSeconds(1), After(backoff, TimeSpan.FromSeconds(3)));
        Assert.Equal(TimeSpan.FromSeconds(2), After(backoff, TimeSpan.FromSeconds(3)));
        Assert.Equal(TimeSpan.FromSeconds(4), After(backoff, TimeSpan.FromMinutes(9)));
        Assert.Equal(TimeSpan.FromSeconds(1), After(backoff, TimeSpan.FromMinutes(10)));
        Assert.Equal(1, backoff.ConsecutiveFailures);
        Assert.Equal(TimeSpan.FromSeconds(2), After(backoff, TimeSpan.FromSeconds(3)));
    }

    [Fact]
    public void Reset_starts_over()
    {
        var backoff = new Backoff(Spec(), new Random(1));
        After(backoff, TimeSpan.Zero);
        After(backoff, TimeSpan.Zero);
        backoff.Reset();
        Assert.Equal(0, backoff.ConsecutiveFailures);
        Assert.Equal(TimeSpan.FromSeconds(1), After(backoff, TimeSpan.Zero));
    }

    [Fact]
    public void Many_failures_do_not_overflow()
    {
        var backoff = new Backoff(Spec() with { Max = TimeSpan.FromDays(365) }, new Random(1));
        TimeSpan last = default;
        for (int i = 0; i < 5000; i++)
        {
            last = After(backoff, TimeSpan.Zero);
        }
        Assert.Equal(TimeSpan.FromDays(365), last);
    }

    [Fact]
    public void Invalid_settings_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new Backoff(Spec() with { Factor = 0.5 }, new Random(1)));
        Assert.Throws<ArgumentException>(() => new Backoff(Spec() with { Jitter = 1.5 }, new Random(1)));
        Assert.Throws<ArgumentException>(() => new Backoff(Spec() with { Max = TimeSpan.FromMilliseconds(10) }, new Random(1)));
    }
}
