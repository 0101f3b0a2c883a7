using System.Net;
using Amazon.S3;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Tests.Storage;

/// <summary>What the S3 store does beyond the contract: URLs, credentials, failures, counting, and faults injected under the SDK.</summary>
public sealed class S3BlobStoreTests(S3rverFixture fixture) : IClassFixture<S3rverFixture>
{
    private static readonly string[] Variables = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

    private S3rverServer Server => fixture.Server;

    private static string Prefix() => "t" + Guid.NewGuid().ToString("N")[..12];

    private S3BlobStore Store(string? url = null, Func<string, string?>? environment = null, HttpMessageHandler? handler = null, StoreOptions? options = null)
    {
        options ??= new StoreOptions { RetryBaseDelay = TimeSpan.FromMilliseconds(10), RetryMaxDelay = TimeSpan.FromMilliseconds(100) };
        return new S3BlobStore(S3Location.Parse(url ?? Server.Url(Prefix())), options with { Environment = environment ?? Server.Environment }, handler);
    }

    private static string Name(int i) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i)));

    [Theory]
    [InlineData("s3:http://127.0.0.1:9000/bucket/some/prefix", "http://127.0.0.1:9000/", "bucket", "some/prefix")]
    [InlineData("s3:https://minio.example:9443/bucket", "https://minio.example:9443/", "bucket", "")]
    [InlineData("s3:http://127.0.0.1:9000/bucket/prefix/", "http://127.0.0.1:9000/", "bucket", "prefix")]
    [InlineData("s3:s3.amazonaws.com/my-bucket/backups", "https://s3.amazonaws.com/", "my-bucket", "backups")]
    public void A_repository_url_names_the_endpoint_bucket_and_prefix(string url, string endpoint, string bucket, string prefix)
    {
        var location = S3Location.Parse(url);
        Assert.Equal(new Uri(endpoint), location.Endpoint);
        Assert.Equal(bucket, location.Bucket);
        Assert.Equal(prefix, location.Prefix);
    }

    [Fact]
    public void Amazon_endpoints_give_their_region()
    {
        Assert.True(S3Location.Parse("s3:s3.amazonaws.com/b-1/p").IsAmazon);
        Assert.Null(S3Location.Parse("s3:s3.amazonaws.com/b-1/p").EndpointRegion);
        Assert.Equal("eu-west-1", S3Location.Parse("s3:https://s3.eu-west-1.amazonaws.com/b-1").EndpointRegion);
        Assert.False(S3Location.Parse("s3:http://127.0.0.1:9000/b-1").IsAmazon);
    }

    [Theory]
    [InlineData("s3:http://127.0.0.1:9000")]
    [InlineData("s3:http://127.0.0.1:9000/")]
    [InlineData("s3:ftp://host/bucket")]
    [InlineData("s3:http://key:secret@host/bucket")]
    [InlineData("s3:http://host/Bad_Bucket")]
    [InlineData("s3:http://host/bucket/a//b")]
    [InlineData("s3:http://host/bucket/../b")]
    [InlineData("s3:http://host/bucket?x=1")]
    public void A_malformed_url_is_refused_in_one_line(string url)
    {
        var e = Assert.Throws<KintsugiException>(() => S3Location.Parse(url));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain("secret", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_credentials_name_the_url_and_the_variables_to_set()
    {
        var e = Assert.Throws<KintsugiException>(() => StoreFactory.Open(Server.Url("x"), new StoreOptions { Environment = _ => null }));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains(Server.Url("x"), e.Message, StringComparison.Ordinal);
        Assert.All(Variables, v => Assert.Contains(v, e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_unknown_access_key_fails_at_once_in_one_line()
    {
        using var store = Store(environment: v => v switch { "AWS_ACCESS_KEY_ID" => "NOBODY", "AWS_SECRET_ACCESS_KEY" => "not-the-secret", _ => null });

        var e = await Assert.ThrowsAsync<KintsugiException>(() => store.GetAsync(FileKind.Config, "config"));
        Assert.Contains("InvalidAccessKeyId", e.Message, StringComparison.Ordinal);
        Assert.Contains("AWS_ACCESS_KEY_ID", e.Message, StringComparison.Ordinal);
        Assert.StartsWith(store.Location, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain("not-the-secret", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, store.Statistics.Retries);
    }

    [Fact]
    public async Task A_wrong_secret_fails_at_once_in_one_line()
    {
        // s3rver does not check version-4 signatures at all: the refusal real S3 sends is played here.
        using var faults = new FaultHandler((_, _) => new HttpResponseMessage(HttpStatusCode.Forbidden)
        {
            Content = new StringContent("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error>", System.Text.Encoding.UTF8, "application/xml"),
        });
        using var store = Store(handler: faults);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => store.GetAsync(FileKind.Config, "config"));
        Assert.Contains("SignatureDoesNotMatch", e.Message, StringComparison.Ordinal);
        Assert.Contains("AWS_SECRET_ACCESS_KEY", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(0, store.Statistics.Retries);
    }

    [Fact]
    public async Task A_missing_bucket_fails_at_once_in_one_line()
    {
        using var store = Store(url: $"s3:{Server.Endpoint}/no-such-bucket/p");

        var e = await Assert.ThrowsAsync<KintsugiException>(() => store.CreateAsync());
        Assert.Contains("no-such-bucket", e.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        var listing = await Assert.ThrowsAsync<KintsugiException>(() => store.ListAsync(FileKind.Index));
        Assert.Contains("does not exist", listing.Message, StringComparison.Ordinal);
        Assert.Equal(0, store.Statistics.Retries);
    }

    [Fact]
    public async Task Requests_and_bytes_are_counted_by_kind()
    {
        using var store = Store();
        byte[] data = new byte[10_000];
        Random.Shared.NextBytes(data);

        await store.PutAsync(FileKind.Pack, Name(1), data);
        await store.GetAsync(FileKind.Pack, Name(1));
        await store.ReadAtAsync(FileKind.Pack, Name(1), 100, new byte[500]);
        await store.ListAsync(FileKind.Pack);
        await store.DeleteAsync(FileKind.Pack, Name(1));

        var s = store.Statistics.Snapshot();
        Assert.Equal((1, 1, 1, 1, 1, 1), (s.Head, s.Put, s.Get, s.GetRange, s.List, s.Delete));
        Assert.Equal(0, s.Retries);
        Assert.Equal(10_000, s.BytesUp);
        // A pack is read a window at a time (ReadWindows): the 500 bytes at 100 fetched the rest of the object.
        Assert.Equal(10_000 + 9_900, s.BytesDown);
    }

    [Fact]
    public async Task Bursts_of_503_are_retried_honouring_retry_after()
    {
        int failures = 0;
        using var faults = new FaultHandler((request, _) =>
        {
            if (Interlocked.Increment(ref failures) > 4)
            {
                return null;
            }
            var busy = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = new StringContent("<Error><Code>SlowDown</Code><Message>busy</Message></Error>") };
            busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromMilliseconds(1));
            return busy;
        });
        using var store = Store(handler: faults);
        byte[] data = [1, 2, 3, 4, 5];

        await store.PutAsync(FileKind.Index, Name(1), data);
        Assert.Equal(data, await store.GetAsync(FileKind.Index, Name(1)));
        Assert.Equal(4, store.Statistics.Retries);
    }

    [Fact]
    public async Task Failures_that_outlast_the_retry_budget_fail_in_one_line()
    {
        // The first request passes (the SDK's first call is slow to start), then the service fails for good.
        int requests = 0;
        using var faults = new FaultHandler((_, _) => Interlocked.Increment(ref requests) == 1 ? null : new HttpResponseMessage(HttpStatusCode.InternalServerError));
        using var store = Store(handler: faults, options: new StoreOptions
        {
            RetryBudget = TimeSpan.FromSeconds(2),
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
            RetryMaxDelay = TimeSpan.FromMilliseconds(50),
        });

        Assert.True(await store.IsEmptyAsync());
        var e = await Assert.ThrowsAsync<KintsugiException>(() => store.ListAsync(FileKind.Snapshot));
        Assert.Contains("still failed after retrying", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(store.Statistics.Retries >= 1);
    }

    [Fact]
    public async Task An_upload_garbled_on_the_way_is_caught_and_sent_again()
    {
        // s3rver does not check Content-MD5: the store compares the ETag it returns with the MD5 sent.
        int garbled = 0;
        using var faults = new FaultHandler((request, body) =>
        {
            if (request.Method == HttpMethod.Put && body is { Length: > 0 } && Interlocked.Exchange(ref garbled, 1) == 0)
            {
                body[body.Length / 2] ^= 0xFF;
            }
            return null;
        });
        using var store = Store(handler: faults);
        byte[] data = new byte[50_000];
        new Random(5).NextBytes(data);

        await store.PutAsync(FileKind.Pack, Name(1), data);
        Assert.Equal(1, garbled);
        Assert.Equal(data, await store.GetAsync(FileKind.Pack, Name(1)));
        Assert.Equal(1, store.Statistics.Retries);
    }

    [Fact]
    public async Task A_stalled_request_is_cancelled_and_retried()
    {
        int stalls = 0;
        using var faults = new FaultHandler((_, _) => null, stall: () => Interlocked.Increment(ref stalls) == 1);
        using var store = Store(handler: faults, options: new StoreOptions
        {
            StallTimeout = TimeSpan.FromSeconds(2),
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
        });

        Assert.Empty(await store.ListAsync(FileKind.Index));
        Assert.Equal(1, store.Statistics.Retries);
    }

    [Fact]
    public void Failures_are_classified_transient_or_permanent()
    {
        static AmazonS3Exception Status(HttpStatusCode code, string error) => new("x", Amazon.Runtime.ErrorType.Sender, error, "id", code);
        Assert.True(S3BlobStore.Classify(Status(HttpStatusCode.ServiceUnavailable, "SlowDown"), default).Transient);
        Assert.True(S3BlobStore.Classify(Status(HttpStatusCode.InternalServerError, "InternalError"), default).Transient);
        Assert.True(S3BlobStore.Classify(Status((HttpStatusCode)429, "TooManyRequests"), default).Transient);
        Assert.True(S3BlobStore.Classify(Status(HttpStatusCode.BadRequest, "RequestTimeout"), default).Transient);
        Assert.True(S3BlobStore.Classify(new HttpRequestException("reset"), default).Transient);
        Assert.True(S3BlobStore.Classify(new IOException("reset"), default).Transient);
        Assert.True(S3BlobStore.Classify(new TaskCanceledException("timeout"), default).Transient);
        Assert.False(S3BlobStore.Classify(Status(HttpStatusCode.Forbidden, "AccessDenied"), default).Transient);
        Assert.False(S3BlobStore.Classify(Status(HttpStatusCode.Forbidden, "InvalidAccessKeyId"), default).Transient);
        Assert.False(S3BlobStore.Classify(Status(HttpStatusCode.NotFound, "NoSuchBucket"), default).Transient);
        Assert.False(S3BlobStore.Classify(Status(HttpStatusCode.BadRequest, "InvalidArgument"), default).Transient);
        Assert.False(S3BlobStore.Classify(new KintsugiException(ErrorKind.Corrupt, "missing"), default).Transient);
        Assert.False(S3BlobStore.Classify(new TaskCanceledException("asked"), new CancellationToken(canceled: true)).Transient);
    }

    /// <summary>
    /// Sits under the SDK: <c>fault</c> sees each request (with its body, which it may change) and
    /// answers it itself or returns null to pass it on; <c>stall</c> makes a request hang until cancelled.
    /// </summary>
    private sealed class FaultHandler(Func<HttpRequestMessage, byte[]?, HttpResponseMessage?> fault, Func<bool>? stall = null)
        : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            byte[]? body = null;
            if (request.Content is { } content)
            {
                body = await content.ReadAsByteArrayAsync(cancellationToken);
                var copy = new ByteArrayContent(body);
                foreach (var header in content.Headers)
                {
                    copy.Headers.TryAddWithoutValidation(header.Key, header.Value);
                }
                request.Content = copy;
            }
            if (fault(request, body) is { } answer)
            {
                answer.RequestMessage = request;
                return answer;
            }
            if (stall?.Invoke() == true)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            return await base.SendAsync(request, cancellationToken);
        }
    }
}
