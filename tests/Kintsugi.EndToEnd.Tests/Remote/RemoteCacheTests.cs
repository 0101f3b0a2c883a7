using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.Backup.Storage;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using static Kintsugi.EndToEnd.Tests.Remote.RemoteTestData;

namespace Kintsugi.EndToEnd.Tests.Remote;

/// <summary>
/// The local cache of a remote repository's metadata ($XDG_CACHE_HOME/kintsugi): unchanged metadata is
/// not downloaded again, --no-cache downloads it all, and a damaged or stale cache never changes an answer.
/// The figures are the "requests" counts the CLI reports (on stderr for list-shaped --json outputs).
/// </summary>
public sealed class RemoteCacheTests(S3ServerFixture server, ITestOutputHelper output) : IClassFixture<S3ServerFixture>
{
    private static async Task<int> CountAsync(IBlobStore store, params FileKind[] kinds)
    {
        int n = 0;
        foreach (var kind in kinds)
        {
            n += (await store.ListAsync(kind)).Count;
        }
        return n;
    }

    private static List<string?> Ids(CliResult snapshots) => snapshots.Json().EnumerateArray().Select(s => s.GetProperty("id").GetString()).ToList();

    [Fact]
    public async Task A_second_snapshots_downloads_no_snapshot_file_and_no_cache_downloads_them_all()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, server);
        string src = ws.PathOf("src");
        await repo.InitAsync();
        for (int i = 0; i < 5; i++)
        {
            FileTree.WriteRandom(Path.Combine(src, $"part-{i}.bin"), 20_000);
            await repo.BackupAsync(src);
        }
        var store = repo.OpenStore();
        int snapshotFiles = await CountAsync(store, FileKind.Snapshot);
        int keyFiles = await CountAsync(store, FileKind.Key);
        Assert.Equal(5, snapshotFiles);

        // A fresh cache: the first run downloads every snapshot file, the second none.
        repo.Environment["XDG_CACHE_HOME"] = ws.PathOf("fresh-cache");
        var first = (await repo.RepoAsync("snapshots", "--json")).ShouldSucceed();
        var second = (await repo.RepoAsync("snapshots", "--json")).ShouldSucceed();
        var noCache = (await repo.RepoAsync("--no-cache", "snapshots", "--json")).ShouldSucceed();
        long get1 = Figure(RequestsOnStdErr(first), "get"), get2 = Figure(RequestsOnStdErr(second), "get"), getNoCache = Figure(RequestsOnStdErr(noCache), "get");
        output.WriteLine($"snapshots: first run {RequestsOnStdErr(first)}\nsecond run {RequestsOnStdErr(second)}\n--no-cache {RequestsOnStdErr(noCache)}");
        Assert.Equal(Ids(first), Ids(second));
        Assert.Equal(Ids(first), Ids(noCache));
        Assert.True(get1 >= snapshotFiles, $"the first run with an empty cache downloads the {snapshotFiles} snapshot files: {get1} GETs");
        Assert.True(get2 <= 1 + keyFiles, $"the second run downloads only the config and the {keyFiles} key file(s): {get2} GETs (first run: {get1})");
        Assert.True(getNoCache - get2 >= snapshotFiles, $"--no-cache downloads every snapshot file again: {getNoCache} GETs, cached {get2}");
        Assert.True(Directory.EnumerateFiles(Path.Combine(ws.PathOf("fresh-cache"), "kintsugi"), "*", SearchOption.AllDirectories).Any(), "the cache is under $XDG_CACHE_HOME/kintsugi");
    }

    [Fact]
    public async Task An_incremental_backup_downloads_only_the_metadata_that_is_new_since_the_cache_last_saw_the_repository()
    {
        using var ws = new Workspace();
        var a = new RemoteRepository(ws, server, machine: "machine-a");
        var other = new RemoteRepository(ws, server, prefix: a.Prefix, machine: "machine-other");
        string src = ws.PathOf("src");
        string otherSrc = ws.PathOf("other-src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 50_000);
        await a.InitAsync();
        var store = a.OpenStore();
        // Metadata piles up: backups from another machine (its own cache).
        for (int i = 0; i < 6; i++)
        {
            FileTree.WriteRandom(Path.Combine(otherSrc, $"o-{i}.bin"), 20_000);
            await other.BackupAsync(otherSrc);
        }
        await a.BackupAsync(src);

        // Nothing new since a's last run but its own backup's files.
        int before = await CountAsync(store, FileKind.Index, FileKind.Snapshot);
        FileTree.WriteRandom(Path.Combine(src, "b.bin"), 10_000);
        var cached = await a.BackupAsync(src);
        int afterCached = await CountAsync(store, FileKind.Index, FileKind.Snapshot);
        FileTree.WriteRandom(Path.Combine(src, "c.bin"), 10_000);
        var uncached = (await a.RepoAsync("--no-cache", "backup", "--json", src)).ShouldSucceed().Json();
        long getCached = Figure(cached.GetProperty("requests"), "get"), getUncached = Figure(uncached.GetProperty("requests"), "get");
        output.WriteLine($"{before} index and snapshot files; cached backup {cached.GetProperty("requests")}; --no-cache backup {uncached.GetProperty("requests")}");
        // a's previous backup wrote at most 2 of them (its index file and snapshot), which its cache may not hold yet.
        Assert.True(getUncached - getCached >= afterCached - 2, $"with the cache, a backup downloads at most the 2 files new since the cache's last run; without, all {afterCached}: {getCached} GETs cached, {getUncached} uncached");

        // The other machine adds 2 snapshots: a's next backup downloads those (and their index files), not the rest.
        for (int i = 6; i < 8; i++)
        {
            FileTree.WriteRandom(Path.Combine(otherSrc, $"o-{i}.bin"), 20_000);
            await other.BackupAsync(otherSrc);
        }
        FileTree.WriteRandom(Path.Combine(src, "d.bin"), 10_000);
        var afterOthers = await a.BackupAsync(src);
        long getAfterOthers = Figure(afterOthers.GetProperty("requests"), "get");
        int total = await CountAsync(store, FileKind.Index, FileKind.Snapshot);
        output.WriteLine($"after 2 more backups elsewhere: {afterOthers.GetProperty("requests")}; {total} index and snapshot files");
        Assert.True(getAfterOthers <= getCached + 4 + 2, $"the 2 new snapshots and their index files (and a's own last 2) are new, the others cached: {getAfterOthers} GETs, {getCached} before");
        Assert.True(getAfterOthers < getUncached, $"most metadata still came from the cache: {getAfterOthers} GETs vs {getUncached} without the cache (when there were fewer files)");

        // And a's view is right: every snapshot, from both machines.
        Assert.Equal(12, (await a.RepoAsync("snapshots", "--json")).ShouldSucceed().Json().GetArrayLength());
    }

    [Fact]
    public async Task A_damaged_or_stale_cache_never_gives_a_wrong_answer()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, server);
        string src = ws.PathOf("src");
        WriteSource(src, modelBytes: 600_000);
        await repo.InitAsync();
        string firstId = (await repo.BackupAsync(src)).GetProperty("snapshot").GetString()!;
        File.WriteAllText(Path.Combine(src, "config.json"), "{\"lr\": 0.0001}\n");
        FileTree.WriteRandom(Path.Combine(src, "sub", "added.bin"), 30_000);
        await repo.BackupAsync(src);
        // Fill the cache: snapshot and index files, and trees (ls, restore).
        var expected = (await repo.RepoAsync("snapshots", "--json")).ShouldSucceed().StdOut;
        var expectedLs = (await repo.RepoAsync("ls", "latest")).ShouldSucceed().StdOut;
        (await repo.RepoAsync("restore", "latest", "--target", ws.PathOf("warm"))).ShouldSucceed();
        var cachedFiles = Directory.Exists(repo.KintsugiCache) ? Directory.EnumerateFiles(repo.KintsugiCache, "*", SearchOption.AllDirectories).ToList() : [];
        output.WriteLine($"{cachedFiles.Count} cached files:\n{string.Join("\n", cachedFiles.Select(f => Path.GetRelativePath(repo.KintsugiCache, f)))}");
        Assert.True(cachedFiles.Count >= 4, $"the cache holds the snapshot and index files: {cachedFiles.Count} files");

        // Every cached file garbled; every third one cut short or emptied.
        int seed = RandomNumberGenerator.GetInt32(int.MaxValue);
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        for (int i = 0; i < cachedFiles.Count; i++)
        {
            long length = new FileInfo(cachedFiles[i]).Length;
            var garbage = new byte[i % 3 == 2 ? rng.Next(0, (int)Math.Max(1, length / 2)) : length];
            rng.NextBytes(garbage);
            File.WriteAllBytes(cachedFiles[i], garbage);
        }

        Assert.Equal(expected, (await repo.RepoAsync("snapshots", "--json")).ShouldSucceed().StdOut);
        Assert.Equal(expectedLs, (await repo.RepoAsync("ls", "latest")).ShouldSucceed().StdOut);
        string target = ws.PathOf("restored");
        (await repo.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);
        (await repo.RepoAsync("check")).ShouldSucceed();
        var diff = (await repo.RepoAsync("diff", firstId, "latest", "--json")).ShouldSucceed().Json();
        Assert.Contains(diff.GetProperty("changes").EnumerateArray(), c => c.GetProperty("path").GetString() == Path.Combine(src, "sub", "added.bin") && c.GetProperty("change").GetString() == "+");
        FileTree.WriteRandom(Path.Combine(src, "after.bin"), 30_000);
        await repo.BackupAsync(src);
        string again = ws.PathOf("restored-again");
        (await repo.RepoAsync("restore", "latest", "--target", again)).ShouldSucceed();
        FileTree.AssertSameTree(src, again + src);

        // A stale cache: another machine forgets the first snapshot; this one must not list it.
        var other = new RemoteRepository(ws, server, prefix: repo.Prefix, machine: "other");
        (await other.RepoAsync("forget", firstId, "--prune")).ShouldSucceed();
        var ids = Ids((await repo.RepoAsync("snapshots", "--json")).ShouldSucceed());
        Assert.Equal(2, ids.Count);
        Assert.DoesNotContain(firstId, ids);
        Assert.Contains(firstId[..8], (await repo.RepoAsync("restore", firstId, "--target", ws.PathOf("gone"))).ShouldExit(1).ShouldHaveNoStackTrace().StdErr, StringComparison.Ordinal);
        (await repo.RepoAsync("check", "--read-data")).ShouldSucceed();
        string latest = ws.PathOf("restored-latest");
        (await repo.RepoAsync("restore", "latest", "--target", latest)).ShouldSucceed();
        FileTree.AssertSameTree(src, latest + src);
    }
}
