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

    /// <summary>Parses durations like 90s, 30m, 12h, 7d, 2w, 3mo, 1y (months are 30 days, years 365).</summary>
    public static TimeSpan ParseDuration(string text)
    {
        var total = TimeSpan.Zero;
        int i = 0;
        text = text.Trim();
        if (text.Length == 0)
        {
            throw new UsageException("empty duration; write it like 7d, 12h or 2w");
        }
        while (i < text.Length)
        {
            int start = i;
            while (i < text.Length && char.IsAsciiDigit(text[i]))
            {
                i++;
            }
            int unitStart = i;
            while (i < text.Length && char.IsAsciiLetter(text[i]))
            {
                i++;
            }
            if (start == unitStart || unitStart == i)
            {
                throw new UsageException($"'{text}' is not a duration; write it like 7d, 12h, 30m, 2w or 1y");
            }
            if (!int.TryParse(text[start..unitStart], NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > 100_000)
            {
                throw new UsageException($"'{text}' is too long a duration; write at most 100000 of a unit, like 7d or 2w");
            }
            total += text[unitStart..i] switch
            {
                "s" => TimeSpan.FromSeconds(n),
                "m" => TimeSpan.FromMinutes(n),
                "h" => TimeSpan.FromHours(n),
                "d" => TimeSpan.FromDays(n),
                "w" => TimeSpan.FromDays(7 * n),
                "mo" => TimeSpan.FromDays(30 * n),
                "y" => TimeSpan.FromDays(365 * n),
                var u => throw new UsageException($"unknown duration unit '{u}' in '{text}'; use s, m, h, d, w, mo or y"),
            };
        }
        return total;
    }
}
