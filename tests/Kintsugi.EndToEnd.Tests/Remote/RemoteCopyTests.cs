using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.Backup.Storage;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Remote;

/// <summary>
/// `kintsugi copy` between a local folder, s3rver and Azurite, each emulator behind a fault proxy that
/// records what crossed it: local → S3 → Azure (each made with `init --copy-settings-from`), the last copy
/// restores bit-exact, a second copy moves no pack, and a copy stopped mid-way resumes where it stopped.
/// </summary>
public sealed class RemoteCopyTests(RemoteFaultTests.Emulators servers, ITestOutputHelper output) : IClassFixture<RemoteFaultTests.Emulators>, IDisposable
{
    private readonly Workspace _ws = new();
    private readonly List<FaultProxy> _proxies = [];
    private readonly string _prefix = "copies-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5));

    private FaultProxy? _s3Proxy;
    private FaultProxy? _azureProxy;

    /// <summary>The CLI's environment: credentials for both emulators (through their proxies) and nothing else from the cloud.</summary>
    private Dictionary<string, string?> CliEnvironment()
    {
        var env = new[]
        {
            "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
            "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_ENDPOINT",
        }.ToDictionary(v => v, _ => (string?)null, StringComparer.Ordinal);
        env["XDG_CACHE_HOME"] = _ws.PathOf("cache");
        env["AWS_ACCESS_KEY_ID"] = S3rverServer.AccessKey;
        env["AWS_SECRET_ACCESS_KEY"] = S3rverServer.SecretKey;
        env["AWS_REGION"] = "us-east-1";
        env["AZURE_STORAGE_CONNECTION_STRING"] =
            $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.Account};AccountKey={AzuriteServer.Key};BlobEndpoint=http://127.0.0.1:{AzureProxy.Port}/{AzuriteServer.Account};";
        return env;
    }

    private FaultProxy S3Proxy => _s3Proxy ??= Track(FaultProxy.Start(new Uri(servers.S3.Endpoint + "/"), ErrorStyle.S3));

    private FaultProxy AzureProxy => _azureProxy ??= Track(FaultProxy.Start(new Uri($"http://127.0.0.1:{servers.Azure.Port}/"), ErrorStyle.Azure));

    private FaultProxy Track(FaultProxy proxy)
    {
        _proxies.Add(proxy);
        return proxy;
    }

    private string S3Url(string name) => $"s3:http://127.0.0.1:{S3Proxy.Port}/{S3rverServer.Bucket}/{_prefix}-{name}";

    private string AzureUrl(string name) => $"azure:{RemoteFaultTests.Emulators.Container}:/{_prefix}-{name}";

    private Task<CliResult> RunAsync(string repo, params string[] args) =>
        _ws.RunWithAsync(CliEnvironment(), ["--repo", repo, "--password-file", _ws.PasswordFile, .. args]);

    private Task<CliResult> CopyAsync(string from, string to, params string[] more) =>
        RunAsync(to, ["copy", "--from-repo", from, "--from-password-file", _ws.PasswordFile, "--all", "--json", .. more]);

    private async Task InitLikeAsync(string repo, string from) =>
        (await RunAsync(repo, ["init", "--copy-settings-from", from, "--from-password-file", _ws.PasswordFile, .. Workspace.CheapKdf])).ShouldSucceed();

    /// <summary>A local repository with small packs holding one snapshot per item of <paramref name="megabytes"/>; the source folder.</summary>
    private async Task<(string Repo, string Src)> LocalSourceAsync(params int[] megabytes)
    {
        string repo = _ws.PathOf("local");
        await RemoteFaultTests.InitSmallPacksAsync(repo, new StoreOptions());
        string src = _ws.PathOf("src");
        for (int round = 0; round < megabytes.Length; round++)
        {
            for (int i = 0; i < megabytes[round] * 4; i++)
            {
                FileTree.WriteRandom(Path.Combine(src, $"round-{round}", $"part-{i:D2}.bin"), 256 * 1024 - i * 61);
            }
            (await RunAsync(repo, "backup", "--json", src)).ShouldSucceed();
        }
        return (repo, src);
    }

    private static JsonElement Requests(JsonElement json) => json.GetProperty("requests");

    [Fact]
    public async Task Local_to_s3_to_azure_restores_bit_exact_and_a_second_copy_moves_no_pack()
    {
        var (local, src) = await LocalSourceAsync(2, 1);
        string s3 = S3Url("s3"), azure = AzureUrl("azure");

        await InitLikeAsync(s3, local);
        var toS3 = (await CopyAsync(local, s3)).ShouldSucceed().Json();
        Assert.Equal(2, toS3.GetProperty("snapshots_copied").GetInt32());
        Assert.True(S3Proxy.Requests.Count(RemoteFaultTests.IsPackUpload) >= 8, "expected about a dozen packs uploaded to S3");

        await InitLikeAsync(azure, s3);
        var toAzure = (await CopyAsync(s3, azure)).ShouldSucceed().Json();
        Assert.Equal(2, toAzure.GetProperty("snapshots_copied").GetInt32());
        Assert.Equal(toS3.GetProperty("bytes_copied").GetInt64(), toAzure.GetProperty("bytes_copied").GetInt64());
        output.WriteLine($"local -> s3: {Requests(toS3)}; s3 -> azure: {Requests(toAzure)}");

        string restored = _ws.PathOf("restored");
        (await RunAsync(azure, "restore", "latest", "--target", restored)).ShouldSucceed();
        FileTree.AssertSameTree(src, restored + src);
        (await RunAsync(azure, "check", "--read-data")).ShouldSucceed();
        var originals = (await RunAsync(azure, "snapshots", "--json")).ShouldSucceed().Json().EnumerateArray().Select(s => s.GetProperty("original").GetString()).ToList();
        var inS3 = (await RunAsync(s3, "snapshots", "--json")).ShouldSucceed().Json().EnumerateArray().Select(s => s.GetProperty("original").GetString()).ToList();
        Assert.Equal(inS3, originals);

        // Again: nothing is missing, so no pack is read from the source or written to the destination.
        S3Proxy.ClearRequests();
        AzureProxy.ClearRequests();
        var again = (await CopyAsync(s3, azure)).ShouldSucceed().Json();
        Assert.Equal((0, 2), (again.GetProperty("snapshots_copied").GetInt32(), again.GetProperty("snapshots_skipped").GetInt32()));
        Assert.Equal(0, again.GetProperty("packs_written").GetInt64());
        Assert.DoesNotContain(AzureProxy.Requests, RemoteFaultTests.IsPackUpload);
        Assert.DoesNotContain(S3Proxy.Requests, RemoteFaultTests.IsPackDownload);
        Assert.DoesNotContain(AzureProxy.Requests, r => r.Method == "PUT" && (r.Path.Contains("/index/", StringComparison.Ordinal) || r.Path.Contains("/snapshots/", StringComparison.Ordinal)));
        output.WriteLine($"second s3 -> azure: {Requests(again)}; azure saw {string.Join(", ", AzureProxy.Requests.Select(r => r.Method).GroupBy(m => m).Select(g => $"{g.Count()} {g.Key}"))}");
        Assert.Equal(0, (await CopyAsync(local, s3)).ShouldSucceed().Json().GetProperty("snapshots_copied").GetInt32());
    }

    [Fact]
    public async Task A_copy_stopped_mid_way_resumes_where_it_stopped_and_one_cut_off_mid_way_finishes_after_retries()
    {
        var (local, src) = await LocalSourceAsync(4);
        string stopped = S3Url("stopped"), cut = AzureUrl("cut");
        await InitLikeAsync(stopped, local);
        await InitLikeAsync(cut, local);

        // Refused for good after six packs: one clear line; the packs indexed so far stay.
        int packs = 0;
        var denied = S3Proxy.Fail(HttpStatusCode.Forbidden, times: FaultProxy.Always, when: r => RemoteFaultTests.IsPackUpload(r) && Interlocked.Increment(ref packs) > 6, code: "AccessDenied");
        string line = (await CopyAsync(local, stopped)).ShouldFailCleanly(1);
        output.WriteLine(line);
        Assert.True(denied.Fired > 0);
        denied.Cancel();
        var resumed = (await CopyAsync(local, stopped)).ShouldSucceed().Json();
        Assert.Equal(1, resumed.GetProperty("snapshots_copied").GetInt32());

        // Cut off mid-copy and back 3 s later: the same copy finishes after retries.
        AzureProxy.ClearRequests();
        AzureProxy.BytesPerSecond = 1024 * 1024;
        var copy = CopyAsync(local, cut);
        var clock = Stopwatch.StartNew();
        while (AzureProxy.Requests.Count(RemoteFaultTests.IsPackUpload) < 3 && !copy.IsCompleted)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new XunitException("waited 60 s for three pack uploads");
            }
            await Task.Delay(20);
        }
        Assert.False(copy.IsCompleted, "the copy ended before the cut; nothing was tested");
        AzureProxy.Cut();
        await Task.Delay(TimeSpan.FromSeconds(3));
        AzureProxy.BytesPerSecond = 0;
        AzureProxy.Restore();
        var whole = (await copy).ShouldSucceed().Json();
        Assert.True(Requests(whole).GetProperty("retries").GetInt64() > 0, $"expected the requests the cut broke counted as retries: {Requests(whole)}");

        long full = whole.GetProperty("bytes_copied").GetInt64();
        long rest = resumed.GetProperty("bytes_copied").GetInt64();
        Assert.True(rest < full, $"the resumed copy moved {rest} bytes, no fewer than a whole copy ({full}): nothing of the stopped one was kept");

        foreach (string repo in new[] { stopped, cut })
        {
            (await RunAsync(repo, "check", "--read-data")).ShouldSucceed();
            string restored = _ws.PathOf("restored-" + repo.GetHashCode(StringComparison.Ordinal).ToString("x8", System.Globalization.CultureInfo.InvariantCulture));
            (await RunAsync(repo, "restore", "latest", "--target", restored)).ShouldSucceed();
            FileTree.AssertSameTree(src, restored + src);
        }
    }

    public void Dispose()
    {
        foreach (var proxy in _proxies)
        {
            proxy.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        _ws.Dispose();
    }
}
