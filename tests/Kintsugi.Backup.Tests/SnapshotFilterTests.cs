using System.Security.Cryptography;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Tests;

/// <summary>--host, --path and --tag as restic reads them (issue 12, §3).</summary>
public sealed class SnapshotFilterTests
{
    private static Snapshot Snap(string host = "h1", string[]? paths = null, string[]? tags = null) => new()
    {
        Time = DateTimeOffset.UnixEpoch,
        Host = host,
        Paths = paths ?? ["/data"],
        Tags = tags,
        Tree = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)),
        Kind = "full",
    };

    private static SnapshotFilter Filter(string[]? hosts = null, string[]? paths = null, string[]? tags = null) =>
        SnapshotFilter.Create(hosts ?? [], paths ?? [], tags ?? []);

    [Fact]
    public void No_option_passes_every_snapshot() => Assert.True(Filter().Matches(Snap(tags: ["x"])));

    [Fact]
    public void Several_hosts_pass_any_of_them()
    {
        var f = Filter(hosts: ["h1", "h2"]);
        Assert.True(f.Matches(Snap("h1")));
        Assert.True(f.Matches(Snap("h2")));
        Assert.False(f.Matches(Snap("h3")));
    }

    [Fact]
    public void Several_paths_must_all_be_among_the_snapshots_paths_compared_absolute_without_a_trailing_slash()
    {
        var f = Filter(paths: ["/a/", "/b"]);
        Assert.Equal(["/a", "/b"], f.Paths);
        Assert.True(f.Matches(Snap(paths: ["/a", "/b", "/c"])));
        Assert.False(f.Matches(Snap(paths: ["/a"])));
        Assert.False(f.Matches(Snap(paths: ["/a/x", "/b"])), "a path under the given one is not the given one");
        Assert.Equal(Path.Combine(Environment.CurrentDirectory, "rel"), Filter(paths: ["rel/"]).Paths[0]);
    }

    [Fact]
    public void A_tag_list_needs_all_its_tags_and_several_lists_any_one_of_them()
    {
        var f = Filter(tags: ["a,b", "c"]);
        Assert.True(f.Matches(Snap(tags: ["b", "a"])));
        Assert.True(f.Matches(Snap(tags: ["c"])));
        Assert.False(f.Matches(Snap(tags: ["a"])));
        Assert.False(f.Matches(Snap()));
        Assert.False(f.Matches(Snap(tags: ["a,b"])), "a,b is two tags, not one tag with a comma");
    }

    [Fact]
    public void An_empty_tag_list_passes_only_snapshots_without_tags()
    {
        var f = Filter(tags: [""]);
        Assert.True(f.Matches(Snap()));
        Assert.True(f.Matches(Snap(tags: [])));
        Assert.False(f.Matches(Snap(tags: ["a"])));
    }

    [Fact]
    public void Host_path_and_tag_must_all_pass()
    {
        var f = Filter(hosts: ["h1"], paths: ["/data"], tags: ["a"]);
        Assert.True(f.Matches(Snap("h1", ["/data"], ["a"])));
        Assert.False(f.Matches(Snap("h2", ["/data"], ["a"])));
        Assert.False(f.Matches(Snap("h1", ["/other"], ["a"])));
        Assert.False(f.Matches(Snap("h1", ["/data"], ["b"])));
    }

    [Theory]
    [InlineData("a,,b")]
    [InlineData("a,")]
    [InlineData(",")]
    [InlineData(" ")]
    public void An_empty_tag_in_a_list_is_refused(string value)
    {
        var e = Assert.Throws<KintsugiException>(() => Filter(tags: [value]));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains("empty tag", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_filter_in_words_names_every_part()
    {
        Assert.Equal("host h1 or h2, paths /a and /b, tags x,y or (none)", Filter(["h1", "h2"], ["/a", "/b"], ["x,y", ""]).ToString());
    }

    [Fact]
    public void Select_with_ids_takes_those_and_latest_means_the_newest_the_filter_passes()
    {
        var all = Enumerable.Range(0, 4).Select(i => new SnapshotRef(
            BlobId.HashOf([(byte)i]),
            Snap(i % 2 == 0 ? "even" : "odd") with { Time = DateTimeOffset.UnixEpoch.AddHours(i) })).ToList();
        var evens = Filter(hosts: ["even"]);
        Assert.Equal([all[0], all[2]], evens.Select(all, []));
        Assert.Equal([all[2]], evens.Select(all, ["latest"]));
        Assert.Equal([all[1], all[2]], evens.Select(all, ["latest", all[1].Id.ToString()[..12], all[2].Id.ToString()]));
        Assert.Equal(ErrorKind.NotFound, Assert.Throws<KintsugiException>(() => Filter(hosts: ["none"]).Select(all, ["latest"])).Kind);
    }
}
