using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Backup.Storage;

/// <summary>
/// A repository in an Azure Blob container (<c>azure:container:/prefix</c>), through the
/// Azure.Storage.Blobs SDK with its own retries off: every request goes through
/// <see cref="RemoteRequests"/> (counted, bounded, retried within the budget).
/// <para>
/// Credentials come from the environment: <c>AZURE_STORAGE_CONNECTION_STRING</c> (used when set),
/// else <c>AZURE_STORAGE_ACCOUNT</c> with <c>AZURE_STORAGE_KEY</c> (shared key) or
/// <c>AZURE_STORAGE_SAS_TOKEN</c>. The endpoint is <c>https://ACCOUNT.blob.core.windows.net</c>
/// unless <c>AZURE_STORAGE_ENDPOINT</c> names another (a sovereign cloud, or an emulator such as
/// Azurite: <c>http://127.0.0.1:10000/devstoreaccount1</c>).
/// </para>
/// <para>
/// Objects are written once: an upload carries If-None-Match: * (an existing blob is left as it is)
/// and Content-MD5, which the service checks against the bytes it received; a blob becomes visible
/// only when its single Put Blob or its block list commit succeeds, so a reader never sees half of one.
/// </para>
/// </summary>
public sealed class AzureBlobStore : IBlobStore, IDisposable
{
    private const string ConnectionStringVariable = "AZURE_STORAGE_CONNECTION_STRING";
    private const string AccountVariable = "AZURE_STORAGE_ACCOUNT";
    private const string KeyVariable = "AZURE_STORAGE_KEY";
    private const string SasVariable = "AZURE_STORAGE_SAS_TOKEN";
    private const string EndpointVariable = "AZURE_STORAGE_ENDPOINT";
    private const int TransferChunk = 64 * 1024;

    private readonly AzureBlobLocation _location;
    private readonly StoreOptions _options;
    private readonly BlobContainerClient _container;
    private readonly RemoteRequests _requests;
    private readonly BandwidthLimiter _upload;
    private readonly BandwidthLimiter _download;
    private readonly string _credentials;

    /// <summary>Opens the store at <paramref name="location"/> with credentials from <see cref="StoreOptions.Environment"/>; missing or malformed credentials are one <see cref="ErrorKind.InvalidInput"/> line.</summary>
    public AzureBlobStore(AzureBlobLocation location, StoreOptions options)
        : this(location, options, null)
    {
    }

    /// <param name="configure">Tests add pipeline policies here (to garble a body, say).</param>
    internal AzureBlobStore(AzureBlobLocation location, StoreOptions options, Action<BlobClientOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(options);
        _location = location;
        _options = options;
        var clientOptions = new BlobClientOptions();
        // RemoteRequests retries (counted, within the budget); the SDK must not retry behind its back.
        clientOptions.Retry.MaxRetries = 0;
        // Stalls are caught by this store's own watchdog, which knows when bytes move (a throttled
        // upload of a big pack may take longer than any fixed timeout).
        clientOptions.Retry.NetworkTimeout = Timeout.InfiniteTimeSpan;
        // Content-MD5 is set by a policy of ours: the SDK refuses a precalculated MD5 on the upload
        // call that may split (and would otherwise read every body twice to hash it).
        clientOptions.TransferValidation.Upload.ChecksumAlgorithm = StorageChecksumAlgorithm.None;
        clientOptions.AddPolicy(new ContentMd5Policy(), HttpPipelinePosition.PerCall);
        clientOptions.AddPolicy(new BodyFailurePolicy(), HttpPipelinePosition.PerRetry);
        configure?.Invoke(clientOptions);
        (_container, _credentials) = Connect(location, options.Environment, clientOptions);
        Statistics = new StoreStatistics();
        _requests = new RemoteRequests(options, Statistics, Classify);
        _upload = new BandwidthLimiter(options.UploadBytesPerSecond, options.Time);
        _download = new BandwidthLimiter(options.DownloadBytesPerSecond, options.Time);
    }

    /// <summary>Opens <c>azure:container:/prefix</c>.</summary>
    public static AzureBlobStore Open(string url, StoreOptions options) => new(AzureBlobLocation.Parse(url), options);

    public string Location => _location.Url;

    public StoreCapabilities Capabilities => StoreCapabilities.Remote;

    public string? CacheDirectory => _options.CacheDirectory;

    public StoreStatistics Statistics { get; }

    /// <summary>Files up to this size are one Put Blob; bigger ones are staged in blocks and committed with one block list.</summary>
    internal long SinglePutLimit { get; init; } = 64L << 20;

    /// <summary>The size of a staged block.</summary>
    internal int BlockSize { get; init; } = 16 << 20;

    /// <summary>A pending file is kept in memory up to this size, then in a temporary file.</summary>
    internal int MemoryLimit { get; init; } = 32 << 20;

    /// <summary>Blobs per listing page; null: the service's maximum (5000).</summary>
    internal int? ListPageSize { get; init; }

    public void Dispose() => _requests.Dispose();

    // ----- connecting -----

    private static (BlobContainerClient Container, string Credentials) Connect(AzureBlobLocation location, Func<string, string?> environment, BlobClientOptions clientOptions)
    {
        string? Get(string name) => environment(name) is { Length: > 0 } v ? v.Trim() : null;
        string url = location.Url;
        string? connection = Get(ConnectionStringVariable);
        try
        {
            if (connection is not null)
            {
                return (new BlobServiceClient(connection, clientOptions).GetBlobContainerClient(location.Container), ConnectionStringVariable);
            }
            string? account = Get(AccountVariable);
            string? key = Get(KeyVariable);
            string? sas = Get(SasVariable);
            if (account is null || (key is null && sas is null))
            {
                throw new KintsugiException(ErrorKind.InvalidInput, $"{url}: no Azure credentials; set {ConnectionStringVariable}, or {AccountVariable} with {KeyVariable} or {SasVariable} ({EndpointVariable} overrides https://ACCOUNT.blob.core.windows.net)");
            }
            string endpointText = Get(EndpointVariable) ?? $"https://{account}.blob.core.windows.net";
            if (!Uri.TryCreate(endpointText, UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
            {
                throw new KintsugiException(ErrorKind.InvalidInput, $"{url}: {EndpointVariable} '{endpointText}' is not an http(s) URL; give the blob service endpoint, e.g. https://{account}.blob.core.windows.net");
            }
            if (key is not null)
            {
                var service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(account, key), clientOptions);
                return (service.GetBlobContainerClient(location.Container), $"{AccountVariable} and {KeyVariable}");
            }
            var sasService = new BlobServiceClient(endpoint, new AzureSasCredential(sas!.TrimStart('?')), clientOptions);
            return (sasService.GetBlobContainerClient(location.Container), $"{AccountVariable} and {SasVariable}");
        }
        catch (Exception e) when (e is FormatException or ArgumentException or UriFormatException)
        {
            // Never the value itself: it holds the secret.
            string which = connection is not null ? ConnectionStringVariable : $"{KeyVariable} / {SasVariable}";
            throw new KintsugiException(ErrorKind.InvalidInput, $"{url}: {which} is malformed ({FirstLine(e.Message)}); copy it again from the storage account's access keys", e);
        }
    }

    // ----- the members every store has -----

    public Task<bool> ExistsAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
    {
        string objectName = _location.ObjectName(kind, name);
        var blob = _container.GetBlobClient(objectName);
        return RunAsync(RequestKind.Head, objectName, async dog =>
        {
            try
            {
                await blob.GetPropertiesAsync(cancellationToken: dog.Token).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                // A missing container holds no file either: `init` on it goes on to create it.
                return false;
            }
        }, cancellationToken);
    }

    public async Task<bool> IsEmptyAsync(CancellationToken cancellationToken = default)
    {
        string prefix = _location.Prefix.Length == 0 ? "" : _location.Prefix + "/";
        try
        {
            var (names, _) = await ListPageAsync(prefix, null, 1, cancellationToken).ConfigureAwait(false);
            return names.Count == 0;
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.RepositoryNotFound)
        {
            return true;
        }
    }

    /// <summary>
    /// Makes sure the container exists, creating it when it does not (as restic does); credentials
    /// that may not create containers (a container SAS) need it made beforehand.
    /// </summary>
    public async Task CreateAsync(CancellationToken cancellationToken = default)
    {
        bool exists = await RunAsync(RequestKind.Head, "the container", async dog =>
        {
            try
            {
                await _container.GetPropertiesAsync(cancellationToken: dog.Token).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                return false;
            }
        }, cancellationToken).ConfigureAwait(false);
        if (exists)
        {
            return;
        }
        await RunAsync(RequestKind.Put, "the container", async dog =>
        {
            try
            {
                await _container.CreateAsync(cancellationToken: dog.Token).ConfigureAwait(false);
            }
            catch (RequestFailedException e) when (e.Status == 409)
            {
                // Created by someone else meanwhile, or by an attempt whose answer was lost.
            }
            catch (RequestFailedException e) when (e.Status == 403)
            {
                throw new KintsugiException(ErrorKind.Failed, $"{Location}: container {_location.Container} does not exist and these credentials ({_credentials}) may not create it ({e.Status} {e.ErrorCode}); create it (az storage container create --name {_location.Container}) or use an account key", e);
            }
            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    public Task PutAsync(FileKind kind, string name, ReadOnlyMemory<byte> data, bool overwrite = false, CancellationToken cancellationToken = default)
    {
        if (overwrite)
        {
            _windows.Forget(name);
        }
        return UploadAsync(_location.ObjectName(kind, name), new UploadSource(data), overwrite, cancellationToken);
    }

    public IPendingFile CreatePending(FileKind kind) => new PendingUpload(this, kind);

    public Task<byte[]> GetAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
    {
        string objectName = _location.ObjectName(kind, name);
        var blob = _container.GetBlobClient(objectName);
        return RunAsync(RequestKind.Get, objectName, async dog =>
        {
            try
            {
                var response = await blob.DownloadStreamingAsync(new BlobDownloadOptions(), dog.Token).ConfigureAwait(false);
                using var result = response.Value;
                long length = result.Details.ContentLength;
                if (length > Array.MaxLength)
                {
                    throw new KintsugiException(ErrorKind.Corrupt, $"repository file {objectName} in {Location} is {length} bytes, too big to read whole; run `kintsugi check` to see what is affected");
                }
                var data = new byte[length];
                await ReadBodyAsync(result.Content, data, dog).ConfigureAwait(false);
                return data;
            }
            catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode != BlobErrorCode.ContainerNotFound)
            {
                throw Missing(objectName, e);
            }
        }, cancellationToken);
    }

    /// <summary>A pack's blobs, read one by one, are fetched a window at a time (<see cref="Storage.ReadWindows"/>).</summary>
    private readonly ReadWindows _windows = new(ReadWindows.RemoteWindowSize, ReadWindows.RemoteMaxWindows);

    public ValueTask ReadAtAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        kind == FileKind.Pack && buffer.Length > 0
            ? _windows.ReadAsync(name, offset, buffer, (o, n, ct) => FetchAsync(kind, name, o, n, ct), (o, b, ct) => ReadExactAsync(kind, name, o, b, ct), cancellationToken)
            : ReadExactAsync(kind, name, offset, buffer, cancellationToken);

    /// <summary>Up to <paramref name="length"/> bytes at <paramref name="offset"/> (fewer at the end of the blob, none past it).</summary>
    private Task<byte[]> FetchAsync(FileKind kind, string name, long offset, int length, CancellationToken cancellationToken)
    {
        string objectName = _location.ObjectName(kind, name);
        var blob = _container.GetBlobClient(objectName);
        return RunAsync(RequestKind.GetRange, objectName, async dog =>
        {
            try
            {
                var response = await blob.DownloadStreamingAsync(new BlobDownloadOptions { Range = new HttpRange(offset, length) }, dog.Token).ConfigureAwait(false);
                using var result = response.Value;
                long n = result.Details.ContentLength;
                if (n < 0 || n > length)
                {
                    // The range was ignored: the exact read that follows says what is wrong.
                    return Array.Empty<byte>();
                }
                var data = new byte[n];
                await ReadBodyAsync(result.Content, data, dog).ConfigureAwait(false);
                return data;
            }
            catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode != BlobErrorCode.ContainerNotFound)
            {
                throw Missing(objectName, e);
            }
            catch (RequestFailedException e) when (e.Status == 416)
            {
                return [];
            }
        }, cancellationToken);
    }

    private async ValueTask ReadExactAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        string objectName = _location.ObjectName(kind, name);
        if (buffer.IsEmpty)
        {
            return;
        }
        var blob = _container.GetBlobClient(objectName);
        await RunAsync(RequestKind.GetRange, objectName, async dog =>
        {
            try
            {
                var options = new BlobDownloadOptions { Range = new HttpRange(offset, buffer.Length) };
                var response = await blob.DownloadStreamingAsync(options, dog.Token).ConfigureAwait(false);
                using var result = response.Value;
                if (result.Details.ContentLength != buffer.Length)
                {
                    throw KintsugiException.Corrupt($"{kind.ToString().ToLowerInvariant()} {name}", $"it ends before byte {offset + buffer.Length}");
                }
                await ReadBodyAsync(result.Content, buffer, dog).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode != BlobErrorCode.ContainerNotFound)
            {
                throw Missing(objectName, e);
            }
            catch (RequestFailedException e) when (e.Status == 416)
            {
                throw KintsugiException.Corrupt($"{kind.ToString().ToLowerInvariant()} {name}", $"it ends before byte {offset + buffer.Length}");
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<StoredFile>> ListAsync(FileKind kind, CancellationToken cancellationToken = default)
    {
        string folder = kind switch
        {
            FileKind.Config => "config",
            FileKind.ParitySettings => "parity/settings",
            FileKind.Key => "keys/",
            FileKind.Pack => "data/",
            FileKind.Index => "index/",
            FileKind.Snapshot => "snapshots/",
            FileKind.Lock => "locks/",
            FileKind.Parity => "parity/",
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        string prefix = _location.Under(folder);
        var result = new List<StoredFile>();
        string? continuation = null;
        do
        {
            var (items, next) = await ListPageAsync(prefix, continuation, ListPageSize, cancellationToken).ConfigureAwait(false);
            foreach (var item in items)
            {
                string relative = item.Name[prefix.Length..];
                string? name = kind switch
                {
                    FileKind.Config => relative.Length == 0 ? "config" : null,
                    FileKind.ParitySettings => relative.Length == 0 ? "settings" : null,
                    // Packs live in the folder of their first two hex digits.
                    FileKind.Pack => relative.Length == 67 && relative[2] == '/' && IsHexName(relative[3..]) && relative[3..].StartsWith(relative[..2], StringComparison.Ordinal) ? relative[3..] : null,
                    _ => IsHexName(relative) ? relative : null,
                };
                if (name is not null)
                {
                    result.Add(new StoredFile(name, item.Properties.ContentLength ?? 0, item.Properties.LastModified ?? default));
                }
            }
            continuation = next;
        }
        while (!string.IsNullOrEmpty(continuation));
        result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    /// <summary>One page of a listing (one List Blobs request), retried on its own with its continuation token.</summary>
    private Task<(IReadOnlyList<BlobItem> Items, string? Next)> ListPageAsync(string prefix, string? continuation, int? pageSize, CancellationToken cancellationToken) =>
        RunAsync<(IReadOnlyList<BlobItem>, string?)>(RequestKind.List, "the listing of " + prefix, async dog =>
        {
            var pages = _container.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, dog.Token).AsPages(continuation, pageSize);
            await using var enumerator = pages.GetAsyncEnumerator(dog.Token);
            if (!await enumerator.MoveNextAsync().ConfigureAwait(false))
            {
                return ([], null);
            }
            var page = enumerator.Current;
            return (page.Values, page.ContinuationToken);
        }, cancellationToken);

    public Task DeleteAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
    {
        string objectName = _location.ObjectName(kind, name);
        _windows.Forget(name);
        var blob = _container.GetBlobClient(objectName);
        return RunAsync(RequestKind.Delete, objectName, async dog =>
        {
            try
            {
                await blob.DeleteAsync(DeleteSnapshotsOption.None, conditions: null, dog.Token).ConfigureAwait(false);
            }
            catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode != BlobErrorCode.ContainerNotFound)
            {
                // Already gone (perhaps by an attempt whose answer was lost).
            }
            return true;
        }, cancellationToken);
    }


    // ----- uploads -----

    /// <summary>
    /// Uploads <paramref name="source"/> as <paramref name="objectName"/>: one Put Blob up to
    /// <see cref="SinglePutLimit"/>, else staged blocks and one Put Block List. Each request carries
    /// the Content-MD5 of its body, which the service verifies. Without <paramref name="overwrite"/>
    /// the write is conditional (If-None-Match: *): a blob already there is the same content-addressed
    /// file, or our own earlier attempt whose answer was lost, and is kept.
    /// </summary>
    private async Task UploadAsync(string objectName, UploadSource source, bool overwrite, CancellationToken cancellationToken)
    {
        var blob = _container.GetBlockBlobClient(objectName);
        var conditions = overwrite ? null : new BlobRequestConditions { IfNoneMatch = ETag.All };
        byte[] md5 = source.Md5(0, source.Length);
        if (source.Length <= SinglePutLimit)
        {
            await RunAsync(RequestKind.Put, objectName, async dog =>
            {
                await using var body = new UploadBody(source, 0, source.Length, this, dog);
                var options = new BlobUploadOptions
                {
                    HttpHeaders = new BlobHttpHeaders { ContentHash = md5 },
                    Conditions = conditions,
                    // Never split by the SDK: this is one Put Blob.
                    TransferOptions = new StorageTransferOptions { InitialTransferSize = source.Length + 1, MaximumConcurrency = 1 },
                };
                using (ContentMd5Policy.Send(md5))
                {
                    return await PutIfAbsentAsync(() => blob.UploadAsync(body, options, dog.Token)).ConfigureAwait(false);
                }
            }, cancellationToken).ConfigureAwait(false);
            return;
        }
        // Blocks staged but never committed (the process was killed) are invisible, are never part
        // of a blob, and are garbage-collected by Azure after a week; they are billed until then.
        // A random tag per upload keeps two writers of the same name from mixing their blocks.
        string tag = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var ids = new List<string>();
        for (long offset = 0; offset < source.Length; offset += BlockSize)
        {
            long length = Math.Min(BlockSize, source.Length - offset);
            string id = Convert.ToBase64String(Encoding.ASCII.GetBytes($"{tag}-{ids.Count:D6}"));
            ids.Add(id);
            byte[] blockMd5 = source.Md5(offset, length);
            long blockOffset = offset;
            await RunAsync(RequestKind.Put, objectName, async dog =>
            {
                await using var body = new UploadBody(source, blockOffset, length, this, dog);
                using (ContentMd5Policy.Send(blockMd5))
                {
                    await blob.StageBlockAsync(id, body, new BlockBlobStageBlockOptions(), dog.Token).ConfigureAwait(false);
                }
                return true;
            }, cancellationToken).ConfigureAwait(false);
        }
        await RunAsync(RequestKind.Put, objectName, dog =>
        {
            var options = new CommitBlockListOptions { HttpHeaders = new BlobHttpHeaders { ContentHash = md5 }, Conditions = conditions };
            return PutIfAbsentAsync(() => blob.CommitBlockListAsync(ids, options, dog.Token));
        }, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<bool> PutIfAbsentAsync(Func<Task<Response<BlobContentInfo>>> put)
    {
        try
        {
            await put().ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412 && e.ErrorCode is "BlobAlreadyExists" or "ConditionNotMet" or null)
        {
            return false;
        }
    }

    /// <summary>What is uploaded: bytes in memory, or a range of a temporary file.</summary>
    private sealed class UploadSource
    {
        private readonly ReadOnlyMemory<byte> _memory;
        private readonly SafeFileHandle? _file;

        public UploadSource(ReadOnlyMemory<byte> memory)
        {
            _memory = memory;
            Length = memory.Length;
        }

        public UploadSource(SafeFileHandle file, long length)
        {
            _file = file;
            Length = length;
        }

        public long Length { get; }

        public int Read(long position, Span<byte> into)
        {
            int n = (int)Math.Min(into.Length, Length - position);
            if (n <= 0)
            {
                return 0;
            }
            if (_file is null)
            {
                _memory.Span.Slice((int)position, n).CopyTo(into);
                return n;
            }
            return RandomAccess.Read(_file, into[..n], position);
        }

        public byte[] Md5(long offset, long length)
        {
            if (_file is null)
            {
                return MD5.HashData(_memory.Span.Slice((int)offset, (int)length));
            }
            using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
            var buffer = new byte[1 << 20];
            for (long done = 0; done < length;)
            {
                int n = RandomAccess.Read(_file, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - done)), offset + done);
                if (n == 0)
                {
                    throw new IOException("the temporary file of an upload ended early");
                }
                md5.AppendData(buffer, 0, n);
                done += n;
            }
            return md5.GetHashAndReset();
        }
    }

    /// <summary>
    /// A request body: a range of an <see cref="UploadSource"/>, read by the HTTP client at the
    /// upload limit, each read counted and shown to the stall watchdog as progress.
    /// </summary>
    private sealed class UploadBody(UploadSource source, long offset, long length, AzureBlobStore store, StallWatchdog dog) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => _position = Math.Clamp(value, 0, length);
        }

        public override int Read(byte[] buffer, int offset1, int count) => Read(buffer.AsSpan(offset1, count));

        public override int Read(Span<byte> buffer)
        {
            int n = source.Read(offset + _position, buffer[..(int)Math.Min(Math.Min(buffer.Length, TransferChunk), length - _position)]);
            _position += n;
            store.Statistics.CountUp(n);
            dog.Progress();
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int want = (int)Math.Min(Math.Min(buffer.Length, TransferChunk), length - _position);
            await store._upload.WaitAsync(want, cancellationToken).ConfigureAwait(false);
            return Read(buffer.Span[..want]);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset1, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset1, count), cancellationToken).AsTask();

        public override long Seek(long offset1, SeekOrigin origin)
        {
            Position = origin switch
            {
                SeekOrigin.Begin => offset1,
                SeekOrigin.Current => _position + offset1,
                _ => length + offset1,
            };
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset1, int count) => throw new NotSupportedException();
    }

    /// <summary>
    /// A file named when complete: kept in memory up to <see cref="MemoryLimit"/>, then in a
    /// temporary file (unlinked at once, so a killed process leaves nothing on disk); committing
    /// uploads it under its name; disposing an uncommitted one uploads nothing.
    /// </summary>
    private sealed class PendingUpload(AzureBlobStore store, FileKind kind) : IPendingFile
    {
        private MemoryStream? _memory = new();
        private SafeFileHandle? _file;
        private bool _done;

        public long Length { get; private set; }

        public void Write(ReadOnlySpan<byte> data)
        {
            ObjectDisposedException.ThrowIf(_done, this);
            if (_file is null && Length + data.Length > store.MemoryLimit)
            {
                _file = OpenTemporaryFile();
                RandomAccess.Write(_file, _memory!.GetBuffer().AsSpan(0, (int)Length), 0);
                _memory = null;
            }
            if (_file is not null)
            {
                RandomAccess.Write(_file, data, Length);
            }
            else
            {
                _memory!.Write(data);
            }
            Length += data.Length;
        }

        private static SafeFileHandle OpenTemporaryFile()
        {
            string path = Path.Combine(Path.GetTempPath(), "kintsugi-upload-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
            var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.DeleteOnClose);
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
                // DeleteOnClose removes it when the handle is closed.
            }
            return handle;
        }

        public async Task CommitAsync(string name, bool overwrite, CancellationToken cancellationToken)
        {
            ObjectDisposedException.ThrowIf(_done, this);
            var source = _file is not null ? new UploadSource(_file, Length) : new UploadSource(_memory!.GetBuffer().AsMemory(0, (int)Length));
            await store.UploadAsync(store._location.ObjectName(kind, name), source, overwrite, cancellationToken).ConfigureAwait(false);
            await DisposeAsync().ConfigureAwait(false);
        }

        public ValueTask DisposeAsync()
        {
            _done = true;
            _file?.Dispose();
            _file = null;
            _memory = null;
            return ValueTask.CompletedTask;
        }
    }

    // ----- downloads -----

    /// <summary>Reads a response body into <paramref name="into"/>, at the download limit, counting bytes and progress; a body that ends early is a transient failure.</summary>
    private async Task ReadBodyAsync(Stream body, Memory<byte> into, StallWatchdog dog)
    {
        int done = 0;
        while (done < into.Length)
        {
            int want = Math.Min(TransferChunk, into.Length - done);
            await _download.WaitAsync(want, dog.Token).ConfigureAwait(false);
            int n = await body.ReadAsync(into.Slice(done, want), dog.Token).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException($"the response ended after {done} of {into.Length} bytes");
            }
            done += n;
            Statistics.CountDown(n);
            dog.Progress();
        }
    }

    private KintsugiException Missing(string objectName, Exception inner) =>
        new(ErrorKind.Corrupt, $"repository file {objectName} is missing from {Location}; run `kintsugi check` to see what is affected", inner);

    // ----- requests, failures -----

    /// <summary>
    /// One request through <see cref="RemoteRequests"/>, with a stall watchdog per attempt; a
    /// permanent failure becomes one line naming the URL and what to do, and a transient one that
    /// outlasted the retry budget one line naming its cause.
    /// </summary>
    private async Task<T> RunAsync<T>(RequestKind kind, string what, Func<StallWatchdog, Task<T>> attempt, CancellationToken cancellationToken)
    {
        try
        {
            return await _requests.RunAsync(kind, async token =>
            {
                using var dog = new StallWatchdog(_options.StallTimeout, _options.Time, token);
                try
                {
                    return await attempt(dog).ConfigureAwait(false);
                }
                catch (Exception e) when (dog.Fired && !token.IsCancellationRequested && e is not KintsugiException)
                {
                    throw new TimeoutException($"no byte moved for {_options.StallTimeout.TotalSeconds:0.#} s", e);
                }
                catch (RequestFailedException e) when (!Classify(e, token).Transient)
                {
                    throw Permanent(e, what);
                }
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not KintsugiException && !cancellationToken.IsCancellationRequested && Classify(e, cancellationToken).Transient)
        {
            throw new KintsugiException(ErrorKind.Failed, $"{Location}: {what} still failed after retrying for {_options.RetryBudget.TotalSeconds:0} s ({Describe(e)}); check the network and the storage account, then run the command again", e);
        }
    }

    private KintsugiException Permanent(RequestFailedException e, string what)
    {
        string cause = Describe(e);
        string account = _container.AccountName;
        return e.Status switch
        {
            404 when e.ErrorCode == BlobErrorCode.ContainerNotFound =>
                new KintsugiException(ErrorKind.RepositoryNotFound, $"{Location}: container {_location.Container} does not exist in storage account {account}; create it, or run `kintsugi init`, which creates it", e),
            401 or 403 when e.ErrorCode is "AuthenticationFailed" or "InvalidAuthenticationInfo" or "AuthorizationFailure" or null =>
                new KintsugiException(ErrorKind.Failed, $"{Location}: storage account {account} refused the credentials ({cause}); check {_credentials} (and the clock: a skewed one fails signatures)", e),
            401 or 403 =>
                new KintsugiException(ErrorKind.Failed, $"{Location}: access denied by storage account {account} ({cause}); give {_credentials} read, write, list and delete permission on container {_location.Container}", e),
            _ =>
                new KintsugiException(ErrorKind.Failed, $"{Location}: Azure rejected {what} ({cause}); check the URL and the storage account", e),
        };
    }

    /// <summary>Transient (retry, perhaps after the delay the service asked for) or permanent; a cancellation the caller asked for is never retried.</summary>
    internal static FailureClass Classify(Exception e, CancellationToken caller)
    {
        if (RemoteRequests.IsUnknownHost(e))
        {
            return FailureClass.Permanent;
        }
        switch (e)
        {
            case KintsugiException:
                return FailureClass.Permanent;
            case OperationCanceledException:
                return caller.IsCancellationRequested ? FailureClass.Permanent : FailureClass.Retry;
            case RequestFailedException r:
                // Status 0: no answer at all (connection refused or reset; the SDK wraps the transport's exception).
                if (r.Status is 0 or 408 or 429 or 500 or 502 or 503 or 504
                    || r.ErrorCode is "ServerBusy" or "OperationTimedOut" or "InternalError"
                    || (r.Status == 400 && r.ErrorCode is "Md5Mismatch" or "Crc64Mismatch"))
                {
                    return new FailureClass(true, RetryAfter(r));
                }
                return FailureClass.Permanent;
            case BodyReadException or IOException or HttpRequestException or TimeoutException or SocketException:
                return FailureClass.Retry;
            case AggregateException a:
                return a.InnerExceptions.Count > 0 && a.InnerExceptions.All(i => Classify(i, caller).Transient) ? FailureClass.Retry : FailureClass.Permanent;
            default:
                return FailureClass.Permanent;
        }
    }

    /// <summary>The delay the service asked for: x-ms-retry-after-ms, or Retry-After in seconds or as a date.</summary>
    private static TimeSpan? RetryAfter(RequestFailedException e)
    {
        var response = e.GetRawResponse();
        if (response is null)
        {
            return null;
        }
        if (response.Headers.TryGetValue("x-ms-retry-after-ms", out string? ms) && double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out double milliseconds) && milliseconds >= 0)
        {
            return TimeSpan.FromMilliseconds(milliseconds);
        }
        if (response.Headers.TryGetValue("Retry-After", out string? after))
        {
            if (int.TryParse(after, NumberStyles.Integer, CultureInfo.InvariantCulture, out int seconds) && seconds >= 0)
            {
                return TimeSpan.FromSeconds(seconds);
            }
            if (DateTimeOffset.TryParse(after, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var date))
            {
                var wait = date - DateTimeOffset.UtcNow;
                return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
            }
        }
        return null;
    }

    /// <summary>A failure in a few words, on one line, without secrets (an SDK message spans many lines and lists headers).</summary>
    private static string Describe(Exception e) => e switch
    {
        RequestFailedException { Status: 0 } r => FirstLine(r.InnerException?.Message ?? r.Message),
        RequestFailedException r => $"{r.Status} {r.ErrorCode ?? "error"}",
        BodyReadException b => "the response broke off: " + FirstLine(b.InnerException?.Message ?? b.Message),
        AggregateException { InnerExceptions.Count: > 0 } a => Describe(a.InnerExceptions[^1]),
        _ => FirstLine(e.Message),
    };

    private static string FirstLine(string text)
    {
        int end = text.IndexOfAny(['\r', '\n']);
        return (end < 0 ? text : text[..end]).Trim();
    }

    private static bool IsHexName(string name) =>
        name.Length == 64 && name.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>A response body that broke off; not an <see cref="IOException"/>, so that the SDK's own download retry (uncounted, outside the budget) leaves it to <see cref="RemoteRequests"/>.</summary>
    private sealed class BodyReadException(Exception inner) : Exception(inner.Message, inner);

    /// <summary>Sets Content-MD5 on the upload made inside <see cref="Send"/>: the service checks it against the body it received and refuses a mismatch (400 Md5Mismatch).</summary>
    private sealed class ContentMd5Policy : HttpPipelineSynchronousPolicy
    {
        private const string Property = "kintsugi.content-md5";

        public static IDisposable Send(byte[] md5) =>
            HttpPipeline.CreateHttpMessagePropertiesScope(new Dictionary<string, object?>(StringComparer.Ordinal) { [Property] = md5 });

        public override void OnSendingRequest(HttpMessage message)
        {
            if (message.Request.Method == RequestMethod.Put && message.TryGetProperty(Property, out object? value) && value is byte[] md5)
            {
                message.Request.Headers.SetValue("Content-MD5", Convert.ToBase64String(md5));
            }
        }
    }

    /// <summary>Wraps streamed response bodies so that a failed read surfaces as <see cref="BodyReadException"/>.</summary>
    private sealed class BodyFailurePolicy : HttpPipelinePolicy
    {
        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            await ProcessNextAsync(message, pipeline).ConfigureAwait(false);
            Wrap(message);
        }

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            ProcessNext(message, pipeline);
            Wrap(message);
        }

        private static void Wrap(HttpMessage message)
        {
            if (!message.BufferResponse && message.Response.ContentStream is { } stream)
            {
                message.Response.ContentStream = new FailingBody(stream);
            }
        }
    }

    private sealed class FailingBody(Stream inner) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            try
            {
                return inner.Read(buffer, offset, count);
            }
            catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException)
            {
                throw new BodyReadException(e);
            }
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                throw new BodyReadException(e);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

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
    }
}
