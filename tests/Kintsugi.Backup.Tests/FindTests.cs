using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Xunit;

namespace Kintsugi.Backup.Tests;

/// <summary>find's patterns, and its walk over many snapshots reading each distinct tree once.</summary>
public sealed class FindTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Theory]
    [InlineData("*.pt", "/data/ckpt/step-1.pt", true)]
    [InlineData("*.pt", "/data/ckpt.pt/readme", false)]
    [InlineData("step-?.pt", "/data/ckpt/step-12.pt", false)]
    [InlineData("step-[0-9].pt", "/data/ckpt/step-7.pt", true)]
    [InlineData("step-[!0-9].pt", "/data/ckpt/step-7.pt", false)]
    [InlineData("ckpt", "/data/ckpt", true)]
    [InlineData("ckpt", "/data/ckpt/step-1.pt", false)]
    [InlineData("ckpt/*.pt", "/data/ckpt/step-1.pt", true)]
    [InlineData("ckpt/*.pt", "/data/xckpt/step-1.pt", false)]
    [InlineData("/ckpt/*.pt", "/data/ckpt/step-1.pt", false)]
    [InlineData("/data/ckpt/*.pt", "/data/ckpt/step-1.pt", true)]
    [InlineData("/data/**/*.pt", "/data/a/b/ckpt/step-1.pt", true)]
    [InlineData("/data/**/ckpt/*.pt", "/data/ckpt/step-1.pt", true)]
    [InlineData("**/ckpt/*.pt", "/x/ckpt/step-1.pt", true)]
    [InlineData("/data/**", "/data/a/b", true)]
    [InlineData("/data/**", "/database", false)]
    [InlineData("a.b", "/x/aXb", false)]
    [InlineData("!keep", "/a/!keep", true)]
    [InlineData("ckpt/", "/data/ckpt", true)]
    [InlineData("data/ckpt", "/data/ckpt/step-1.pt", false)]
    public void A_pattern_matches_names_or_path_ends_as_restic_find(string pattern, string path, bool matches) =>
        Assert.Equal(matches, new FindPattern(pattern).Matches(path));

    [Fact]
    public void Ignore_case_folds_names_and_an_unclosed_bracket_is_refused()
    {
        Assert.False(new FindPattern("*.PT").Matches("/a/b.pt"));
        Assert.True(new FindPattern("*.PT", ignoreCase: true).Matches("/a/b.pt"));
        Assert.Equal(ErrorKind.InvalidInput, Assert.Throws<KintsugiException>(() => new FindPattern("[abc")).Kind);
    }

    [Fact]
    public async Task Find_over_many_snapshots_reads_each_distinct_tree_once()
    {
        var repo = await _box.InitAsync();
        Directory.CreateDirectory(Path.Combine(_box.Source, "shared", "deep"));
        File.WriteAllText(Path.Combine(_box.Source, "shared", "deep", "w.pt"), "w");
        var snapshots = new List<SnapshotRef>();
        for (int i = 0; i < 4; i++)
        {
            File.WriteAllText(Path.Combine(_box.Source, $"new-{i}.pt"), i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            snapshots.Add((await Sandbox.BackupAsync(repo, _box.Source)).Snapshot);
        }
        var index = await repo.LoadIndexAsync();
        var distinct = new HashSet<BlobId>();
        int visited = 0;
        foreach (var s in snapshots)
        {
            distinct.Add(TreeWalker.RootOf(s));
            visited++;
            await foreach (var w in TreeWalker.WalkAsync(repo, index, TreeWalker.RootOf(s)))
            {
                if (w.Node.Subtree is { } sub)
                {
                    distinct.Add(BlobId.Parse(sub));
                    visited++;
                }
            }
        }

        var engine = new FindEngine(repo);
        var found = new List<FoundInSnapshot>();
        await foreach (var f in engine.FindAsync(snapshots, [new FindPattern("*.pt")]))
        {
            found.Add(f);
        }

        Assert.Equal(distinct.Count, engine.TreesRead);
        Assert.True(distinct.Count < visited, "the snapshots share their unchanged folders");
        Assert.Equal([2, 3, 4, 5], found.Select(f => f.Matches.Count));
        Assert.All(found, f => Assert.Contains(f.Matches, m => m.Path == _box.Source + "/shared/deep/w.pt"));
    }
}
