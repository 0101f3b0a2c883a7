using System.Globalization;

namespace Kintsugi.Supervision.Probes;

/// <summary>Durations as people write them in details: "500ms", "2s", "1.5s", "90s".</summary>
internal static class DurationText
{
    public static string Format(TimeSpan duration)
    {
        if (duration < TimeSpan.Zero)
        {
            return "-" + Format(duration.Negate());
        }
        if (duration < TimeSpan.FromSeconds(1))
        {
            return duration.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) + "ms";
        }
        return duration.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + "s";
    }
}
