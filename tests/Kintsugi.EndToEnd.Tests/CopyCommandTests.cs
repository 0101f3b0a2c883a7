using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>`kintsugi copy` and `kintsugi init --copy-settings-from`: off-site copies of a repository's snapshots.</summary>
public sealed class CopyCommandTests
{
    /// <summary>A source repository (the workspace's) with two snapshots, and an empty destination made with its settings.</summary>
    private static async Task<(string Source, string Destination, string DestinationPassword)> TwoRepositoriesAsync(Workspace ws)
    {
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "model.bin"), 600_000);
        FileTree.WriteRandom(Path.Combine(src, "sub", "notes.txt"), 2_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        FileTree.WriteRandom(Path.Combine(src, "sub", "added.bin"), 300_000);
        await ws.BackupAsync(src);
        string destination = ws.PathOf("offsite");
        string password = ws.WritePassword("offsite-password", "another secret");
        (await ws.RunAsync(["--repo", destination, "--password-file", password, "init", "--copy-settings-from", ws.Repo, "--from-password-file", ws.PasswordFile, .. Workspace.CheapKdf]))
            .ShouldSucceed().StdOutShouldContain("chunking and blob ids of");
        return (src, destination, password);
    }

    [Fact]
    public async Task Copy_all_moves_every_snapshot_restorable_bit_exact_and_a_second_run_has_nothing_to_copy()
    {
        using var ws = new Workspace();
        var (src, destination, password) = await TwoRepositoriesAsync(ws);
        var sourceIds = (await ws.SnapshotsAsync()).Select(s => s.GetProperty("id").GetString()).ToList();

        var copy = (await ws.RunAsync("--repo", destination, "--password-file", password, "copy", "--from-repo", ws.Repo, "--from-password-file", ws.PasswordFile, "--all")).ShouldSucceed();
        Assert.Equal(4, copy.StdOutLines.Count);
        Assert.All(sourceIds, id => copy.StdOutShouldContain($"snapshot {id![..8]} of "));
        copy.StdOutShouldContain("copied 2 snapshots");
        Assert.Equal("ids shared: blobs moved as stored", copy.StdOutLines[^1]);

        var copies = (await ws.RunAsync("--repo", destination, "--password-file", password, "snapshots", "--json")).ShouldSucceed().Json().EnumerateArray().ToList();
        Assert.Equal(sourceIds, copies.Select(s => s.GetProperty("original").GetString()).ToList());
        string target = ws.PathOf("restored");
        (await ws.RunAsync("--repo", destination, "--password-file", password, "restore", "latest", "--target", target)).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);
        (await ws.RunAsync("--repo", destination, "--password-file", password, "check", "--read-data")).ShouldSucceed();

        // The source from the environment this time, with its password in a variable.
        var env = new Dictionary<string, string?> { ["KINTSUGI_FROM_REPOSITORY"] = ws.Repo, ["KINTSUGI_FROM_PASSWORD"] = "correct horse battery staple" };
        var again = (await ws.RunWithAsync(env, "--repo", destination, "--password-file", password, "copy", "--all")).ShouldSucceed();
        again.StdOutShouldContain("nothing to copy: all 2 snapshots are already in");
        Assert.Equal(2, (await ws.RunAsync("--repo", destination, "--password-file", password, "snapshots", "--json")).ShouldSucceed().Json().GetArrayLength());
    }

    [Fact]
    public async Task Copy_json_names_each_snapshot_and_its_copy_and_counts_blobs_and_bytes()
    {
        using var ws = new Workspace();
        var (_, destination, password) = await TwoRepositoriesAsync(ws);
        string first = (await ws.SnapshotsAsync())[0].GetProperty("id").GetString()!;

        var json = (await ws.RunAsync("--repo", destination, "--password-file", password, "copy", "--from-repo", ws.Repo, "--from-password-file", ws.PasswordFile, first[..10], "--json")).ShouldSucceed().Json();
        Assert.Equal(1, json.GetProperty("snapshots_copied").GetInt32());
        Assert.Equal(0, json.GetProperty("snapshots_skipped").GetInt32());
        Assert.True(json.GetProperty("blobs_copied").GetInt64() > 0);
        Assert.True(json.GetProperty("bytes_copied").GetInt64() > 600_000);
        Assert.True(json.GetProperty("ids_shared").GetBoolean());
        Assert.Equal("moved-as-stored", json.GetProperty("mode").GetString());
        var snapshot = Assert.Single(json.GetProperty("snapshots").EnumerateArray().ToList());
        Assert.Equal(first, snapshot.GetProperty("id").GetString());
        Assert.False(snapshot.GetProperty("skipped").GetBoolean());
        string copyId = snapshot.GetProperty("copy").GetString()!;
        var listed = Assert.Single((await ws.RunAsync("--repo", destination, "--password-file", password, "snapshots", "--json")).ShouldSucceed().Json().EnumerateArray().ToList());
        Assert.Equal(copyId, listed.GetProperty("id").GetString());

        // The rest: only the second snapshot and what it adds move.
        var rest = (await ws.RunAsync("--repo", destination, "--password-file", password, "copy", "--from-repo", ws.Repo, "--from-password-file", ws.PasswordFile, "--all", "--json")).ShouldSucceed().Json();
        Assert.Equal((1, 1), (rest.GetProperty("snapshots_copied").GetInt32(), rest.GetProperty("snapshots_skipped").GetInt32()));
        Assert.True(rest.GetProperty("bytes_copied").GetInt64() is > 300_000 and < 600_000, $"only the new file's blobs move: {rest.GetProperty("bytes_copied")}");
    }

    [Fact]
    public async Task Copy_usage_errors_and_a_wrong_source_password_are_one_clear_line()
    {
        using var ws = new Workspace();
        var (_, destination, password) = await TwoRepositoriesAsync(ws);
        string[] dst = ["--repo", destination, "--password-file", password, "copy"];

        Assert.Contains("--all", (await ws.RunAsync([.. dst, "--from-repo", ws.Repo, "--from-password-file", ws.PasswordFile])).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Contains("no password for the source repository", (await ws.RunAsync([.. dst, "--from-repo", ws.Repo, "--all"])).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Contains("--from-repo", (await ws.RunAsync([.. dst, "--from-password-file", ws.PasswordFile, "--all"])).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Contains("both name", (await ws.RunAsync("--repo", ws.Repo, "--password-file", ws.PasswordFile, "copy", "--from-repo", ws.Repo, "--from-password-file", ws.PasswordFile, "--all")).ShouldFailCleanly(2), StringComparison.Ordinal);

        string wrong = ws.WritePassword("wrong", "not the password");
        string line = (await ws.RunAsync([.. dst, "--from-repo", ws.Repo, "--from-password-file", wrong, "--all"])).ShouldFailCleanly(1);
        Assert.Contains("wrong password", line, StringComparison.Ordinal);
        Assert.Contains("source repository", line, StringComparison.Ordinal);
        Assert.Contains("--from-password-file", line, StringComparison.Ordinal);
        Assert.Empty((await ws.RunAsync("--repo", destination, "--password-file", password, "snapshots", "--json")).ShouldSucceed().Json().EnumerateArray());
    }

    [Fact]
    public async Task Copy_into_a_repository_with_other_blob_ids_re_identifies_the_blobs_says_so_and_restores_bit_exact()
    {
        using var ws = new Workspace();
        var (src, _, password) = await TwoRepositoriesAsync(ws);
        string unrelated = ws.PathOf("unrelated");
        (await ws.RunAsync(["--repo", unrelated, "--password-file", password, "init", .. Workspace.CheapKdf])).ShouldSucceed();
        string[] dst = ["--repo", unrelated, "--password-file", password];

        var copy = (await ws.RunAsync([.. dst, "copy", "--from-repo", ws.Repo, "--from-password-file", ws.PasswordFile, "--all"])).ShouldSucceed();
        copy.StdOutShouldContain("copied 2 snapshots");
        Assert.StartsWith("ids differ: blobs re-identified", copy.StdOutLines[^1], StringComparison.Ordinal);
        Assert.Contains($"kintsugi init --copy-settings-from {ws.Repo}", copy.StdOutLines[^1], StringComparison.Ordinal);

        string target = ws.PathOf("restored");
        (await ws.RunAsync([.. dst, "restore", "latest", "--target", target])).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);
        (await ws.RunAsync([.. dst, "check", "--read-data"])).ShouldSucceed();

        var again = (await ws.RunAsync([.. dst, "copy", "--from-repo", ws.Repo, "--from-password-file", ws.PasswordFile, "--all", "--json"])).ShouldSucceed().Json();
        Assert.Equal((0, 2), (again.GetProperty("snapshots_copied").GetInt32(), again.GetProperty("snapshots_skipped").GetInt32()));
        Assert.Equal(0, again.GetProperty("blobs_copied").GetInt64());
        Assert.False(again.GetProperty("ids_shared").GetBoolean());
        Assert.Equal("re-identified", again.GetProperty("mode").GetString());
        Assert.Equal(2, (await ws.RunAsync([.. dst, "snapshots", "--json"])).ShouldSucceed().Json().GetArrayLength());
    }
}
