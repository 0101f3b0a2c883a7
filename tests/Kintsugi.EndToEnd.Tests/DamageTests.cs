using System.Security.Cryptography;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>Damage to repository files is found by check, named, and traced to the files it affects.</summary>
public sealed class DamageTests
{
    [Fact]
    public async Task A_flipped_byte_in_a_pack_is_found_by_check_read_data_which_names_the_pack_and_the_affected_file()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        string big = Path.Combine(src, "weights.bin");
        FileTree.WriteRandom(big, 400_000);
        await ws.InitAsync();
        var backup = await ws.BackupAsync(src);
        string shortId = backup.GetProperty("snapshot").GetString()![..8];
        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed();

        // The largest pack holds the (incompressible) content of weights.bin; its middle is inside that blob.
        var pack = new DirectoryInfo(Path.Combine(ws.Repo, "data")).EnumerateFiles("*", SearchOption.AllDirectories).MaxBy(f => f.Length)!;
        var bytes = File.ReadAllBytes(pack.FullName);
        bytes[bytes.Length / 2] ^= 0x40;
        File.SetUnixFileMode(pack.FullName, File.GetUnixFileMode(pack.FullName) | UnixFileMode.UserWrite);
        File.WriteAllBytes(pack.FullName, bytes);

        var text = (await ws.RepoAsync("check", "--read-data")).ShouldExit(1).ShouldHaveNoStackTrace();
        text.StdOutShouldContain(pack.Name);
        text.StdOutShouldContain(big);

        var json = (await ws.RepoAsync("check", "--read-data", "--json")).ShouldExit(1).Json();
        Assert.False(json.GetProperty("ok").GetBoolean());
        Assert.Contains(json.GetProperty("problems").EnumerateArray(), p => p.GetProperty("severity").GetString() == "error" && p.GetProperty("subject").GetString()!.Contains(pack.Name, StringComparison.Ordinal));
        var affected = json.GetProperty("affected_files").EnumerateArray().Select(f => (f.GetProperty("snapshot").GetString(), f.GetProperty("path").GetString())).ToList();
        Assert.Equal([(shortId, big)], affected);

        // A check without --read-data does not read packs and so cannot see it; restore of the file must not succeed silently.
        var restore = (await ws.RepoAsync("restore", "latest", "--target", ws.PathOf("restored"))).ShouldHaveNoStackTrace();
        Assert.True(restore.ExitCode is 1 or 3, $"restoring a damaged file must not exit 0\n{restore}");
        restore.StdErrShouldContain(big);
    }

    [Fact]
    public async Task A_restore_with_a_damaged_file_counts_only_the_files_written_intact_and_the_one_that_failed()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        foreach (var name in new[] { "a.json", "b.json", "c.json" })
        {
            FileTree.WriteRandom(Path.Combine(src, name), 2_000);
        }
        string big = Path.Combine(src, "weights.bin");
        FileTree.WriteRandom(big, 400_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        // The middle of the largest pack lies in the (incompressible) content of weights.bin.
        var pack = new DirectoryInfo(Path.Combine(ws.Repo, "data")).EnumerateFiles("*", SearchOption.AllDirectories).MaxBy(f => f.Length)!;
        var bytes = File.ReadAllBytes(pack.FullName);
        bytes[bytes.Length / 2] ^= 0x40;
        File.SetUnixFileMode(pack.FullName, File.GetUnixFileMode(pack.FullName) | UnixFileMode.UserWrite);
        File.WriteAllBytes(pack.FullName, bytes);

        var json = (await ws.RepoAsync("restore", "latest", "--target", ws.PathOf("r1"), "--json")).ShouldExit(3).ShouldHaveNoStackTrace().Json();
        var text = (await ws.RepoAsync("restore", "latest", "--target", ws.PathOf("r2"))).ShouldExit(3);

        foreach (var target in new[] { ws.PathOf("r1"), ws.PathOf("r2") })
        {
            var written = Directory.EnumerateFiles(target, "*", SearchOption.AllDirectories).ToList();
            Assert.Equal(3, written.Count);
            Assert.All(written, f => Assert.Equal(File.ReadAllBytes(f[target.Length..]), File.ReadAllBytes(f)));
        }
        Assert.Equal(3, json.GetProperty("files").GetInt64());
        Assert.Equal(6_000, json.GetProperty("bytes").GetInt64());
        Assert.Equal(1, json.GetProperty("failed").GetInt64());
        Assert.Contains(json.GetProperty("issues").EnumerateArray(), i => i.GetProperty("path").GetString() == ws.PathOf("r1") + big);
        Assert.Single(text.StdOutLines, l => l.StartsWith("restored 3 files, ", StringComparison.Ordinal) && l.EndsWith("; 1 file failed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_snapshot_file_overwritten_with_garbage_is_skipped_with_a_warning_and_check_fails()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 5_000);
        await ws.InitAsync();
        string firstId = (await ws.BackupAsync(src)).GetProperty("snapshot").GetString()!;
        FileTree.WriteRandom(Path.Combine(src, "b.bin"), 5_000);
        string secondId = (await ws.BackupAsync(src)).GetProperty("snapshot").GetString()!;

        string damaged = Path.Combine(ws.Repo, "snapshots", firstId);
        Assert.True(File.Exists(damaged), $"snapshot file {damaged} expected");
        long length = new FileInfo(damaged).Length;
        File.SetUnixFileMode(damaged, File.GetUnixFileMode(damaged) | UnixFileMode.UserWrite);
        File.WriteAllBytes(damaged, RandomNumberGenerator.GetBytes((int)length));

        var list = (await ws.RepoAsync("snapshots", "--json")).ShouldSucceed().ShouldHaveNoStackTrace();
        Assert.Equal([secondId], list.Json().EnumerateArray().Select(s => s.GetProperty("id").GetString()));
        list.StdErrShouldContain(firstId[..8]);
        Assert.Contains("warning", list.StdErr, StringComparison.Ordinal);

        var text = (await ws.RepoAsync("snapshots")).ShouldSucceed();
        text.StdOutShouldContain(secondId[..8]);
        Assert.DoesNotContain(firstId[..8], text.StdOut, StringComparison.Ordinal);

        var check = (await ws.RepoAsync("check")).ShouldExit(1).ShouldHaveNoStackTrace();
        check.StdOutShouldContain(firstId[..8]);

        // The intact snapshot still restores.
        (await ws.RepoAsync("restore", secondId, "--target", ws.PathOf("restored"))).ShouldSucceed();
        FileTree.AssertSameTree(src, ws.PathOf("restored") + src);
    }
}
