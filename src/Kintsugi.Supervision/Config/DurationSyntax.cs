using System.Globalization;
using System.Text;

namespace Kintsugi.Supervision.Config;

/// <summary>
/// The one way durations are written, in kintsugi.yaml and on the command line alike: a number
/// (decimals allowed) and a unit, repeated — 500ms, 30s, 1.5h, 1h30m, 7d, 2w, 3mo, 1y — or a bare 0.
/// Months are 30 days, years 365; at most 100 years in all.
/// </summary>
public static class DurationSyntax
{
    public const string Example = "500ms, 30s, 5m, 1.5h, 1h30m, 7d, 2w, 3mo or 1y";

    private static readonly TimeSpan Longest = TimeSpan.FromDays(36_500);

    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        string s = (text ?? "").Trim();
        if (s == "0")
        {
            return true;
        }
        if (s.Length == 0)
        {
            return false;
        }
        // In ticks, as a decimal: exact for every duration Format writes, so the two round-trip.
        decimal ticks = 0;
        int i = 0;
        while (i < s.Length)
        {
            int start = i;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.'))
            {
                i++;
            }
            int unitStart = i;
            while (i < s.Length && char.IsAsciiLetter(s[i]))
            {
                i++;
            }
            if (start == unitStart || unitStart == i
                || !decimal.TryParse(s[start..unitStart], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal n)
                || !UnitTicks.TryGetValue(s[unitStart..i], out long unit)
                || n > Longest.Ticks / unit)
            {
                return false;
            }
            ticks += n * unit;
            if (ticks > Longest.Ticks)
            {
                return false;
            }
        }
        duration = TimeSpan.FromTicks((long)Math.Round(ticks, MidpointRounding.AwayFromZero));
        return true;
    }

    /// <summary>
    /// A duration as kintsugi.yaml writes it — 500ms, 10s, 1h30m, 2d12h, 1.5ms — so that messages
    /// show what the user wrote, not 00:00:10. Whole units from days down to milliseconds, largest
    /// first, with a decimal fraction of a millisecond where there is one; <see cref="TryParse"/>
    /// reads it back to the same value. A negative duration (never written in a config) is shown with
    /// a leading '-'.
    /// </summary>
    public static string Format(TimeSpan duration)
    {
        if (duration == TimeSpan.Zero)
        {
            return "0";
        }
        if (duration < TimeSpan.Zero)
        {
            return "-" + (duration == TimeSpan.MinValue ? Format(TimeSpan.MaxValue) : Format(duration.Negate()));
        }
        var text = new StringBuilder();
        long rest = duration.Ticks;
        foreach (var (name, unit) in Units.Where(u => u.Name is "d" or "h" or "m" or "s").Reverse())
        {
            if (rest >= unit)
            {
                text.Append(CultureInfo.InvariantCulture, $"{rest / unit}{name}");
                rest %= unit;
            }
        }
        if (rest > 0)
        {
            decimal ms = rest / (decimal)TimeSpan.TicksPerMillisecond;
            text.Append(ms.ToString("0.####", CultureInfo.InvariantCulture)).Append("ms");
        }
        return text.ToString();
    }

    private static readonly (string Name, long Ticks)[] Units =
    [
        ("ms", TimeSpan.TicksPerMillisecond),
        ("s", TimeSpan.TicksPerSecond),
        ("m", TimeSpan.TicksPerMinute),
        ("h", TimeSpan.TicksPerHour),
        ("d", TimeSpan.TicksPerDay),
        ("w", 7 * TimeSpan.TicksPerDay),
        ("mo", 30 * TimeSpan.TicksPerDay),
        ("y", 365 * TimeSpan.TicksPerDay),
    ];

    private static readonly Dictionary<string, long> UnitTicks = Units.ToDictionary(u => u.Name, u => u.Ticks, StringComparer.Ordinal);
}
