using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>Mistakes of the user: each gives the documented exit code and one line on stderr, and changes nothing.</summary>
public sealed class ErrorHandlingTests
{
    private static async Task<(Workspace Ws, string Src)> RepositoryWithOneSnapshotAsync()
    {
        var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "data.bin"), 20_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        return (ws, src);
    }

    [Fact]
    public async Task Wrong_password_fails_with_one_line_and_leaves_the_repository_untouched()
    {
        var (ws, src) = await RepositoryWithOneSnapshotAsync();
        using (ws)
        {
            var before = FileTree.Listing(ws.Repo);
            string wrong = ws.WritePassword("wrong-password", "not the password");

            foreach (var args in new[] { new[] { "backup", src }, ["snapshots"], ["forget", "--keep-last", "1", "--prune"] })
            {
                var result = await ws.RepoWithPasswordAsync(wrong, args);
                string line = result.ShouldFailCleanly(1);
                Assert.Contains("wrong password", line, StringComparison.Ordinal);
            }

            FileTree.AssertSameListing(before, FileTree.Listing(ws.Repo), "the repository");
        }
    }

    [Fact]
    public async Task Init_on_an_existing_repository_fails_naming_the_path_and_the_repository_still_opens()
    {
        var (ws, _) = await RepositoryWithOneSnapshotAsync();
        using (ws)
        {
            var before = FileTree.Listing(ws.Repo);
            string other = ws.WritePassword("other-password", "another password");

            var again = await ws.RepoWithPasswordAsync(other, ["init", .. Workspace.CheapKdf]);
            Assert.Contains(ws.Repo, again.ShouldFailCleanly(1), StringComparison.Ordinal);

            FileTree.AssertSameListing(before, FileTree.Listing(ws.Repo), "the repository");
            Assert.Single(await ws.SnapshotsAsync());
            Assert.Contains("wrong password", (await ws.RepoWithPasswordAsync(other, "snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_folder_that_is_not_a_repository_is_reported_as_such_and_left_alone()
    {
        using var ws = new Workspace();
        string empty = ws.PathOf("empty");
        Directory.CreateDirectory(empty);
        string junk = ws.PathOf("junk");
        FileTree.WriteRandom(Path.Combine(junk, "train.csv"), 500);
        FileTree.WriteRandom(Path.Combine(junk, "data", "shard-0001"), 100);
        FileTree.WriteRandom(Path.Combine(junk, "notes.bin"), 1000);
        var junkBefore = FileTree.Listing(junk);
        string missing = ws.PathOf("missing");
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 100);

        var cases = new[]
        {
            new[] { "--repo", empty, "--password-file", ws.PasswordFile, "snapshots" },
            ["--repo", empty, "--password-file", ws.PasswordFile, "backup", src],
            ["--repo", junk, "--password-file", ws.PasswordFile, "snapshots"],
            ["--repo", junk, "--password-file", ws.PasswordFile, "backup", src],
            ["--repo", missing, "--password-file", ws.PasswordFile, "check"],
        };
        foreach (var args in cases)
        {
            var result = await ws.RunAsync(args);
            Assert.Contains("not a Kintsugi repository", result.ShouldFailCleanly(1), StringComparison.Ordinal);
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(empty));
        FileTree.AssertSameListing(junkBefore, FileTree.Listing(junk), "the folder that is not a repository");
        Assert.False(Path.Exists(missing), "opening a missing repository must not create it");
    }

    [Fact]
    public async Task Backup_of_a_missing_path_fails_naming_it_and_creates_no_snapshot()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 1000);
        string missing = ws.PathOf("no-such-folder");
        await ws.InitAsync();

        Assert.Contains(missing, (await ws.RepoAsync("backup", missing)).ShouldFailCleanly(1), StringComparison.Ordinal);
        Assert.Contains(missing, (await ws.RepoAsync("backup", src, missing)).ShouldFailCleanly(1), StringComparison.Ordinal);

        Assert.Empty(await ws.SnapshotsAsync());
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(ws.Repo, "locks")));
    }

    [Fact]
    public async Task No_repository_given_is_a_usage_error_that_names_both_ways_to_give_one()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 100);

        foreach (var args in new[] { new[] { "snapshots" }, ["--password-file", ws.PasswordFile, "backup", src], ["init", .. Workspace.CheapKdf] })
        {
            string line = (await ws.RunAsync(args)).ShouldFailCleanly(2);
            Assert.Contains("--repo", line, StringComparison.Ordinal);
            Assert.Contains("KINTSUGI_REPOSITORY", line, StringComparison.Ordinal);
        }
        Assert.Equal(["password", "src"], Directory.EnumerateFileSystemEntries(ws.Root).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task No_password_and_no_terminal_is_a_usage_error_instead_of_a_prompt_that_hangs()
    {
        using var ws = new Workspace();
        await ws.InitAsync();

        string line = (await ws.RunAsync("--repo", ws.Repo, "snapshots")).ShouldFailCleanly(2);
        AssertNamesEveryPasswordSource(line);
        Assert.False(Path.Exists(ws.PathOf("other")));
        AssertNamesEveryPasswordSource((await ws.RunAsync("--repo", ws.PathOf("other"), "init", "--kdf-memory", "8", "--kdf-iterations", "1")).ShouldFailCleanly(2));
        Assert.False(File.Exists(Path.Combine(ws.PathOf("other"), "config")), "init without a password must not create a repository");

        // A new key's password comes from its own option or a prompt, never from the environment.
        string newKey = (await ws.RepoAsync(["key", "add", .. Workspace.CheapKdf])).ShouldFailCleanly(2);
        Assert.Contains("--new-password-file", newKey, StringComparison.Ordinal);
        Assert.Contains("terminal", newKey, StringComparison.Ordinal);
    }

    /// <summary>The missing-password line names every source: the option, both variables, and the prompt a terminal gives.</summary>
    private static void AssertNamesEveryPasswordSource(string line)
    {
        Assert.Contains("--password-file", line, StringComparison.Ordinal);
        Assert.Contains("KINTSUGI_PASSWORD_FILE", line, StringComparison.Ordinal);
        Assert.Matches(@"\bKINTSUGI_PASSWORD\b(?!_)", line);
        Assert.Contains("terminal", line, StringComparison.Ordinal);
        Assert.Contains("prompt", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_password_names_where_it_came_from()
    {
        // Issue 12, §5: a wrong KINTSUGI_PASSWORD said "check the password file or KINTSUGI_PASSWORD_FILE".
        using var ws = new Workspace();
        await ws.InitAsync();
        string wrong = ws.WritePassword("wrong-password", "not the password");

        string line = (await ws.RunWithAsync(new Dictionary<string, string?> { ["KINTSUGI_REPOSITORY"] = ws.Repo, ["KINTSUGI_PASSWORD"] = "nope" }, "snapshots")).ShouldFailCleanly(1);
        Assert.EndsWith("; the password came from KINTSUGI_PASSWORD: check it there", line, StringComparison.Ordinal);
        Assert.DoesNotContain("file", line, StringComparison.Ordinal);

        line = (await ws.RunWithAsync(new Dictionary<string, string?> { ["KINTSUGI_REPOSITORY"] = ws.Repo, ["KINTSUGI_PASSWORD_FILE"] = wrong }, "snapshots")).ShouldFailCleanly(1);
        Assert.EndsWith($"; the password came from the password file {wrong} (from KINTSUGI_PASSWORD_FILE): check it there", line, StringComparison.Ordinal);

        line = (await ws.RepoWithPasswordAsync(wrong, "snapshots")).ShouldFailCleanly(1);
        Assert.EndsWith($"; the password came from the password file {wrong} (from --password-file): check it there", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Environment_variables_give_the_repository_and_password_and_options_override_them()
    {
        using var ws = new Workspace();
        await ws.InitAsync();
        string wrong = ws.WritePassword("wrong-password", "not the password");
        string notARepo = ws.PathOf("not-a-repo");
        Directory.CreateDirectory(notARepo);

        (await ws.RunWithAsync(new Dictionary<string, string?> { ["KINTSUGI_REPOSITORY"] = ws.Repo, ["KINTSUGI_PASSWORD_FILE"] = ws.PasswordFile }, "snapshots")).ShouldSucceed();
        (await ws.RunWithAsync(new Dictionary<string, string?> { ["KINTSUGI_REPOSITORY"] = ws.Repo, ["KINTSUGI_PASSWORD"] = "correct horse battery staple" }, "snapshots")).ShouldSucceed();
        (await ws.RunWithAsync(new Dictionary<string, string?> { ["KINTSUGI_REPOSITORY"] = notARepo, ["KINTSUGI_PASSWORD_FILE"] = ws.PasswordFile }, "--repo", ws.Repo, "snapshots")).ShouldSucceed();
        (await ws.RunWithAsync(new Dictionary<string, string?> { ["KINTSUGI_REPOSITORY"] = ws.Repo, ["KINTSUGI_PASSWORD_FILE"] = wrong }, "--password-file", ws.PasswordFile, "snapshots")).ShouldSucceed();
        Assert.Contains("wrong password", (await ws.RunWithAsync(new Dictionary<string, string?> { ["KINTSUGI_REPOSITORY"] = ws.Repo, ["KINTSUGI_PASSWORD"] = "nope" }, "snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
    }
}
