using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// `kintsugi restore` into a folder that already holds something where the snapshot puts an entry
/// (issue 12, item 1): what the user has is never deleted; `--overwrite` says what may be replaced.
/// </summary>
public sealed class RestoreOverwriteTests
{
    /// <summary>A snapshot with a symlink at data/link and a file at data/weights.bin; returns the source folder.</summary>
    private static async Task<string> SnapshotAsync(Workspace ws)
    {
        string src = ws.PathOf("src");
        Directory.CreateDirectory(Path.Combine(src, "data"));
        File.CreateSymbolicLink(Path.Combine(src, "data", "link"), "weights.bin");
        File.WriteAllText(Path.Combine(src, "data", "weights.bin"), "the snapshot's weights\n");
        await ws.InitAsync();
        await ws.BackupAsync(src);
        return src;
    }

    /// <summary>The user's folder, with a file in it, where the snapshot has its symlink.</summary>
    private static string UsersFolder(Workspace ws, string src, string target)
    {
        string folder = target + Path.Combine(src, "data", "link");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "mine.txt"), "mine\n");
        return folder;
    }

    [Fact]
    public async Task A_users_folder_where_the_snapshot_has_a_symlink_is_left_reported_and_the_restore_exits_3()
    {
        using var ws = new Workspace();
        string src = await SnapshotAsync(ws);
        string target = ws.PathOf("r1");
        string folder = UsersFolder(ws, src, target);

        var result = (await ws.RepoAsync("restore", "latest", "--target", target, "--include", Path.Combine(src, "data", "link"))).ShouldExit(3).ShouldHaveNoStackTrace();

        Assert.Equal("mine\n", File.ReadAllText(Path.Combine(folder, "mine.txt")));
        Assert.Equal(
            [
                $"error: {folder}: a folder is in the way of the snapshot's symlink; left as it is (--overwrite always moves it aside)",
                "kintsugi: 1 problem reported above; everything else was restored",
            ],
            result.StdErrLines);
    }

    [Fact]
    public async Task With_json_the_refused_path_is_an_issue_and_the_rest_is_restored()
    {
        using var ws = new Workspace();
        string src = await SnapshotAsync(ws);
        string target = ws.PathOf("r1");
        string folder = UsersFolder(ws, src, target);

        var json = (await ws.RepoAsync("restore", "latest", "--target", target, "--json")).ShouldExit(3).Json();

        var issue = Assert.Single(json.GetProperty("issues").EnumerateArray());
        Assert.Equal(folder, issue.GetProperty("path").GetString());
        Assert.StartsWith("a folder is in the way", issue.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(json.GetProperty("moved_aside").EnumerateArray());
        Assert.Equal("mine\n", File.ReadAllText(Path.Combine(folder, "mine.txt")));
        Assert.Equal("the snapshot's weights\n", File.ReadAllText(target + Path.Combine(src, "data", "weights.bin")));
    }

    [Fact]
    public async Task Overwrite_always_moves_the_users_folder_aside_and_says_where()
    {
        using var ws = new Workspace();
        string src = await SnapshotAsync(ws);
        string target = ws.PathOf("r1");
        string folder = UsersFolder(ws, src, target);

        var json = (await ws.RepoAsync("restore", "latest", "--target", target, "--overwrite", "always", "--json")).ShouldSucceed().Json();

        Assert.Empty(json.GetProperty("issues").EnumerateArray());
        var moved = Assert.Single(json.GetProperty("moved_aside").EnumerateArray());
        Assert.Equal(folder, moved.GetProperty("path").GetString());
        string movedTo = moved.GetProperty("moved_to").GetString()!;
        Assert.StartsWith(folder + ".kintsugi-old-", movedTo, StringComparison.Ordinal);
        Assert.Equal("mine\n", File.ReadAllText(Path.Combine(movedTo, "mine.txt")));
        Assert.Equal("weights.bin", new FileInfo(folder).LinkTarget);

        // Without --json it is said on stdout.
        UsersFolder(ws, src, ws.PathOf("r2"));
        var text = (await ws.RepoAsync("restore", "latest", "--target", ws.PathOf("r2"), "--overwrite", "always")).ShouldSucceed();
        Assert.Contains(text.StdOutLines, l => l.StartsWith($"moved aside: {ws.PathOf("r2") + Path.Combine(src, "data", "link")} -> ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Overwrite_never_leaves_an_existing_file_and_counts_it()
    {
        using var ws = new Workspace();
        string src = await SnapshotAsync(ws);
        string target = ws.PathOf("r1");
        string weights = target + Path.Combine(src, "data", "weights.bin");
        Directory.CreateDirectory(Path.GetDirectoryName(weights)!);
        File.WriteAllText(weights, "mine\n");

        var json = (await ws.RepoAsync("restore", "latest", "--target", target, "--overwrite", "never", "--json")).ShouldSucceed().Json();

        Assert.Equal("mine\n", File.ReadAllText(weights));
        Assert.Equal(1, json.GetProperty("skipped").GetInt64());
        Assert.Equal(0, json.GetProperty("files").GetInt64());
        Assert.Equal("weights.bin", new FileInfo(target + Path.Combine(src, "data", "link")).LinkTarget);
    }

    [Fact]
    public async Task An_unknown_overwrite_policy_is_bad_usage()
    {
        using var ws = new Workspace();
        await SnapshotAsync(ws);

        string line = (await ws.RepoAsync("restore", "latest", "--target", ws.PathOf("r1"), "--overwrite", "sometimes")).ShouldFailCleanly(2);

        Assert.Contains("same-type (the default), always, if-changed, if-newer or never", line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(ws.PathOf("r1")));
    }

    [Fact]
    public async Task Restore_help_documents_every_overwrite_policy_as_the_readme_does()
    {
        using var ws = new Workspace();

        var help = (await ws.RunAsync("restore", "--help")).ShouldSucceed();
        string readme = File.ReadAllText(Path.Combine(Cli.RepositoryRoot, "README.md"));

        foreach (var text in new[] { "--overwrite", "same-type (the default)", "always:", "if-changed:", "if-newer:", "never:", ".kintsugi-old-YYYYMMDDTHHMMSSZ" })
        {
            help.StdOutShouldContain(text);
        }
        foreach (var text in new[] { "--overwrite same-type|always|if-changed|if-newer|never", "`same-type` (the default)", "`always`", "`if-changed`", "`if-newer`", "`never`", ".kintsugi-old-YYYYMMDDTHHMMSSZ" })
        {
            Assert.Contains(text, readme, StringComparison.Ordinal);
        }
    }
}
