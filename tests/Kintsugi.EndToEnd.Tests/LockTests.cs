using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>Repository locks: stale ones of this host are ignored, live ones of other hosts block until unlock.</summary>
public sealed class LockTests
{
    private static string WriteLock(Workspace ws, DateTimeOffset time, bool exclusive, string host, int pid, long processStart, string command)
    {
        string name = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        string path = Path.Combine(ws.Repo, "locks", name);
        var json = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["time"] = time,
            ["exclusive"] = exclusive,
            ["host"] = host,
            ["pid"] = pid,
            ["process_start"] = processStart,
            ["command"] = command,
        });
        File.WriteAllText(path, json);
        return path;
    }

    private static async Task<int> PidOfAnExitedProcessAsync()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await process.WaitForExitAsync();
        return process.Id;
    }

    [Fact]
    public async Task A_stale_lock_of_a_dead_process_on_this_host_does_not_block_a_backup()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 1_000);
        await ws.InitAsync();
        string stale = WriteLock(ws, DateTimeOffset.UtcNow, exclusive: true, Environment.MachineName, await PidOfAnExitedProcessAsync(), 1, "backup");

        await ws.BackupAsync(src);

        Assert.Single(await ws.SnapshotsAsync());
        Assert.False(File.Exists(stale), "the stale lock of a process gone from this host should have been removed");
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(ws.Repo, "locks")));
    }

    [Fact]
    public async Task A_live_exclusive_lock_of_another_host_blocks_a_backup_until_unlock_remove_all()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 1_000);
        await ws.InitAsync();
        string live = WriteLock(ws, DateTimeOffset.UtcNow, exclusive: true, "other-host", 4242, 123456, "forget --prune");

        string line = (await ws.RepoAsync("backup", src)).ShouldFailCleanly(1);
        // Issue 12, §5: the hint was a plain `kintsugi unlock`, which keeps this lock.
        Assert.Contains("held by other-host, pid 4242, since ", line, StringComparison.Ordinal);
        Assert.Contains("if you know that process is gone, `kintsugi unlock --remove-all` removes the lock", line, StringComparison.Ordinal);
        Assert.Empty(await ws.SnapshotsAsync());
        Assert.Equal([live], Directory.EnumerateFiles(Path.Combine(ws.Repo, "locks")));

        // A plain unlock keeps a live lock of another host.
        (await ws.RepoAsync("unlock")).ShouldSucceed().StdOutShouldContain("`kintsugi unlock --remove-all` removes it if you know that process is gone");
        Assert.True(File.Exists(live), "unlock without --remove-all must keep a live lock of another host");
        (await ws.RepoAsync("backup", src)).ShouldFailCleanly(1);

        (await ws.RepoAsync("unlock", "--remove-all")).ShouldSucceed();
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(ws.Repo, "locks")));

        await ws.BackupAsync(src);
        Assert.Single(await ws.SnapshotsAsync());
    }

    [Fact]
    public async Task Unlock_removes_a_lock_of_another_host_not_refreshed_for_an_hour()
    {
        using var ws = new Workspace();
        await ws.InitAsync();
        string old = WriteLock(ws, DateTimeOffset.UtcNow.AddHours(-1), exclusive: true, "other-host", 4242, 123456, "forget --prune");

        (await ws.RepoAsync("unlock")).ShouldSucceed();

        Assert.False(File.Exists(old), "unlock should remove a lock of another host that was not refreshed for 30 minutes");
    }
}
