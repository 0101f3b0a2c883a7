using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Amazon.S3;
using Amazon.S3.Model;

namespace Kintsugi.Backup.Storage;

/// <summary>
/// A repository in an S3 bucket (Amazon S3, or any service speaking its protocol: MinIO, R2,
/// s3rver), one object per repository file under the prefix, named as in a local folder.
/// <para>
/// Every request goes through <see cref="RemoteRequests"/> (the SDK's own retries are off). Uploads
/// are one plain PUT (no aws-chunked framing, which s3rver stores as the object's bytes) with
/// Content-MD5, which S3 verifies; the returned ETag is compared with the MD5 too, for services
/// that do not verify it. Write-once uses If-None-Match: * and, for services that ignore it, a HEAD
/// first (names are content hashes, so a race between two writers stores the same bytes).
/// </para>
/// </summary>
public sealed class S3BlobStore : IBlobStore, IDisposable
{
    /// <summary>A pending file is kept in memory up to this size, then in a temporary file.</summary>
    internal const int MemoryBufferLimit = 8 << 20;

    private static readonly AsyncLocal<AttemptState?> CurrentAttempt = new();
    private static readonly ConditionalWeakTable<Exception, StrongBox<TimeSpan>> RetryAfterOf = new();

    private readonly S3Location _location;
    private readonly StoreOptions _options;
    private readonly AmazonS3Client _client;
    private readonly RemoteRequests _requests;
    private readonly BandwidthLimiter _upload;
    private readonly BandwidthLimiter _download;
    private readonly HttpMessageHandler? _ownHandler;

    /// <summary>Opens the bucket a URL names, with credentials and region from <see cref="StoreOptions.Environment"/>.</summary>
    public static S3BlobStore Open(string url, StoreOptions options) => new(S3Location.Parse(url), options);

    /// <param name="handler">The HTTP handler under the SDK (tests inject faults here); null: a fresh one.</param>
    internal S3BlobStore(S3Location location, StoreOptions options, HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _location = location;
        _options = options;
        var credentials = Credentials(location, options.Environment);
        string region = location.EndpointRegion ?? options.Environment("AWS_REGION") ?? options.Environment("AWS_DEFAULT_REGION") ?? "us-east-1";
        var config = new AmazonS3Config
        {
            MaxErrorRetry = 0,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            // Stalls are found by the watchdog below; a whole-request timeout would cut a slow, healthy upload.
            Timeout = Timeout.InfiniteTimeSpan,
        };
        if (handler is null)
        {
            handler = _ownHandler = new SocketsHttpHandler
            {
                ConnectTimeout = options.StallTimeout,
                MaxConnectionsPerServer = options.Connections,
                PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
                AutomaticDecompression = DecompressionMethods.None,
            };
        }
        config.HttpClientFactory = new ClientFactory(handler);
        if (location.IsAmazon)
        {
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(region);
        }
        else
        {
            config.ServiceURL = location.Endpoint.ToString();
            config.AuthenticationRegion = region;
            config.ForcePathStyle = true;
        }
        _client = new AmazonS3Client(credentials, config);
        Statistics = new StoreStatistics();
        _requests = new RemoteRequests(options, Statistics, Classify);
        _upload = new BandwidthLimiter(options.UploadBytesPerSecond, options.Time);
        _download = new BandwidthLimiter(options.DownloadBytesPerSecond, options.Time);
    }

    public string Location => _location.Url;

    public StoreCapabilities Capabilities => StoreCapabilities.Remote;

    public string? CacheDirectory => _options.CacheDirectory;

    public StoreStatistics Statistics { get; }

    private static AWSCredentials Credentials(S3Location location, Func<string, string?> environment)
    {
        string? key = environment("AWS_ACCESS_KEY_ID");
        string? secret = environment("AWS_SECRET_ACCESS_KEY");
        if (!string.IsNullOrEmpty(key) && !string.IsNullOrEmpty(secret))
        {
            string? token = environment("AWS_SESSION_TOKEN");
            return string.IsNullOrEmpty(token) ? new BasicAWSCredentials(key, secret) : new SessionAWSCredentials(key, secret, token);
        }
        string? profile = environment("AWS_PROFILE");
        if (!string.IsNullOrEmpty(profile))
        {
            string? file = environment("AWS_SHARED_CREDENTIALS_FILE");
            var chain = string.IsNullOrEmpty(file) ? new CredentialProfileStoreChain() : new CredentialProfileStoreChain(file);
            return chain.TryGetAWSCredentials(profile, out var fromProfile)
                ? fromProfile
                : throw new KintsugiException(ErrorKind.InvalidInput, $"{location}: AWS_PROFILE names the profile '{profile}', which is not in the AWS credentials or config file; add it (aws configure --profile {profile}) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        }
        throw new KintsugiException(ErrorKind.InvalidInput, $"{location}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE");
    }

    private string Key(FileKind kind, string name)
    {
        if (name.Length < 2 || name.Contains('/', StringComparison.Ordinal) || name.Contains('.', StringComparison.Ordinal))
        {
            throw new ArgumentException($"invalid repository file name '{name}'", nameof(name));
        }
        return _location.KeyPrefix + kind switch
        {
            FileKind.Config => "config",
            FileKind.Key => "keys/" + name,
            FileKind.Pack => $"data/{name[..2]}/{name}",
            FileKind.Index => "index/" + name,
            FileKind.Snapshot => "snapshots/" + name,
            FileKind.Lock => "locks/" + name,
            FileKind.Parity => "parity/" + name,
            FileKind.ParitySettings => "parity/settings",
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
    }


    public async Task CreateAsync(CancellationToken cancellationToken = default) =>
        await Run(RequestKind.Head, "checking the bucket", async (ct, _) =>
        {
            try
            {
                await _client.HeadBucketAsync(new HeadBucketRequest { BucketName = _location.Bucket }, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                throw MissingBucket(e);
            }
            return true;
        }, cancellationToken).ConfigureAwait(false);

    public async Task<bool> IsEmptyAsync(CancellationToken cancellationToken = default)
    {
        var page = await Run(RequestKind.List, "listing the prefix", (ct, _) => _client.ListObjectsV2Async(new ListObjectsV2Request
        {
            BucketName = _location.Bucket,
            Prefix = _location.KeyPrefix,
            MaxKeys = 1,
        }, ct), cancellationToken).ConfigureAwait(false);
        return page.S3Objects is null || page.S3Objects.Count == 0;
    }

    public async Task<bool> ExistsAsync(FileKind kind, string name, CancellationToken cancellationToken = default) =>
        await HeadAsync(Key(kind, name), cancellationToken).ConfigureAwait(false) is not null;

    private Task<GetObjectMetadataResponse?> HeadAsync(string key, CancellationToken cancellationToken) =>
        Run(RequestKind.Head, $"reading the size of {key}", async (ct, _) =>
        {
            try
            {
                return await _client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _location.Bucket, Key = key }, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
            {
                return null;
            }
        }, cancellationToken);

    public async Task PutAsync(FileKind kind, string name, ReadOnlyMemory<byte> data, bool overwrite = false, CancellationToken cancellationToken = default)
    {
        string key = Key(kind, name);
        if (overwrite)
        {
            _windows.Forget(name);
        }
        if (!overwrite && await HeadAsync(key, cancellationToken).ConfigureAwait(false) is not null)
        {
            return;
        }
        byte[] md5 = MD5.HashData(data.Span);
        await UploadAsync(key, () => new ReadOnlyMemoryStream(data), data.Length, md5, overwrite, cancellationToken).ConfigureAwait(false);
    }

    public IPendingFile CreatePending(FileKind kind) => new PendingUpload(this, kind);

    /// <summary>One PUT of the whole object with its MD5, retried as a whole (<paramref name="open"/> gives the body afresh for each attempt).</summary>
    private Task UploadAsync(string key, Func<Stream> open, long length, byte[] md5, bool overwrite, CancellationToken cancellationToken) =>
        Run(RequestKind.Put, $"writing {key}", async (ct, watchdog) =>
        {
            await using var body = new TransferStream(open(), length, _upload, watchdog, Statistics.CountUp);
            var request = new PutObjectRequest
            {
                BucketName = _location.Bucket,
                Key = key,
                InputStream = body,
                AutoCloseStream = false,
                MD5Digest = Convert.ToBase64String(md5),
                UseChunkEncoding = false,
                // Over TLS the MD5 and TLS guard the bytes; hashing them again for the signature costs a pass.
                DisablePayloadSigning = _location.Endpoint.Scheme == "https" ? true : null,
            };
            request.Headers.ContentLength = length;
            if (!overwrite)
            {
                request.IfNoneMatch = "*";
            }
            PutObjectResponse response;
            try
            {
                response = await _client.PutObjectAsync(request, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (!overwrite && e.StatusCode is HttpStatusCode.PreconditionFailed or HttpStatusCode.Conflict)
            {
                // Already there (or being written by another writer): names are content hashes, so it is the same file.
                return true;
            }
            string etag = (response.ETag ?? "").Trim('"');
            bool plainEtag = etag.Length == 32 && response.ServerSideEncryptionMethod != ServerSideEncryptionMethod.AWSKMS
                && response.ServerSideEncryptionMethod != ServerSideEncryptionMethod.AWSKMSDSSE && string.IsNullOrEmpty(response.ServerSideEncryptionCustomerMethod?.Value);
            if (plainEtag && !etag.Equals(Convert.ToHexStringLower(md5), StringComparison.OrdinalIgnoreCase))
            {
                // The service stored other bytes than we sent and did not check Content-MD5 (s3rver does not): remove them and send again.
                await _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _location.Bucket, Key = key }, ct).ConfigureAwait(false);
                throw new IOException($"the service stored {key} with MD5 {etag}, not the {Convert.ToHexStringLower(md5)} sent");
            }
            return true;
        }, cancellationToken);

    public Task<byte[]> GetAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
    {
        string key = Key(kind, name);
        return Run(RequestKind.Get, $"reading {key}", async (ct, watchdog) =>
        {
            using var response = await GetObject(new GetObjectRequest { BucketName = _location.Bucket, Key = key }, kind, name, ct).ConfigureAwait(false);
            long length = response.ContentLength;
            if (length > Array.MaxLength)
            {
                throw new KintsugiException(ErrorKind.Corrupt, $"repository file {key} is {length} bytes, too large to read whole; run `kintsugi check` to see what is affected");
            }
            var buffer = new byte[length];
            await ReadBodyAsync(response.ResponseStream, buffer, key, watchdog, ct).ConfigureAwait(false);
            return buffer;
        }, cancellationToken);
    }

    /// <summary>A pack's blobs, read one by one, are fetched a window at a time (<see cref="Storage.ReadWindows"/>).</summary>
    private readonly ReadWindows _windows = new(ReadWindows.RemoteWindowSize, ReadWindows.RemoteMaxWindows);

    public ValueTask ReadAtAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        kind == FileKind.Pack && buffer.Length > 0
            ? _windows.ReadAsync(name, offset, buffer, (o, n, ct) => FetchAsync(kind, name, o, n, ct), (o, b, ct) => ReadExactAsync(kind, name, o, b, ct), cancellationToken)
            : ReadExactAsync(kind, name, offset, buffer, cancellationToken);

    /// <summary>Up to <paramref name="length"/> bytes at <paramref name="offset"/> (fewer at the end of the object, none past it).</summary>
    private Task<byte[]> FetchAsync(FileKind kind, string name, long offset, int length, CancellationToken cancellationToken)
    {
        string key = Key(kind, name);
        return Run(RequestKind.GetRange, $"reading {key}", async (ct, watchdog) =>
        {
            var request = new GetObjectRequest { BucketName = _location.Bucket, Key = key, ByteRange = new ByteRange(offset, offset + length - 1) };
            GetObjectResponse response;
            try
            {
                response = await GetObject(request, kind, name, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                return [];
            }
            using (response)
            {
                if (response.ContentLength < 0 || response.ContentLength > length)
                {
                    // The range was ignored: the exact read that follows says what is wrong.
                    return [];
                }
                var data = new byte[response.ContentLength];
                await ReadBodyAsync(response.ResponseStream, data, key, watchdog, ct).ConfigureAwait(false);
                return data;
            }
        }, cancellationToken);
    }

    private async ValueTask ReadExactAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        string key = Key(kind, name);
        if (buffer.Length == 0)
        {
            return;
        }
        await Run(RequestKind.GetRange, $"reading {key}", async (ct, watchdog) =>
        {
            var request = new GetObjectRequest { BucketName = _location.Bucket, Key = key, ByteRange = new ByteRange(offset, offset + buffer.Length - 1) };
            GetObjectResponse response;
            try
            {
                response = await GetObject(request, kind, name, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                throw EndsEarly(kind, name, offset + buffer.Length, e);
            }
            using (response)
            {
                if (response.ContentLength != buffer.Length)
                {
                    // A range past the end is clipped by the service (or ignored, returning the whole object).
                    throw EndsEarly(kind, name, offset + buffer.Length, null);
                }
                await ReadBodyAsync(response.ResponseStream, buffer, key, watchdog, ct).ConfigureAwait(false);
            }
            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task<GetObjectResponse> GetObject(GetObjectRequest request, FileKind kind, string name, CancellationToken ct)
    {
        try
        {
            return await _client.GetObjectAsync(request, ct).ConfigureAwait(false);
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
        {
            throw new KintsugiException(ErrorKind.Corrupt, $"repository file {request.Key} in {_location} is missing ({What(kind)} {name}); run `kintsugi check` to see what is affected", e);
        }
    }

    private static string What(FileKind kind) => kind switch
    {
        FileKind.Pack => "pack",
        FileKind.Index => "index file",
        FileKind.Snapshot => "snapshot",
        FileKind.Key => "key slot",
        FileKind.Parity => "parity group",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private static KintsugiException EndsEarly(FileKind kind, string name, long end, Exception? inner) =>
        new(ErrorKind.Corrupt, $"{What(kind)} {name} is damaged (it ends before byte {end}); run `kintsugi check --read-data` to see what is affected", inner);

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes of a response body, minding the download limit and the stall watchdog.</summary>
    private async Task ReadBodyAsync(Stream body, Memory<byte> buffer, string key, StallWatchdog watchdog, CancellationToken ct)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = await body.ReadAsync(buffer[done..Math.Min(buffer.Length, done + (1 << 20))], ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"the response for {key} ended after {done} of {buffer.Length} bytes");
            }
            watchdog.Progress();
            Statistics.CountDown(n);
            await _download.WaitAsync(n, ct).ConfigureAwait(false);
            done += n;
        }
    }

    public async Task<IReadOnlyList<StoredFile>> ListAsync(FileKind kind, CancellationToken cancellationToken = default)
    {
        if (kind is FileKind.Config or FileKind.ParitySettings)
        {
            string name = kind == FileKind.Config ? "config" : "settings";
            var head = await HeadAsync(Key(kind, name), cancellationToken).ConfigureAwait(false);
            return head is null ? [] : [new StoredFile(name, head.ContentLength, Modified(head.LastModified))];
        }
        string folder = Key(kind, "xx")[..^2];
        if (kind == FileKind.Pack)
        {
            folder = folder[..^"xx/".Length];
        }
        var result = new List<StoredFile>();
        string? marker = null;
        while (true)
        {
            // ListObjects (v1) paged by the last key: s3rver 3.7.1 on Node >= 17 fails every truncated
            // ListObjectsV2 page (its continuation token is DES, which OpenSSL 3 no longer offers).
            string? after = marker;
            var page = await Run(RequestKind.List, $"listing {folder}", (ct, _) => _client.ListObjectsAsync(new ListObjectsRequest
            {
                BucketName = _location.Bucket,
                Prefix = folder,
                Marker = after,
            }, ct), cancellationToken).ConfigureAwait(false);
            var objects = page.S3Objects ?? [];
            foreach (var o in objects)
            {
                string relative = o.Key[folder.Length..];
                string name = relative;
                if (kind == FileKind.Pack)
                {
                    // Packs live in the folder of their first two digits; anything else is not the repository's.
                    int slash = relative.IndexOf('/', StringComparison.Ordinal);
                    name = slash == 2 ? relative[3..] : "";
                    if (!name.StartsWith(relative[..Math.Max(0, slash)], StringComparison.Ordinal))
                    {
                        continue;
                    }
                }
                if (IsHexName(name))
                {
                    result.Add(new StoredFile(name, o.Size ?? 0, Modified(o.LastModified)));
                }
            }
            if (page.IsTruncated != true || objects.Count == 0)
            {
                break;
            }
            marker = page.NextMarker ?? objects[^1].Key;
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    private static DateTimeOffset Modified(DateTime? when) =>
        when is { } w ? new DateTimeOffset(DateTime.SpecifyKind(w.ToUniversalTime(), DateTimeKind.Utc)) : default;

    private static bool IsHexName(string name) =>
        name.Length == 64 && name.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    public async Task DeleteAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
    {
        string key = Key(kind, name);
        _windows.Forget(name);
        await Run(RequestKind.Delete, $"deleting {key}", async (ct, _) =>
        {
            try
            {
                await _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _location.Bucket, Key = key }, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
            {
            }
            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One request through <see cref="RemoteRequests"/>: each attempt gets a watchdog that cancels it
    /// when no byte moved for the stall timeout (the body streams kick it), and what failed for good
    /// is turned into one line naming the repository.
    /// </summary>
    private async Task<T> Run<T>(RequestKind kind, string what, Func<CancellationToken, StallWatchdog, Task<T>> operation, CancellationToken cancellationToken)
    {
        try
        {
            return await _requests.RunAsync(kind, async ct =>
            {
                using var watchdog = new StallWatchdog(_options.StallTimeout, _options.Time, ct);
                var attempt = new AttemptState();
                CurrentAttempt.Value = attempt;
                try
                {
                    return await operation(watchdog.Token, watchdog).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (watchdog.Fired && !ct.IsCancellationRequested)
                {
                    throw new TimeoutException($"no byte moved for {_options.StallTimeout.TotalSeconds:0.#} s", e);
                }
                catch (Exception e) when (attempt.RetryAfter is { } after)
                {
                    RetryAfterOf.AddOrUpdate(e, new StrongBox<TimeSpan>(after));
                    throw;
                }
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not KintsugiException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            throw Failure(e, what);
        }
    }

    /// <summary>Transient (retried within the budget) or permanent; a cancellation the caller asked for is never retried.</summary>
    internal static FailureClass Classify(Exception e, CancellationToken caller)
    {
        if (caller.IsCancellationRequested || e is KintsugiException || RemoteRequests.IsUnknownHost(e))
        {
            return FailureClass.Permanent;
        }
        TimeSpan? after = RetryAfterOf.TryGetValue(e, out var box) ? box.Value : null;
        return e switch
        {
            AmazonServiceException s when (int)s.StatusCode >= 500 || (int)s.StatusCode == 429
                || s.ErrorCode is "SlowDown" or "RequestTimeout" or "InternalError" or "ServiceUnavailable" or "Throttling" or "BadDigest" or "OperationAborted"
                => new FailureClass(true, after),
            AmazonServiceException { StatusCode: 0, InnerException: { } inner } => Classify(inner, caller) with { RetryAfter = after },
            AmazonServiceException => FailureClass.Permanent,
            HttpRequestException or IOException or SocketException or TimeoutException or OperationCanceledException => new FailureClass(true, after),
            AmazonClientException { InnerException: { } inner } => Classify(inner, caller),
            _ => FailureClass.Permanent,
        };
    }

    private KintsugiException MissingBucket(Exception? inner) =>
        new(ErrorKind.InvalidInput, $"{_location}: the bucket '{_location.Bucket}' does not exist at {_location.Endpoint}; create it (aws s3 mb s3://{_location.Bucket}) or correct the URL", inner);

    /// <summary>A failure that retries did not cure, as one line naming the repository, the cause and what to do.</summary>
    private KintsugiException Failure(Exception e, string what)
    {
        if (e is AmazonServiceException s && !Classify(e, CancellationToken.None).Transient)
        {
            string code = s.ErrorCode ?? "";
            return code switch
            {
                "NoSuchBucket" => MissingBucket(e),
                "InvalidAccessKeyId" => new(ErrorKind.InvalidInput, $"{_location}: the service does not know the access key (InvalidAccessKeyId) while {what}; check AWS_ACCESS_KEY_ID (or AWS_PROFILE)", e),
                "SignatureDoesNotMatch" => new(ErrorKind.InvalidInput, $"{_location}: the secret key does not match the access key (SignatureDoesNotMatch) while {what}; check AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)", e),
                "ExpiredToken" or "InvalidToken" => new(ErrorKind.InvalidInput, $"{_location}: the session token is expired or invalid ({code}) while {what}; refresh AWS_SESSION_TOKEN", e),
                "RequestTimeTooSkewed" => new(ErrorKind.Failed, $"{_location}: this machine's clock is too far from the service's (RequestTimeTooSkewed); set the clock right (NTP) and run the command again", e),
                "PermanentRedirect" or "AuthorizationHeaderMalformed" => new(ErrorKind.InvalidInput, $"{_location}: the bucket is in another region ({code}); set AWS_REGION to the bucket's region", e),
                _ when s.StatusCode == HttpStatusCode.Forbidden => new(ErrorKind.NotWritable, $"{_location}: access denied ({(code.Length > 0 ? code : "403")}) while {what}; check the credentials, and that they may list, read, write and delete objects in the bucket", e),
                _ => new(ErrorKind.Failed, $"{_location}: the service refused {what} ({(int)s.StatusCode} {code}: {OneLine(s.Message)})", e),
            };
        }
        if (e is AmazonServiceException || Classify(e, CancellationToken.None).Transient)
        {
            return new KintsugiException(ErrorKind.Failed, $"{_location}: {what} still failed after retrying for {_options.RetryBudget.TotalSeconds:0} s ({OneLine(e.Message)}); check the network and the service, then run the command again", e);
        }
        return new KintsugiException(ErrorKind.Failed, $"{_location}: {what} failed ({e.GetType().Name}: {OneLine(e.Message)})", e);
    }

    private static string OneLine(string message) => string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    public void Dispose()
    {
        _client.Dispose();
        _requests.Dispose();
        _ownHandler?.Dispose();
    }

    /// <summary>What the HTTP handler learnt about the current attempt (a Retry-After), found again by the classifier.</summary>
    private sealed class AttemptState
    {
        public TimeSpan? RetryAfter { get; set; }
    }

    /// <summary>The SDK's HTTP client over our handler, which records a Retry-After the service sent.</summary>
    private sealed class ClientFactory(HttpMessageHandler inner) : HttpClientFactory
    {
        public override HttpClient CreateHttpClient(IClientConfig clientConfig) =>
            new(new RetryAfterRecorder(inner), disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };

        public override bool UseSDKHttpClientCaching(IClientConfig clientConfig) => false;

        public override bool DisposeHttpClientsAfterUse(IClientConfig clientConfig) => false;

        public override string GetConfigUniqueString(IClientConfig clientConfig) => "kintsugi";
    }

    private sealed class RetryAfterRecorder(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (CurrentAttempt.Value is { } attempt && response.Headers.RetryAfter is { } retry)
            {
                attempt.RetryAfter = retry.Delta ?? (retry.Date is { } date ? date - DateTimeOffset.UtcNow : null);
            }
            return response;
        }
    }

    /// <summary>
    /// An upload body: minds the upload limit and kicks the watchdog as the SDK reads it, and counts
    /// the bytes once (the SDK may read it twice: once to sign it, once to send it).
    /// </summary>
    private sealed class TransferStream(Stream inner, long length, BandwidthLimiter limiter, StallWatchdog watchdog, Action<long> count) : Stream
    {
        private long _highWater;

        public override bool CanRead => true;

        public override bool CanSeek => inner.CanSeek;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => inner.Position;
            set => inner.Position = value;
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = inner.Read(buffer);
            Moved(n);
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            long fresh = Moved(n);
            await limiter.WaitAsync(fresh, cancellationToken).ConfigureAwait(false);
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private long Moved(int n)
        {
            watchdog.Progress();
            long end = inner.Position;
            long fresh = Math.Max(0, end - _highWater);
            _highWater = Math.Max(_highWater, end);
            count(fresh);
            return fresh;
        }

        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            await base.DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed class ReadOnlyMemoryStream(ReadOnlyMemory<byte> data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position
        {
            get => _position;
            set => _position = (int)Math.Clamp(value, 0, data.Length);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = Math.Min(buffer.Length, data.Length - _position);
            data.Span.Slice(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override long Seek(long offset, SeekOrigin origin)
        {
            Position = origin switch { SeekOrigin.Begin => offset, SeekOrigin.Current => _position + offset, _ => data.Length + offset };
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>A file buffered here (in memory, then in a temporary file) and uploaded whole by one PUT at commit: nothing remote before.</summary>
    private sealed class PendingUpload(S3BlobStore store, FileKind kind) : IPendingFile
    {
        private readonly IncrementalHash _md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        private MemoryStream? _memory = new();
        private FileStream? _file;
        private bool _done;

        public long Length { get; private set; }

        public void Write(ReadOnlySpan<byte> data)
        {
            ObjectDisposedException.ThrowIf(_done, this);
            if (_file is null && Length + data.Length > MemoryBufferLimit)
            {
                string path = Path.Combine(Path.GetTempPath(), "kintsugi-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)));
                _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, 1 << 16, FileOptions.DeleteOnClose);
                _memory!.Position = 0;
                _memory.CopyTo(_file);
                _memory.Dispose();
                _memory = null;
            }
            if (_file is not null)
            {
                _file.Write(data);
            }
            else
            {
                _memory!.Write(data);
            }
            _md5.AppendData(data);
            Length += data.Length;
        }

        public async Task CommitAsync(string name, bool overwrite, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(_done, this);
            string key = store.Key(kind, name);
            if (!overwrite && await store.HeadAsync(key, cancellationToken).ConfigureAwait(false) is not null)
            {
                _done = true;
                return;
            }
            byte[] md5 = _md5.GetHashAndReset();
            Func<Stream> open;
            if (_file is { } file)
            {
                await file.FlushAsync(cancellationToken).ConfigureAwait(false);
                string path = file.Name;
                open = () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16, FileOptions.Asynchronous);
            }
            else
            {
                var bytes = _memory!.GetBuffer().AsMemory(0, (int)_memory.Length);
                open = () => new ReadOnlyMemoryStream(bytes);
            }
            await store.UploadAsync(key, open, Length, md5, overwrite, cancellationToken).ConfigureAwait(false);
            _done = true;
        }

        public async ValueTask DisposeAsync()
        {
            _done = true;
            _md5.Dispose();
            if (_file is not null)
            {
                await _file.DisposeAsync().ConfigureAwait(false);
            }
            _memory?.Dispose();
        }
    }
}
