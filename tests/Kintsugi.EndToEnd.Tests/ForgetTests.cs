using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>forget and prune by a retention policy.</summary>
public sealed class ForgetTests
{
    [Fact]
    public async Task Forget_keep_last_with_prune_keeps_exactly_the_newest_snapshots_which_still_restore_bit_exact()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        string checkpoint = Path.Combine(src, "checkpoint.bin");
        FileTree.WriteRandom(Path.Combine(src, "vocab.bin"), 30_000);
        await ws.InitAsync();

        var ids = new List<string>();
        var versions = new List<byte[]>();
        for (int i = 0; i < 5; i++)
        {
            versions.Add(FileTree.WriteRandom(checkpoint, 60_000 + i));
            ids.Add((await ws.BackupAsync(src)).GetProperty("snapshot").GetString()!);
        }
        Assert.Equal(5, (await ws.SnapshotsAsync()).Count);
        var before = FileTree.Listing(ws.Repo);
        long dataBefore = FileTree.TotalFileBytes(Path.Combine(ws.Repo, "data"));

        var dry = (await ws.RepoAsync("forget", "--keep-last", "2", "--dry-run", "--json")).ShouldSucceed().Json();
        Assert.True(dry.GetProperty("dry_run").GetBoolean());
        var group = Assert.Single(dry.GetProperty("groups").EnumerateArray());
        Assert.Equal(ids[3..].Order(StringComparer.Ordinal), group.GetProperty("keep").EnumerateArray().Select(k => k.GetProperty("id").GetString()).Order(StringComparer.Ordinal));
        Assert.Equal(ids[..3].Order(StringComparer.Ordinal), group.GetProperty("remove").EnumerateArray().Select(k => k.GetProperty("id").GetString()).Order(StringComparer.Ordinal));
        (await ws.RepoAsync("forget", "--keep-last", "2", "--dry-run", "--prune")).ShouldSucceed();
        FileTree.AssertSameListing(before, FileTree.Listing(ws.Repo), "the repository after forget --dry-run");

        (await ws.RepoAsync("forget", "--keep-last", "2", "--prune")).ShouldSucceed();

        var left = await ws.SnapshotsAsync();
        Assert.Equal(ids[3..].Order(StringComparer.Ordinal), left.Select(s => s.GetProperty("id").GetString()).Order(StringComparer.Ordinal));
        long dataAfter = FileTree.TotalFileBytes(Path.Combine(ws.Repo, "data"));
        Assert.True(dataAfter < dataBefore, $"prune should delete the data only the forgotten snapshots used: {dataBefore} bytes before, {dataAfter} after");

        for (int i = 3; i < 5; i++)
        {
            string target = ws.PathOf($"restored-{i}");
            (await ws.RepoAsync("restore", ids[i], "--target", target)).ShouldSucceed();
            Assert.Equal(versions[i], File.ReadAllBytes(target + checkpoint));
            Assert.Equal(File.ReadAllBytes(Path.Combine(src, "vocab.bin")), File.ReadAllBytes(target + Path.Combine(src, "vocab.bin")));
        }

        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed().StdOutShouldContain("no errors found");
    }

    [Fact]
    public async Task Forget_prune_dry_run_previews_exactly_what_the_real_run_then_does()
    {
        // Issue 12, §5: the preview pruned as if nothing were forgotten, and said 0 packs, 0 B.
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "vocab.bin"), 30_000);
        await ws.InitAsync();
        for (int i = 0; i < 4; i++)
        {
            FileTree.WriteRandom(Path.Combine(src, "checkpoint.bin"), 60_000 + i);
            await ws.BackupAsync(src);
        }
        var before = FileTree.Listing(ws.Repo);

        var dry = (await ws.RepoAsync("forget", "--keep-last", "1", "--prune", "--dry-run", "--json")).ShouldSucceed().Json().GetProperty("prune");
        FileTree.AssertSameListing(before, FileTree.Listing(ws.Repo), "the repository after forget --prune --dry-run");
        var text = (await ws.RepoAsync("forget", "--keep-last", "1", "--prune", "--dry-run")).ShouldSucceed();
        var real = (await ws.RepoAsync("forget", "--keep-last", "1", "--prune", "--json")).ShouldSucceed().Json().GetProperty("prune");

        string[] figures = ["packs_deleted", "packs_repacked", "packs_written", "bytes_freed", "blobs_removed", "blobs_kept"];
        Assert.Equal(figures.Select(f => (f, real.GetProperty(f).GetInt64())), figures.Select(f => (f, dry.GetProperty(f).GetInt64())));
        Assert.True(real.GetProperty("packs_deleted").GetInt64() > 0, $"forgetting 3 of 4 snapshots should free whole packs: {real}");
        Assert.True(real.GetProperty("packs_repacked").GetInt64() > 0, $"the first pack holds the shared vocab.bin beside a forgotten checkpoint: {real}");
        text.StdOutShouldContain($"would delete {real.GetProperty("packs_deleted").GetInt64()} packs, would repack {real.GetProperty("packs_repacked").GetInt64()} into {real.GetProperty("packs_written").GetInt64()};");
    }

    [Fact]
    public async Task Forget_by_id_with_prune_dry_run_previews_exactly_what_the_real_run_then_does()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "vocab.bin"), 30_000);
        await ws.InitAsync();
        var ids = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            FileTree.WriteRandom(Path.Combine(src, "checkpoint.bin"), 60_000 + i);
            ids.Add((await ws.BackupAsync(src)).GetProperty("snapshot").GetString()!);
        }
        var before = FileTree.Listing(ws.Repo);

        var dry = (await ws.RepoAsync("forget", ids[0], ids[1][..8], "--prune", "--dry-run", "--json")).ShouldSucceed().Json();
        FileTree.AssertSameListing(before, FileTree.Listing(ws.Repo), "the repository after forget ID --prune --dry-run");
        var real = (await ws.RepoAsync("forget", ids[0], ids[1][..8], "--prune", "--json")).ShouldSucceed().Json();

        Assert.Equal(ids[..2].Order(StringComparer.Ordinal), real.GetProperty("removed").EnumerateArray().Select(r => r.GetString()).Order(StringComparer.Ordinal));
        Assert.Equal(real.GetProperty("removed").GetRawText(), dry.GetProperty("removed").GetRawText());
        string[] figures = ["packs_deleted", "packs_repacked", "packs_written", "bytes_freed", "blobs_removed", "blobs_kept"];
        Assert.Equal(figures.Select(f => (f, real.GetProperty("prune").GetProperty(f).GetInt64())), figures.Select(f => (f, dry.GetProperty("prune").GetProperty(f).GetInt64())));
        Assert.True(real.GetProperty("prune").GetProperty("blobs_removed").GetInt64() > 0, $"the two forgotten checkpoints' blobs should go: {real}");
        Assert.Equal([ids[2]], (await ws.SnapshotsAsync()).Select(s => s.GetProperty("id").GetString()));
    }

    [Fact]
    public async Task Forget_without_a_keep_option_is_a_usage_error_and_removes_nothing()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 1_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);

        (await ws.RepoAsync("forget")).ShouldFailCleanly(2);
        (await ws.RepoAsync("forget", "--prune")).ShouldFailCleanly(2);
        (await ws.RepoAsync("forget", "--keep-last", "-1")).ShouldFailCleanly(2);

        Assert.Single(await ws.SnapshotsAsync());
    }
}
