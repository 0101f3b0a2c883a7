using System.Globalization;

namespace Kintsugi.Cli.Rendering;

/// <summary>Human-readable sizes, rates and durations.</summary>
internal static class Units
{
    public static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double value = bytes;
        int unit = 0;
        while (Math.Abs(value) >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : value.ToString("0.00", CultureInfo.InvariantCulture) + " " + units[unit];
    }

    public static string Rate(long bytes, TimeSpan elapsed) =>
        elapsed.TotalSeconds <= 0 ? "-" : Bytes((long)(bytes / elapsed.TotalSeconds)) + "/s";

    public static string Seconds(double seconds) => seconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";

    public static string Time(DateTimeOffset time) => time.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);

    /// <summary>Parses "10%", "0.1" or "1/10" into a fraction in (0, 1].</summary>
    public static double ParseFraction(string text)
    {
        text = text.Trim();
        double value;
        if (text.EndsWith('%') && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var pct))
        {
            value = pct / 100;
        }
        else if (text.Split('/') is [var n, var m] && double.TryParse(n, NumberStyles.Float, CultureInfo.InvariantCulture, out var a) && double.TryParse(m, NumberStyles.Float, CultureInfo.InvariantCulture, out var b) && b > 0)
        {
            value = a / b;
        }
        else if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value))
        {
            throw new UsageException($"'{text}' is not a fraction; write it as 10%, 0.1 or 1/10");
        }
        if (value is <= 0 or > 1)
        {
            throw new UsageException($"'{text}' is not between 0 and 100%");
        }
        return value;
    }

    /// <summary>Parses a duration as kintsugi.yaml writes it (<see cref="Kintsugi.Supervision.Config.DurationSyntax"/>).</summary>
    public static TimeSpan ParseDuration(string text) =>
        Kintsugi.Supervision.Config.DurationSyntax.TryParse(text, out var d) && d > TimeSpan.Zero
            ? d
            : throw new UsageException($"'{text}' is not a duration (or is longer than 100 years); write it like {Kintsugi.Supervision.Config.DurationSyntax.Example}");
}
