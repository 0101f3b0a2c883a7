using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kintsugi.Backup.Storage;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using static Kintsugi.EndToEnd.Tests.Remote.RemoteTestData;

namespace Kintsugi.EndToEnd.Tests.Remote;

public sealed class S3RemoteWorkflowTests(S3ServerFixture server, ITestOutputHelper output) : RemoteWorkflowTests(server, output), IClassFixture<S3ServerFixture>;

public sealed class AzureRemoteWorkflowTests(AzureServerFixture server, ITestOutputHelper output) : RemoteWorkflowTests(server, output), IClassFixture<AzureServerFixture>;

/// <summary>
/// Every command on a repository in object storage (s3rver, Azurite), through the real executable, as
/// on a local folder: nothing in the command line changes but the URL.
/// </summary>
public abstract class RemoteWorkflowTests(RemoteServerFixture server, ITestOutputHelper output)
{
    protected RemoteServerFixture Server { get; } = server;

    [Fact]
    public async Task Init_backup_incremental_snapshots_ls_diff_stats_restore_check_forget_prune_work_on_a_remote_repository()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        string src = ws.PathOf("src");
        WriteSource(src);
        string config = Path.Combine(src, "config.json");
        long total = FileTree.TotalFileBytes(src);

        (await repo.RepoAsync(["init", .. Workspace.CheapKdf])).ShouldSucceed();
        var first = await repo.BackupAsync(src, "--tag", "nightly");
        string firstId = first.GetProperty("snapshot").GetString()!;
        Assert.Equal("full", first.GetProperty("kind").GetString());
        Assert.Equal(total, Summary(first, "bytes_read"));
        var firstRequests = first.GetProperty("requests");
        output.WriteLine($"first backup: {firstRequests}");
        Assert.True(Figure(firstRequests, "put") > 0, $"a backup to {Server.Kind} uploads: {firstRequests}");
        Assert.True(Figure(firstRequests, "bytes_up") > total / 2, $"a first backup of random data uploads about as much as it read: {firstRequests}");

        // The second backup: one changed file and one new; the unchanged ones are not read again.
        byte[] oldConfig = File.ReadAllBytes(config);
        File.WriteAllText(config, "{\"lr\": 0.0005, \"epochs\": 3}\n");
        string added = Path.Combine(src, "sub", "added.txt");
        File.WriteAllText(added, "epoch 2\n");
        var second = await repo.BackupAsync(src);
        string secondId = second.GetProperty("snapshot").GetString()!;
        Assert.Equal("incremental", second.GetProperty("kind").GetString());
        Assert.Equal(firstId, second.GetProperty("parent").GetString());
        Assert.Equal(1, Summary(second, "files_changed"));
        Assert.Equal(1, Summary(second, "files_new"));
        Assert.Equal(3, Summary(second, "files_unchanged"));
        Assert.Equal(new FileInfo(config).Length + new FileInfo(added).Length, Summary(second, "bytes_read"));
        var secondRequests = second.GetProperty("requests");
        output.WriteLine($"second backup: {secondRequests}");
        Assert.True(Figure(secondRequests, "bytes_up") < total / 10, $"an incremental backup of two small files uploads little: {secondRequests}");

        var snapshotsRun = (await repo.RepoAsync("snapshots", "--json")).ShouldSucceed();
        var snapshots = snapshotsRun.Json().EnumerateArray().ToList();
        Assert.Equal([firstId, secondId], snapshots.Select(s => s.GetProperty("id").GetString()));
        Assert.Contains("nightly", snapshots[0].GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.True(Total(RequestsOnStdErr(snapshotsRun)) > 0, $"snapshots --json reports its requests on stderr\n{snapshotsRun}");
        (await repo.RepoAsync("snapshots")).ShouldSucceed().StdOutShouldContain(firstId[..8]).StdOutShouldContain(secondId[..8]);

        var ls = (await repo.RepoAsync("ls", "latest")).ShouldSucceed();
        foreach (var path in new[] { src, config, added, Path.Combine(src, "model.bin"), Path.Combine(src, "latest"), Path.Combine(src, "sub", "notes.txt") })
        {
            Assert.True(ls.StdOutLines.Contains(path), $"ls latest should list {path}\n{ls}");
        }

        var diff = (await repo.RepoAsync("diff", firstId, secondId, "--json")).ShouldSucceed().Json();
        var changes = diff.GetProperty("changes").EnumerateArray().ToDictionary(c => c.GetProperty("path").GetString()!, c => c.GetProperty("change").GetString());
        Assert.Equal("M", changes.GetValueOrDefault(config));
        Assert.Equal("+", changes.GetValueOrDefault(added));
        Assert.False(changes.ContainsKey(Path.Combine(src, "model.bin")), $"diff lists only what changed: {diff}");
        Assert.True(Figure(diff.GetProperty("requests"), "get") + Figure(diff.GetProperty("requests"), "get_range") > 0 || Directory.Exists(repo.KintsugiCache), $"diff reads trees: {diff.GetProperty("requests")}");

        var stats = (await repo.RepoAsync("stats", "latest", "--json")).ShouldSucceed();
        Assert.True(Total(Requests(stats)) > 0, $"stats --json counts its requests\n{stats}");

        var check = (await repo.RepoAsync("check", "--read-data", "--json")).ShouldSucceed();
        var checkRequests = Requests(check);
        output.WriteLine($"check --read-data: {checkRequests}");
        Assert.True(Figure(checkRequests, "bytes_down") >= total / 2, $"check --read-data downloads the packs: {checkRequests}");
        (await repo.RepoAsync("check")).ShouldSucceed().StdOutShouldContain("no errors found");

        string target = ws.PathOf("restored");
        var restore = (await repo.RepoAsync("restore", "latest", "--target", target, "--json")).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);
        var restoreRequests = Requests(restore);
        output.WriteLine($"restore: {restoreRequests}");
        Assert.True(Figure(restoreRequests, "bytes_down") >= total / 2, $"restore downloads the data: {restoreRequests}");

        string partial = ws.PathOf("partial");
        (await repo.RepoAsync("restore", firstId, "--target", partial, "--include", config)).ShouldSucceed();
        Assert.Equal(oldConfig, File.ReadAllBytes(partial + config));

        // forget the first snapshot and prune: the kept one restores bit-exact and the repository checks.
        var forget = (await repo.RepoAsync("forget", "--keep-last", "1", "--prune", "--json")).ShouldSucceed();
        output.WriteLine($"forget --prune: {forget.StdOut}");
        Assert.True(Total(Requests(forget)) > 0, $"forget --prune counts its requests\n{forget}");
        var kept = Assert.Single((await repo.RepoAsync("snapshots", "--json")).ShouldSucceed().Json().EnumerateArray().ToList());
        Assert.Equal(secondId, kept.GetProperty("id").GetString());
        string afterPrune = ws.PathOf("after-prune");
        (await repo.RepoAsync("restore", secondId, "--target", afterPrune)).ShouldSucceed();
        FileTree.AssertSameTree(src, afterPrune + src);
        (await repo.RepoAsync("check", "--read-data")).ShouldSucceed().StdOutShouldContain("no errors found");
    }

    [Fact]
    public async Task Keys_and_unlock_work_on_a_remote_repository()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 20_000);
        await repo.InitAsync();
        await repo.BackupAsync(src);

        string second = ws.WritePassword("second-password", "second secret");
        var added = (await repo.RepoAsync(["key", "add", "--new-password-file", second, "--json", .. Workspace.CheapKdf])).ShouldSucceed().Json();
        string secondId = added.GetProperty("id").GetString()!;
        var withSecond = new[] { "--repo", repo.Url, "--password-file", second };
        var keysRun = (await repo.RunAsync([.. withSecond, "key", "list", "--json"])).ShouldSucceed();
        var keys = keysRun.Json().EnumerateArray().ToList();
        Assert.Equal(2, keys.Count);
        Assert.Equal(secondId, Assert.Single(keys, k => k.GetProperty("current").GetBoolean()).GetProperty("id").GetString());
        Assert.True(Total(RequestsOnStdErr(keysRun)) > 0, $"key list --json reports its requests on stderr\n{keysRun}");
        string firstId = Assert.Single(keys, k => !k.GetProperty("current").GetBoolean()).GetProperty("id").GetString()!;

        (await repo.RunAsync([.. withSecond, "key", "remove", firstId[..12]])).ShouldSucceed();
        Assert.Contains("wrong password", (await repo.RepoAsync("snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
        Assert.Single((await repo.RunAsync([.. withSecond, "snapshots", "--json"])).ShouldSucceed().Json().EnumerateArray());

        // A live lock of another host, written straight into the bucket: backup waits for it, unlock --remove-all clears it.
        var store = repo.OpenStore();
        string lockName = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        string lockJson = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["time"] = DateTimeOffset.UtcNow,
            ["exclusive"] = true,
            ["host"] = "other-host",
            ["pid"] = 4242,
            ["process_start"] = 123456,
            ["command"] = "forget --prune",
        });
        await store.PutAsync(FileKind.Lock, lockName, Encoding.UTF8.GetBytes(lockJson));
        string line = (await repo.RunAsync([.. withSecond, "backup", src])).ShouldFailCleanly(1);
        Assert.Contains("held by other-host, pid 4242", line, StringComparison.Ordinal);
        (await repo.RunAsync([.. withSecond, "unlock"])).ShouldSucceed();
        Assert.True(await store.ExistsAsync(FileKind.Lock, lockName), "a plain unlock keeps a live lock of another host");
        (await repo.RunAsync([.. withSecond, "unlock", "--remove-all"])).ShouldSucceed();
        Assert.Empty(await store.ListAsync(FileKind.Lock));
        (await repo.RunAsync([.. withSecond, "backup", src])).ShouldSucceed();
        Assert.Equal(2, (await repo.RunAsync([.. withSecond, "snapshots", "--json"])).ShouldSucceed().Json().GetArrayLength());
        Assert.Empty(await store.ListAsync(FileKind.Lock));
    }

    [Fact]
    public async Task A_checkpoint_series_is_stored_as_tensor_deltas_and_restored_bit_exact()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        string ckpt = ws.PathOf("ckpt");
        await RemoteTestData.TrainAsync(ckpt, 2);
        string later = ws.PathOf("step-001.pt");
        File.Move(Path.Combine(ckpt, "step-001.pt"), later);
        await repo.InitAsync();
        var first = await repo.BackupAsync(ckpt);
        File.Move(later, Path.Combine(ckpt, "step-001.pt"));
        var second = await repo.BackupAsync(ckpt);

        Assert.Equal(1, Summary(second, "files_unchanged"));
        long firstStored = Summary(first, "bytes_added_stored");
        long secondStored = Summary(second, "bytes_added_stored");
        output.WriteLine($"first checkpoint stored {firstStored} bytes, second {secondStored}; uploads {first.GetProperty("requests")} then {second.GetProperty("requests")}");
        Assert.True(secondStored < firstStored, "the second checkpoint costs less than the first");
        Assert.True(Figure(second.GetProperty("requests"), "bytes_up") < Figure(first.GetProperty("requests"), "bytes_up"), "and uploads less");

        var stats = (await repo.RepoAsync("stats", "latest", "--json")).ShouldSucceed().Json();
        var codecs = stats.GetProperty("codecs").EnumerateArray().Select(c => c.GetProperty("codec").GetString()!).ToList();
        Assert.Contains(codecs, k => k.StartsWith("delta ", StringComparison.Ordinal));

        string target = ws.PathOf("restored");
        (await repo.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        FileTree.AssertSameTree(ckpt, target + ckpt);
        (await repo.RepoAsync("check", "--read-data")).ShouldSucceed();
    }

    [Fact]
    public async Task Parity_protects_a_remote_repository_and_repair_rebuilds_a_pack_overwritten_with_garbage()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        string src = ws.PathOf("src");
        for (int i = 0; i < 3; i++)
        {
            FileTree.WriteRandom(Path.Combine(src, $"shard-{i}.bin"), 1 << 20);
        }
        await repo.InitAsync();
        await repo.BackupAsync(src);
        (await repo.RepoAsync("parity", "set", "3+1")).ShouldSucceed();
        var status = (await repo.RepoAsync("parity", "--json")).ShouldSucceed().Json();
        Assert.Equal("3+1", status.GetProperty("scheme").GetString());
        Assert.Equal(0, status.GetProperty("unprotected_files").GetInt32());
        Assert.True(status.GetProperty("protected_files").GetInt32() >= 4, $"{status}");
        (await repo.RepoAsync("parity", "status")).ShouldSucceed();

        // Damage the biggest pack in place, as bit rot or a bad write would: same name, garbage of the same length.
        var store = repo.OpenStore();
        var pack = (await store.ListAsync(FileKind.Pack)).OrderByDescending(p => p.Size).First();
        byte[] garbage = RandomNumberGenerator.GetBytes(checked((int)pack.Size));
        await store.PutAsync(FileKind.Pack, pack.Name, garbage, overwrite: true);
        Assert.Equal(garbage, await store.GetAsync(FileKind.Pack, pack.Name));

        var check = (await repo.RepoAsync("check", "--read-data")).ShouldExit(1).ShouldHaveNoStackTrace();
        Assert.Contains(pack.Name[..8], check.StdOut + check.StdErr, StringComparison.Ordinal);

        var dry = (await repo.RunAsync("--repo", repo.Url, "repair", "--dry-run")).ShouldSucceed();
        dry.StdOutShouldContain("can be rebuilt from parity");
        var repair = (await repo.RunAsync("--repo", repo.Url, "repair", "--json")).ShouldSucceed().Json();
        Assert.Equal(1, repair.GetProperty("repaired").GetInt32());
        Assert.Equal(0, repair.GetProperty("not_repaired").GetInt32());
        Assert.Contains(pack.Name, repair.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("name").GetString()));

        (await repo.RepoAsync("check", "--read-data")).ShouldSucceed().StdOutShouldContain("no errors found");
        string target = ws.PathOf("restored");
        (await repo.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);

        // A lost pack (deleted from the bucket) is rebuilt the same way.
        await store.DeleteAsync(FileKind.Pack, pack.Name);
        (await repo.RepoAsync("check")).ShouldExit(1).ShouldHaveNoStackTrace();
        (await repo.RunAsync("--repo", repo.Url, "repair")).ShouldSucceed();
        (await repo.RepoAsync("check", "--read-data")).ShouldSucceed();
    }
}
