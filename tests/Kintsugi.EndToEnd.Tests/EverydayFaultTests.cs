using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Xunit.Abstractions;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// Faults every user meets: a file or folder the backup may not read, files deleted while a backup
/// runs, a disk that fills up (under the repository or under a restore), a repository on a
/// read-only mount. Most need root to arrange (another user's ids; a tmpfs of its own), which the
/// test machines and CI have; where it is missing the test says so and passes without running.
/// </summary>
public sealed class EverydayFaultTests(ITestOutputHelper output) : IDisposable
{
    private readonly Workspace _ws = new();
    private readonly List<string> _mounts = [];

    public void Dispose()
    {
        // Unmounted even when the test failed, before the workspace under them is removed.
        foreach (var mount in Enumerable.Reverse(_mounts))
        {
            if (!Run("umount", "-l", mount))
            {
                output.WriteLine($"could not unmount {mount}");
            }
        }
        _ws.Dispose();
    }

    /// <summary>A tmpfs of <paramref name="size"/> at a new folder of the workspace, unmounted by Dispose; null (the reason printed) where it cannot be had.</summary>
    private string? MountTmpfs(string name, string size)
    {
        if (!CanArrange(output, "a file system of its own"))
        {
            return null;
        }
        string mount = _ws.PathOf(name);
        Directory.CreateDirectory(mount);
        if (!Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", mount))
        {
            output.WriteLine("not run: this machine does not allow mounting a tmpfs");
            return null;
        }
        _mounts.Add(mount);
        return mount;
    }

    private static bool CanArrange(ITestOutputHelper output, string what)
    {
        if (Environment.UserName == "root")
        {
            return true;
        }
        output.WriteLine($"not run: arranging {what} needs root");
        return false;
    }

    [Fact]
    public async Task An_unreadable_file_and_an_unreadable_folder_are_reported_by_name_with_exit_3_and_the_rest_is_backed_up()
    {
        if (!CanArrange(output, "a file and a folder another user cannot read"))
        {
            return;
        }
        // "nobody" (uid 65534) cannot read a file or list a folder of mode 000; root could.
        string src = _ws.PathOf("src");
        string closed = Path.Combine(src, "closed");
        Directory.CreateDirectory(closed);
        File.WriteAllText(Path.Combine(src, "readable.txt"), "weights");
        File.WriteAllText(Path.Combine(src, "secret.txt"), "not for nobody");
        File.WriteAllText(Path.Combine(closed, "inside.txt"), "not for nobody either");
        File.SetUnixFileMode(_ws.Root, (UnixFileMode)0x1FF);
        File.SetUnixFileMode(_ws.PasswordFile, (UnixFileMode)0x1A4);
        File.SetUnixFileMode(Path.Combine(src, "secret.txt"), UnixFileMode.None);
        File.SetUnixFileMode(closed, UnixFileMode.None);
        var env = new Dictionary<string, string?> { ["HOME"] = _ws.Root, ["DOTNET_CLI_HOME"] = _ws.Root };
        string[] repo = ["--repo", _ws.Repo, "--password-file", _ws.PasswordFile];
        (await Cli.RunAsync(_ws.Root, env, [.. repo, "init", .. Workspace.CheapKdf], asUser: "65534")).ShouldSucceed();

        var backup = await Cli.RunAsync(_ws.Root, env, [.. repo, "backup", src], asUser: "65534");

        backup.ShouldExit(3).ShouldHaveNoStackTrace().StdErrShouldContain(Path.Combine(src, "secret.txt")).StdErrShouldContain(closed);
        var listing = (await Cli.RunAsync(_ws.Root, env, [.. repo, "ls", "latest"], asUser: "65534")).ShouldSucceed();
        Assert.Contains(Path.Combine(src, "readable.txt"), listing.StdOutLines);
        Assert.DoesNotContain(Path.Combine(src, "secret.txt"), listing.StdOutLines);
        Assert.DoesNotContain(Path.Combine(closed, "inside.txt"), listing.StdOutLines);
    }

    [Fact]
    public async Task Files_deleted_while_the_backup_runs_are_reported_by_name_with_exit_3_and_the_rest_is_backed_up()
    {
        // One reader (one core), so files are read one after another in name order: while the
        // first, long one is read, it and the next one are deleted. The next one is gone before it
        // is opened; the first is gone by the time its read is checked against the file.
        string src = _ws.PathOf("src");
        Directory.CreateDirectory(src);
        string reading = Path.Combine(src, "a-checkpoint.bin");
        using (var sparse = File.Create(reading))
        {
            // A read of seconds that takes no disk: half a gigabyte of holes.
            sparse.SetLength(512L << 20);
        }
        string next = Path.Combine(src, "b-next.txt");
        string kept = Path.Combine(src, "c-kept.txt");
        File.WriteAllText(next, "deleted before it is read");
        File.WriteAllText(kept, "backed up");
        await _ws.InitAsync();
        var oneCore = new Dictionary<string, string?> { ["DOTNET_PROCESSOR_COUNT"] = "1" };

        var running = _ws.RunWithAsync(oneCore, "--repo", _ws.Repo, "--password-file", _ws.PasswordFile, "backup", src);
        bool caught = await WaitUntilOpenAsync(reading, running);
        File.Delete(next);
        File.Delete(reading);
        var backup = await running;

        Assert.True(caught, $"the backup finished before {reading} was seen open; it should take seconds\n{backup}");
        backup.ShouldExit(3).ShouldHaveNoStackTrace().StdErrShouldContain(next).StdErrShouldContain(reading);
        Assert.Contains(backup.StdErrLines, l => l.Contains(next, StringComparison.Ordinal) && l.Contains("vanished before it was read", StringComparison.Ordinal));
        Assert.Contains(backup.StdErrLines, l => l.Contains(reading, StringComparison.Ordinal) && l.Contains("vanished while it was read", StringComparison.Ordinal));
        var listing = (await _ws.RepoAsync("ls", "latest")).ShouldSucceed();
        Assert.Contains(kept, listing.StdOutLines);
        Assert.DoesNotContain(next, listing.StdOutLines);
        Assert.DoesNotContain(reading, listing.StdOutLines);
    }

    [Fact]
    public async Task A_repository_on_a_read_only_mount_can_be_listed_checked_and_restored()
    {
        string? mount = MountTmpfs("read-only-disk", "64m");
        if (mount is null)
        {
            return;
        }
        string repo = Path.Combine(mount, "repo");
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 300_000);
        FileTree.WriteRandom(Path.Combine(src, "sub", "config.json"), 2_000);
        string[] r = ["--repo", repo, "--password-file", _ws.PasswordFile];
        (await _ws.RunAsync([.. r, "init", .. Workspace.CheapKdf])).ShouldSucceed();
        (await _ws.RunAsync([.. r, "backup", src])).ShouldSucceed();
        // A lock its process left behind: stale, so ignored, and removed where the repository can be written.
        string staleLock = Path.Combine(repo, "locks", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)));
        File.WriteAllText(staleLock, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["time"] = DateTimeOffset.UtcNow,
            ["exclusive"] = false,
            ["host"] = Environment.MachineName,
            ["pid"] = await PidOfAnExitedProcessAsync(),
            ["process_start"] = 1,
            ["command"] = "backup",
        }));
        if (!Run("mount", "-o", "remount,ro", mount))
        {
            output.WriteLine("not run: this machine does not allow remounting a tmpfs read-only");
            return;
        }

        var snapshots = (await _ws.RunAsync([.. r, "snapshots", "--json"])).ShouldSucceed();
        var ls = (await _ws.RunAsync([.. r, "ls", "latest"])).ShouldSucceed();
        var check = (await _ws.RunAsync([.. r, "check", "--read-data"])).ShouldSucceed().ShouldHaveNoStackTrace();
        string target = _ws.PathOf("restored");
        var restore = (await _ws.RunAsync([.. r, "restore", "latest", "--target", target])).ShouldSucceed().ShouldHaveNoStackTrace();

        Assert.Single(snapshots.Json().EnumerateArray());
        Assert.Contains(Path.Combine(src, "sub", "config.json"), ls.StdOutLines);
        check.StdOutShouldContain("no errors found");
        Assert.Single(check.StdOutLines, l => l.StartsWith("warning:", StringComparison.Ordinal) && l.Contains("read-only", StringComparison.Ordinal));
        var warning = Assert.Single(restore.StdErrLines);
        Assert.Contains("without a lock", warning, StringComparison.Ordinal);
        FileTree.AssertSameTree(src, target + src);
        Assert.True(File.Exists(staleLock), "the read-only repository changed");
    }

    [Fact]
    public async Task A_restore_onto_a_full_disk_fails_with_one_line_and_leaves_no_file_that_looks_complete()
    {
        string? mount = MountTmpfs("small-target-disk", "4m");
        if (mount is null)
        {
            return;
        }
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a-small.txt"), 10_000);
        FileTree.WriteRandom(Path.Combine(src, "b-checkpoint.bin"), 8 << 20);
        FileTree.WriteRandom(Path.Combine(src, "c-small.txt"), 10_000);
        await _ws.InitAsync();
        await _ws.BackupAsync(src);
        string target = Path.Combine(mount, "restored");

        var restore = await _ws.RepoAsync("restore", "latest", "--target", target);

        string line = restore.ShouldFailCleanly(1);
        Assert.Contains("no space left", line, StringComparison.Ordinal);
        Assert.False(File.Exists(target + Path.Combine(src, "b-checkpoint.bin")), "the checkpoint that did not fit was left behind");
        foreach (var restored in Directory.EnumerateFiles(target, "*", SearchOption.AllDirectories))
        {
            string original = restored[target.Length..];
            Assert.True(File.ReadAllBytes(original).AsSpan().SequenceEqual(File.ReadAllBytes(restored)), $"{restored} is left incomplete");
        }
    }

    [Fact]
    public async Task A_repository_on_a_full_disk_can_still_be_restored_from_without_a_lock_and_is_not_written()
    {
        // A checkpoint rollback restores from the repository exactly when its disk may be full: reading needs no space.
        string? mount = MountTmpfs("full-repo-disk", "8m");
        if (mount is null)
        {
            return;
        }
        string repo = Path.Combine(mount, "repo");
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 300_000);
        string[] r = ["--repo", repo, "--password-file", _ws.PasswordFile];
        (await _ws.RunAsync([.. r, "init", .. Workspace.CheapKdf])).ShouldSucceed();
        (await _ws.RunAsync([.. r, "backup", src])).ShouldSucceed();
        Fill(mount);
        var before = Listing(repo);

        string target = _ws.PathOf("restored");
        var restore = (await _ws.RunAsync([.. r, "restore", "latest", "--target", target])).ShouldSucceed().ShouldHaveNoStackTrace();

        var warning = Assert.Single(restore.StdErrLines);
        Assert.Contains("without a lock", warning, StringComparison.Ordinal);
        FileTree.AssertSameTree(src, target + src);
        Assert.Equal(before, Listing(repo));
    }

    /// <summary>Fills the file system of <paramref name="folder"/> to its last byte.</summary>
    private static void Fill(string folder)
    {
        using var handle = File.OpenHandle(Path.Combine(folder, "filler"), FileMode.CreateNew, FileAccess.Write);
        long offset = 0;
        foreach (int size in new[] { 1 << 20, 1 << 12, 1 })
        {
            var chunk = new byte[size];
            try
            {
                while (true)
                {
                    RandomAccess.Write(handle, chunk, offset);
                    offset += size;
                }
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Every file under <paramref name="folder"/> with its size and mtime, to see that nothing was written.</summary>
    private static List<string> Listing(string folder) =>
        [.. Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(f => $"{f} {new FileInfo(f).Length} {File.GetLastWriteTimeUtc(f).Ticks}")];

    [Fact]
    public async Task A_full_disk_fails_the_backup_with_one_line_and_leaves_the_repository_valid()
    {
        string? mount = MountTmpfs("small-disk", "3m");
        if (mount is null)
        {
            return;
        }
        string repo = Path.Combine(mount, "repo");
        string first = _ws.PathOf("first");
        Directory.CreateDirectory(first);
        File.WriteAllBytes(Path.Combine(first, "small.bin"), RandomBytes(100_000));
        string big = _ws.PathOf("big");
        Directory.CreateDirectory(big);
        File.WriteAllBytes(Path.Combine(big, "checkpoint.bin"), RandomBytes(12 << 20));
        string[] r = ["--repo", repo, "--password-file", _ws.PasswordFile];
        (await _ws.RunAsync([.. r, "init", .. Workspace.CheapKdf])).ShouldSucceed();
        (await _ws.RunAsync([.. r, "backup", first])).ShouldSucceed();

        var full = await _ws.RunAsync([.. r, "backup", big]);

        string line = full.ShouldFailCleanly(1);
        Assert.Contains("no space left", line, StringComparison.Ordinal);
        var check = (await _ws.RunAsync([.. r, "check", "--read-data"])).ShouldSucceed();
        check.StdOutShouldContain("no errors found");
        Assert.Single((await _ws.RunAsync([.. r, "snapshots", "--json"])).ShouldSucceed().Json().EnumerateArray());
        string target = _ws.PathOf("restored");
        (await _ws.RunAsync([.. r, "restore", "latest", "--target", target])).ShouldSucceed();
        Assert.Equal(File.ReadAllBytes(Path.Combine(first, "small.bin")), File.ReadAllBytes(target + Path.Combine(first, "small.bin")));
    }

    /// <summary>
    /// Waits until the kintsugi process working on <paramref name="path"/>'s folder has that file
    /// open; false if <paramref name="running"/> ends first.
    /// </summary>
    private static async Task<bool> WaitUntilOpenAsync(string path, Task running)
    {
        string folder = Path.GetDirectoryName(path)!;
        int? pid = null;
        while (!running.IsCompleted)
        {
            pid ??= FindProcess(folder);
            if (pid is int p && IsOpenBy(p, path))
            {
                return true;
            }
            await Task.Delay(2);
        }
        return false;
    }

    private static int? FindProcess(string argument)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out int pid))
            {
                try
                {
                    var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                    if (args.Contains(argument) && Cli.IsKintsugi(args))
                    {
                        return pid;
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Gone meanwhile, or not ours to read.
                }
            }
        }
        return null;
    }

    private static bool IsOpenBy(int pid, string path)
    {
        try
        {
            return Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd").Any(fd => new FileInfo(fd).LinkTarget == path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static async Task<int> PidOfAnExitedProcessAsync()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await process.WaitForExitAsync();
        return process.Id;
    }

    private static byte[] RandomBytes(int n)
    {
        var bytes = new byte[n];
        System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
        return bytes;
    }

    private static bool Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }
}
