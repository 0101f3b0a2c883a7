using System.Diagnostics;
using Kintsugi.EndToEnd.Tests.Harness;
using Kintsugi.EndToEnd.Tests.Supervisor;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// Choosing what `kintsugi backup` stores (issue 12, §2): excludes as restic takes them, --files-from,
/// --one-file-system, and --dry-run -v, checked by what `ls --json` finds in the snapshot.
/// </summary>
public sealed class BackupSelectionTests
{
    /// <summary>
    /// src/ with: a.txt, model.pt, notes/Readme.MD, notes/big.bin (64 KiB), runs/r1/ckpt.pt,
    /// runs/r1/log.txt, runs/r2/log.txt, cache/c.bin with a CACHEDIR.TAG, marked/m.txt with a .nobackup.
    /// </summary>
    private static async Task<string> TreeAsync(Workspace ws)
    {
        string src = ws.PathOf("src");
        void Write(string relative, string text)
        {
            string path = Path.Combine(src, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, text);
        }
        Write("a.txt", "a\n");
        Write("model.pt", "weights\n");
        Write("notes/Readme.MD", "read me\n");
        Write("notes/big.bin", new string('x', 64 * 1024));
        Write("runs/r1/ckpt.pt", "ckpt\n");
        Write("runs/r1/log.txt", "r1\n");
        Write("runs/r2/log.txt", "r2\n");
        Write("cache/c.bin", "cached\n");
        Write("cache/CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n");
        Write("marked/m.txt", "m\n");
        Write("marked/.nobackup", "");
        await ws.InitAsync();
        return src;
    }

    /// <summary>The paths below <paramref name="src"/> in the latest snapshot, relative to it.</summary>
    private static async Task<List<string>> StoredAsync(Workspace ws, string src)
    {
        var json = (await ws.RepoAsync("ls", "latest", "--json")).ShouldSucceed().Json();
        return json.EnumerateArray().Select(e => e.GetProperty("path").GetString()!)
            .Where(p => p.StartsWith(src + "/", StringComparison.Ordinal))
            .Select(p => p[(src.Length + 1)..])
            .Order(StringComparer.Ordinal).ToList();
    }

    private static readonly string[] Everything =
    [
        "a.txt", "cache", "cache/CACHEDIR.TAG", "cache/c.bin", "marked", "marked/.nobackup", "marked/m.txt", "model.pt",
        "notes", "notes/Readme.MD", "notes/big.bin", "runs", "runs/r1", "runs/r1/ckpt.pt", "runs/r1/log.txt", "runs/r2", "runs/r2/log.txt",
    ];

    private static List<string> EverythingBut(params string[] left) =>
        Everything.Where(p => !left.Any(l => p == l || p.StartsWith(l + "/", StringComparison.Ordinal))).ToList();

    [Fact]
    public async Task Without_options_everything_is_stored()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        await ws.BackupAsync(src);
        Assert.Equal(Everything, await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Exclude_patterns_match_at_any_depth_or_anchored_and_a_folder_takes_its_contents()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        var json = await ws.BackupAsync("--exclude", "*.pt", "--exclude", src + "/runs/r2", "--exclude", "notes/", src);
        Assert.Equal(EverythingBut("model.pt", "runs/r1/ckpt.pt", "runs/r2", "notes"), await StoredAsync(ws, src));
        // Left out means not read and not counted either.
        Assert.Equal(6, json.GetProperty("summary").GetProperty("files_new").GetInt64());
    }

    [Fact]
    public async Task A_negated_pattern_includes_again_and_the_last_match_wins()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        await ws.BackupAsync("--exclude", "log.txt", "--exclude", "!/**/r2/log.txt", src);
        Assert.Equal(EverythingBut("runs/r1/log.txt"), await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Iexclude_ignores_case_and_exclude_does_not()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        await ws.BackupAsync("--exclude", "*.md", src);
        Assert.Equal(Everything, await StoredAsync(ws, src));
        await ws.BackupAsync("--iexclude", "*.md", src);
        Assert.Equal(EverythingBut("notes/Readme.MD"), await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Exclude_files_skip_comments_and_blank_lines_and_expand_variables()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        string list = ws.PathOf("excludes");
        File.WriteAllText(list, "# checkpoints\n*.pt\n\n   \n$SUBDIR/r1\n");
        string ilist = ws.PathOf("iexcludes");
        File.WriteAllText(ilist, "# case does not matter here\nREADME.md\n");
        ws.Environment["SUBDIR"] = "runs";
        await ws.BackupAsync("--exclude-file", list, "--iexclude-file", ilist, src);
        Assert.Equal(EverythingBut("model.pt", "runs/r1", "notes/Readme.MD"), await StoredAsync(ws, src));
    }

    [Fact]
    public async Task A_path_named_on_the_command_line_that_matches_an_exclude_is_left_out()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        await ws.BackupAsync("--exclude", "*.pt", Path.Combine(src, "model.pt"), Path.Combine(src, "a.txt"));
        Assert.Equal(["a.txt"], await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Exclude_if_present_keeps_only_the_marker_of_a_marked_folder_and_checks_a_header_when_given()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        await ws.BackupAsync("--exclude-if-present", ".nobackup", src);
        Assert.Equal(EverythingBut("marked/m.txt"), await StoredAsync(ws, src));
        // The header must match the file's first bytes: CACHEDIR.TAG starts with "Signature:", not "Nope".
        await ws.BackupAsync("--exclude-if-present", "CACHEDIR.TAG:Nope", src);
        Assert.Equal(Everything, await StoredAsync(ws, src));
        await ws.BackupAsync("--exclude-if-present", "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55", src);
        Assert.Equal(EverythingBut("cache/c.bin"), await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Exclude_caches_needs_the_standard_signature()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        Directory.CreateDirectory(Path.Combine(src, "fake"));
        File.WriteAllText(Path.Combine(src, "fake", "CACHEDIR.TAG"), "not a signature\n");
        await ws.BackupAsync("--exclude-caches", src);
        Assert.Equal(EverythingBut("cache/c.bin").Append("fake").Append("fake/CACHEDIR.TAG").Order(StringComparer.Ordinal), await StoredAsync(ws, src));
    }

    [Theory]
    [InlineData("64K", false)]
    [InlineData("63K", true)]
    [InlineData("65535", true)]
    [InlineData("1M", false)]
    public async Task Exclude_larger_than_leaves_out_files_over_the_size(string size, bool bigLeftOut)
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        await ws.BackupAsync("--exclude-larger-than", size, src);
        Assert.Equal(bigLeftOut ? EverythingBut("notes/big.bin") : [.. Everything], await StoredAsync(ws, src));
    }

    [Fact]
    public async Task One_file_system_stores_a_mount_point_below_the_paths_as_an_empty_folder()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        string mounted = Path.Combine(src, "mnt");
        using var mount = TmpfsMount.Create(mounted, "1m");
        File.WriteAllText(Path.Combine(mounted, "on-tmpfs.txt"), "elsewhere\n");

        await ws.BackupAsync(src);
        Assert.Contains("mnt/on-tmpfs.txt", await StoredAsync(ws, src));

        await ws.BackupAsync("--one-file-system", src);
        Assert.Equal(Everything.Append("mnt").Order(StringComparer.Ordinal), await StoredAsync(ws, src));

        // A path on the other file system named on the command line is backed up whole.
        await ws.BackupAsync("-x", mounted);
        Assert.Equal(["mnt", "mnt/on-tmpfs.txt"], await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Files_from_adds_listed_paths_skipping_comments_and_blank_lines()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        string list = ws.PathOf("list");
        File.WriteAllText(list, $"# what to keep\n{src}/a.txt\n\n  {src}/runs/r2  \n#{src}/model.pt\n");
        await ws.BackupAsync("--files-from", list, Path.Combine(src, "notes"));
        Assert.Equal(["a.txt", "notes", "notes/Readme.MD", "notes/big.bin", "runs", "runs/r2", "runs/r2/log.txt"], await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Files_from_verbatim_takes_every_line_as_a_path_even_one_starting_with_hash()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        File.WriteAllText(Path.Combine(src, "#hash"), "h\n");
        File.WriteAllText(Path.Combine(src, " spaced "), "s\n");
        string list = ws.PathOf("list");
        File.WriteAllText(list, $"{src}/#hash\n{src}/ spaced \n");
        await ws.BackupAsync("--files-from-verbatim", list);
        Assert.Equal([" spaced ", "#hash"], await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Files_from_raw_takes_nul_separated_paths()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        File.WriteAllText(Path.Combine(src, "new\nline"), "n\n");
        string list = ws.PathOf("list");
        File.WriteAllText(list, $"{src}/new\nline\0{src}/a.txt\0");
        await ws.BackupAsync("--files-from-raw", list);
        Assert.Equal(["a.txt", "new\nline"], await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Files_from_dash_reads_stdin()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        var (code, stderr) = await RunWithStdinAsync(ws, $"# from a pipe\n{src}/model.pt\n", "backup", "--files-from", "-");
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal(["model.pt"], await StoredAsync(ws, src));
    }

    [Fact]
    public async Task Dry_run_stores_nothing_and_its_listing_is_what_the_backup_then_stores()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        await ws.BackupAsync("--exclude", "runs", src);
        File.WriteAllText(Path.Combine(src, "a.txt"), "a, changed\n");
        File.WriteAllText(Path.Combine(src, "added.txt"), "added\n");
        var before = RepositoryFiles(ws);

        var dry = (await ws.RepoAsync("backup", "--dry-run", "-v", "--exclude", "cache", src)).ShouldSucceed();
        Assert.Equal(before, RepositoryFiles(ws));
        Assert.Single(await ws.SnapshotsAsync());
        var listed = dry.StdOutLines.Where(l => !l.StartsWith("would", StringComparison.Ordinal) && !l.StartsWith("dry run", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        Assert.Contains($"modified {src}/a.txt", listed);
        Assert.Contains($"new {src}/added.txt", listed);
        Assert.Contains($"new {src}/runs/r1/log.txt", listed);
        Assert.Contains($"unchanged {src}/model.pt", listed);
        Assert.DoesNotContain(listed, l => l.Contains("/cache/", StringComparison.Ordinal));
        dry.StdOutShouldContain("would add files: 4 new, 1 changed, 5 unchanged").StdOutShouldContain("dry run: nothing was stored");

        var real = (await ws.RepoAsync("backup", "-v", "--exclude", "cache", src)).ShouldSucceed();
        var stored = real.StdOutLines.Where(l => l.StartsWith("new ", StringComparison.Ordinal) || l.StartsWith("modified ", StringComparison.Ordinal) || l.StartsWith("unchanged ", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(listed, stored);
        var files = (await StoredAsync(ws, src)).Where(p => File.Exists(Path.Combine(src, p))).Select(p => $"{src}/{p}").Order(StringComparer.Ordinal);
        Assert.Equal(files, stored.Select(l => l[(l.IndexOf(' ', StringComparison.Ordinal) + 1)..]).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Dry_run_json_reports_what_would_be_added_and_no_snapshot()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        var json = (await ws.RepoAsync("backup", "--dry-run", "-v", "--json", "--exclude", "runs", "--exclude", "cache", "--exclude", "marked", src)).ShouldSucceed().Json();
        Assert.True(json.GetProperty("dry_run").GetBoolean());
        Assert.False(json.TryGetProperty("snapshot", out _), "a dry run names no snapshot");
        Assert.Equal(4, json.GetProperty("summary").GetProperty("files_new").GetInt64());
        Assert.True(json.GetProperty("summary").GetProperty("bytes_added").GetInt64() > 64 * 1024);
        Assert.Equal(
            [$"{src}/a.txt", $"{src}/model.pt", $"{src}/notes/Readme.MD", $"{src}/notes/big.bin"],
            json.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("path").GetString()!));
        Assert.All(json.GetProperty("files").EnumerateArray(), f => Assert.Equal("new", f.GetProperty("change").GetString()));
        Assert.Empty(await ws.SnapshotsAsync());
    }

    [Theory]
    [InlineData("--exclude", "data[", "\"data[\"")]
    [InlineData("--iexclude", "[z-a]", "backwards")]
    [InlineData("--exclude-file", "/nonexistent/excludes", "/nonexistent/excludes")]
    [InlineData("--iexclude-file", "/nonexistent/excludes", "/nonexistent/excludes")]
    [InlineData("--files-from", "/nonexistent/list", "/nonexistent/list")]
    [InlineData("--exclude-larger-than", "12X", "--exclude-larger-than 12X")]
    [InlineData("--exclude-larger-than", "1.2.3", "--exclude-larger-than 1.2.3")]
    [InlineData("--exclude-if-present", "a/b", "a/b")]
    public async Task Bad_selection_options_are_usage_errors_naming_the_value(string option, string value, string named)
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        string line = (await ws.RepoAsync("backup", option, value, src)).ShouldFailCleanly(2);
        Assert.Contains(named, line, StringComparison.Ordinal);
        Assert.Empty(await ws.SnapshotsAsync());
    }

    [Fact]
    public async Task A_malformed_line_in_an_exclude_file_is_named_by_its_line()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        string list = ws.PathOf("excludes");
        File.WriteAllText(list, "# fine\n*.pt\nruns/[r\n");
        string line = (await ws.RepoAsync("backup", "--exclude-file", list, src)).ShouldFailCleanly(2);
        Assert.Contains($"{list}, line 3", line, StringComparison.Ordinal);
        Assert.Contains("runs/[r", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_paths_at_all_is_a_usage_error_also_with_an_empty_files_from()
    {
        using var ws = new Workspace();
        await TreeAsync(ws);
        string list = ws.PathOf("list");
        File.WriteAllText(list, "# nothing\n\n");
        (await ws.RepoAsync("backup")).ShouldFailCleanly(2);
        string line = (await ws.RepoAsync("backup", "--files-from", list)).ShouldFailCleanly(2);
        Assert.Contains("--files-from", line, StringComparison.Ordinal);
    }

    private static SortedDictionary<string, string> RepositoryFiles(Workspace ws) =>
        new(Directory.EnumerateFiles(ws.Repo, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(ws.Repo, f), f => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))), StringComparer.Ordinal);

    /// <summary>Runs kintsugi against the workspace's repository with <paramref name="stdin"/> piped in (the harness closes stdin).</summary>
    private static async Task<(int Code, string StdErr)> RunWithStdinAsync(Workspace ws, string stdin, params string[] args)
    {
        var psi = new ProcessStartInfo(Cli.Command[0]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = ws.Root };
        foreach (var arg in Cli.Command.Skip(1).Concat(["--repo", ws.Repo, "--password-file", ws.PasswordFile]).Concat(args))
        {
            psi.ArgumentList.Add(arg);
        }
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("KINTSUGI_", StringComparison.Ordinal)).ToList())
        {
            psi.Environment.Remove(name);
        }
        using var process = Process.Start(psi)!;
        await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Cli.Timeout);
        await process.WaitForExitAsync(cts.Token);
        await stdout;
        return (process.ExitCode, await stderr);
    }

    [Fact]
    public async Task A_files_from_path_that_does_not_exist_is_skipped_with_a_warning_and_exit_3()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);
        string list = ws.PathOf("list");
        File.WriteAllText(list, $"{src}/a.txt\nnosuch\n");

        var backup = (await ws.RepoAsync("backup", "--files-from", list)).ShouldExit(3);

        Assert.Contains("kintsugi: warning: nosuch from --files-from does not exist; skipped", backup.StdErrLines);
        Assert.Equal(["a.txt"], await StoredAsync(ws, src));

        // Every listed path missing: nothing to back up, and nothing saved.
        File.WriteAllText(list, "nosuch\nnor-this\n");
        string line = (await ws.RepoAsync("backup", "--files-from", list)).ShouldFailCleanly(1);
        Assert.Contains("nosuch, nor-this", line, StringComparison.Ordinal);
        Assert.Single(await ws.SnapshotsAsync());

        // A path named on the command line that does not exist is still an error.
        File.WriteAllText(list, $"{src}/a.txt\n");
        Assert.Contains("nosuch does not exist", (await ws.RepoAsync("backup", "--files-from", list, "nosuch")).ShouldFailCleanly(1), StringComparison.Ordinal);
        Assert.Single(await ws.SnapshotsAsync());
    }

    [Fact]
    public async Task A_backup_whose_every_path_is_excluded_is_refused_and_saves_nothing()
    {
        using var ws = new Workspace();
        string src = await TreeAsync(ws);

        string line = (await ws.RepoAsync("backup", "--exclude", "src", src)).ShouldFailCleanly(1);
        Assert.Contains($"{src} by the exclude src", line, StringComparison.Ordinal);
        Assert.Contains("nothing was saved", line, StringComparison.Ordinal);

        string big = Path.Combine(src, "notes", "big.bin");
        line = (await ws.RepoAsync("backup", "--exclude-larger-than", "1K", big, "--exclude", "*.pt", Path.Combine(src, "model.pt"))).ShouldFailCleanly(1);
        Assert.Contains($"{big} by --exclude-larger-than", line, StringComparison.Ordinal);
        Assert.Contains($"{src}/model.pt by the exclude *.pt", line, StringComparison.Ordinal);
        Assert.Empty(await ws.SnapshotsAsync());

        // One path left is a snapshot (with the folder that held the excluded one).
        await ws.BackupAsync("--exclude-larger-than", "1K", big, Path.Combine(src, "a.txt"));
        Assert.Equal(["a.txt", "notes"], await StoredAsync(ws, src));
    }
}
