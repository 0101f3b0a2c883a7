using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>Parity through the real executable: init --parity, backups that protect what they add, and repair.</summary>
public sealed class ParityRepairTests
{
    private static List<FileInfo> Packs(Workspace ws) =>
        [.. new DirectoryInfo(Path.Combine(ws.Repo, "data")).EnumerateFiles("*", SearchOption.AllDirectories).OrderByDescending(f => f.Length)];

    [Fact]
    public async Task Repair_rebuilds_a_lost_pack_a_damaged_key_and_a_damaged_config_without_the_password()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        for (int i = 0; i < 4; i++)
        {
            FileTree.WriteRandom(Path.Combine(src, $"shard-{i}.bin"), 6 << 20);
        }
        File.WriteAllText(Path.Combine(src, "config.json"), "{\"lr\": 0.001}");
        // Three parity columns: the config, the key slot and a pack may all lie in the same stripe row of one group.
        (await ws.RepoAsync(["init", .. Workspace.CheapKdf, "--parity", "4+3"])).ShouldSucceed().StdOutShouldContain("with parity 4+3");
        await ws.BackupAsync(src);
        var status = (await ws.RepoAsync("parity", "--json")).ShouldSucceed().Json();
        Assert.Equal("4+3", status.GetProperty("scheme").GetString());
        Assert.Equal(0, status.GetProperty("unprotected_files").GetInt32());
        Assert.True(status.GetProperty("protected_files").GetInt32() >= 5);

        var lost = Packs(ws)[0];
        File.Delete(lost.FullName);
        string key = Directory.GetFiles(Path.Combine(ws.Repo, "keys")).Single();
        File.WriteAllText(key, "{\"not\": \"a key\"}");
        var config = File.ReadAllBytes(Path.Combine(ws.Repo, "config"));
        config[^5] ^= 0x20;
        File.WriteAllBytes(Path.Combine(ws.Repo, "config"), config);
        // Without its key slot and config the repository does not even open.
        (await ws.RepoAsync("snapshots")).ShouldExit(1).ShouldHaveNoStackTrace();

        var dry = (await ws.RunAsync("--repo", ws.Repo, "repair", "--dry-run")).ShouldSucceed();
        dry.StdOutShouldContain("can be rebuilt from parity");
        Assert.False(File.Exists(lost.FullName));
        var repair = (await ws.RunAsync("--repo", ws.Repo, "repair", "--json")).ShouldSucceed().Json();
        Assert.Equal(3, repair.GetProperty("repaired").GetInt32());
        Assert.Equal(0, repair.GetProperty("not_repaired").GetInt32());
        var names = repair.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("name").GetString()).ToList();
        Assert.Contains(lost.Name, names);
        Assert.Contains(Path.GetFileName(key), names);
        Assert.Contains("config", names);

        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed();
        string target = ws.PathOf("restored");
        (await ws.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);
    }

    [Fact]
    public async Task Damage_beyond_the_parity_budget_exits_1_naming_what_was_not_repaired()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        for (int i = 0; i < 3; i++)
        {
            FileTree.WriteRandom(Path.Combine(src, $"w{i}.bin"), 7 << 20);
        }
        (await ws.RepoAsync(["init", .. Workspace.CheapKdf, "--parity", "2+1"])).ShouldSucceed();
        await ws.BackupAsync(src);
        var packs = Packs(ws);
        Assert.True(packs.Count >= 2, $"expected at least 2 packs, got {packs.Count}");
        // Every pack and every index file: more than one parity column can make up for in some group.
        foreach (var file in packs.Select(p => p.FullName).Concat(Directory.GetFiles(Path.Combine(ws.Repo, "index"))))
        {
            File.Delete(file);
        }

        var result = (await ws.RepoAsync("repair")).ShouldExit(1).ShouldHaveNoStackTrace();
        result.StdErrShouldContain("not repaired");
        result.StdErrShouldContain("kintsugi check --read-data");
        (await ws.RepoAsync("check")).ShouldExit(1);
    }

    [Fact]
    public async Task Parity_can_be_turned_on_later_and_off_and_bad_schemes_are_usage_errors()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 3 << 20);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        var off = (await ws.RepoAsync("parity", "--json")).ShouldSucceed().Json();
        Assert.True(off.GetProperty("unprotected_files").GetInt32() >= 4);

        var line = (await ws.RepoAsync("parity", "set", "8+0")).ShouldFailCleanly(2);
        Assert.Contains("8+2", line, StringComparison.Ordinal);
        (await ws.RepoAsync(["init", .. Workspace.CheapKdf, "--parity", "two"])).ShouldFailCleanly(2);

        (await ws.RepoAsync("parity", "set", "3+1")).ShouldSucceed().StdOutShouldContain("protected");
        Assert.Equal(0, (await ws.RepoAsync("parity", "--json")).ShouldSucceed().Json().GetProperty("unprotected_files").GetInt32());
        File.Delete(Packs(ws)[0].FullName);
        (await ws.RepoAsync("repair")).ShouldSucceed();
        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed();

        (await ws.RepoAsync("parity", "off")).ShouldSucceed();
        Assert.Empty(Directory.GetFiles(Path.Combine(ws.Repo, "parity")));
        (await ws.RepoAsync("parity", "update")).ShouldFailCleanly(1);
        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed();
    }
}
