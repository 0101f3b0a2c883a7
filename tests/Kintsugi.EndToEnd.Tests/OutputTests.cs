using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>Help, output for scripts and pipes, and the demo.</summary>
public sealed class OutputTests
{
    [Theory]
    [InlineData("--help")]
    [InlineData("backup --help")]
    [InlineData("restore --help")]
    [InlineData("key add --help")]
    public async Task Help_exits_0_and_documents_the_exit_codes(string args)
    {
        using var ws = new Workspace();

        var help = (await ws.RunAsync(args.Split(' '))).ShouldSucceed();

        help.StdOutShouldContain("Exit codes");
        Assert.Empty(help.StdErr);
    }

    [Fact]
    public async Task The_list_of_commands_says_the_exit_codes_once_not_once_per_command()
    {
        using var ws = new Workspace();

        var help = (await ws.RunAsync("--help")).ShouldSucceed();

        Assert.Equal(1, help.StdOutLines.Count(l => l.Contains("Exit codes", StringComparison.Ordinal)));
        help.StdOutShouldContain("restore");
    }

    [Fact]
    public async Task Redirected_output_holds_no_progress_bars_or_terminal_escape_sequences()
    {
        using var ws = new Workspace();
        ws.Environment["TERM"] = "xterm-256color";
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "big.bin"), 3_000_000);
        FileTree.WriteRandom(Path.Combine(src, "small.bin"), 1_000);
        await ws.InitAsync();

        var runs = new List<CliResult>
        {
            (await ws.RepoAsync("backup", src)).ShouldSucceed(),
            (await ws.RepoAsync("backup", "--full", src)).ShouldSucceed(),
            (await ws.RepoAsync("snapshots")).ShouldSucceed(),
            (await ws.RepoAsync("restore", "latest", "--target", ws.PathOf("restored"))).ShouldSucceed(),
            (await ws.RepoAsync("check", "--read-data")).ShouldSucceed(),
            (await ws.RepoAsync("forget", "--keep-last", "1", "--prune")).ShouldSucceed(),
            (await ws.RepoAsync("key", "list")).ShouldSucceed(),
        };

        foreach (var run in runs)
        {
            Assert.False(run.StdErr.Contains('\u001b', StringComparison.Ordinal), $"stderr holds an escape sequence\n{run}");
            Assert.False(run.StdOut.Contains('\u001b', StringComparison.Ordinal), $"stdout holds an escape sequence\n{run}");
            Assert.Empty(run.StdErr);
        }
    }

    [Fact]
    public async Task Stats_json_gives_every_key_of_a_file_and_a_null_layout_for_opaque_bytes()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "opaque.bin"), 10_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);

        var stats = (await ws.RepoAsync("stats", "latest", "--json")).ShouldSucceed().Json();

        var file = stats.GetProperty("files").EnumerateArray().Single();
        Assert.Equal(["path", "layout", "bytes_in", "bytes_stored", "blobs"], file.EnumerateObject().Select(p => p.Name));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, file.GetProperty("layout").ValueKind);
        Assert.Equal(
            ["snapshot", "bytes_in", "bytes_stored", "blobs", "base_blobs", "base_bytes_stored", "files", "codecs", "requests"],
            stats.EnumerateObject().Select(p => p.Name));
        Assert.Equal(["codec", "blobs", "bytes_in", "bytes_stored"], stats.GetProperty("codecs")[0].EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task Json_output_is_only_json_on_stdout()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 10_000);
        var init = (await ws.RepoAsync(["init", "--json", .. Workspace.CheapKdf])).ShouldSucceed().Json();
        Assert.Equal(ws.Repo, init.GetProperty("repository").GetString());
        await ws.BackupAsync(src);

        foreach (var args in new[] { new[] { "snapshots" }, ["ls", "latest"], ["check"], ["key", "list"], ["restore", "latest", "--target", ws.PathOf("restored")], ["unlock"] })
        {
            (await ws.RepoAsync([.. args, "--json"])).ShouldSucceed().Json();
        }
    }

    /// <summary>The keys of the "requests" object: what a remote store counts (StoreStatistics).</summary>
    private static readonly string[] RequestKeys = ["list", "get", "get_range", "head", "put", "delete", "retries", "bytes_up", "bytes_down", "total"];

    [Fact]
    public async Task Json_output_of_a_command_that_opened_a_repository_reports_its_requests_all_zero_for_a_local_folder()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 10_000);
        var objects = new List<(string Command, System.Text.Json.JsonElement Json)>
        {
            ("init", (await ws.RepoAsync(["init", "--json", .. Workspace.CheapKdf])).ShouldSucceed().Json()),
            ("backup", await ws.BackupAsync(src)),
        };
        foreach (var args in new[] { new[] { "check" }, ["stats"], ["restore", "latest", "--target", ws.PathOf("restored")], ["unlock"], ["parity"], ["forget", "--keep-last", "1", "--dry-run"] })
        {
            var run = (await ws.RepoAsync([.. args, "--json"])).ShouldSucceed();
            Assert.Empty(run.StdErr);
            objects.Add((string.Join(' ', args), run.Json()));
        }

        foreach (var (command, json) in objects)
        {
            Assert.True(json.TryGetProperty("requests", out var requests), $"`{command} --json` has no \"requests\"\n{json}");
            Assert.Equal(RequestKeys, requests.EnumerateObject().Select(p => p.Name));
            Assert.All(requests.EnumerateObject(), p => Assert.Equal(0, p.Value.GetInt64()));
        }

        // A list stays a list: scripts read `snapshots --json` and `ls --json` as arrays.
        var snapshots = (await ws.RepoAsync("snapshots", "--json")).ShouldSucceed();
        Assert.Empty(snapshots.StdErr);
        Assert.Equal(System.Text.Json.JsonValueKind.Array, snapshots.Json().ValueKind);
        Assert.Single(snapshots.Json().EnumerateArray());
        Assert.Equal(System.Text.Json.JsonValueKind.Array, (await ws.RepoAsync("ls", "latest", "--json")).ShouldSucceed().Json().ValueKind);
    }

    [Fact]
    public async Task Help_names_the_store_options_and_the_unit_of_a_rate()
    {
        using var ws = new Workspace();

        var help = (await ws.RunAsync("snapshots", "--help")).ShouldSucceed();

        foreach (var option in new[] { "--connections", "--limit-upload", "--limit-download", "--no-cache", "bytes per second", "s3:", "azure:" })
        {
            help.StdOutShouldContain(option);
        }
    }

    [Fact]
    public async Task Demo_backs_up_restores_and_verifies_a_checkpoint_series_bit_identical()
    {
        using var ws = new Workspace();
        string dir = ws.PathOf("demo");

        var demo = (await ws.RunAsync("demo", "--dir", dir, "--checkpoints", "2", "--size", "4")).ShouldSucceed();

        demo.StdOutShouldContain("bit-identical");
        Assert.DoesNotContain("DIFFERENT", demo.StdOut, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(dir, "repository", "config")), $"the demo repository should be in {dir}/repository\n{demo}");
        var snapshots = (await ws.RunAsync("--repo", Path.Combine(dir, "repository"), "--password-file", Path.Combine(dir, "password"), "snapshots", "--json")).ShouldSucceed().Json();
        Assert.Equal(2, snapshots.GetArrayLength());
    }

    [Theory]
    [InlineData("-q")]
    [InlineData("--quiet")]
    public async Task Backup_with_quiet_prints_nothing_when_all_goes_well(string quiet)
    {
        // Issue 12, §5: -q still printed the backup summary.
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 10_000);
        await ws.InitAsync();

        var result = (await ws.RepoAsync(quiet, "backup", src)).ShouldSucceed();

        Assert.True(result.StdOut.Length == 0 && result.StdErr.Length == 0, $"expected no output\n{result}");
        Assert.Single(await ws.SnapshotsAsync());
    }
}
