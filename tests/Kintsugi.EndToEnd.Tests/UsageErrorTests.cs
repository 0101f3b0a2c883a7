using System.Text.RegularExpressions;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>A repository with one snapshot, shared by the cases of <see cref="UsageErrorTests"/>, which must not change it.</summary>
public sealed class SharedRepository : IAsyncLifetime
{
    public Workspace Workspace { get; } = new();

    public string Source => Workspace.PathOf("src");

    public async Task InitializeAsync()
    {
        FileTree.WriteRandom(Path.Combine(Source, "a.bin"), 2_000);
        await Workspace.InitAsync();
        await Workspace.BackupAsync(Source);
    }

    public Task DisposeAsync()
    {
        Workspace.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>
/// Bad command lines and bad values: each exits with its documented code and one clean line on stderr
/// (no stack trace, no "internal error"), and leaves the repository as it was.
/// </summary>
public sealed partial class UsageErrorTests(SharedRepository shared) : IClassFixture<SharedRepository>
{
    [GeneratedRegex(@"(?:^|\s)-\d")]
    private static partial Regex NegativeNumber();

    /// <summary>
    /// Runs <paramref name="args"/> (split at spaces; '' is an empty argument, {src} the backed-up folder,
    /// {missing} a path that does not exist, {password} the password file) against the shared repository.
    /// </summary>
    private async Task<CliResult> RunAsync(string args)
    {
        var ws = shared.Workspace;
        var tokens = args.Split(' ').Select(t => t switch
        {
            "''" => "",
            "{src}" => shared.Source,
            "{missing}" => ws.PathOf("missing"),
            "{password}" => ws.PasswordFile,
            "{target}" => ws.PathOf("restored"),
            _ => t,
        }).ToList();
        var before = FileTree.Listing(ws.Repo);
        var result = tokens.Contains("--password-file")
            ? await ws.RunAsync(["--repo", ws.Repo, .. tokens])
            : await ws.RepoAsync([.. tokens]);
        FileTree.AssertSameListing(before, FileTree.Listing(ws.Repo), $"the repository after `kintsugi {args}`");
        return result;
    }

    [Theory]
    [InlineData("frobnicate")]
    [InlineData("snapshots --frobnicate")]
    [InlineData("--frobnicate snapshots")]
    [InlineData("backup")]
    [InlineData("restore latest")]
    [InlineData("ls")]
    [InlineData("key")]
    [InlineData("key frobnicate")]
    [InlineData("forget --keep-last many")]
    [InlineData("forget --keep-last 99999999999")]
    [InlineData("forget --keep-daily -1")]
    [InlineData("forget --keep-within bogus")]
    [InlineData("forget --keep-within 99999999999d")]
    [InlineData("check --read-data-subset abc")]
    [InlineData("check --read-data-subset 150%")]
    [InlineData("prune --repack-unused 0")]
    [InlineData("demo --checkpoints 0")]
    public async Task Bad_usage_exits_2_with_one_line(string args)
    {
        (await RunAsync(args)).ShouldFailCleanly(2);
    }

    [Theory]
    [InlineData("snapshot", "unknown command 'snapshot'; did you mean 'snapshots'? (see `kintsugi --help`)")]
    [InlineData("restroe latest --target {target}", "unknown command 'restroe'; did you mean 'restore'? (see `kintsugi --help`)")]
    [InlineData("frobnicate", "unknown command 'frobnicate' (see `kintsugi --help`)")]
    [InlineData("key ad", "unknown command 'ad'; did you mean 'add'? (see `kintsugi key --help`)")]
    [InlineData("backup --wobble x {src}", "unknown option '--wobble' (a path that starts with '-' goes after `--`; see `kintsugi backup --help`)")]
    [InlineData("backup --exclud x {src}", "unknown option '--exclud'; did you mean '--exclude'? (a path that starts with '-' goes after `--`; see `kintsugi backup --help`)")]
    [InlineData("backup --ful {src}", "unknown option '--ful'; did you mean '--full'? (a path that starts with '-' goes after `--`; see `kintsugi backup --help`)")]
    [InlineData("backup {src} -Z", "unknown option '-Z' (a path that starts with '-' goes after `--`; see `kintsugi backup --help`)")]
    [InlineData("snapshots --jsn", "unknown option '--jsn'; did you mean '--json'? (see `kintsugi snapshots --help`)")]
    public async Task A_mistyped_command_or_option_is_named_with_the_closest_one_and_exits_2(string args, string message)
    {
        // Issue 12, §5: "Required command was not provided", and unknown options taken for paths (exit 1).
        Assert.Equal("kintsugi: " + message, (await RunAsync(args)).ShouldFailCleanly(2));
    }

    [Theory]
    [InlineData("--repo", "sftp:host:/srv/backups")]
    [InlineData("--repo", "rest:http://host:8000/")]
    [InlineData("KINTSUGI_REPOSITORY", "b2:bucket:path")]
    [InlineData("KINTSUGI_REPOSITORY", "gs:bucket:/")]
    public async Task A_repository_url_of_a_kind_not_supported_is_a_usage_error_not_a_local_folder(string where, string url)
    {
        // Issue 12, §5: the URL was made a local folder of that name.
        using var ws = new Workspace();
        var env = new Dictionary<string, string?> { ["KINTSUGI_REPOSITORY"] = where == "KINTSUGI_REPOSITORY" ? url : null };
        string[] args = where == "--repo" ? ["--repo", url, "--password-file", ws.PasswordFile, "init"] : ["--password-file", ws.PasswordFile, "init"];
        var before = Directory.EnumerateFileSystemEntries(ws.Root).Order(StringComparer.Ordinal).ToList();

        string line = (await ws.RunWithAsync(env, args)).ShouldFailCleanly(2);

        string scheme = url[..url.IndexOf(':', StringComparison.Ordinal)];
        Assert.Equal($"kintsugi: {where} {url}: {scheme}: repositories are not supported; give a local folder (or local:PATH), s3:http(s)://host[:port]/bucket[/prefix] or azure:container:/prefix (./{url} if a folder really has that name)", line);
        Assert.Equal(before, Directory.EnumerateFileSystemEntries(ws.Root).Order(StringComparer.Ordinal).ToList());
    }

    [Theory]
    [InlineData("s3:bucket-without-endpoint")]
    [InlineData("azure:")]
    public async Task An_s3_or_azure_url_goes_to_its_store_and_is_never_made_a_local_folder(string url)
    {
        // Malformed for its store, so the store refuses it before any request: the message names the URL.
        using var ws = new Workspace();
        var before = Directory.EnumerateFileSystemEntries(ws.Root).Order(StringComparer.Ordinal).ToList();

        string line = (await ws.RunAsync(["--repo", url, "--password-file", ws.PasswordFile, "init", .. Workspace.CheapKdf])).ShouldFailCleanly(1);

        Assert.Contains(url, line, StringComparison.Ordinal);
        Assert.DoesNotContain("not supported", line, StringComparison.Ordinal);
        Assert.Equal(before, Directory.EnumerateFileSystemEntries(ws.Root).Order(StringComparer.Ordinal).ToList());
    }

    [Fact]
    public async Task A_local_url_names_a_folder()
    {
        using var ws = new Workspace();
        (await ws.RunAsync(["--repo", "local:" + ws.Repo, "--password-file", ws.PasswordFile, "init", .. Workspace.CheapKdf])).ShouldSucceed();
        Assert.True(File.Exists(Path.Combine(ws.Repo, "config")));
        (await ws.RunAsync("--repo", "local:repo", "--password-file", ws.PasswordFile, "snapshots")).ShouldSucceed();
    }

    [Theory]
    [InlineData("--connections 0 snapshots", "--connections 0: give a number of connections from 1 to 256")]
    [InlineData("snapshots --connections 257", "--connections 257: give a number of connections from 1 to 256")]
    [InlineData("--connections many snapshots", "--connections many: give a number of connections from 1 to 256")]
    [InlineData("--limit-upload 10X snapshots", "--limit-upload 10X: give a rate in bytes per second above 0, e.g. 500000, 512K, 10M or 1G (K, M, G: powers of 1024)")]
    [InlineData("snapshots --limit-download 0", "--limit-download 0: give a rate in bytes per second above 0, e.g. 500000, 512K, 10M or 1G (K, M, G: powers of 1024)")]
    [InlineData("--limit-download 99999999999G snapshots", "--limit-download 99999999999G: give a rate in bytes per second above 0, e.g. 500000, 512K, 10M or 1G (K, M, G: powers of 1024)")]
    public async Task A_bad_store_option_is_a_usage_error_of_one_line(string args, string message)
    {
        Assert.Equal($"kintsugi: {message} (see `kintsugi snapshots --help`)", (await RunAsync(args)).ShouldFailCleanly(2));
    }

    [Theory]
    [InlineData("--connections 1 --limit-upload 512K --limit-download 10MiB snapshots")]
    [InlineData("snapshots --connections 256 --limit-upload 1G --limit-download 500000 --no-cache")]
    [InlineData("--limit-upload 10m --limit-download 64kib snapshots")]
    public async Task Good_store_options_are_accepted_and_change_nothing_for_a_local_repository(string args)
    {
        var result = (await RunAsync(args)).ShouldSucceed();
        Assert.Empty(result.StdErr);
        result.StdOutShouldContain("1 snapshots");
    }

    [Theory]
    [InlineData("backups/a:b")]
    [InlineData("./s3:bucket")]
    public async Task A_local_path_with_a_colon_after_its_start_is_still_a_folder(string path)
    {
        using var ws = new Workspace();
        (await ws.RunAsync(["--repo", path, "--password-file", ws.PasswordFile, "init", .. Workspace.CheapKdf])).ShouldSucceed();
        Assert.True(File.Exists(Path.Combine(ws.Root, path, "config")));
    }

    [Fact]
    public async Task A_path_that_starts_with_a_dash_is_backed_up_after_double_dash()
    {
        using var ws = new Workspace();
        FileTree.WriteRandom(Path.Combine(ws.PathOf("-odd"), "a.bin"), 1_000);
        await ws.InitAsync();
        (await ws.RepoAsync("backup", "--", "-odd")).ShouldSucceed();
        Assert.Single(await ws.SnapshotsAsync());
    }

    [Theory]
    [InlineData("ls zzzz")]
    [InlineData("ls latest /no/such/path")]
    [InlineData("diff zzzz latest")]
    [InlineData("restore zzzz --target {target}")]
    [InlineData("restore latest --target {target} --include /no/such/path")]
    [InlineData("key remove zzzz")]
    [InlineData("backup --parent zzzz {src}")]
    [InlineData("--password-file {missing} snapshots")]
    [InlineData("key add --new-password-file {missing} --kdf-memory 8 --kdf-iterations 1")]
    public async Task Failures_exit_1_with_one_line(string args)
    {
        (await RunAsync(args)).ShouldFailCleanly(1);
    }

    [Theory]
    [InlineData("backup ''")]
    [InlineData("key add --new-password-file {password} --kdf-memory 99999999 --kdf-iterations 1")]
    [InlineData("key add --new-password-file {password} --kdf-memory 8 --kdf-iterations 0")]
    public async Task Bad_values_fail_with_one_line_that_does_not_show_an_overflowed_number(string args)
    {
        var result = await RunAsync(args);
        Assert.True(result.ExitCode is 1 or 2, $"expected exit code 1 or 2\n{result}");
        string line = result.ShouldFailCleanly(result.ExitCode);
        Assert.False(NegativeNumber().IsMatch(line), $"the message shows a negative number the user never gave\n{result}");
    }
}
