using System.Security.Cryptography;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests.Storage;

/// <summary>One Azurite for the whole class; each test works under its own prefix (or container).</summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    public const string Container = "kintsugi";

    internal AzuriteServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await AzuriteServer.StartAsync(Container);

    public async Task DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }
}

public sealed class AzureBlobStoreTests(AzuriteFixture fixture, ITestOutputHelper output) : IClassFixture<AzuriteFixture>
{
    private AzuriteServer Server => fixture.Server;

    private static readonly TimeSpan ShortBudget = TimeSpan.FromSeconds(2);

    private static string NewPrefix() => "t-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    private static string Hex(Random rng) => Convert.ToHexStringLower(Files.RandomBytes(rng, 32));

    private StoreOptions Options(Func<string, string?>? environment = null) => new()
    {
        Environment = environment ?? Server.Environment(),
        RetryBudget = ShortBudget,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
        StallTimeout = TimeSpan.FromSeconds(20),
    };

    private AzureBlobStore Store(string prefix, string container = AzuriteFixture.Container) =>
        new(AzureBlobLocation.Parse($"azure:{container}:/{prefix}"), Options());

    private BlobContainerClient Raw(string container = AzuriteFixture.Container) =>
        new BlobServiceClient(Server.ConnectionString).GetBlobContainerClient(container);

    private async Task<List<string>> RawNamesAsync(string prefix)
    {
        var names = new List<string>();
        await foreach (var item in Raw().GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = prefix + "/" }))
        {
            names.Add(item.Name);
        }
        return names;
    }

    [Fact]
    public async Task Files_round_trip_under_the_prefix_with_the_local_layouts_names()
    {
        var rng = new Random(TestSeed.Get(output));
        string prefix = NewPrefix();
        using var store = Store(prefix);
        string pack = Hex(rng), index = Hex(rng), key = Hex(rng), snapshot = Hex(rng), lockName = Hex(rng), parity = Hex(rng), empty = Hex(rng);
        var files = new (FileKind Kind, string Name, byte[] Data, string Object)[]
        {
            (FileKind.Config, "config", Files.RandomBytes(rng, 300), "config"),
            (FileKind.Key, key, Files.RandomBytes(rng, 500), "keys/" + key),
            (FileKind.Pack, pack, Files.RandomBytes(rng, 200_000), $"data/{pack[..2]}/{pack}"),
            (FileKind.Index, index, Files.RandomBytes(rng, 1000), "index/" + index),
            (FileKind.Snapshot, snapshot, Files.RandomBytes(rng, 10), "snapshots/" + snapshot),
            (FileKind.Lock, lockName, Files.RandomBytes(rng, 100), "locks/" + lockName),
            (FileKind.Parity, parity, Files.RandomBytes(rng, 4000), "parity/" + parity),
            (FileKind.ParitySettings, "settings", Files.RandomBytes(rng, 50), "parity/settings"),
            (FileKind.Index, empty, [], "index/" + empty),
        };
        Assert.True(await store.IsEmptyAsync());

        foreach (var f in files)
        {
            await store.PutAsync(f.Kind, f.Name, f.Data);
        }

        foreach (var f in files)
        {
            Assert.Equal(f.Data, await store.GetAsync(f.Kind, f.Name));
            Assert.True(await store.ExistsAsync(f.Kind, f.Name));
        }
        Assert.Equal(files.Select(f => prefix + "/" + f.Object).Order(StringComparer.Ordinal), (await RawNamesAsync(prefix)).Order(StringComparer.Ordinal));
        Assert.False(await store.IsEmptyAsync());
        Assert.Equal(new[] { new StoredFile("config", 300) }, (await store.ListAsync(FileKind.Config)).Select(f => f with { Modified = default }));
        Assert.Equal([pack], (await store.ListAsync(FileKind.Pack)).Select(f => f.Name));
        Assert.Equal(200_000, (await store.ListAsync(FileKind.Pack))[0].Size);
    }

    [Fact]
    public async Task Ranged_reads_return_the_bytes_asked_for_and_a_read_past_the_end_is_damage()
    {
        var rng = new Random(TestSeed.Get(output));
        using var store = Store(NewPrefix());
        string name = Hex(rng);
        var data = Files.RandomBytes(rng, 300_000);
        await store.PutAsync(FileKind.Pack, name, data);

        foreach (var (offset, length) in new[] { (0, 1), (0, 300_000), (12345, 100_000), (299_999, 1), (150_000, 0) })
        {
            var buffer = new byte[length];
            await store.ReadAtAsync(FileKind.Pack, name, offset, buffer);
            Assert.Equal(data.AsSpan(offset, length).ToArray(), buffer);
        }
        // The pack is smaller than a window (ReadWindows): the first read fetched it, the others were served from memory.
        Assert.Equal(1, store.Statistics.Requests(RequestKind.GetRange));

        var past = await Assert.ThrowsAsync<KintsugiException>(() => store.ReadAtAsync(FileKind.Pack, name, 299_990, new byte[20]).AsTask());
        Assert.Equal(ErrorKind.Corrupt, past.Kind);
        var beyond = await Assert.ThrowsAsync<KintsugiException>(() => store.ReadAtAsync(FileKind.Pack, name, 400_000, new byte[20]).AsTask());
        Assert.Equal(ErrorKind.Corrupt, beyond.Kind);
        Assert.Equal(0, store.Statistics.Retries);
    }

    [Fact]
    public async Task Listing_pages_through_everything_sorted_and_keeps_only_names_the_repository_writes()
    {
        var rng = new Random(TestSeed.Get(output));
        string prefix = NewPrefix();
        using var store = new AzureBlobStore(AzureBlobLocation.Parse($"azure:{AzuriteFixture.Container}:/{prefix}"), Options()) { ListPageSize = 3 };
        var names = Enumerable.Range(0, 10).Select(_ => Hex(rng)).ToList();
        foreach (string name in names)
        {
            await store.PutAsync(FileKind.Index, name, Files.RandomBytes(rng, rng.Next(1, 100)));
        }
        // What the repository never writes: another name, a pack in the wrong shard, an object beside the prefix.
        await Raw().UploadBlobAsync($"{prefix}/index/notes.txt", BinaryData.FromString("x"));
        string stray = Hex(rng);
        await Raw().UploadBlobAsync($"{prefix}/data/{(stray[..2] == "00" ? "01" : "00")}/{stray}", BinaryData.FromString("x"));
        await Raw().UploadBlobAsync($"{prefix}-other/index/{Hex(rng)}", BinaryData.FromString("x"));
        long before = store.Statistics.Requests(RequestKind.List);

        var listed = await store.ListAsync(FileKind.Index);

        Assert.Equal(names.Order(StringComparer.Ordinal), listed.Select(f => f.Name));
        // 11 objects under index/ at 3 a page: 4 List requests.
        Assert.Equal(4, store.Statistics.Requests(RequestKind.List) - before);
        Assert.Empty(await store.ListAsync(FileKind.Pack));
        Assert.All(listed, f => Assert.NotEqual(default, f.Modified));
    }

    [Fact]
    public async Task A_missing_file_is_damage_not_a_transient_error_and_deleting_it_is_fine()
    {
        var rng = new Random(TestSeed.Get(output));
        using var store = Store(NewPrefix());
        string name = Hex(rng);

        var get = await Assert.ThrowsAsync<KintsugiException>(() => store.GetAsync(FileKind.Index, name));
        Assert.Equal(ErrorKind.Corrupt, get.Kind);
        Assert.Contains(name, get.Message, StringComparison.Ordinal);
        Assert.StartsWith("repository file", get.Message, StringComparison.Ordinal);
        var read = await Assert.ThrowsAsync<KintsugiException>(() => store.ReadAtAsync(FileKind.Pack, name, 0, new byte[10]).AsTask());
        Assert.Equal(ErrorKind.Corrupt, read.Kind);
        Assert.False(await store.ExistsAsync(FileKind.Snapshot, name));
        await store.DeleteAsync(FileKind.Lock, name);
        Assert.Equal(0, store.Statistics.Retries);

        await store.PutAsync(FileKind.Lock, name, new byte[] { 1 });
        await store.DeleteAsync(FileKind.Lock, name);
        Assert.False(await store.ExistsAsync(FileKind.Lock, name));
    }

    [Fact]
    public async Task An_existing_file_is_kept_unless_overwrite_is_asked()
    {
        var rng = new Random(TestSeed.Get(output));
        using var store = Store(NewPrefix());
        string name = Hex(rng);
        byte[] first = Files.RandomBytes(rng, 1000), second = Files.RandomBytes(rng, 2000);

        await store.PutAsync(FileKind.Snapshot, name, first);
        await store.PutAsync(FileKind.Snapshot, name, second);
        Assert.Equal(first, await store.GetAsync(FileKind.Snapshot, name));

        await using (var pending = store.CreatePending(FileKind.Snapshot))
        {
            pending.Write(second);
            await pending.CommitAsync(name, overwrite: false, CancellationToken.None);
        }
        Assert.Equal(first, await store.GetAsync(FileKind.Snapshot, name));

        await store.PutAsync(FileKind.Snapshot, name, second, overwrite: true);
        Assert.Equal(second, await store.GetAsync(FileKind.Snapshot, name));
    }

    [Fact]
    public async Task A_pending_file_is_invisible_until_committed_and_leaves_nothing_when_dropped()
    {
        var rng = new Random(TestSeed.Get(output));
        string prefix = NewPrefix();
        // Small limits, so a few hundred KiB spill to a temporary file and go up as staged blocks.
        using var store = new AzureBlobStore(AzureBlobLocation.Parse($"azure:{AzuriteFixture.Container}:/{prefix}"), Options())
        {
            MemoryLimit = 10_000,
            SinglePutLimit = 100_000,
            BlockSize = 64 * 1024,
        };
        foreach (int size in new[] { 5000, 50_000, 300_000 })
        {
            var data = Files.RandomBytes(rng, size);
            string name = Hex(rng);
            long putsBefore = store.Statistics.Requests(RequestKind.Put);
            await using (var pending = store.CreatePending(FileKind.Pack))
            {
                for (int at = 0; at < size; at += 7777)
                {
                    pending.Write(data.AsSpan(at, Math.Min(7777, size - at)));
                }
                Assert.Equal(size, pending.Length);
                Assert.Empty(await store.ListAsync(FileKind.Pack));
                await pending.CommitAsync(name, overwrite: false, CancellationToken.None);
            }
            Assert.Equal(data, await store.GetAsync(FileKind.Pack, name));
            // One Put Blob, or five staged blocks and their commit.
            Assert.Equal(size <= 100_000 ? 1 : 6, store.Statistics.Requests(RequestKind.Put) - putsBefore);
            await store.DeleteAsync(FileKind.Pack, name);
        }

        await using (var dropped = store.CreatePending(FileKind.Pack))
        {
            dropped.Write(Files.RandomBytes(rng, 200_000));
        }
        Assert.Empty(await RawNamesAsync(prefix));
        Assert.True(await store.IsEmptyAsync());
    }

    [Fact]
    public async Task Concurrent_writers_of_one_name_and_of_many_names_all_succeed_with_whole_files()
    {
        var rng = new Random(TestSeed.Get(output));
        string prefix = NewPrefix();
        using var store = new AzureBlobStore(AzureBlobLocation.Parse($"azure:{AzuriteFixture.Container}:/{prefix}"), Options() with { Connections = 8 })
        {
            SinglePutLimit = 100_000,
            BlockSize = 50_000,
        };
        string shared = Hex(rng);
        var sharedData = Files.RandomBytes(rng, 180_000);
        var others = Enumerable.Range(0, 16).Select(_ => (Name: Hex(rng), Data: Files.RandomBytes(rng, rng.Next(1, 120_000)))).ToList();

        var writers = Enumerable.Range(0, 8).Select(async i =>
        {
            await using var pending = store.CreatePending(FileKind.Pack);
            pending.Write(sharedData);
            await pending.CommitAsync(shared, overwrite: false, CancellationToken.None);
        }).Concat(others.Select(o => store.PutAsync(FileKind.Pack, o.Name, o.Data)));
        await Task.WhenAll(writers);

        Assert.Equal(sharedData, await store.GetAsync(FileKind.Pack, shared));
        foreach (var (name, data) in others)
        {
            Assert.Equal(data, await store.GetAsync(FileKind.Pack, name));
        }
        Assert.Equal(others.Select(o => o.Name).Append(shared).Order(StringComparer.Ordinal), (await store.ListAsync(FileKind.Pack)).Select(f => f.Name));
    }

    [Fact]
    public async Task A_wrong_account_key_fails_at_once_with_one_line_that_names_the_url_and_not_the_key()
    {
        string wrongKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(64));
        var environment = new Dictionary<string, string>
        {
            ["AZURE_STORAGE_ACCOUNT"] = AzuriteServer.Account,
            ["AZURE_STORAGE_KEY"] = wrongKey,
            ["AZURE_STORAGE_ENDPOINT"] = Server.Endpoint,
        };
        string url = $"azure:{AzuriteFixture.Container}:/{NewPrefix()}";
        using var store = AzureBlobStore.Open(url, Options(name => environment.GetValueOrDefault(name)));

        var e = await Assert.ThrowsAsync<KintsugiException>(() => store.ListAsync(FileKind.Snapshot));

        output.WriteLine(e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(url, e.Message, StringComparison.Ordinal);
        Assert.Contains("AZURE_STORAGE_KEY", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(wrongKey, e.Message, StringComparison.Ordinal);
        Assert.Equal(0, store.Statistics.Retries);
        Assert.Equal(1, store.Statistics.TotalRequests);

        // The right key through the same variables works.
        environment["AZURE_STORAGE_KEY"] = AzuriteServer.Key;
        using var good = AzureBlobStore.Open(url, Options(name => environment.GetValueOrDefault(name)));
        Assert.Empty(await good.ListAsync(FileKind.Snapshot));
    }

    [Fact]
    public void Missing_or_malformed_credentials_are_one_line_naming_the_url_and_the_variables()
    {
        string url = "azure:somewhere:/x";
        var none = Assert.Throws<KintsugiException>(() => AzureBlobStore.Open(url, new StoreOptions { Environment = _ => null }));
        Assert.Equal(ErrorKind.InvalidInput, none.Kind);
        Assert.DoesNotContain('\n', none.Message);
        Assert.Contains(url, none.Message, StringComparison.Ordinal);
        foreach (string variable in new[] { "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN" })
        {
            Assert.Contains(variable, none.Message, StringComparison.Ordinal);
        }

        var badKey = Assert.Throws<KintsugiException>(() => AzureBlobStore.Open(url, new StoreOptions
        {
            Environment = name => name switch { "AZURE_STORAGE_ACCOUNT" => "acct", "AZURE_STORAGE_KEY" => "not base64 !!secret", _ => null },
        }));
        Assert.Equal(ErrorKind.InvalidInput, badKey.Kind);
        Assert.DoesNotContain("secret", badKey.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', badKey.Message);

        var badString = Assert.Throws<KintsugiException>(() => AzureBlobStore.Open(url, new StoreOptions
        {
            Environment = name => name == "AZURE_STORAGE_CONNECTION_STRING" ? "AccountKey=secret;nonsense" : null,
        }));
        Assert.Equal(ErrorKind.InvalidInput, badString.Kind);
        Assert.DoesNotContain("secret", badString.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("azure:bucket:/a/b", "bucket", "a/b")]
    [InlineData("azure:bucket", "bucket", "")]
    [InlineData("azure:bucket:/", "bucket", "")]
    [InlineData("azure:my-bucket-2:/x/", "my-bucket-2", "x")]
    public void Urls_name_a_container_and_an_optional_prefix(string url, string container, string prefix)
    {
        var location = AzureBlobLocation.Parse(url);
        Assert.Equal(container, location.Container);
        Assert.Equal(prefix, location.Prefix);
        Assert.Equal(prefix.Length == 0 ? "config" : prefix + "/config", location.ObjectName(FileKind.Config, "config"));
    }

    [Theory]
    [InlineData("azure:")]
    [InlineData("azure:ab:/x")]
    [InlineData("azure:Upper:/x")]
    [InlineData("azure:a--b:/x")]
    [InlineData("azure:-ab:/x")]
    [InlineData("azure:bucket:/a//b")]
    [InlineData("azure:bucket:/a/../b")]
    public void Malformed_urls_are_one_line_naming_them(string url)
    {
        var e = Assert.Throws<KintsugiException>(() => AzureBlobLocation.Parse(url));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.StartsWith(url + ":", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task A_missing_container_is_one_line_and_init_creates_it()
    {
        string container = "missing-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        using var store = Store("repo", container);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => store.GetAsync(FileKind.Config, "config"));
        Assert.Equal(ErrorKind.RepositoryNotFound, e.Kind);
        Assert.Contains(container, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        var put = await Assert.ThrowsAsync<KintsugiException>(() => store.PutAsync(FileKind.Config, "config", new byte[] { 1 }));
        Assert.Equal(ErrorKind.RepositoryNotFound, put.Kind);
        Assert.Equal(0, store.Statistics.Retries);

        await store.CreateAsync();
        await store.CreateAsync();
        Assert.True(await store.IsEmptyAsync());
        await store.PutAsync(FileKind.Config, "config", new byte[] { 1 });
        Assert.True(await store.ExistsAsync(FileKind.Config, "config"));
    }

    [Fact]
    public async Task Requests_are_counted_by_kind_with_the_bytes_moved()
    {
        var rng = new Random(TestSeed.Get(output));
        using var store = Store(NewPrefix());
        string name = Hex(rng);
        var data = Files.RandomBytes(rng, 100_000);

        await store.PutAsync(FileKind.Pack, name, data);
        await store.ExistsAsync(FileKind.Pack, name);
        await store.GetAsync(FileKind.Pack, name);
        await store.ReadAtAsync(FileKind.Pack, name, 10, new byte[1000]);
        await store.ListAsync(FileKind.Pack);
        await store.DeleteAsync(FileKind.Pack, name);

        var s = store.Statistics.Snapshot();
        // A pack is read a window at a time (ReadWindows): the 1000 bytes at 10 fetched the rest of the blob.
        Assert.Equal(new StoreStatisticsSnapshot(List: 1, Get: 1, GetRange: 1, Head: 1, Put: 1, Delete: 1, Retries: 0, BytesUp: 100_000, BytesDown: 100_000 + 99_990), s);
    }

    [Fact]
    public async Task Every_upload_carries_its_MD5_and_a_body_garbled_on_the_way_is_refused_by_the_service_and_sent_again()
    {
        var rng = new Random(TestSeed.Get(output));
        string prefix = NewPrefix();
        var garble = new GarbleFirstUpload();
        using var store = new AzureBlobStore(AzureBlobLocation.Parse($"azure:{AzuriteFixture.Container}:/{prefix}"), Options(), o => o.AddPolicy(garble, HttpPipelinePosition.PerCall))
        {
            SinglePutLimit = 100_000,
            BlockSize = 64 * 1024,
        };
        string small = Hex(rng), big = Hex(rng);
        var smallData = Files.RandomBytes(rng, 50_000);
        var bigData = Files.RandomBytes(rng, 200_000);

        await store.PutAsync(FileKind.Pack, small, smallData);
        Assert.Equal(1, garble.Garbled);
        Assert.Equal(1, store.Statistics.Retries);
        garble.Reset();
        await using (var pending = store.CreatePending(FileKind.Pack))
        {
            pending.Write(bigData);
            await pending.CommitAsync(big, overwrite: false, CancellationToken.None);
        }
        Assert.Equal(1, garble.Garbled);
        Assert.Equal(2, store.Statistics.Retries);

        Assert.Equal(smallData, await store.GetAsync(FileKind.Pack, small));
        Assert.Equal(bigData, await store.GetAsync(FileKind.Pack, big));
        foreach (var (name, data) in new[] { (small, smallData), (big, bigData) })
        {
            var properties = await Raw().GetBlobClient($"{prefix}/data/{name[..2]}/{name}").GetPropertiesAsync();
            Assert.Equal(MD5.HashData(data), properties.Value.ContentHash);
        }
    }

    /// <summary>Flips one byte of the first upload body it sees (after the MD5 was computed), as a bad link would.</summary>
    private sealed class GarbleFirstUpload : HttpPipelinePolicy
    {
        private int _garbled;

        public int Garbled => _garbled;

        public void Reset() => _garbled = 0;

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            Garble(message);
            await ProcessNextAsync(message, pipeline);
        }

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            Garble(message);
            ProcessNext(message, pipeline);
        }

        private void Garble(HttpMessage message)
        {
            if (message.Request.Method != RequestMethod.Put || message.Request.Content is null || !message.Request.Headers.Contains("Content-MD5"))
            {
                return;
            }
            if (Interlocked.CompareExchange(ref _garbled, 1, 0) != 0)
            {
                return;
            }
            using var copy = new MemoryStream();
            message.Request.Content.WriteTo(copy, CancellationToken.None);
            var bytes = copy.ToArray();
            bytes[bytes.Length / 2] ^= 0x40;
            message.Request.Content = RequestContent.Create(bytes);
        }
    }

    [Fact]
    public async Task Busy_answers_are_retried_and_a_service_that_stays_busy_is_one_line_after_the_budget()
    {
        var rng = new Random(TestSeed.Get(output));
        string prefix = NewPrefix();
        var busy = new BusyFirst(3);
        using var store = new AzureBlobStore(AzureBlobLocation.Parse($"azure:{AzuriteFixture.Container}:/{prefix}"), Options(), o => o.AddPolicy(busy, HttpPipelinePosition.PerRetry));
        var data = Files.RandomBytes(rng, 1000);
        string name = Hex(rng);

        await store.PutAsync(FileKind.Index, name, data);

        Assert.Equal(3, store.Statistics.Retries);
        Assert.Equal(4, store.Statistics.Requests(RequestKind.Put));
        Assert.Equal(data, await store.GetAsync(FileKind.Index, name));

        busy.Reset(int.MaxValue);
        var e = await Assert.ThrowsAsync<KintsugiException>(() => store.GetAsync(FileKind.Index, name));
        output.WriteLine(e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(store.Location, e.Message, StringComparison.Ordinal);
        Assert.Contains("503 ServerBusy", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Answers the first N requests with 503 ServerBusy without sending them.</summary>
    private sealed class BusyFirst(int count) : HttpPipelinePolicy
    {
        private int _left = count;

        public void Reset(int n) => _left = n;

        public override ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            Fail();
            return ProcessNextAsync(message, pipeline);
        }

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            Fail();
            ProcessNext(message, pipeline);
        }

        private void Fail()
        {
            if (Interlocked.Decrement(ref _left) >= 0)
            {
                throw new RequestFailedException(503, "The server is busy.", "ServerBusy", null);
            }
        }
    }

    [Fact]
    public async Task A_download_that_stalls_is_cancelled_by_the_watchdog_and_retried()
    {
        var rng = new Random(TestSeed.Get(output));
        string prefix = NewPrefix();
        var stall = new StallFirstBody();
        using var store = new AzureBlobStore(AzureBlobLocation.Parse($"azure:{AzuriteFixture.Container}:/{prefix}"), Options() with { StallTimeout = TimeSpan.FromSeconds(2), RetryBudget = TimeSpan.FromMinutes(1) }, o => o.AddPolicy(stall, HttpPipelinePosition.PerRetry));
        var data = Files.RandomBytes(rng, 100_000);
        string name = Hex(rng);
        await store.PutAsync(FileKind.Pack, name, data);

        var buffer = new byte[50_000];
        await store.ReadAtAsync(FileKind.Pack, name, 1000, buffer);

        Assert.Equal(data.AsSpan(1000, 50_000).ToArray(), buffer);
        Assert.True(stall.Stalled);
        Assert.Equal(1, store.Statistics.Retries);
        Assert.Equal(2, store.Statistics.Requests(RequestKind.GetRange));
    }

    /// <summary>The first streamed response body never delivers a byte (until its reader gives up).</summary>
    private sealed class StallFirstBody : HttpPipelinePolicy
    {
        private int _stalled;

        public bool Stalled => _stalled == 1;

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            await ProcessNextAsync(message, pipeline);
            if (!message.BufferResponse && message.Response.ContentStream is not null && Interlocked.CompareExchange(ref _stalled, 1, 0) == 0)
            {
                message.Response.ContentStream = new Hanging();
            }
        }

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) => ProcessNext(message, pipeline);

        private sealed class Hanging : Stream
        {
            public override bool CanRead => true;
            public override bool CanSeek => false;
            public override bool CanWrite => false;
            public override long Length => throw new NotSupportedException();
            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
            public override void Flush() { }
            public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
                return 0;
            }
            public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();
            public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        }
    }

    [Fact]
    public void Failures_are_classified_transient_or_permanent()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.True(AzureBlobStore.Classify(new RequestFailedException(503, "busy", "ServerBusy", null), default).Transient);
        Assert.True(AzureBlobStore.Classify(new RequestFailedException(500, "oops", "InternalError", null), default).Transient);
        Assert.True(AzureBlobStore.Classify(new RequestFailedException(429, "slow", null, null), default).Transient);
        Assert.True(AzureBlobStore.Classify(new RequestFailedException(0, "reset", null, new HttpRequestException("reset")), default).Transient);
        Assert.True(AzureBlobStore.Classify(new RequestFailedException(400, "md5", "Md5Mismatch", null), default).Transient);
        Assert.True(AzureBlobStore.Classify(new IOException("reset"), default).Transient);
        Assert.True(AzureBlobStore.Classify(new OperationCanceledException(), default).Transient);
        Assert.False(AzureBlobStore.Classify(new OperationCanceledException(cancelled.Token), cancelled.Token).Transient);
        Assert.False(AzureBlobStore.Classify(new RequestFailedException(403, "no", "AuthenticationFailed", null), default).Transient);
        Assert.False(AzureBlobStore.Classify(new RequestFailedException(404, "no", "ContainerNotFound", null), default).Transient);
        Assert.False(AzureBlobStore.Classify(new RequestFailedException(400, "bad", "InvalidHeaderValue", null), default).Transient);
        Assert.False(AzureBlobStore.Classify(new KintsugiException(ErrorKind.Corrupt, "gone"), default).Transient);
    }

    [Fact]
    public async Task A_repository_backs_up_to_Azure_and_restores_bit_exact()
    {
        var rng = new Random(TestSeed.Get(output));
        using var box = new Sandbox();
        Files.Write(Path.Combine(box.Source, "model.bin"), Files.RandomBytes(rng, 3 << 20));
        Files.Write(Path.Combine(box.Source, "sub", "notes.txt"), Files.CompressibleBytes(rng, 200_000));
        Files.Write(Path.Combine(box.Source, "sub", "empty"), []);
        string prefix = NewPrefix();
        using var azure = Store(prefix);
        var store = azure;

        var repo = await Repository.InitAsync(store, Sandbox.Password, Sandbox.Kdf, Sandbox.SmallChunks, Sandbox.Host, "tester", TimeProvider.System);
        var backup = await Sandbox.BackupAsync(repo, box.Source);
        Assert.Empty(backup.Issues);
        // Machine B: a fresh store object on the same URL, so everything restored comes from Azure.
        using var other = Store(prefix);
        var reopened = await Repository.OpenAsync(other, Sandbox.Password, TimeProvider.System);
        var (target, restore) = await box.RestoreAsync(reopened, backup.Snapshot, "azure");

        Assert.Empty(restore.Issues);
        Files.AssertSameTree(box.Source, Sandbox.Restored(target, box.Source));
        Assert.True((await azure.ListAsync(FileKind.Pack)).Count >= 2);
        output.WriteLine($"backup: {azure.Statistics.Snapshot()}");
        output.WriteLine($"restore: {other.Statistics.Snapshot()}");
        Assert.True(other.Statistics.Requests(RequestKind.GetRange) > 0);
        Assert.True(other.Statistics.BytesDown >= 3 << 20, "the restore read the packs from Azure");
    }
}
