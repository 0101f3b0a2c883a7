using System.Globalization;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>Which snapshots to keep. Counts of 0 are unused; a snapshot is kept if any rule keeps it.</summary>
public sealed record RetentionPolicy
{
    public int Last { get; init; }
    public int Hourly { get; init; }
    public int Daily { get; init; }
    public int Weekly { get; init; }
    public int Monthly { get; init; }
    public int Yearly { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    /// <summary>Keep every snapshot taken within this span before the group's newest snapshot.</summary>
    public TimeSpan? Within { get; init; }

    public bool IsEmpty => Last == 0 && Hourly == 0 && Daily == 0 && Weekly == 0 && Monthly == 0 && Yearly == 0 && Tags.Count == 0 && Within is null;
}

/// <summary>The decision for one snapshot, with the rules that kept it.</summary>
public sealed record RetentionDecision(SnapshotRef Snapshot, bool Keep, IReadOnlyList<string> Reasons);

/// <summary>Snapshots of one host and set of paths, with decisions newest first.</summary>
public sealed record RetentionGroup(string Host, IReadOnlyList<string> Paths, IReadOnlyList<RetentionDecision> Decisions);

/// <summary>
/// Applies a retention policy the way restic does: snapshots are grouped by host and paths; within a
/// group, newest first, each bucket rule (hourly, daily, …) keeps the newest snapshot of each of its
/// last N distinct buckets; keep-last keeps the N newest; tags and within keep what they match.
/// Buckets use the given time zone, so "daily" means the user's days.
/// </summary>
public static class Retention
{
    public static IReadOnlyList<RetentionGroup> Apply(IEnumerable<SnapshotRef> snapshots, RetentionPolicy policy, TimeZoneInfo zone)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.IsEmpty)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "no retention rule given, so every snapshot would be removed; give at least one --keep-* option");
        }
        var groups = snapshots.GroupBy(s => (s.Snapshot.Host, Paths: string.Join('\n', s.Snapshot.Paths)));
        var result = new List<RetentionGroup>();
        foreach (var group in groups.OrderBy(g => g.Key.Host, StringComparer.Ordinal).ThenBy(g => g.Key.Paths, StringComparer.Ordinal))
        {
            var ordered = group.OrderByDescending(s => s.Snapshot.Time).ThenByDescending(s => s.Id.ToString(), StringComparer.Ordinal).ToList();
            var rules = new List<(string Name, int Count, Func<DateTimeOffset, string> Bucket)>
            {
                ("last", policy.Last, t => t.UtcTicks.ToString(CultureInfo.InvariantCulture)),
                ("hourly", policy.Hourly, t => t.ToString("yyyy-MM-dd HH", CultureInfo.InvariantCulture)),
                ("daily", policy.Daily, t => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)),
                ("weekly", policy.Weekly, t => $"{ISOWeek.GetYear(t.DateTime)}-{ISOWeek.GetWeekOfYear(t.DateTime)}"),
                ("monthly", policy.Monthly, t => t.ToString("yyyy-MM", CultureInfo.InvariantCulture)),
                ("yearly", policy.Yearly, t => t.ToString("yyyy", CultureInfo.InvariantCulture)),
            };
            var remaining = rules.Select(r => r.Count).ToArray();
            var lastBucket = new string?[rules.Count];
            var newest = ordered.Count > 0 ? ordered[0].Snapshot.Time : default;
            var decisions = new List<RetentionDecision>();
            for (int s = 0; s < ordered.Count; s++)
            {
                var snap = ordered[s];
                var local = TimeZoneInfo.ConvertTime(snap.Snapshot.Time, zone);
                var reasons = new List<string>();
                for (int r = 0; r < rules.Count; r++)
                {
                    if (remaining[r] <= 0)
                    {
                        continue;
                    }
                    string bucket = rules[r].Name == "last" ? s.ToString(CultureInfo.InvariantCulture) : rules[r].Bucket(local);
                    if (bucket != lastBucket[r])
                    {
                        lastBucket[r] = bucket;
                        remaining[r]--;
                        reasons.Add(rules[r].Name);
                    }
                }
                foreach (var tag in policy.Tags)
                {
                    if (snap.Snapshot.HasTag(tag))
                    {
                        reasons.Add($"tag {tag}");
                    }
                }
                if (policy.Within is TimeSpan within && snap.Snapshot.Time >= newest - within)
                {
                    reasons.Add("within");
                }
                decisions.Add(new RetentionDecision(snap, reasons.Count > 0, reasons));
            }
            result.Add(new RetentionGroup(group.Key.Host, group.First().Snapshot.Paths, decisions));
        }
        return result;
    }
}
