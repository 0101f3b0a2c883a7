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

/// <summary>
/// Snapshots that share what they are grouped by, with decisions newest first. Host, paths and tags
/// are null when the grouping leaves them out (the group then mixes several).
/// </summary>
public sealed record RetentionGroup(string? Host, IReadOnlyList<string>? Paths, IReadOnlyList<string>? Tags, IReadOnlyList<RetentionDecision> Decisions);

/// <summary>What retention groups snapshots by, as restic's --group-by; none makes one group of all.</summary>
[Flags]
public enum SnapshotGrouping
{
    None = 0,
    Host = 1,
    Paths = 2,
    Tags = 4,
}

public static class SnapshotGroupings
{
    /// <summary>restic's default, and Kintsugi's: a policy applies per host and set of paths.</summary>
    public const SnapshotGrouping Default = SnapshotGrouping.Host | SnapshotGrouping.Paths;

    /// <summary>"host,paths,tags" (any subset, in any order), or "" for one group of all snapshots.</summary>
    public static bool TryParse(string value, out SnapshotGrouping grouping)
    {
        ArgumentNullException.ThrowIfNull(value);
        grouping = SnapshotGrouping.None;
        if (value.Trim().Length == 0)
        {
            return true;
        }
        foreach (string part in value.Split(','))
        {
            switch (part.Trim())
            {
                case "host":
                    grouping |= SnapshotGrouping.Host;
                    break;
                case "paths":
                    grouping |= SnapshotGrouping.Paths;
                    break;
                case "tags":
                    grouping |= SnapshotGrouping.Tags;
                    break;
                default:
                    return false;
            }
        }
        return true;
    }
}

/// <summary>
/// Applies a retention policy the way restic does: snapshots are grouped (by default by host and
/// paths; paths and tags compared as sets); within a
/// group, newest first, each bucket rule (hourly, daily, …) keeps the newest snapshot of each of its
/// last N distinct buckets; keep-last keeps the N newest; tags and within keep what they match.
/// Buckets use the given time zone, so "daily" means the user's days.
/// </summary>
public static class Retention
{
    public static IReadOnlyList<RetentionGroup> Apply(IEnumerable<SnapshotRef> snapshots, RetentionPolicy policy, TimeZoneInfo zone) =>
        Apply(snapshots, policy, zone, SnapshotGroupings.Default);

    public static IReadOnlyList<RetentionGroup> Apply(IEnumerable<SnapshotRef> snapshots, RetentionPolicy policy, TimeZoneInfo zone, SnapshotGrouping groupBy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.IsEmpty)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "no retention rule given, so every snapshot would be removed; give at least one --keep-* option");
        }
        var groups = snapshots.GroupBy(s => KeyOf(s.Snapshot, groupBy));
        var result = new List<RetentionGroup>();
        foreach (var group in groups.OrderBy(g => g.Key.Host, StringComparer.Ordinal).ThenBy(g => g.Key.Paths, StringComparer.Ordinal).ThenBy(g => g.Key.Tags, StringComparer.Ordinal))
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
            var first = group.First().Snapshot;
            result.Add(new RetentionGroup(
                groupBy.HasFlag(SnapshotGrouping.Host) ? first.Host : null,
                groupBy.HasFlag(SnapshotGrouping.Paths) ? first.Paths.Order(StringComparer.Ordinal).ToList() : null,
                groupBy.HasFlag(SnapshotGrouping.Tags) ? (first.Tags ?? []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList() : null,
                decisions));
        }
        return result;
    }

    /// <summary>The group a snapshot falls in: "" for what is not grouped by; paths and tags as sorted sets, joined by NUL, which no path or command-line tag holds.</summary>
    private static (string Host, string Paths, string Tags) KeyOf(Snapshot s, SnapshotGrouping groupBy) => (
        groupBy.HasFlag(SnapshotGrouping.Host) ? s.Host : "",
        groupBy.HasFlag(SnapshotGrouping.Paths) ? string.Join('\0', s.Paths.Order(StringComparer.Ordinal)) : "",
        groupBy.HasFlag(SnapshotGrouping.Tags) ? string.Join('\0', (s.Tags ?? []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)) : "");
}
