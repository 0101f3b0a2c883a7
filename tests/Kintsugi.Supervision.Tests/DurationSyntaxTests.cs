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
}
