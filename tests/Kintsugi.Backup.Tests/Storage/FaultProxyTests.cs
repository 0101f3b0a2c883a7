using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests.Storage;

/// <summary>The fault proxy itself, in front of a real s3rver, driven by plain unsigned HTTP (s3rver accepts it).</summary>
public sealed class FaultProxyTests : IClassFixture<FaultProxyTests.S3rver>, IAsyncLifetime
{
    private const string Bucket = S3rverServer.Bucket;

    private readonly S3rver _s3;
    private readonly ITestOutputHelper _output;
    private FaultProxy _proxy = null!;
    private HttpClient _client = null!;

    public FaultProxyTests(S3rver s3, ITestOutputHelper output)
    {
        _s3 = s3;
        _output = output;
    }

    public Task InitializeAsync()
    {
        _proxy = FaultProxy.Start(_s3.Url);
        _client = new HttpClient { BaseAddress = _proxy.Url, Timeout = TimeSpan.FromSeconds(60) };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _proxy.DisposeAsync();
    }

    private static string Key(string name) => $"{Bucket}/{name}-{Guid.NewGuid():N}";

    private byte[] RandomBytes(int length)
    {
        int seed = RandomNumberGenerator.GetInt32(int.MaxValue);
        _output.WriteLine($"seed {seed} for {length} bytes");
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private async Task PutAsync(string key, byte[] body, HttpClient? client = null)
    {
        using var content = new ByteArrayContent(body);
        using HttpResponseMessage response = await (client ?? _client).PutAsync(key, content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>Straight to s3rver, around the proxy.</summary>
    private async Task PutDirectAsync(string key, byte[] body)
    {
        using var direct = new HttpClient { BaseAddress = _s3.Url };
        await PutAsync(key, body, direct);
    }

    private async Task<byte[]> GetDirectAsync(string key)
    {
        using var direct = new HttpClient { BaseAddress = _s3.Url };
        return await direct.GetByteArrayAsync(key);
    }

    [Fact]
    public async Task Passes_large_bodies_through_both_ways_on_one_kept_alive_connection()
    {
        byte[] body = RandomBytes(6 * 1024 * 1024 + 17);
        string key = Key("large");

        await PutAsync(key, body);
        byte[] back = await _client.GetByteArrayAsync(key);

        Assert.Equal(body, back);
        Assert.Equal(body, await GetDirectAsync(key));
        Assert.Equal(1, _proxy.CountOf("PUT"));
        Assert.Equal(1, _proxy.CountOf("GET"));
        Assert.Equal(1, _proxy.Connections);
        Assert.True(_proxy.BytesUp > body.Length && _proxy.BytesDown > body.Length);
        Assert.All(_proxy.Requests, r => Assert.Equal($"127.0.0.1:{_proxy.Port}", r.Header("Host")));
    }

    [Fact]
    public async Task Passes_chunked_uploads_and_100_continue_through()
    {
        byte[] body = RandomBytes(3 * 1024 * 1024);
        string key = Key("chunked");
        using var content = new StreamContent(new MemoryStream(body));
        using var request = new HttpRequestMessage(HttpMethod.Put, key) { Content = content };
        request.Headers.TransferEncodingChunked = true;
        request.Headers.ExpectContinue = true;

        using HttpResponseMessage response = await _client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body, await GetDirectAsync(key));
        ProxyRequest put = Assert.Single(_proxy.Requests);
        Assert.Equal("chunked", put.Header("Transfer-Encoding"));
        Assert.Equal("100-continue", put.Header("Expect"));
    }

    [Fact]
    public async Task Fail_answers_the_next_matching_requests_then_passes_through()
    {
        string key = Key("fail");
        byte[] body = RandomBytes(200_000);
        ProxyFault fault = _proxy.Fail(HttpStatusCode.ServiceUnavailable, times: 2, when: r => r.Method == "PUT");

        for (int i = 0; i < 2; i++)
        {
            using var content = new ByteArrayContent(body);
            using HttpResponseMessage failed = await _client.PutAsync(key, content);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
            string error = await failed.Content.ReadAsStringAsync();
            Assert.Contains("<Code>SlowDown</Code>", error, StringComparison.Ordinal);
            Assert.True(failed.Headers.Contains("x-amz-request-id"));

            using HttpResponseMessage missing = await _client.GetAsync(key); // GET does not match: reaches s3rver
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }
        await PutAsync(key, body);

        Assert.Equal(body, await GetDirectAsync(key));
        Assert.Equal(2, fault.Fired);
        Assert.Equal(0, fault.Remaining);
        Assert.Equal(3, _proxy.CountOf("PUT"));
        Assert.Equal(1, _proxy.Connections); // the failed answers kept the connection alive
    }

    [Fact]
    public async Task Fail_with_retry_after_in_azure_style()
    {
        await using var azureStyle = FaultProxy.Start(_s3.Url, ErrorStyle.Azure);
        using var client = new HttpClient { BaseAddress = azureStyle.Url };
        ProxyFault fault = azureStyle.Fail((HttpStatusCode)429, retryAfter: TimeSpan.FromSeconds(2));

        using HttpResponseMessage throttled = await client.GetAsync(Key("throttled"));
        using HttpResponseMessage passed = await client.GetAsync(Key("throttled"));

        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), throttled.Headers.RetryAfter?.Delta);
        Assert.Equal("TooManyRequests", throttled.Headers.GetValues("x-ms-error-code").Single());
        Assert.Contains("<Code>TooManyRequests</Code>", await throttled.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, passed.StatusCode);
        Assert.Equal(1, fault.Fired);
    }

    [Fact]
    public async Task Concurrent_requests_fire_a_fault_exactly_as_often_as_scripted()
    {
        ProxyFault fault = _proxy.Fail(HttpStatusCode.InternalServerError, times: 5);

        HttpStatusCode[] statuses = await Task.WhenAll(Enumerable.Range(0, 24).Select(async i =>
        {
            using HttpResponseMessage response = await _client.GetAsync(Key("concurrent"));
            return response.StatusCode;
        }));

        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.InternalServerError));
        Assert.Equal(19, statuses.Count(s => s == HttpStatusCode.NotFound));
        Assert.Equal(5, fault.Fired);
        Assert.Equal(24, _proxy.CountOf("GET"));
    }

    [Fact]
    public async Task Drop_response_closes_the_connection_after_k_body_bytes_then_passes_through()
    {
        string key = Key("drop-response");
        byte[] body = RandomBytes(1024 * 1024);
        await PutDirectAsync(key, body);
        ProxyFault fault = _proxy.DropResponse(100_000, when: r => r.Method == "GET");

        using (HttpResponseMessage response = await _client.GetAsync(key, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using Stream stream = await response.Content.ReadAsStreamAsync();
            var received = new MemoryStream();
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30)); // HttpClient.Timeout ends at the head
            await Assert.ThrowsAnyAsync<IOException>(() => stream.CopyToAsync(received, patience.Token));
            Assert.Equal(100_000, received.Length);
            Assert.Equal(body[..100_000], received.ToArray());
        }
        Assert.Equal(body, await _client.GetByteArrayAsync(key));
        Assert.Equal(1, fault.Fired);
    }

    [Fact]
    public async Task Drop_response_skips_bodies_no_longer_than_k()
    {
        string key = Key("short");
        await PutDirectAsync(key, RandomBytes(1000));
        ProxyFault fault = _proxy.DropResponse(1000);

        Assert.Equal(1000, (await _client.GetByteArrayAsync(key)).Length);

        Assert.Equal(0, fault.Fired);
        Assert.Equal(1, fault.Remaining);
    }

    [Fact]
    public async Task Drop_request_aborts_the_upload_after_k_body_bytes_then_passes_through()
    {
        string key = Key("drop-request");
        byte[] body = RandomBytes(2 * 1024 * 1024);
        ProxyFault fault = _proxy.DropRequest(64 * 1024, when: r => r.Method == "PUT");

        using (var content = new ByteArrayContent(body))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => _client.PutAsync(key, content));
        }
        await PutAsync(key, body);

        Assert.Equal(body, await GetDirectAsync(key));
        Assert.Equal(1, fault.Fired);
        Assert.Equal(2, _proxy.CountOf("PUT"));
    }

    [Fact]
    public async Task Stall_response_holds_the_answer_past_a_client_timeout_then_passes_through()
    {
        string key = Key("stall");
        await PutDirectAsync(key, RandomBytes(1000));
        ProxyFault fault = _proxy.StallResponse(TimeSpan.FromSeconds(30));
        using var impatient = new HttpClient { BaseAddress = _proxy.Url, Timeout = TimeSpan.FromMilliseconds(500) };

        await Assert.ThrowsAsync<TaskCanceledException>(() => impatient.GetByteArrayAsync(key));
        byte[] after = await impatient.GetByteArrayAsync(key);

        Assert.Equal(1000, after.Length);
        Assert.Equal(1, fault.Fired);
    }

    [Fact]
    public async Task Stall_request_and_response_delay_the_exchange()
    {
        string key = Key("stall-both");
        await PutDirectAsync(key, RandomBytes(1000));
        _proxy.StallRequest(TimeSpan.FromSeconds(1));
        _proxy.StallResponse(TimeSpan.FromSeconds(1));

        var clock = Stopwatch.StartNew();
        Assert.Equal(1000, (await _client.GetByteArrayAsync(key)).Length);

        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.8), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Bandwidth_cap_slows_downloads()
    {
        string key = Key("slow-down");
        byte[] body = RandomBytes(2 * 1024 * 1024);
        await PutDirectAsync(key, body);
        _proxy.BytesPerSecond = 512 * 1024;

        var clock = Stopwatch.StartNew();
        byte[] back = await _client.GetByteArrayAsync(key);

        Assert.Equal(body, back);
        // 4 s at the cap; twice the cap would still take 2 s.
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(2), $"2 MiB in {clock.Elapsed} at 512 KiB/s");
    }

    [Fact]
    public async Task Bandwidth_cap_slows_uploads()
    {
        string key = Key("slow-up");
        byte[] body = RandomBytes(1024 * 1024);
        _proxy.BytesPerSecond = 256 * 1024;

        var clock = Stopwatch.StartNew();
        await PutAsync(key, body);

        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(2), $"1 MiB in {clock.Elapsed} at 256 KiB/s");
        _proxy.BytesPerSecond = 0;
        Assert.Equal(body, await _client.GetByteArrayAsync(key));
    }

    [Fact]
    public async Task Cut_refuses_connections_until_restored()
    {
        string key = Key("cut");
        await PutDirectAsync(key, RandomBytes(1000));
        Assert.Equal(1000, (await _client.GetByteArrayAsync(key)).Length);

        _proxy.Cut();
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => _client.GetByteArrayAsync(key));
        Assert.Equal(SocketError.ConnectionRefused, Assert.IsType<SocketException>(refused.InnerException).SocketErrorCode);
        Assert.True(_proxy.IsCut);

        _proxy.Restore();
        Assert.Equal(1000, (await _client.GetByteArrayAsync(key)).Length);
        Assert.Equal(2, _proxy.Connections); // the kept-alive connection did not survive the cut
        Assert.Equal(1, _proxy.CutConnections);
    }

    [Fact]
    public async Task Cut_without_refusing_closes_what_it_accepts()
    {
        string key = Key("cut-close");
        await PutDirectAsync(key, RandomBytes(1000));

        _proxy.Cut(refuse: false);
        await Assert.ThrowsAsync<HttpRequestException>(() => _client.GetByteArrayAsync(key));
        Assert.True(_proxy.CutConnections >= 1);
        Assert.Equal(0, _proxy.Connections);

        _proxy.Restore();
        Assert.Equal(1000, (await _client.GetByteArrayAsync(key)).Length);
    }

    [Fact]
    public async Task Records_methods_paths_and_headers()
    {
        string key = Key("recorded");
        byte[] body = RandomBytes(10_000);
        using (var content = new ByteArrayContent(body))
        {
            content.Headers.ContentMD5 = MD5.HashData(body);
            using HttpResponseMessage put = await _client.PutAsync(key, content);
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }
        using var ranged = new HttpRequestMessage(HttpMethod.Get, key + "?x-id=GetObject");
        ranged.Headers.Range = new RangeHeaderValue(100, 199);
        using HttpResponseMessage part = await _client.SendAsync(ranged);

        Assert.Equal(HttpStatusCode.PartialContent, part.StatusCode);
        Assert.Equal(body[100..200], await part.Content.ReadAsByteArrayAsync());
        IReadOnlyList<ProxyRequest> seen = _proxy.Requests;
        Assert.Equal(["PUT", "GET"], seen.Select(r => r.Method));
        Assert.Equal(Convert.ToBase64String(MD5.HashData(body)), seen[0].Header("content-md5"));
        Assert.Equal("/" + key, seen[1].Path);
        Assert.Equal("x-id=GetObject", seen[1].Query);
        Assert.Equal("bytes=100-199", seen[1].Header("Range"));

        _proxy.ClearRequests();
        Assert.Empty(_proxy.Requests);
        Assert.Equal(0, _proxy.CountOf("GET"));
    }

    [Fact]
    public async Task Sigv4_signed_requests_verify_through_the_proxy()
    {
        var config = new AmazonS3Config
        {
            ServiceURL = _proxy.Url.ToString(),
            ForcePathStyle = true,
            AuthenticationRegion = "us-east-1",
            MaxErrorRetry = 1,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        using var s3 = new AmazonS3Client(new BasicAWSCredentials("S3RVER", "S3RVER"), config);
        byte[] body = RandomBytes(3 * 1024 * 1024);
        string key = "signed-" + Guid.NewGuid().ToString("N");
        ProxyFault fault = _proxy.Fail(HttpStatusCode.ServiceUnavailable, when: r => r.Method == "PUT");

        await s3.PutObjectAsync(new PutObjectRequest { BucketName = Bucket, Key = key, InputStream = new MemoryStream(body), UseChunkEncoding = false });
        using GetObjectResponse got = await s3.GetObjectAsync(Bucket, key);
        var back = new MemoryStream();
        await got.ResponseStream.CopyToAsync(back);

        Assert.Equal(body, back.ToArray());
        Assert.Equal(1, fault.Fired); // the SDK took the injected SlowDown as retryable
        Assert.Equal(2, _proxy.CountOf("PUT"));
        Assert.StartsWith("AWS4-HMAC-SHA256", _proxy.Requests[0].Header("Authorization"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Shared_key_signed_requests_verify_through_the_proxy_to_azurite()
    {
        await using var azurite = await AzuriteServer.StartAsync();
        await using var proxy = FaultProxy.Start(new Uri($"http://127.0.0.1:{azurite.Port}/"), ErrorStyle.Azure);
        var blobs = new BlobServiceClient(new Uri(proxy.Url, AzuriteServer.Account), new StorageSharedKeyCredential(AzuriteServer.Account, AzuriteServer.Key));
        BlobContainerClient container = blobs.GetBlobContainerClient("test");
        byte[] body = RandomBytes(3 * 1024 * 1024);
        ProxyFault fault = proxy.Fail(HttpStatusCode.ServiceUnavailable, when: r => r.Method == "PUT");

        await container.CreateAsync();
        await container.GetBlobClient("blob").UploadAsync(new BinaryData(body));
        BlobDownloadResult back = (await container.GetBlobClient("blob").DownloadContentAsync()).Value;

        Assert.Equal(body, back.Content.ToArray());
        Assert.Equal(1, fault.Fired); // the SDK took the injected ServerBusy as retryable
        Assert.StartsWith("SharedKey", proxy.Requests[0].Header("Authorization"), StringComparison.Ordinal);
    }

    /// <summary>One s3rver for the class (the shared server of tests/Shared/Servers).</summary>
    public sealed class S3rver : IAsyncLifetime
    {
        internal S3rverServer Server { get; private set; } = null!;

        public Uri Url => new(Server.Endpoint + "/");

        public async Task InitializeAsync() => Server = await S3rverServer.StartAsync();

        public async Task DisposeAsync()
        {
            if (Server is not null)
            {
                await Server.DisposeAsync();
            }
        }
    }
}
