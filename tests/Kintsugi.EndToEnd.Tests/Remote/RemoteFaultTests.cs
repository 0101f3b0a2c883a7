using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.Backup;
using Kintsugi.Backup.Storage;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Remote;

/// <summary>
/// The real CLI backing up to s3rver and Azurite through the fault proxy: bursts of 503, 429 with
/// Retry-After and SlowDown / ServerBusy, connections dropped mid-upload and mid-download, stalls, slow
/// bandwidth, the server cut off and back, s3rver killed and started again on its folder. Each backup
/// finishes after retries (exit 0) or fails with one clear line; afterwards `check --read-data` passes,
/// every snapshot committed before restores bit-exact, and a retried backup succeeds.
/// </summary>
/// <remarks>
/// The repositories are made in the test process with 256 KiB packs and small chunks (pack size is not a
/// CLI option), so a few MiB make a dozen packs and a fault lands in the middle of a backup.
/// Tests marked "NEEDS KINTSUGI_STALL_TIMEOUT" / "NEEDS KINTSUGI_RETRY_BUDGET" rely on environment variables
/// the CLI does not read yet (StoreOptions.StallTimeout is 30 s and RetryBudget 5 min, with no way to set them
/// from outside): until it does, they fail when the command is killed after the harness's 60 s.
/// </remarks>
public sealed class RemoteFaultTests(RemoteFaultTests.Emulators servers, ITestOutputHelper output) : IClassFixture<RemoteFaultTests.Emulators>, IDisposable
{
    private const string Password = "correct horse battery staple";
    private readonly Workspace _ws = new();
    private readonly List<FaultProxy> _proxies = [];

    /// <summary>One s3rver and one Azurite for the class (each test works under its own prefix).</summary>
    public sealed class Emulators : IAsyncLifetime
    {
        public const string Container = "kintsugi";

        internal S3rverServer S3 { get; private set; } = null!;

        internal AzuriteServer Azure { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            var s3 = S3rverServer.StartAsync();
            var azure = AzuriteServer.StartAsync(Container);
            S3 = await s3;
            Azure = await azure;
        }

        public async Task DisposeAsync()
        {
            if (S3 is not null)
            {
                await S3.DisposeAsync();
            }
            if (Azure is not null)
            {
                await Azure.DisposeAsync();
            }
        }
    }

    /// <summary>A repository behind its own fault proxy: the URL the CLI gets, and the environment with its credentials.</summary>
    private sealed record Target(string Kind, string Prefix, string Url, FaultProxy Proxy, Dictionary<string, string?> Environment)
    {
        public string BusyCode => Kind == "s3" ? "SlowDown" : "ServerBusy";

        public string DeniedCode => Kind == "s3" ? "AccessDenied" : "AuthorizationPermissionMismatch";
    }

    /// <summary>Every variable a store reads credentials from: cleared, so only the test's own count.</summary>
    private static readonly string[] CloudVariables =
    [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
        "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
        "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_ENDPOINT",
    ];

    internal static bool IsPackUpload(ProxyRequest r) => r.Method == "PUT" && r.Path.Contains("/data/", StringComparison.Ordinal);

    internal static bool IsPackDownload(ProxyRequest r) => r.Method == "GET" && r.Path.Contains("/data/", StringComparison.Ordinal);

    internal static bool IsMetadataUpload(ProxyRequest r) => r.Method == "PUT" && (r.Path.Contains("/index/", StringComparison.Ordinal) || r.Path.Contains("/snapshots/", StringComparison.Ordinal));

    /// <summary>A new repository with small packs under a fresh prefix of the <paramref name="kind"/> emulator, reached through a new fault proxy.</summary>
    private async Task<Target> TargetAsync(string kind, Uri? upstream = null, string? prefix = null)
    {
        prefix ??= "faults-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5));
        var env = CloudVariables.ToDictionary(v => v, _ => (string?)null, StringComparer.Ordinal);
        env["XDG_CACHE_HOME"] = _ws.PathOf("cache");
        Target target;
        StoreOptions direct;
        string directUrl;
        if (kind == "s3")
        {
            var proxy = FaultProxy.Start(upstream ?? new Uri(servers.S3.Endpoint + "/"), ErrorStyle.S3);
            _proxies.Add(proxy);
            env["AWS_ACCESS_KEY_ID"] = S3rverServer.AccessKey;
            env["AWS_SECRET_ACCESS_KEY"] = S3rverServer.SecretKey;
            env["AWS_REGION"] = "us-east-1";
            target = new Target(kind, prefix, $"s3:http://127.0.0.1:{proxy.Port}/{S3rverServer.Bucket}/{prefix}", proxy, env);
            directUrl = target.Url;
            direct = new StoreOptions { Environment = name => env.GetValueOrDefault(name), RetryBudget = TimeSpan.FromSeconds(20) };
        }
        else
        {
            var proxy = FaultProxy.Start(upstream ?? new Uri($"http://127.0.0.1:{servers.Azure.Port}/"), ErrorStyle.Azure);
            _proxies.Add(proxy);
            env["AZURE_STORAGE_CONNECTION_STRING"] =
                $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.Account};AccountKey={AzuriteServer.Key};BlobEndpoint=http://127.0.0.1:{proxy.Port}/{AzuriteServer.Account};";
            target = new Target(kind, prefix, $"azure:{Emulators.Container}:/{prefix}", proxy, env);
            directUrl = target.Url;
            direct = new StoreOptions { Environment = name => env.GetValueOrDefault(name), RetryBudget = TimeSpan.FromSeconds(20) };
        }
        await InitSmallPacksAsync(directUrl, direct);
        target.Proxy.ClearRequests();
        return target;
    }

    /// <summary>Creates the repository in this process: 256 KiB packs, 32/64/256 KiB chunks, cheap key derivation.</summary>
    internal static async Task InitSmallPacksAsync(string url, StoreOptions options)
    {
        IBlobStore store = StoreFactory.Open(url, options);
        try
        {
            var small = new RepositoryOptions { ChunkMin = 32 * 1024, ChunkAverage = 64 * 1024, ChunkMax = 256 * 1024, PackSize = 256 * 1024 };
            await Repository.InitAsync(store, Password, new KdfParameters(8, 1, 1), small, "test", "test", TimeProvider.System);
        }
        finally
        {
            (store as IDisposable)?.Dispose();
        }
    }

    private Task<CliResult> RunAsync(Target t, params string[] args) =>
        _ws.RunWithAsync(t.Environment, ["--repo", t.Url, "--password-file", _ws.PasswordFile, .. args]);

    private static long Retries(JsonElement json) => json.GetProperty("requests").GetProperty("retries").GetInt64();

    /// <summary>Writes <paramref name="megabytes"/> MiB of random data in 256 KiB files under the source folder.</summary>
    private string AddData(string name, int megabytes)
    {
        string src = _ws.PathOf("src");
        for (int i = 0; i < megabytes * 4; i++)
        {
            FileTree.WriteRandom(Path.Combine(src, name, $"part-{i:D2}.bin"), 256 * 1024 - i * 97);
        }
        return src;
    }

    /// <summary>A committed snapshot and the source as it was then.</summary>
    private sealed record Committed(string Id, SortedDictionary<string, string> Listing);

    private async Task<Committed> BackupAsync(Target t, string src, string what, params string[] more)
    {
        var json = (await RunAsync(t, ["backup", "--json", .. more, src])).ShouldSucceed().Json();
        output.WriteLine($"{t.Kind}: {what}: retries {Retries(json)}; requests {json.GetProperty("requests")}");
        return new Committed(json.GetProperty("snapshot").GetString()!, FileTree.Listing(src));
    }

    /// <summary>`check --read-data` passes and every committed snapshot restores bit-exact (faults the caller set still firing).</summary>
    private async Task<long> CheckAndRestoreAllAsync(Target t, string src, IEnumerable<Committed> committed)
    {
        var check = (await RunAsync(t, "check", "--read-data", "--json")).ShouldSucceed().Json();
        long retries = Retries(check);
        foreach (var (snapshot, i) in committed.Select((c, i) => (c, i)))
        {
            string target = _ws.PathOf($"restored-{t.Kind}-{i}");
            var restore = (await RunAsync(t, "restore", snapshot.Id, "--target", target, "--json")).ShouldSucceed().Json();
            retries += Retries(restore);
            FileTree.AssertSameListing(snapshot.Listing, FileTree.Listing(target + src), $"snapshot {snapshot.Id[..8]} restored from {t.Url}");
        }
        return retries;
    }

    [Theory]
    [InlineData("s3")]
    [InlineData("azure")]
    public async Task Bursts_of_errors_dropped_connections_and_slow_bandwidth_are_retried_and_nothing_is_lost(string kind)
    {
        var t = await TargetAsync(kind);
        string src = AddData("a", 3);

        // Bursts of 503, 429 with Retry-After, and the service's "slow down" on pack and metadata uploads.
        var unavailable = t.Proxy.Fail(HttpStatusCode.ServiceUnavailable, times: 3, when: IsPackUpload);
        var throttled = t.Proxy.Fail(HttpStatusCode.TooManyRequests, times: 2, when: IsPackUpload, retryAfter: TimeSpan.FromSeconds(1));
        var slowDown = t.Proxy.Fail(HttpStatusCode.ServiceUnavailable, times: 2, when: IsMetadataUpload, code: t.BusyCode);
        var first = await BackupAsync(t, src, "bursts of 503/429/" + t.BusyCode);
        Assert.Equal((3, 2, 2), (unavailable.Fired, throttled.Fired, slowDown.Fired));
        var snapshots = (await RunAsync(t, "snapshots", "--json")).ShouldSucceed();
        Assert.Equal(1, snapshots.Json().GetArrayLength());
        long retried = Retries(JsonDocument.Parse(snapshots.StdErrLines.Single(l => l.StartsWith("{\"requests\"", StringComparison.Ordinal))).RootElement);
        Assert.Equal(0, retried);

        // Connections dropped mid-upload: the pack's PUT is cut after 64 KiB of its body.
        AddData("b", 1);
        var dropped = t.Proxy.DropRequest(64 * 1024, times: 3, when: IsPackUpload);
        var second = await BackupAsync(t, src, "uploads dropped mid-body");
        Assert.Equal(3, dropped.Fired);

        // Slow bandwidth at the proxy, and the CLI's own upload limit: slow but moving is not a fault.
        AddData("c", 1);
        t.Proxy.BytesPerSecond = 1024 * 1024;
        var json = (await RunAsync(t, "--limit-upload", "512K", "backup", "--json", src)).ShouldSucceed().Json();
        t.Proxy.BytesPerSecond = 0;
        Assert.Equal(0, Retries(json));
        var third = new Committed(json.GetProperty("snapshot").GetString()!, FileTree.Listing(src));

        // Downloads dropped mid-body and 503s while checking and restoring.
        var downDropped = t.Proxy.DropResponse(20_000, times: 4, when: IsPackDownload);
        var downFailed = t.Proxy.Fail(HttpStatusCode.ServiceUnavailable, times: 2, when: IsPackDownload);
        long readRetries = await CheckAndRestoreAllAsync(t, src, [first, second, third]);
        Assert.Equal((4, 2), (downDropped.Fired, downFailed.Fired));
        Assert.True(readRetries >= 6, $"expected the 6 failed downloads counted in requests.retries, got {readRetries}");
    }

    // Fails for S3 at the time of writing (Azure passes): see the report of issue 14's fault tests. The errors the
    // proxy answers are each counted; a dropped upload is suspected to be sent again by .NET's SocketsHttpHandler on
    // its own (a reused connection that failed before any answer), below Polly and the counters.
    [Theory]
    [InlineData("s3")]
    [InlineData("azure")]
    public async Task The_counted_retries_and_requests_match_what_the_server_saw(string kind)
    {
        var t = await TargetAsync(kind);
        string src = AddData("a", 1);
        var unavailable = t.Proxy.Fail(HttpStatusCode.ServiceUnavailable, times: 2, when: IsPackUpload);
        var failed = t.Proxy.Fail(HttpStatusCode.InternalServerError, times: 1, when: IsMetadataUpload);
        var answered = (await RunAsync(t, "backup", "--json", src)).ShouldSucceed().Json();
        output.WriteLine($"errors answered: fired 503 {unavailable.Fired}, 500 {failed.Fired}; requests {answered.GetProperty("requests")}; proxy saw {string.Join(", ", t.Proxy.Requests)}");
        Assert.Equal((2, 1), (unavailable.Fired, failed.Fired));
        Assert.Equal(3, Retries(answered));
        Assert.Equal(t.Proxy.CountOf("PUT"), answered.GetProperty("requests").GetProperty("put").GetInt64());

        AddData("b", 1);
        t.Proxy.ClearRequests();
        var dropped = t.Proxy.DropRequest(10_000, times: 1, when: IsPackUpload);
        var json = (await RunAsync(t, "backup", "--json", src)).ShouldSucceed().Json();
        output.WriteLine($"upload dropped: fired {dropped.Fired}; requests {json.GetProperty("requests")}; proxy saw {string.Join(", ", t.Proxy.Requests)}");
        Assert.Equal(1, dropped.Fired);
        long put = json.GetProperty("requests").GetProperty("put").GetInt64();
        if (kind == "s3")
        {
            // Known undercount: .NET's SocketsHttpHandler sends a request again by itself when a pooled
            // connection closes before any answer, below the store's counters (README, "Repositories").
            Assert.InRange(Retries(json), 0, 1);
            Assert.InRange(t.Proxy.CountOf("PUT") - put, 0, dropped.Fired - Retries(json));
        }
        else
        {
            Assert.Equal(1, Retries(json));
            Assert.Equal(t.Proxy.CountOf("PUT"), put);
        }
    }

    [Theory]
    [InlineData("s3")]
    [InlineData("azure")]
    public async Task The_server_cut_off_mid_backup_and_back_is_retried_and_nothing_is_lost(string kind)
    {
        var t = await TargetAsync(kind);
        string src = AddData("a", 1);
        var first = await BackupAsync(t, src, "before the cut");

        AddData("b", 3);
        t.Proxy.ClearRequests();
        t.Proxy.BytesPerSecond = 1024 * 1024; // so that the cut lands mid-backup
        var backup = RunAsync(t, "backup", "--json", src);
        await WaitUntilAsync(() => t.Proxy.Requests.Count(IsPackUpload) >= 3 || backup.IsCompleted, "three pack uploads");
        Assert.False(backup.IsCompleted, "the backup ended before the cut; nothing was tested");
        t.Proxy.Cut();
        await Task.Delay(TimeSpan.FromSeconds(3));
        t.Proxy.BytesPerSecond = 0;
        t.Proxy.Restore();
        var json = (await backup).ShouldSucceed().Json();
        Assert.True(Retries(json) > 0, $"expected the requests the cut broke counted as retries: {json.GetProperty("requests")}");
        Assert.True(t.Proxy.CutConnections > 0);
        var second = new Committed(json.GetProperty("snapshot").GetString()!, FileTree.Listing(src));

        await CheckAndRestoreAllAsync(t, src, [first, second]);
    }

    [Fact]
    public async Task S3rver_killed_and_started_again_on_its_folder_mid_backup_loses_nothing()
    {
        await using var s3 = await KillableS3rver.StartAsync(_ws.PathOf("s3rver"));
        var t = await TargetAsync("s3", s3.Url);
        string src = AddData("a", 1);
        var first = await BackupAsync(t, src, "before the kill");

        AddData("b", 3);
        t.Proxy.ClearRequests();
        t.Proxy.BytesPerSecond = 1024 * 1024;
        var backup = RunAsync(t, "backup", "--json", src);
        await WaitUntilAsync(() => t.Proxy.Requests.Count(IsPackUpload) >= 3 || backup.IsCompleted, "three pack uploads");
        Assert.False(backup.IsCompleted, "the backup ended before the kill; nothing was tested");
        await s3.KillAsync();
        await Task.Delay(TimeSpan.FromSeconds(2));
        t.Proxy.BytesPerSecond = 0;
        await s3.StartAgainAsync();
        var json = (await backup).ShouldSucceed().Json();
        Assert.True(Retries(json) > 0, $"expected the requests the kill broke counted as retries: {json.GetProperty("requests")}");
        var second = new Committed(json.GetProperty("snapshot").GetString()!, FileTree.Listing(src));

        await CheckAndRestoreAllAsync(t, src, [first, second]);
    }

    [Theory]
    [InlineData("s3")]
    [InlineData("azure")]
    public async Task A_permanent_refusal_mid_backup_fails_with_one_clear_line_and_the_next_backup_succeeds(string kind)
    {
        var t = await TargetAsync(kind);
        string src = AddData("a", 1);
        var first = await BackupAsync(t, src, "before the refusal");

        AddData("b", 2);
        int packs = 0;
        var denied = t.Proxy.Fail(HttpStatusCode.Forbidden, times: FaultProxy.Always, when: r => IsPackUpload(r) && Interlocked.Increment(ref packs) > 2, code: t.DeniedCode);
        string line = (await RunAsync(t, "backup", src)).ShouldFailCleanly(1);
        Assert.True(denied.Fired > 0);
        Assert.Contains(t.Prefix, line, StringComparison.Ordinal);
        Assert.Contains("denied", line, StringComparison.OrdinalIgnoreCase);
        output.WriteLine(line);

        denied.Cancel();
        var second = await BackupAsync(t, src, "after the refusal");
        Assert.Equal(2, (await RunAsync(t, "snapshots", "--json")).ShouldSucceed().Json().GetArrayLength());
        await CheckAndRestoreAllAsync(t, src, [first, second]);
    }

    // NEEDS KINTSUGI_STALL_TIMEOUT: the CLI has no way to set StoreOptions.StallTimeout (30 s). With it at 2 s, each
    // stalled attempt is cancelled after 2 s; at 30 s, three stalls of the same request outlast the harness's 60 s.
    [Theory]
    [InlineData("s3")]
    [InlineData("azure")]
    public async Task Stalls_longer_than_the_stall_timeout_are_cancelled_and_retried(string kind)
    {
        var t = await TargetAsync(kind);
        t.Environment["KINTSUGI_STALL_TIMEOUT"] = "2s";
        string src = AddData("a", 1);
        string? stalledUpload = null;
        var upStall = t.Proxy.StallResponse(TimeSpan.FromSeconds(40), times: 3, when: r => IsPackUpload(r) && (Interlocked.CompareExchange(ref stalledUpload, r.Path, null) ?? r.Path) == r.Path);

        var json = (await RunAsync(t, "backup", "--json", src)).ShouldSucceed().Json();
        var committed = new Committed(json.GetProperty("snapshot").GetString()!, FileTree.Listing(src));
        Assert.Equal(3, upStall.Fired);
        Assert.True(Retries(json) >= 3, $"expected the 3 stalled attempts counted as retries: {json.GetProperty("requests")}");

        string? stalledDownload = null;
        var downStall = t.Proxy.StallResponse(TimeSpan.FromSeconds(40), times: 2, when: r => IsPackDownload(r) && (Interlocked.CompareExchange(ref stalledDownload, r.Path, null) ?? r.Path) == r.Path);
        Assert.True(await CheckAndRestoreAllAsync(t, src, [committed]) >= 2);
        Assert.Equal(2, downStall.Fired);
    }

    // NEEDS KINTSUGI_RETRY_BUDGET: the CLI has no way to set StoreOptions.RetryBudget (5 min), so a server that stays
    // away keeps a command retrying for 5 minutes; with the budget at 3 s it gives up with one line.
    [Fact]
    public async Task A_server_away_longer_than_the_retry_budget_fails_with_one_clear_line_and_a_retried_backup_succeeds()
    {
        var t = await TargetAsync("s3");
        t.Environment["KINTSUGI_RETRY_BUDGET"] = "3s";
        string src = AddData("a", 1);
        var first = await BackupAsync(t, src, "before the outage");

        AddData("b", 2);
        t.Proxy.Cut();
        string line = (await RunAsync(t, "backup", src)).ShouldFailCleanly(1);
        Assert.Contains("still failed after retrying", line, StringComparison.Ordinal);
        output.WriteLine(line);

        t.Proxy.Restore();
        var second = await BackupAsync(t, src, "after the outage");
        await CheckAndRestoreAllAsync(t, src, [first, second]);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new XunitException($"waited 60 s for {what}");
            }
            await Task.Delay(20);
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

    /// <summary>s3rver on a fixed port and folder that a test can kill (SIGKILL) and start again on both.</summary>
    private sealed class KillableS3rver : IAsyncDisposable
    {
        private readonly string _folder;
        private readonly int _port;
        private Process? _process;

        private KillableS3rver(string folder, int port)
        {
            _folder = folder;
            _port = port;
        }

        public Uri Url => new($"http://127.0.0.1:{_port}/");

        public static async Task<KillableS3rver> StartAsync(string folder)
        {
            Directory.CreateDirectory(folder);
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            var server = new KillableS3rver(folder, port);
            await server.StartAgainAsync();
            return server;
        }

        public async Task StartAgainAsync()
        {
            var start = new ProcessStartInfo(TestServers.Program("s3rver")) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string arg in new[] { "-d", _folder, "-a", "127.0.0.1", "-p", _port.ToString(CultureInfo.InvariantCulture), "--configure-bucket", S3rverServer.Bucket, "--silent" })
            {
                start.ArgumentList.Add(arg);
            }
            _process = Process.Start(start) ?? throw new InvalidOperationException("s3rver did not start");
            _process.OutputDataReceived += (_, _) => { };
            _process.ErrorDataReceived += (_, _) => { };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            var clock = Stopwatch.StartNew();
            while (true)
            {
                if (_process.HasExited)
                {
                    throw new InvalidOperationException($"s3rver exited with {_process.ExitCode} before answering on port {_port}");
                }
                try
                {
                    using var answer = await http.GetAsync(new Uri(Url, S3rverServer.Bucket));
                    return; // any answer: it listens
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException && clock.Elapsed < TimeSpan.FromSeconds(60))
                {
                    await Task.Delay(100);
                }
            }
        }

        public async Task KillAsync()
        {
            if (_process is { HasExited: false } p)
            {
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync();
            }
            _process?.Dispose();
            _process = null;
        }

        public async ValueTask DisposeAsync() => await KillAsync();
    }
}
