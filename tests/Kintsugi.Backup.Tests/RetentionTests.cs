using System.Security.Cryptography;
using System.Text;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Tests;

public sealed class RetentionTests
{
    private static readonly TimeZoneInfo Utc = TimeZoneInfo.Utc;

    private static SnapshotRef Snap(DateTimeOffset time, string host = "h1", string[]? paths = null, string[]? tags = null) =>
        new(BlobId.HashOf(Encoding.UTF8.GetBytes($"{time:O}|{host}|{string.Join(',', paths ?? [])}|{Guid.NewGuid()}")), new Snapshot
        {
            Time = time,
            Host = host,
            Paths = paths ?? ["/data"],
            Tags = tags,
            Tree = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)),
            Kind = "incremental",
        });

    private static DateTimeOffset At(int year, int month, int day, int hour = 12, int minute = 0) => new(year, month, day, hour, minute, 0, TimeSpan.Zero);

    private static HashSet<SnapshotRef> Kept(IReadOnlyList<RetentionGroup> groups) =>
        groups.SelectMany(g => g.Decisions).Where(d => d.Keep).Select(d => d.Snapshot).ToHashSet();

    private static void AssertKeeps(IEnumerable<SnapshotRef> expected, IReadOnlyList<RetentionGroup> groups)
    {
        var kept = Kept(groups);
        var want = expected.ToHashSet();
        var extra = kept.Except(want).Select(s => s.Snapshot.Time.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        var missing = want.Except(kept).Select(s => s.Snapshot.Time.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(kept.SetEquals(want), $"kept but should not be: [{string.Join(", ", extra)}]; not kept: [{string.Join(", ", missing)}]");
    }

    [Fact]
    public void Keep_last_keeps_the_newest_n()
    {
        var snaps = Enumerable.Range(0, 10).Select(i => Snap(At(2024, 3, 1).AddHours(i))).ToList();
        var groups = Retention.Apply(snaps.OrderBy(_ => Guid.NewGuid()), new RetentionPolicy { Last = 3 }, Utc);
        AssertKeeps(snaps[^3..], groups);
        Assert.All(groups.SelectMany(g => g.Decisions).Where(d => d.Keep), d => Assert.Equal(["last"], d.Reasons));
    }

    [Fact]
    public void Decisions_cover_every_snapshot_newest_first()
    {
        var snaps = Enumerable.Range(0, 6).Select(i => Snap(At(2024, 3, 1).AddDays(i))).ToList();
        var group = Assert.Single(Retention.Apply(snaps, new RetentionPolicy { Last = 1 }, Utc));
        Assert.Equal(snaps.AsEnumerable().Reverse(), group.Decisions.Select(d => d.Snapshot));
        Assert.All(group.Decisions.Skip(1), d => Assert.False(d.Keep));
    }

    [Fact]
    public void Keep_hourly_keeps_the_newest_snapshot_of_each_of_the_last_n_hours()
    {
        var snaps = new List<SnapshotRef>();
        for (int hour = 0; hour < 6; hour++)
        {
            foreach (var minute in new[] { 5, 30, 55 })
            {
                snaps.Add(Snap(At(2024, 5, 1, hour, minute)));
            }
        }
        var groups = Retention.Apply(snaps, new RetentionPolicy { Hourly = 4 }, Utc);
        AssertKeeps(snaps.Where(s => s.Snapshot.Time.Minute == 55 && s.Snapshot.Time.Hour >= 2), groups);
    }

    [Fact]
    public void Keep_daily_keeps_the_newest_snapshot_of_each_of_the_last_n_days()
    {
        var snaps = new List<SnapshotRef>();
        for (int day = 1; day <= 5; day++)
        {
            foreach (var hour in new[] { 1, 9, 23 })
            {
                snaps.Add(Snap(At(2024, 5, day, hour, 30)));
            }
        }
        var groups = Retention.Apply(snaps, new RetentionPolicy { Daily = 3 }, Utc);
        AssertKeeps(snaps.Where(s => s.Snapshot.Time.Hour == 23 && s.Snapshot.Time.Day >= 3), groups);
    }

    [Fact]
    public void Keep_daily_skips_days_without_snapshots()
    {
        // Days 1, 2, 10, 20: the last three days that have snapshots are kept, gaps do not count.
        var snaps = new[] { 1, 2, 10, 20 }.Select(d => Snap(At(2024, 6, d))).ToList();
        AssertKeeps(snaps[1..], Retention.Apply(snaps, new RetentionPolicy { Daily = 3 }, Utc));
    }

    [Fact]
    public void Keep_weekly_uses_iso_weeks()
    {
        // One snapshot a day from Monday 2024-01-01 to Sunday 2024-01-28: four ISO weeks.
        var snaps = Enumerable.Range(0, 28).Select(i => Snap(At(2024, 1, 1).AddDays(i))).ToList();
        var groups = Retention.Apply(snaps, new RetentionPolicy { Weekly = 2 }, Utc);
        // The Sundays closing the last two weeks.
        AssertKeeps([snaps[27], snaps[20]], groups);
    }

    [Fact]
    public void Keep_weekly_across_a_year_boundary_treats_the_iso_week_as_one()
    {
        // Monday 2024-12-30 and Thursday 2025-01-02 are both in ISO week 2025-W01.
        var monday = Snap(At(2024, 12, 30));
        var thursday = Snap(At(2025, 1, 2));
        var previousSunday = Snap(At(2024, 12, 29));
        AssertKeeps([thursday, previousSunday], Retention.Apply([monday, thursday, previousSunday], new RetentionPolicy { Weekly = 5 }, Utc));
    }

    [Fact]
    public void Keep_monthly_keeps_the_newest_of_each_of_the_last_n_months()
    {
        var snaps = new List<SnapshotRef>();
        for (int month = 1; month <= 6; month++)
        {
            foreach (var day in new[] { 1, 15, 28 })
            {
                snaps.Add(Snap(At(2023, month, day)));
            }
        }
        var groups = Retention.Apply(snaps, new RetentionPolicy { Monthly = 4 }, Utc);
        AssertKeeps(snaps.Where(s => s.Snapshot.Time.Day == 28 && s.Snapshot.Time.Month >= 3), groups);
    }

    [Fact]
    public void Keep_yearly_keeps_the_newest_of_each_of_the_last_n_years()
    {
        var snaps = new List<SnapshotRef>();
        for (int year = 2018; year <= 2024; year++)
        {
            snaps.Add(Snap(At(year, 2, 1)));
            snaps.Add(Snap(At(year, 11, 30)));
        }
        var groups = Retention.Apply(snaps, new RetentionPolicy { Yearly = 3 }, Utc);
        AssertKeeps(snaps.Where(s => s.Snapshot.Time.Month == 11 && s.Snapshot.Time.Year >= 2022), groups);
    }

    [Fact]
    public void A_snapshot_kept_by_several_rules_lists_each_rule()
    {
        var older = Snap(At(2024, 1, 1));
        var newest = Snap(At(2024, 2, 1), tags: ["release"]);
        var groups = Retention.Apply([older, newest], new RetentionPolicy { Last = 1, Daily = 1, Monthly = 2, Tags = ["release"] }, Utc);
        var decisions = groups.Single().Decisions.ToDictionary(d => d.Snapshot);
        Assert.Equal(["last", "daily", "monthly", "tag release"], decisions[newest].Reasons);
        Assert.Equal(["monthly"], decisions[older].Reasons);
    }

    [Fact]
    public void Keep_tag_keeps_tagged_snapshots_only()
    {
        var snaps = Enumerable.Range(0, 8).Select(i => Snap(At(2024, 4, 1).AddDays(i), tags: i % 3 == 0 ? ["release", "x"] : i % 3 == 1 ? ["nightly"] : null)).ToList();
        var groups = Retention.Apply(snaps, new RetentionPolicy { Tags = ["release"] }, Utc);
        AssertKeeps(snaps.Where(s => s.Snapshot.HasTag("release")), groups);
    }

    [Fact]
    public void Keep_within_keeps_everything_within_the_span_before_the_newest()
    {
        var newest = At(2024, 8, 10, 12);
        var snaps = new[] { 0, 1, 24, 47, 48, 49, 100 }.Select(h => Snap(newest.AddHours(-h))).ToList();
        var groups = Retention.Apply(snaps, new RetentionPolicy { Within = TimeSpan.FromHours(48) }, Utc);
        // The span is measured from the group's newest snapshot, not from now; its edge is kept.
        AssertKeeps(snaps.Take(5), groups);
    }

    [Fact]
    public void Groups_by_host_and_paths_are_evaluated_separately()
    {
        var snaps = new List<SnapshotRef>();
        foreach (var host in new[] { "alpha", "beta" })
        {
            foreach (var paths in new[] { new[] { "/data" }, new[] { "/data", "/models" } })
            {
                for (int i = 0; i < 4; i++)
                {
                    snaps.Add(Snap(At(2024, 9, 1).AddHours(i + (host == "beta" ? 100 : 0)), host, paths));
                }
            }
        }
        var groups = Retention.Apply(snaps, new RetentionPolicy { Last = 2 }, Utc);

        Assert.Equal(4, groups.Count);
        Assert.All(groups, g =>
        {
            Assert.Equal(4, g.Decisions.Count);
            Assert.All(g.Decisions, d => Assert.Equal(g.Host, d.Snapshot.Snapshot.Host));
            Assert.All(g.Decisions, d => Assert.Equal(g.Paths, d.Snapshot.Snapshot.Paths));
            Assert.Equal(2, g.Decisions.Count(d => d.Keep));
        });
        var expected = snaps.GroupBy(s => (s.Snapshot.Host, string.Join('\n', s.Snapshot.Paths)))
            .SelectMany(g => g.OrderByDescending(s => s.Snapshot.Time).Take(2));
        AssertKeeps(expected, groups);
    }

    [Fact]
    public void Days_are_the_days_of_the_given_time_zone()
    {
        // 10:00 and 20:00 UTC on 1 January are one UTC day, but two days at UTC+10.
        var morning = Snap(At(2024, 1, 1, 10));
        var evening = Snap(At(2024, 1, 1, 20));
        var plusTen = TimeZoneInfo.CreateCustomTimeZone("UTC+10", TimeSpan.FromHours(10), "UTC+10", "UTC+10");
        AssertKeeps([evening], Retention.Apply([morning, evening], new RetentionPolicy { Daily = 7 }, Utc));
        AssertKeeps([morning, evening], Retention.Apply([morning, evening], new RetentionPolicy { Daily = 7 }, plusTen));
    }

    [Fact]
    public void An_empty_policy_is_refused()
    {
        var e = Assert.Throws<KintsugiException>(() => Retention.Apply([Snap(At(2024, 1, 1))], new RetentionPolicy(), Utc));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
    }

    [Theory]
    [InlineData("host", SnapshotGrouping.Host)]
    [InlineData("paths,host", SnapshotGrouping.Host | SnapshotGrouping.Paths)]
    [InlineData("host,paths,tags", SnapshotGrouping.Host | SnapshotGrouping.Paths | SnapshotGrouping.Tags)]
    [InlineData("", SnapshotGrouping.None)]
    public void Group_by_takes_any_subset_of_host_paths_and_tags(string value, SnapshotGrouping expected)
    {
        Assert.True(SnapshotGroupings.TryParse(value, out var grouping));
        Assert.Equal(expected, grouping);
    }

    [Theory]
    [InlineData("hosts")]
    [InlineData("host,,paths")]
    [InlineData("time")]
    public void Group_by_refuses_anything_else(string value) => Assert.False(SnapshotGroupings.TryParse(value, out _));

    [Fact]
    public void Grouped_by_host_only_the_newest_of_each_host_is_kept_whatever_its_paths()
    {
        var snaps = new[]
        {
            Snap(At(2024, 1, 1), "h1", ["/a"]), Snap(At(2024, 1, 2), "h1", ["/b"]),
            Snap(At(2024, 1, 3), "h2", ["/a"]), Snap(At(2024, 1, 4), "h2", ["/a"]),
        };
        var groups = Retention.Apply(snaps, new RetentionPolicy { Last = 1 }, Utc, SnapshotGrouping.Host);
        AssertKeeps([snaps[1], snaps[3]], groups);
        Assert.Equal(["h1", "h2"], groups.Select(g => g.Host));
        Assert.All(groups, g => Assert.Null(g.Paths));
    }

    [Fact]
    public void Grouped_by_nothing_one_group_holds_every_snapshot()
    {
        var snaps = new[] { Snap(At(2024, 1, 1), "h1", ["/a"]), Snap(At(2024, 1, 2), "h2", ["/b"], ["x"]) };
        var group = Assert.Single(Retention.Apply(snaps, new RetentionPolicy { Last = 1 }, Utc, SnapshotGrouping.None));
        Assert.Equal(2, group.Decisions.Count);
        Assert.Null(group.Host);
        AssertKeeps([snaps[1]], [group]);
    }

    [Fact]
    public void Grouped_by_tags_the_same_tags_in_another_order_are_one_group_and_paths_compare_as_sets()
    {
        var snaps = new[]
        {
            Snap(At(2024, 1, 1), paths: ["/a", "/b"], tags: ["x", "y"]),
            Snap(At(2024, 1, 2), paths: ["/b", "/a"], tags: ["y", "x"]),
            Snap(At(2024, 1, 3), paths: ["/a", "/b"]),
        };
        var groups = Retention.Apply(snaps, new RetentionPolicy { Last = 1 }, Utc, SnapshotGrouping.Paths | SnapshotGrouping.Tags);
        Assert.Equal(2, groups.Count);
        AssertKeeps([snaps[1], snaps[2]], groups);
        Assert.Contains(groups, g => g.Tags is ["x", "y"]);
        Assert.Contains(groups, g => g.Tags is []);
    }
}
