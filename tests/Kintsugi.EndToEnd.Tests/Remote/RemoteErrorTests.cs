using System.Diagnostics;
using System.Security.Cryptography;
using Kintsugi.Backup.Storage;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Remote;

public sealed class S3RemoteErrorTests(S3ServerFixture server, ITestOutputHelper output) : RemoteErrorTests(server, output), IClassFixture<S3ServerFixture>
{
    [Fact]
    public async Task An_s3_url_with_credentials_in_it_is_refused_without_echoing_the_secret()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        const string secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";
        string endpoint = new Uri(repo.Url["s3:".Length..]).Authority;
        foreach (string url in new[] { $"s3:http://AKIAEXAMPLE:{secret}@{endpoint}/kintsugi/p", $"s3:http://{endpoint}/kintsugi/p?X-Amz-Signature={secret}" })
        {
            foreach (string[] command in new[] { ["init", .. Workspace.CheapKdf], new[] { "snapshots" } })
            {
                var run = await repo.RunAsync(["--repo", url, "--password-file", ws.PasswordFile, .. command]);
                string line = OneCleanLine(run);
                Assert.DoesNotContain(secret, run.StdOut + run.StdErr, StringComparison.Ordinal);
                Output.WriteLine(line);
            }
        }
    }
}

public sealed class AzureRemoteErrorTests(AzureServerFixture server, ITestOutputHelper output) : RemoteErrorTests(server, output), IClassFixture<AzureServerFixture>
{
    // s3rver accepts any key (it does not check signatures), so wrong credentials are tried on Azurite only.
    [Fact]
    public async Task Wrong_credentials_fail_at_once_in_one_line_naming_the_url_and_not_the_secret()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 10_000);
        await repo.InitAsync();
        foreach (var (k, v) in Server.WrongCredentials)
        {
            repo.Environment[k] = v;
        }
        foreach (string[] command in new[] { ["snapshots"], ["backup", src], new[] { "check" } })
        {
            var clock = Stopwatch.StartNew();
            var run = await repo.RepoAsync(command);
            Output.WriteLine($"{command[0]} with a wrong key: {clock.Elapsed.TotalSeconds:F1} s, exit {run.ExitCode}: {run.StdErr.Trim()}");
            string line = OneCleanLine(run);
            Assert.Contains(repo.Url, line, StringComparison.Ordinal);
            Assert.DoesNotContain(Server.Secret, run.StdOut + run.StdErr, StringComparison.Ordinal);
        }
        // init with a wrong key, on a fresh prefix, does not create anything.
        var init = await repo.RunAsync(["--repo", Server.Url(RemoteServerFixture.NewPrefix()), "--password-file", ws.PasswordFile, "init", .. Workspace.CheapKdf]);
        OneCleanLine(init);
    }

    [Fact]
    public async Task An_azure_url_with_a_key_or_sas_in_it_is_refused_without_echoing_the_secret()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        const string secret = "c2VjcmV0LWtleS1ub3QtdG8tYmUtc2hvd24=";
        foreach (string url in new[]
        {
            $"azure:https://devstoreaccount1:{secret}@127.0.0.1/kintsugi/p",
            $"azure:kintsugi:/p?sv=2022-11-02&sig={secret}",
            $"azure:kintsugi:/p;AccountKey={secret}",
        })
        {
            var run = await repo.RunAsync("--repo", url, "--password-file", ws.PasswordFile, "snapshots");
            string line = OneCleanLine(run);
            Assert.DoesNotContain(secret, run.StdOut + run.StdErr, StringComparison.Ordinal);
            Output.WriteLine(line);
        }
    }
}

/// <summary>
/// What goes wrong with a remote repository is one line naming the URL and the cause, at once
/// (permanent errors are not retried), with no stack trace and no secret in it.
/// </summary>
public abstract class RemoteErrorTests(RemoteServerFixture server, ITestOutputHelper output)
{
    protected RemoteServerFixture Server { get; } = server;

    protected ITestOutputHelper Output { get; } = output;

    /// <summary>Exit code not 0, exactly one line on stderr starting "kintsugi:", no stack trace, no internal error; returns the line.</summary>
    internal static string OneCleanLine(CliResult run)
    {
        if (run.ExitCode == 0)
        {
            throw new XunitException($"expected a failure\n{run}");
        }
        run.ShouldHaveNoStackTrace();
        var lines = run.StdErrLines;
        if (lines.Count != 1 || !lines[0].StartsWith("kintsugi:", StringComparison.Ordinal) || lines[0].Contains("internal error", StringComparison.Ordinal))
        {
            throw new XunitException($"expected exactly one line on stderr starting \"kintsugi:\" (and no internal error)\n{run}");
        }
        return lines[0];
    }

    [Fact]
    public async Task A_missing_bucket_or_container_fails_in_one_line_naming_the_url()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 1_000);
        string url = Server.UrlInMissingBucket(RemoteServerFixture.NewPrefix());
        foreach (string[] command in new[] { ["snapshots"], ["backup", src], ["restore", "latest", "--target", ws.PathOf("t")], new[] { "check" } })
        {
            var clock = Stopwatch.StartNew();
            var run = await repo.RunAsync(["--repo", url, "--password-file", ws.PasswordFile, .. command]);
            Output.WriteLine($"{command[0]} on a missing bucket: {clock.Elapsed.TotalSeconds:F1} s, exit {run.ExitCode}: {run.StdErr.Trim()}");
            string line = OneCleanLine(run);
            Assert.Contains(url, line, StringComparison.Ordinal);
        }
        // A missing prefix in an existing bucket: not a repository, one line saying so.
        string empty = Server.Url(RemoteServerFixture.NewPrefix());
        var notRepo = await repo.RunAsync("--repo", empty, "--password-file", ws.PasswordFile, "snapshots");
        Assert.Contains("is not a Kintsugi repository", OneCleanLine(notRepo), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Init_on_a_prefix_that_holds_anything_is_refused_and_leaves_it_as_it_was()
    {
        using var ws = new Workspace();
        var repo = new RemoteRepository(ws, Server);
        await repo.InitAsync();
        var store = repo.OpenStore();
        var keys = await store.ListAsync(FileKind.Key);
        var config = await store.GetAsync(FileKind.Config, "config");

        string line = OneCleanLine(await repo.RepoAsync(["init", .. Workspace.CheapKdf]));
        Output.WriteLine(line);
        Assert.Contains(repo.Url, line, StringComparison.Ordinal);
        Assert.Equal(keys, await store.ListAsync(FileKind.Key));
        Assert.Equal(config, await store.GetAsync(FileKind.Config, "config"));
        Assert.Empty((await repo.RepoAsync("snapshots", "--json")).ShouldSucceed().Json().EnumerateArray());

        // A prefix holding something that is not a repository (here a lone pack) is not initialised either.
        var other = new RemoteRepository(ws, Server);
        var otherStore = other.OpenStore();
        await otherStore.PutAsync(FileKind.Pack, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)), RandomNumberGenerator.GetBytes(100));
        string refused = OneCleanLine(await other.RepoAsync(["init", .. Workspace.CheapKdf]));
        Output.WriteLine(refused);
        Assert.Contains(other.Url, refused, StringComparison.Ordinal);
        Assert.False(await otherStore.ExistsAsync(FileKind.Config, "config"), "init must not write a config next to someone else's files");
    }
}

/// <summary>
/// Repository URLs that name no bucket, container or service are refused in one line naming the URL,
/// before any request. (An unsupported scheme exits 2; a malformed s3:/azure: URL exits 1 today: both are accepted here.)
/// </summary>
public sealed class RemoteUrlErrorTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("s3:")]
    [InlineData("s3:http://127.0.0.1:1/")]
    [InlineData("s3:http://127.0.0.1:1")]
    [InlineData("s3:ftp://127.0.0.1/bucket")]
    [InlineData("azure:")]
    [InlineData("azure:Bad_Container:/p")]
    [InlineData("azure:kintsugi:/a//b")]
    public async Task A_malformed_url_is_a_usage_error_in_one_line(string url)
    {
        using var ws = new Workspace();
        foreach (string[] command in new[] { ["init", .. Workspace.CheapKdf], new[] { "snapshots" } })
        {
            var run = await ws.RunAsync(["--repo", url, "--password-file", ws.PasswordFile, .. command]);
            string line = RemoteErrorTests.OneCleanLine(run);
            output.WriteLine($"exit {run.ExitCode}: {line}");
            Assert.True(run.ExitCode is 1 or 2, $"a malformed URL exits 1 or 2\n{run}");
            Assert.Contains(url, line, StringComparison.Ordinal);
        }
    }
}
