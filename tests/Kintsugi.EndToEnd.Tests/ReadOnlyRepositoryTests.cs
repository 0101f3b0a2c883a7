using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;
using Kintsugi.EndToEnd.Tests.Supervisor;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// A repository that cannot be written (issue 12, §5): every command that writes to it says so in
/// one line naming the repository and what to do — never the raw .NET message of whichever file it
/// tried first — and exits 1; the commands that only read it keep working. A full disk under the
/// repository is the same kind of line, and leaves a repository that check passes. The repository is
/// made read-only by a read-only bind mount onto itself (a chmod does not stop root, which the tests
/// run as, as CI does), always unmounted afterwards.
/// </summary>
public sealed class ReadOnlyRepositoryTests : IDisposable
{
    private readonly Workspace _ws = new();
    private readonly List<IDisposable> _mounts = [];

    public void Dispose()
    {
        foreach (var mount in Enumerable.Reverse(_mounts))
        {
            mount.Dispose();
        }
        _ws.Dispose();
    }

    private static string ReadOnlyLine(string repo) => $"the repository at {repo} cannot be written (read-only file system)";

    /// <summary>A repository with one snapshot, a second key (to remove) and a stale lock of another host (for unlock to remove); returns the source folder.</summary>
    private async Task<string> RepositoryAsync()
    {
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 50_000);
        FileTree.WriteRandom(Path.Combine(src, "sub", "config.json"), 2_000);
        await _ws.InitAsync();
        await _ws.BackupAsync(src);
        _ws.WritePassword("second", "a second password");
        (await _ws.RepoAsync(["key", "add", "--new-password-file", _ws.PathOf("second"), .. Workspace.CheapKdf])).ShouldSucceed();
        File.WriteAllText(Path.Combine(_ws.Repo, "locks", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32))), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["time"] = DateTimeOffset.UtcNow.AddHours(-2),
            ["exclusive"] = false,
            ["host"] = "another-host",
            ["pid"] = 4242,
            ["command"] = "backup",
        }));
        return src;
    }

    [Theory]
    [InlineData("backup {src}")]
    [InlineData("forget --keep-last 1")]
    [InlineData("forget --keep-last 1 --prune")]
    [InlineData("prune")]
    [InlineData("key add --new-password-file {new} {kdf}")]
    [InlineData("key passwd --new-password-file {new} {kdf}")]
    [InlineData("key remove {second}")]
    [InlineData("unlock")]
    [InlineData("unlock --remove-all")]
    [InlineData("parity set 8+2")]
    [InlineData("parity update")]
    [InlineData("parity off")]
    [InlineData("repair")]
    public async Task A_command_that_writes_fails_in_one_line_that_names_the_repository_and_says_it_is_read_only(string command)
    {
        string src = await RepositoryAsync();
        string newPassword = _ws.WritePassword("new", "a new password");
        var keys = (await _ws.RepoAsync("key", "list", "--json")).ShouldSucceed().Json().EnumerateArray();
        string second = keys.Single(k => !k.GetProperty("current").GetBoolean()).GetProperty("id").GetString()!;
        string[] args = command.Replace("{src}", src, StringComparison.Ordinal).Replace("{new}", newPassword, StringComparison.Ordinal)
            .Replace("{second}", second[..8], StringComparison.Ordinal).Replace("{kdf}", string.Join(' ', Workspace.CheapKdf), StringComparison.Ordinal).Split(' ');
        MountReadOnly(_ws.Repo);

        var result = await _ws.RepoAsync(args);

        string line = result.ShouldFailCleanly(1);
        Assert.Contains(ReadOnlyLine(_ws.Repo), line, StringComparison.Ordinal);
        Assert.Contains("remount it read-write", line, StringComparison.Ordinal);
        Assert.Contains("commands that only read it work as it is: snapshots, ls, find, dump, diff, stats, restore, check, forget and prune --dry-run", line, StringComparison.Ordinal);
        Assert.DoesNotContain("Read-only file system :", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("forget --keep-last 1 --dry-run")]
    [InlineData("forget --keep-last 1 --prune --dry-run")]
    public async Task A_dry_run_of_forget_previews_a_read_only_repository_without_a_lock(string command)
    {
        string src = await RepositoryAsync();
        await _ws.BackupAsync(src);
        string oldest = (await _ws.SnapshotsAsync())[0].GetProperty("short_id").GetString()!;
        MountReadOnly(_ws.Repo);

        var result = (await _ws.RepoAsync(command.Split(' '))).ShouldSucceed();

        result.StdOutShouldContain("would remove 1 snapshots, kept 1");
        Assert.Contains(oldest, result.StdOut, StringComparison.Ordinal);
        string warning = Assert.Single(result.StdErrLines);
        Assert.Contains($"the repository at {_ws.Repo} cannot be written", warning, StringComparison.Ordinal);
        Assert.Contains("previewed without a lock", warning, StringComparison.Ordinal);
        Assert.Equal(2, (await _ws.SnapshotsAsync()).Count);
    }

    [Fact]
    public async Task A_dry_run_of_prune_previews_a_read_only_repository_without_a_lock()
    {
        string src = await RepositoryAsync();
        await _ws.BackupAsync(src);
        (await _ws.RepoAsync("forget", "--keep-last", "1")).ShouldSucceed();
        var before = FileTree.Listing(_ws.Repo);
        MountReadOnly(_ws.Repo);

        var result = (await _ws.RepoAsync("prune", "--dry-run")).ShouldSucceed();

        result.StdOutShouldContain("prune: would delete");
        Assert.Contains("previewed without a lock", Assert.Single(result.StdErrLines), StringComparison.Ordinal);
        FileTree.AssertSameListing(before, FileTree.Listing(_ws.Repo), "the repository after prune --dry-run");
    }

    [Fact]
    public async Task A_backup_by_a_user_who_may_not_write_the_repository_fails_in_one_line_that_names_the_folder()
    {
        // "nobody" (uid 65534) owns the repository but not its locks/ and tmp/ folders (root, which the tests run as, could write them).
        File.SetUnixFileMode(_ws.Root, (UnixFileMode)0x1FF);
        File.SetUnixFileMode(_ws.PasswordFile, (UnixFileMode)0x1A4);
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 5_000);
        var env = new Dictionary<string, string?> { ["HOME"] = _ws.Root, ["DOTNET_CLI_HOME"] = _ws.Root };
        string[] r = ["--repo", _ws.Repo, "--password-file", _ws.PasswordFile];
        (await Cli.RunAsync(_ws.Root, env, [.. r, "init", .. Workspace.CheapKdf], asUser: "65534")).ShouldSucceed();
        foreach (var folder in new[] { "locks", "tmp" })
        {
            TmpfsMount.Run("chown", "root:root", Path.Combine(_ws.Repo, folder));
        }

        string line = (await Cli.RunAsync(_ws.Root, env, [.. r, "backup", src], asUser: "65534")).ShouldFailCleanly(1);

        Assert.Contains($"the repository at {_ws.Repo} cannot be written (permission denied in {Path.Combine(_ws.Repo, "tmp")}); run as a user who may write it", line, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(_ws.Repo, "snapshots")));
    }

    [Fact]
    public async Task Init_into_a_read_only_folder_fails_in_one_line_that_names_it()
    {
        string folder = _ws.PathOf("empty");
        Directory.CreateDirectory(folder);
        MountReadOnly(folder);

        string line = (await _ws.RunAsync(["--repo", folder, "--password-file", _ws.PasswordFile, "init", .. Workspace.CheapKdf])).ShouldFailCleanly(1);
        string below = (await _ws.RunAsync(["--repo", Path.Combine(folder, "repo"), "--password-file", _ws.PasswordFile, "init", .. Workspace.CheapKdf])).ShouldFailCleanly(1);

        Assert.Contains(ReadOnlyLine(folder), line, StringComparison.Ordinal);
        Assert.Contains(ReadOnlyLine(Path.Combine(folder, "repo")), below, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
    }

    [Fact]
    public async Task Snapshots_ls_diff_check_and_restore_still_work_on_a_read_only_repository()
    {
        string src = await RepositoryAsync();
        string id = (await _ws.SnapshotsAsync()).Single().GetProperty("id").GetString()!;
        MountReadOnly(_ws.Repo);

        var snapshots = (await _ws.RepoAsync("snapshots", "--json")).ShouldSucceed();
        var ls = (await _ws.RepoAsync("ls", "latest")).ShouldSucceed();
        (await _ws.RepoAsync("diff", id, id)).ShouldSucceed();
        var check = (await _ws.RepoAsync("check", "--read-data")).ShouldSucceed();
        string target = _ws.PathOf("restored");
        var restore = (await _ws.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();

        Assert.Single(snapshots.Json().EnumerateArray());
        Assert.Contains(Path.Combine(src, "sub", "config.json"), ls.StdOutLines);
        check.StdOutShouldContain("no errors found");
        Assert.Single(check.StdOutLines, l => l.StartsWith("warning:", StringComparison.Ordinal) && l.Contains("checked without a lock", StringComparison.Ordinal));
        Assert.Contains("without a lock", Assert.Single(restore.StdErrLines), StringComparison.Ordinal);
        FileTree.AssertSameTree(src, target + src);
    }

    [Fact]
    public async Task A_backup_onto_a_full_disk_fails_in_one_line_that_names_the_repository_and_check_passes_after()
    {
        string disk = _ws.PathOf("small-disk");
        _mounts.Add(TmpfsMount.Create(disk, "2m"));
        string repo = Path.Combine(disk, "repo");
        string[] r = ["--repo", repo, "--password-file", _ws.PasswordFile];
        string small = _ws.PathOf("small");
        FileTree.WriteRandom(Path.Combine(small, "config.json"), 20_000);
        string big = _ws.PathOf("big");
        FileTree.WriteRandom(Path.Combine(big, "checkpoint.bin"), 4 << 20);
        (await _ws.RunAsync([.. r, "init", .. Workspace.CheapKdf])).ShouldSucceed();
        (await _ws.RunAsync([.. r, "backup", small])).ShouldSucceed();

        string line = (await _ws.RunAsync([.. r, "backup", big])).ShouldFailCleanly(1);

        Assert.Contains($"the repository at {repo} cannot be written (no space left on device)", line, StringComparison.Ordinal);
        (await _ws.RunAsync([.. r, "check", "--read-data"])).ShouldSucceed().StdOutShouldContain("no errors found");
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(repo, "tmp")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(repo, "locks")));
        Assert.Single((await _ws.RunAsync([.. r, "snapshots", "--json"])).ShouldSucceed().Json().EnumerateArray());
    }

    /// <summary>Bind-mounts <paramref name="folder"/> onto itself read-only, until Dispose.</summary>
    private void MountReadOnly(string folder)
    {
        TmpfsMount.Run("mount", "--bind", folder, folder);
        _mounts.Add(new Unmount(folder));
        TmpfsMount.Run("mount", "-o", "remount,ro,bind", folder);
    }

    private sealed class Unmount(string folder) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                TmpfsMount.Run("umount", "-l", folder);
            }
            catch (XunitException)
            {
                // Best effort; a lazy unmount of a busy mount still detaches it.
            }
        }
    }

    [Fact]
    public async Task A_dump_onto_a_full_disk_fails_in_one_line_that_names_the_target_not_the_repository()
    {
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "checkpoint.bin"), 3 << 20);
        await _ws.InitAsync();
        await _ws.BackupAsync(src);
        string disk = _ws.PathOf("small-disk");
        _mounts.Add(TmpfsMount.Create(disk, "1m"));
        string target = Path.Combine(disk, "checkpoint.bin");

        string line = (await _ws.RepoAsync("dump", "latest", src + "/checkpoint.bin", "--target", target)).ShouldFailCleanly(1);

        Assert.Contains($"no space left on the device while writing the dump target {target}", line, StringComparison.Ordinal);
        Assert.DoesNotContain("writing the repository", line, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(disk));
    }
}
