using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Tests;

/// <summary>One duration syntax for kintsugi.yaml and the command line.</summary>
public sealed class DurationSyntaxTests
{
    [Theory]
    [InlineData("0", 0)]
    [InlineData("500ms", 0.5)]
    [InlineData("30s", 30)]
    [InlineData("1.5h", 5400)]
    [InlineData("1h30m", 5400)]
    [InlineData("7d", 604_800)]
    [InlineData("2w", 1_209_600)]
    [InlineData("3mo", 7_776_000)]
    [InlineData("1y", 31_536_000)]
    [InlineData(" 5m ", 300)]
    public void Durations_parse_to_their_length(string text, double seconds)
    {
        Assert.True(DurationSyntax.TryParse(text, out var d));
        Assert.Equal(seconds, d.TotalSeconds, 6);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("s")]
    [InlineData("5 parsecs")]
    [InlineData("5x")]
    [InlineData("-5s")]
    [InlineData("1.2.3s")]
    [InlineData("99999999999d")]
    [InlineData("101y")]
    public void Anything_else_is_refused(string text)
    {
        Assert.False(DurationSyntax.TryParse(text, out _));
    }

    [Theory]
    [InlineData("0", "0")]
    [InlineData("500ms", "500ms")]
    [InlineData("10s", "10s")]
    [InlineData("90s", "1m30s")]
    [InlineData("1.5h", "1h30m")]
    [InlineData("1h30m", "1h30m")]
    [InlineData("1.5s", "1s500ms")]
    [InlineData("1.25ms", "1.25ms")]
    [InlineData("7d", "7d")]
    [InlineData("2w", "14d")]
    [InlineData("1y", "365d")]
    [InlineData("2d12h5m", "2d12h5m")]
    public void Durations_are_written_back_in_the_same_syntax(string text, string written)
    {
        Assert.True(DurationSyntax.TryParse(text, out var d));
        Assert.Equal(written, DurationSyntax.Format(d));
    }

    [Fact]
    public void Format_and_TryParse_round_trip_to_the_tick()
    {
        int seed = Environment.TickCount;
        var random = new Random(seed);
        long longest = TimeSpan.FromDays(36_500).Ticks;
        var samples = new List<TimeSpan> { TimeSpan.Zero, TimeSpan.FromTicks(1), TimeSpan.FromTicks(longest), TimeSpan.FromTicks(longest - 1) };
        for (int i = 0; i < 20_000; i++)
        {
            // Every magnitude from ticks to a century, and whole units that often appear.
            long ticks = random.Next(3) switch
            {
                0 => random.NextInt64(longest + 1),
                1 => random.NextInt64((long)Math.Pow(10, random.Next(1, 18))) % (longest + 1),
                _ => random.Next(1, 1000) * new[] { TimeSpan.TicksPerMillisecond, TimeSpan.TicksPerSecond, TimeSpan.TicksPerMinute, TimeSpan.TicksPerHour }[random.Next(4)],
            };
            samples.Add(TimeSpan.FromTicks(ticks));
        }
        foreach (var d in samples)
        {
            string text = DurationSyntax.Format(d);
            Assert.True(DurationSyntax.TryParse(text, out var back), $"seed {seed}: '{text}' ({d.Ticks} ticks) does not parse");
            Assert.True(back == d, $"seed {seed}: '{text}' parses to {back.Ticks} ticks, not {d.Ticks}");
        }
    }

    [Fact]
    public void A_negative_duration_is_written_with_a_minus()
    {
        Assert.Equal("-2s", DurationSyntax.Format(TimeSpan.FromSeconds(-2)));
    }
}
