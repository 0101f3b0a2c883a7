using System.Globalization;

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
        double seconds = 0;
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
                || !double.TryParse(s[start..unitStart], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n))
            {
                return false;
            }
            double scale = s[unitStart..i] switch
            {
                "ms" => 1e-3,
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                "w" => 7 * 86_400,
                "mo" => 30 * 86_400,
                "y" => 365 * 86_400,
                _ => double.NaN,
            };
            seconds += n * scale;
            if (double.IsNaN(seconds) || seconds > Longest.TotalSeconds)
            {
                return false;
            }
        }
        duration = TimeSpan.FromSeconds(seconds);
        return true;
    }
}
