using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// `kintsugi restore --delete` (issue 12, item 1), as restic's: what the target holds inside the
/// restored folders that the snapshot does not have is deleted, only when asked, only within what is
/// restored, never following a symlink; `--dry-run` changes nothing and lists what the real run does.
/// </summary>
public sealed class RestoreDeleteTests : IDisposable
{
    private readonly Workspace _ws = new();

    public void Dispose() => _ws.Dispose();

    /// <summary>A snapshot of src (a/x.txt, a/b/y.txt, c.txt), restored into <c>target</c>, which then gets entries the snapshot lacks; returns src.</summary>
    private async Task<string> RestoredWithExtrasAsync(string target)
    {
        string src = _ws.PathOf("src");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(src, "a", "b")).FullName, "y.txt"), "y\n");
        File.WriteAllText(Path.Combine(src, "a", "x.txt"), "x\n");
        File.WriteAllText(Path.Combine(src, "c.txt"), "c\n");
        await _ws.InitAsync();
        await _ws.BackupAsync(src);
        (await _ws.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        File.WriteAllText(Path.Combine(target, "stray.txt"), "at the target's top\n");
        File.WriteAllText(target + Path.Combine(src, "extra.txt"), "beside c.txt\n");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(target + Path.Combine(src, "a", "old", "deeper")).FullName, "z.txt"), "in a folder the snapshot lacks\n");
        File.WriteAllText(target + Path.Combine(src, "a", "b", "extra.txt"), "beside y.txt\n");
        return src;
    }

    private static List<string> Listed(CliResult result, string prefix) =>
        [.. result.StdOutLines.Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).Select(l => l[prefix.Length..])];

    [Fact]
    public async Task Delete_removes_what_the_snapshot_does_not_have_and_restores_the_rest()
    {
        string target = _ws.PathOf("target");
        string src = await RestoredWithExtrasAsync(target);
        (await _ws.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        Assert.True(File.Exists(target + Path.Combine(src, "extra.txt")), "a restore without --delete deleted something");
        File.WriteAllText(target + Path.Combine(src, "a", "x.txt"), "changed by the user\n");

        var json = (await _ws.RepoAsync("restore", "latest", "--target", target, "--delete", "--json")).ShouldSucceed().Json();

        FileTree.AssertSameTree(src, target + src);
        Assert.Equal([src.Split('/')[1]], Directory.EnumerateFileSystemEntries(target).Select(Path.GetFileName));
        // The extras: stray.txt, extra.txt, a/old/deeper/z.txt, a/old/deeper, a/old, a/b/extra.txt.
        Assert.Equal(6, json.GetProperty("deleted").GetInt64());
        Assert.Equal(3, json.GetProperty("files").GetInt64());
    }

    [Fact]
    public async Task With_include_only_what_is_under_the_included_path_is_deleted()
    {
        string target = _ws.PathOf("target");
        string src = await RestoredWithExtrasAsync(target);

        var result = (await _ws.RepoAsync("restore", "latest", "--target", target, "--delete", "--include", Path.Combine(src, "a"), "-v")).ShouldSucceed();

        Assert.Equal(
            [
                target + Path.Combine(src, "a", "old", "deeper", "z.txt"),
                target + Path.Combine(src, "a", "old", "deeper"),
                target + Path.Combine(src, "a", "old"),
                target + Path.Combine(src, "a", "b", "extra.txt"),
            ],
            Listed(result, "deleted: "));
        Assert.False(Directory.Exists(target + Path.Combine(src, "a", "old")));
        Assert.False(File.Exists(target + Path.Combine(src, "a", "b", "extra.txt")));
        Assert.True(File.Exists(target + Path.Combine(src, "extra.txt")), "deleted beside the included folder");
        Assert.True(File.Exists(Path.Combine(target, "stray.txt")), "deleted at the target's top, above the included folder");
        result.StdOutShouldContain("deleted 4 entries the snapshot does not have");
    }

    [Fact]
    public async Task Dry_run_changes_nothing_and_lists_what_the_real_run_deletes()
    {
        string target = _ws.PathOf("target");
        await RestoredWithExtrasAsync(target);
        var before = FileTree.Listing(target);

        var dry = (await _ws.RepoAsync("restore", "latest", "--target", target, "--delete", "--dry-run", "-v")).ShouldSucceed();

        FileTree.AssertSameListing(before, FileTree.Listing(target), "the target after a dry run");
        var wouldDelete = Listed(dry, "would delete: ");
        Assert.Equal(6, wouldDelete.Count);
        dry.StdOutShouldContain("dry run, nothing changed: would restore 3 files");
        var real = (await _ws.RepoAsync("restore", "latest", "--target", target, "--delete", "-v")).ShouldSucceed();
        Assert.Equal(wouldDelete, Listed(real, "deleted: "));
        Assert.Equal(Listed(dry, "would restore: "), Listed(real, "restored: "));
        Assert.All(wouldDelete, path => Assert.Equal(FileTree.EntryKind.Missing, FileTree.KindOf(path)));
    }

    [Fact]
    public async Task Dry_run_with_overwrite_always_names_what_it_would_move_aside_and_what_it_would_restore_under_it_and_moves_nothing()
    {
        string target = _ws.PathOf("target");
        string src = await RestoredWithExtrasAsync(target);
        // The user's file where the snapshot has the folder a/ (with a/b/ and two files under it).
        string a = target + Path.Combine(src, "a");
        Directory.Delete(a, recursive: true);
        File.WriteAllText(a, "the user's file\n");
        var before = FileTree.Listing(target);

        var dry = (await _ws.RepoAsync("restore", "latest", "--target", target, "--overwrite", "always", "--dry-run", "-v")).ShouldSucceed();

        FileTree.AssertSameListing(before, FileTree.Listing(target), "the target after a dry run");
        Assert.StartsWith($"{a} -> {a}.kintsugi-old-", Assert.Single(Listed(dry, "would move aside: ")), StringComparison.Ordinal);
        Assert.Contains(target + Path.Combine(src, "a", "b", "y.txt"), Listed(dry, "would restore: "));
        var real = (await _ws.RepoAsync("restore", "latest", "--target", target, "--overwrite", "always", "-v")).ShouldSucceed();
        Assert.Equal(Listed(dry, "would restore: "), Listed(real, "restored: "));
        Assert.Equal("the user's file\n", File.ReadAllText(Assert.Single(Listed(real, "moved aside: ")).Split(" -> ")[1]));
        FileTree.AssertSameTree(Path.Combine(src, "a"), a);
    }

    [Fact]
    public async Task Dry_run_into_a_new_folder_creates_nothing()
    {
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 5_000);
        await _ws.InitAsync();
        await _ws.BackupAsync(src);
        string target = _ws.PathOf("new");

        var json = (await _ws.RepoAsync("restore", "latest", "--target", target, "--dry-run", "--json")).ShouldSucceed().Json();

        Assert.False(Directory.Exists(target));
        Assert.True(json.GetProperty("dry_run").GetBoolean());
        Assert.Equal(1, json.GetProperty("files").GetInt64());
        Assert.Equal(5_000, json.GetProperty("bytes").GetInt64());
    }

    [Fact]
    public async Task A_symlink_in_the_target_that_leads_outside_is_removed_as_a_link_and_not_followed()
    {
        string target = _ws.PathOf("target");
        string src = await RestoredWithExtrasAsync(target);
        string outside = _ws.PathOf("outside");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(outside).FullName, "precious.txt"), "not the restore's\n");
        string folderLink = target + Path.Combine(src, "a", "to-outside");
        string fileLink = target + Path.Combine(src, "a", "b", "to-precious");
        File.CreateSymbolicLink(folderLink, outside);
        File.CreateSymbolicLink(fileLink, Path.Combine(outside, "precious.txt"));

        var result = (await _ws.RepoAsync("restore", "latest", "--target", target, "--delete", "-v")).ShouldSucceed();

        Assert.Equal("not the restore's\n", File.ReadAllText(Path.Combine(outside, "precious.txt")));
        Assert.Equal(FileTree.EntryKind.Missing, FileTree.KindOf(folderLink));
        Assert.Equal(FileTree.EntryKind.Missing, FileTree.KindOf(fileLink));
        Assert.Contains(folderLink, Listed(result, "deleted: "));
        Assert.DoesNotContain(Listed(result, "deleted: "), p => p.StartsWith(folderLink + "/", StringComparison.Ordinal));
        FileTree.AssertSameTree(src, target + src);
    }

    [Fact]
    public async Task Delete_with_overwrite_never_keeps_the_users_version_of_a_snapshot_file_and_deletes_only_what_the_snapshot_lacks()
    {
        string target = _ws.PathOf("target");
        string src = await RestoredWithExtrasAsync(target);
        string x = target + Path.Combine(src, "a", "x.txt");
        File.WriteAllText(x, "the user's newer x\n");

        var json = (await _ws.RepoAsync("restore", "latest", "--target", target, "--delete", "--overwrite", "never", "--json")).ShouldSucceed().Json();

        Assert.Equal("the user's newer x\n", File.ReadAllText(x));
        Assert.Equal(6, json.GetProperty("deleted").GetInt64());
        Assert.False(File.Exists(target + Path.Combine(src, "extra.txt")));
    }

    [Fact]
    public async Task Restore_help_and_the_readme_document_delete_dry_run_and_the_failed_count()
    {
        var help = (await _ws.RunAsync("restore", "--help")).ShouldSucceed();
        string readme = File.ReadAllText(Path.Combine(Cli.RepositoryRoot, "README.md"));

        foreach (var text in new[] { "--delete", "--dry-run", "--verbose", "never followed", "Refused for --target / or your home folder (or one above it) unless every --include names a path" })
        {
            help.StdOutShouldContain(text);
        }
        foreach (var text in new[] { "[--delete] [--dry-run] [-v]", "`restore --delete`", "`would delete: PATH`", "`deleted: PATH`", "1 file failed", "`failed`", "cannot be written (read-only file system)" })
        {
            Assert.Contains(text, readme, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Delete_into_the_root_or_a_home_folder_without_include_is_refused()
    {
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 5_000);
        await _ws.InitAsync();
        await _ws.BackupAsync(src);
        string homes = _ws.PathOf("home");
        string home = Path.Combine(homes, "user");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(home).FullName, "notes.txt"), "mine\n");
        _ws.Environment["HOME"] = home;

        // --dry-run too: were the refusal missing, the test must not wipe the machine it runs on.
        string root = (await _ws.RepoAsync("restore", "latest", "--target", "/", "--delete", "--dry-run")).ShouldFailCleanly(2);
        string inHome = (await _ws.RepoAsync("restore", "latest", "--target", home, "--delete")).ShouldFailCleanly(2);
        string aboveHome = (await _ws.RepoAsync("restore", "latest", "--target", homes, "--delete")).ShouldFailCleanly(2);

        Assert.Contains("--target / would delete everything in the whole system that the snapshot does not have; narrow it with --include PATH", root, StringComparison.Ordinal);
        Assert.Contains($"--target {home} would delete everything in your home folder", inHome, StringComparison.Ordinal);
        Assert.Contains($"--target {homes} would delete everything in {homes}, which holds your home folder", aboveHome, StringComparison.Ordinal);
        Assert.Equal(["notes.txt"], Directory.EnumerateFileSystemEntries(home).Select(Path.GetFileName));
        Assert.Equal(["user"], Directory.EnumerateFileSystemEntries(homes).Select(Path.GetFileName));
        // Narrowed by --include, it restores and clears only under that path.
        (await _ws.RepoAsync("restore", "latest", "--target", home, "--delete", "--include", src)).ShouldSucceed();
        Assert.True(File.Exists(Path.Combine(home, "notes.txt")));
        FileTree.AssertSameTree(src, home + src);
    }

    [Fact]
    public async Task Delete_never_deletes_the_repository_it_restores_from_when_the_target_holds_it()
    {
        string target = _ws.PathOf("project");
        string repo = Path.Combine(target, ".kintsugi");
        string[] r = ["--repo", repo, "--password-file", _ws.PasswordFile];
        (await _ws.RunAsync([.. r, "init", .. Workspace.CheapKdf])).ShouldSucceed();
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 5_000);
        (await _ws.RunAsync([.. r, "backup", src])).ShouldSucceed();
        File.WriteAllText(Path.Combine(target, "stray.txt"), "not in the snapshot\n");

        var dry = (await _ws.RunAsync([.. r, "restore", "latest", "--target", target, "--delete", "--dry-run", "-v"])).ShouldSucceed();
        var real = (await _ws.RunAsync([.. r, "restore", "latest", "--target", target, "--delete", "-v"])).ShouldSucceed();

        Assert.Equal([Path.Combine(target, "stray.txt")], Listed(dry, "would delete: "));
        Assert.Equal([Path.Combine(target, "stray.txt")], Listed(real, "deleted: "));
        Assert.Contains($"{repo}: warning: not deleted: it is or holds {repo}", real.StdErr, StringComparison.Ordinal);
        (await _ws.RunAsync([.. r, "check"])).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);
    }

    [Fact]
    public async Task Delete_leaves_what_exclude_leaves_out_and_what_overwrite_moved_aside()
    {
        string target = _ws.PathOf("target");
        string src = await RestoredWithExtrasAsync(target);
        // The user's folder where the snapshot has c.txt: --overwrite always moves it aside.
        File.Delete(target + Path.Combine(src, "c.txt"));
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(target + Path.Combine(src, "c.txt")).FullName, "mine.txt"), "mine\n");
        var moved = (await _ws.RepoAsync("restore", "latest", "--target", target, "--overwrite", "always", "--json")).ShouldSucceed().Json();
        string movedTo = moved.GetProperty("moved_aside")[0].GetProperty("moved_to").GetString()!;

        var result = (await _ws.RepoAsync("restore", "latest", "--target", target, "--delete", "--exclude", "extra.txt", "-v")).ShouldSucceed();

        Assert.True(File.Exists(Path.Combine(movedTo, "mine.txt")), "--delete deleted what --overwrite had moved aside\n" + result);
        Assert.True(File.Exists(target + Path.Combine(src, "extra.txt")), "--delete deleted what --exclude left out\n" + result);
        Assert.True(File.Exists(target + Path.Combine(src, "a", "b", "extra.txt")), "--exclude NAME is matched at any depth, as backup --exclude NAME");
        Assert.False(Directory.Exists(target + Path.Combine(src, "a", "old")));
        Assert.False(File.Exists(Path.Combine(target, "stray.txt")));
    }

    [Theory]
    [InlineData("*")]
    [InlineData("/*")]
    [InlineData("tmp")]
    [InlineData("/tmp")]
    public async Task Delete_into_the_root_is_refused_with_an_include_that_does_not_narrow_it(string include)
    {
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 5_000);
        await _ws.InitAsync();
        await _ws.BackupAsync(src);

        // --dry-run too: were the refusal missing, the test must not wipe the machine it runs on.
        string line = (await _ws.RepoAsync("restore", "latest", "--target", "/", "--delete", "--include", include, "--dry-run")).ShouldFailCleanly(2);

        Assert.Contains("at least two folders deep", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_last_line_counts_the_files_that_failed_as_the_summary_does()
    {
        string target = _ws.PathOf("target");
        string src = await RestoredWithExtrasAsync(target);
        // A symlink where the snapshot has the folder a (x.txt, b/y.txt): its two files cannot be restored.
        string outside = _ws.PathOf("outside");
        Directory.CreateDirectory(outside);
        Directory.Delete(target + Path.Combine(src, "a"), recursive: true);
        File.CreateSymbolicLink(target + Path.Combine(src, "a"), outside);

        var result = (await _ws.RepoAsync("restore", "latest", "--target", target)).ShouldExit(3).ShouldHaveNoStackTrace();

        result.StdOutShouldContain("; 2 files failed");
        Assert.Equal("kintsugi: 2 files could not be restored; everything else was", result.StdErrLines[^1]);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
    }

    [Fact]
    public async Task A_dry_run_into_the_root_lists_the_paths_as_they_are_without_a_double_slash()
    {
        string src = _ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "sub", "weights.bin"), 5_000);
        await _ws.InitAsync();
        await _ws.BackupAsync(src);

        // A dry run: nothing is written to /.
        var result = (await _ws.RepoAsync("restore", "latest", "--target", "/", "--include", src, "--dry-run", "-v")).ShouldSucceed();

        Assert.Contains(Path.Combine(src, "sub", "weights.bin"), Listed(result, "would restore: "));
        Assert.DoesNotContain(result.StdOutLines, l => l.Contains("//", StringComparison.Ordinal));
    }
}
