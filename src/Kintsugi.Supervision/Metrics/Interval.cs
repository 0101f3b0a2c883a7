namespace Kintsugi.Supervision.Metrics;

/// <summary>A stretch of time [Start, End); empty when End ≤ Start (a clock that stepped back makes no negative time).</summary>
internal readonly record struct Interval(DateTimeOffset Start, DateTimeOffset End)
{
    /// <summary>Sorts and joins overlapping or touching intervals, dropping empty ones.</summary>
    public static List<Interval> Merge(IEnumerable<Interval> intervals)
    {
        var merged = new List<Interval>();
        foreach (var next in intervals.Where(i => i.End > i.Start).OrderBy(i => i.Start))
        {
            if (merged.Count > 0 && next.Start <= merged[^1].End)
            {
                var last = merged[^1];
                merged[^1] = last with { End = next.End > last.End ? next.End : last.End };
            }
            else
            {
                merged.Add(next);
            }
        }
        return merged;
    }

    /// <summary>The common part of two merged (sorted, disjoint) lists.</summary>
    public static List<Interval> Intersect(List<Interval> a, List<Interval> b)
    {
        var common = new List<Interval>();
        int i = 0, j = 0;
        while (i < a.Count && j < b.Count)
        {
            var start = a[i].Start > b[j].Start ? a[i].Start : b[j].Start;
            var end = a[i].End < b[j].End ? a[i].End : b[j].End;
            if (end > start)
            {
                common.Add(new Interval(start, end));
            }
            if (a[i].End < b[j].End)
            {
                i++;
            }
            else
            {
                j++;
            }
        }
        return common;
    }

    /// <summary>Seconds of the intervals that fall within [from, to]; overlapping intervals count once per interval.</summary>
    public static double Seconds(IEnumerable<Interval> intervals, DateTimeOffset from, DateTimeOffset to)
    {
        double total = 0;
        foreach (var interval in intervals)
        {
            var start = interval.Start > from ? interval.Start : from;
            var end = interval.End < to ? interval.End : to;
            if (end > start)
            {
                total += (end - start).TotalSeconds;
            }
        }
        return total;
    }
}
