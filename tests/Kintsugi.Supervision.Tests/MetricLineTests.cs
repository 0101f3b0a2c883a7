using Kintsugi.Supervision.Monitors;

namespace Kintsugi.Supervision.Tests;

public sealed class MetricLineTests
{
    [Fact]
    public void Numbers_of_a_metric_line_are_its_values()
    {
        Assert.True(MetricLine.TryParse("KINTSUGI {\"step\": 120, \"loss\": 0.53, \"lr\": 1e-4}", out var values));
        Assert.Equal(3, values.Count);
        Assert.Equal(120, values["step"]);
        Assert.Equal(0.53, values["loss"]);
        Assert.Equal(1e-4, values["lr"]);
    }

    [Fact]
    public void Python_bare_NaN_and_Infinity_literals_parse()
    {
        Assert.True(MetricLine.TryParse("KINTSUGI {\"loss\": NaN, \"grad\": Infinity, \"low\": -Infinity, \"step\": 3}", out var values));
        Assert.True(double.IsNaN(values["loss"]));
        Assert.Equal(double.PositiveInfinity, values["grad"]);
        Assert.Equal(double.NegativeInfinity, values["low"]);
        Assert.Equal(3, values["step"]);
    }

    [Theory]
    [InlineData("nan", double.NaN)]
    [InlineData("NaN", double.NaN)]
    [InlineData("inf", double.PositiveInfinity)]
    [InlineData("-inf", double.NegativeInfinity)]
    [InlineData("Infinity", double.PositiveInfinity)]
    [InlineData("2.5", 2.5)]
    public void Strings_naming_numbers_parse(string text, double expected)
    {
        Assert.True(MetricLine.TryParse($"KINTSUGI {{\"v\": \"{text}\"}}", out var values));
        Assert.Equal(expected, values["v"]);
    }

    [Fact]
    public void Literals_inside_strings_are_left_alone_and_non_numeric_fields_ignored()
    {
        Assert.True(MetricLine.TryParse("KINTSUGI {\"phase\": \"NaN Infinity warmup\", \"ok\": true, \"tags\": [1], \"cfg\": {\"a\": 1}, \"none\": null, \"step\": 7}", out var values));
        Assert.Equal(["step"], values.Keys);
    }

    [Fact]
    public void Values_beyond_double_range_are_infinite()
    {
        Assert.True(MetricLine.TryParse("KINTSUGI {\"big\": 1e400}", out var values));
        Assert.Equal(double.PositiveInfinity, values["big"]);
    }

    [Fact]
    public void An_object_without_numbers_is_a_metric_line_with_no_values()
    {
        Assert.True(MetricLine.TryParse("KINTSUGI {}", out var values));
        Assert.Empty(values);
    }

    [Theory]
    [InlineData("{\"step\": 1}")]
    [InlineData("INFO KINTSUGI {\"step\": 1}")]
    [InlineData("kintsugi {\"step\": 1}")]
    [InlineData("KINTSUGI")]
    [InlineData("KINTSUGI ")]
    [InlineData("KINTSUGI [1, 2]")]
    [InlineData("KINTSUGI 42")]
    [InlineData("KINTSUGI {\"step\": 1")]
    [InlineData("KINTSUGI {step: 1}")]
    [InlineData("KINTSUGI {\"step\": nan}")]
    [InlineData("KINTSUGI {\"step\": 1} trailing")]
    [InlineData("")]
    public void Anything_else_is_not_a_metric_line(string line)
    {
        Assert.False(MetricLine.TryParse(line, out var values));
        Assert.Empty(values);
    }
}
