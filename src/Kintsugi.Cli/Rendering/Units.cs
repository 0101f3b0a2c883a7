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

    /// <summary>What <c>check --read-data-subset</c> reads: group N of M, a share, or a number of bytes.</summary>
    public readonly record struct DataSubset((int N, int M)? Group, double? Fraction, long? Bytes);

    /// <summary>Parses "2/5" (group 2 of 5, as restic), "10%" or "0.1" (a share chosen at random), or "500M" (packs chosen at random up to that size).</summary>
    public static DataSubset ParseDataSubset(string text)
    {
        string t = text.Trim();
        if (t.Split('/') is [var a, var b])
        {
            if (!int.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || !int.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out int m) || m < 1 || n < 1 || n > m)
            {
                throw new UsageException($"--read-data-subset {text}: N/M is group N of M, with 1 <= N <= M (whole numbers); e.g. 1/5, then 2/5 … 5/5 reads every pack once");
            }
            return new DataSubset((n, m), null, null);
        }
        if (t.Length > 1 && char.IsAsciiLetter(t[^1]) && !t.EndsWith('%'))
        {
            if (!TryParseSize(t, out double size) || size <= 0)
            {
                throw new UsageException($"--read-data-subset {text}: a size is a number with K, M, G or T (powers of 1024), e.g. 500M");
            }
            return new DataSubset(null, null, (long)Math.Ceiling(size));
        }
        return new DataSubset(null, ParseFraction(t), null);
    }

    /// <summary>
    /// A size as restic takes it: bytes, or a number with K, M, G or T (powers of 1024), a trailing B
    /// or iB allowed (500M, 1.5GiB, 4096). False for anything else, and for sizes past 2⁶².
    /// </summary>
    public static bool TryParseSize(string text, out double bytes)
    {
        ArgumentNullException.ThrowIfNull(text);
        string number = text.Trim();
        int shift = 0;
        if (number.Length > 0 && char.IsAsciiLetter(number[^1]))
        {
            number = number.EndsWith("iB", StringComparison.OrdinalIgnoreCase) ? number[..^2] : number.TrimEnd('B', 'b');
            shift = number.Length == 0 ? -1 : char.ToUpperInvariant(number[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ when char.IsAsciiDigit(number[^1]) => 0, _ => -1 };
            if (shift > 0)
            {
                number = number[..^1];
            }
        }
        bytes = 0;
        if (shift < 0 || !double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value) || value * Math.Pow(2, shift) > long.MaxValue / 2)
        {
            return false;
        }
        bytes = value * Math.Pow(2, shift);
        return true;
    }

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
            throw new UsageException($"'{text}' is not a subset; write it as 2/5 (group 2 of 5), 10%, 0.1 or 500M");
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
