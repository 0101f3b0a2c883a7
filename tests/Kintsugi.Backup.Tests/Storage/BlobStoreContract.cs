using System.Security.Cryptography;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Tests.Storage;

/// <summary>
/// What every <see cref="IBlobStore"/> guarantees (local, in memory, S3, Azure): a subclass gives a
/// fresh store and inherits every test. Names are 64 hex digits, as the repository writes them.
/// </summary>
public abstract class BlobStoreContract : IAsyncLifetime
{
    private readonly List<IBlobStore> _stores = [];

    /// <summary>A store at a fresh, empty location, not yet created (<see cref="IBlobStore.CreateAsync"/> not called).</summary>
    protected abstract Task<IBlobStore> CreateStoreAsync();

    /// <summary>How many files the paging test lists (S3 and Azure page at 1000 and 5000).</summary>
    protected virtual int ManyFiles => 1100;

    /// <summary>Removes what the subclass made (folders, servers); the stores were disposed before.</summary>
    protected virtual Task CleanUpAsync() => Task.CompletedTask;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var store in _stores.OfType<IDisposable>())
        {
            store.Dispose();
        }
        await CleanUpAsync();
    }

    private async Task<IBlobStore> NewStoreAsync()
    {
        var store = await CreateStoreAsync();
        _stores.Add(store);
        await store.CreateAsync();
        return store;
    }

    protected static string Name(int i) => Convert.ToHexStringLower(SHA256.HashData(BitConverter.GetBytes(i)));

    protected static byte[] Bytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Fact]
    public async Task A_file_put_is_read_back_whole()
    {
        var store = await NewStoreAsync();
        byte[] data = Bytes(70_000, 1);
        await store.PutAsync(FileKind.Index, Name(1), data);
        await store.PutAsync(FileKind.Key, Name(2), Array.Empty<byte>());
        await store.PutAsync(FileKind.Config, "config", Bytes(300, 3));

        Assert.Equal(data, await store.GetAsync(FileKind.Index, Name(1)));
        Assert.Empty(await store.GetAsync(FileKind.Key, Name(2)));
        Assert.Equal(Bytes(300, 3), await store.GetAsync(FileKind.Config, "config"));
        Assert.True(await store.ExistsAsync(FileKind.Index, Name(1)));
        Assert.False(await store.ExistsAsync(FileKind.Snapshot, Name(1)));
    }

    [Fact]
    public async Task Ranged_reads_return_the_bytes_asked_for_and_refuse_past_the_end()
    {
        var store = await NewStoreAsync();
        byte[] data = Bytes(100_000, 4);
        await store.PutAsync(FileKind.Pack, Name(1), data);

        foreach (var (offset, length) in new[] { (0, 100), (49_000, 2_000), (99_900, 100), (0, 100_000), (99_999, 1) })
        {
            var buffer = new byte[length];
            await store.ReadAtAsync(FileKind.Pack, Name(1), offset, buffer);
            Assert.Equal(data.AsSpan(offset, length).ToArray(), buffer);
        }
        var pastEnd = await Assert.ThrowsAsync<KintsugiException>(async () => await store.ReadAtAsync(FileKind.Pack, Name(1), 99_950, new byte[100]));
        Assert.Equal(ErrorKind.Corrupt, pastEnd.Kind);
        var beyond = await Assert.ThrowsAsync<KintsugiException>(async () => await store.ReadAtAsync(FileKind.Pack, Name(1), 200_000, new byte[10]));
        Assert.Equal(ErrorKind.Corrupt, beyond.Kind);
    }

    [Fact]
    public async Task Listing_gives_the_files_of_one_kind_sorted_by_name_with_their_sizes()
    {
        var store = await NewStoreAsync();
        var packs = Enumerable.Range(0, 5).Select(Name).ToList();
        for (int i = 0; i < packs.Count; i++)
        {
            await store.PutAsync(FileKind.Pack, packs[i], Bytes(10 + i, i));
        }
        await store.PutAsync(FileKind.Index, Name(10), Bytes(7, 7));
        await store.PutAsync(FileKind.Snapshot, Name(11), Bytes(8, 8));
        await store.PutAsync(FileKind.Config, "config", Bytes(9, 9));

        var listed = await store.ListAsync(FileKind.Pack);
        Assert.Equal(packs.Order(StringComparer.Ordinal), listed.Select(f => f.Name));
        Assert.All(listed, f => Assert.Equal(10 + packs.IndexOf(f.Name), f.Size));
        Assert.Equal([Name(10)], (await store.ListAsync(FileKind.Index)).Select(f => f.Name));
        Assert.Equal([Name(11)], (await store.ListAsync(FileKind.Snapshot)).Select(f => f.Name));
        Assert.Equal(["config"], (await store.ListAsync(FileKind.Config)).Select(f => f.Name));
        Assert.Empty(await store.ListAsync(FileKind.Key));
        Assert.Empty(await store.ListAsync(FileKind.Lock));
    }

    [Fact]
    public async Task Listing_many_files_gives_them_all()
    {
        var store = await NewStoreAsync();
        var names = Enumerable.Range(0, ManyFiles).Select(Name).ToList();
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (name, ct) =>
            await store.PutAsync(FileKind.Index, name, new byte[] { 1 }, cancellationToken: ct));

        var listed = await store.ListAsync(FileKind.Index);
        Assert.Equal(names.Order(StringComparer.Ordinal), listed.Select(f => f.Name));
    }

    [Fact]
    public async Task A_missing_file_is_reported_as_damage_not_as_a_transient_error()
    {
        var store = await NewStoreAsync();

        var whole = await Assert.ThrowsAsync<KintsugiException>(() => store.GetAsync(FileKind.Snapshot, Name(1)));
        Assert.Equal(ErrorKind.Corrupt, whole.Kind);
        Assert.Contains("missing", whole.Message, StringComparison.Ordinal);
        var part = await Assert.ThrowsAsync<KintsugiException>(async () => await store.ReadAtAsync(FileKind.Pack, Name(1), 0, new byte[10]));
        Assert.Equal(ErrorKind.Corrupt, part.Kind);
        Assert.False(await store.ExistsAsync(FileKind.Pack, Name(1)));
    }

    [Fact]
    public async Task A_file_is_written_once_unless_overwritten()
    {
        var store = await NewStoreAsync();
        await store.PutAsync(FileKind.Pack, Name(1), Bytes(100, 1));
        await store.PutAsync(FileKind.Pack, Name(1), Bytes(100, 2));
        await using (var pending = store.CreatePending(FileKind.Pack))
        {
            pending.Write(Bytes(100, 3));
            await pending.CommitAsync(Name(1), overwrite: false, CancellationToken.None);
        }
        Assert.Equal(Bytes(100, 1), await store.GetAsync(FileKind.Pack, Name(1)));

        await store.PutAsync(FileKind.Lock, Name(2), Bytes(50, 4));
        await store.PutAsync(FileKind.Lock, Name(2), Bytes(60, 5), overwrite: true);
        Assert.Equal(Bytes(60, 5), await store.GetAsync(FileKind.Lock, Name(2)));
    }

    [Fact]
    public async Task A_pending_file_is_invisible_until_committed_and_gone_when_dropped()
    {
        var store = await CreateStoreAsync();
        _stores.Add(store);
        Assert.True(await store.IsEmptyAsync());
        await store.CreateAsync();
        await using (var dropped = store.CreatePending(FileKind.Pack))
        {
            dropped.Write(Bytes(1000, 1));
        }
        await using (var pending = store.CreatePending(FileKind.Pack))
        {
            byte[] first = Bytes(5000, 2), second = Bytes(3000, 3);
            pending.Write(first);
            pending.Write(second);
            Assert.Equal(8000, pending.Length);
            Assert.Empty(await store.ListAsync(FileKind.Pack));
            Assert.False(await store.ExistsAsync(FileKind.Pack, Name(1)));
            await pending.CommitAsync(Name(1), overwrite: false, CancellationToken.None);
            byte[] stored = await store.GetAsync(FileKind.Pack, Name(1));
            Assert.Equal(first.Concat(second).ToArray(), stored);
        }
        Assert.Equal([Name(1)], (await store.ListAsync(FileKind.Pack)).Select(f => f.Name));
        Assert.False(await store.IsEmptyAsync());
    }

    [Fact]
    public async Task A_large_pending_file_is_stored_whole()
    {
        var store = await NewStoreAsync();
        byte[] data = Bytes(9 << 20, 5);
        await using (var pending = store.CreatePending(FileKind.Pack))
        {
            for (int at = 0; at < data.Length; at += 100_000)
            {
                pending.Write(data.AsSpan(at, Math.Min(100_000, data.Length - at)));
            }
            await pending.CommitAsync(Name(1), overwrite: false, CancellationToken.None);
        }
        var tail = new byte[1000];
        await store.ReadAtAsync(FileKind.Pack, Name(1), data.Length - 1000, tail);
        Assert.Equal(data.AsSpan(data.Length - 1000).ToArray(), tail);
        Assert.Equal(data.Length, (await store.ListAsync(FileKind.Pack)).Single().Size);
        byte[] whole = await store.GetAsync(FileKind.Pack, Name(1));
        Assert.Equal(Convert.ToHexString(SHA256.HashData(data)), Convert.ToHexString(SHA256.HashData(whole)));
    }

    [Fact]
    public async Task Concurrent_writers_of_one_name_leave_one_whole_file()
    {
        var store = await NewStoreAsync();
        byte[] data = Bytes(200_000, 6);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            if (i % 2 == 0)
            {
                await store.PutAsync(FileKind.Pack, Name(1), data);
            }
            else
            {
                await using var pending = store.CreatePending(FileKind.Pack);
                pending.Write(data);
                await pending.CommitAsync(Name(1), overwrite: false, CancellationToken.None);
            }
        })));
        Assert.Equal(data, await store.GetAsync(FileKind.Pack, Name(1)));
        Assert.Single(await store.ListAsync(FileKind.Pack));
    }

    [Fact]
    public async Task Concurrent_writers_of_different_names_all_land()
    {
        var store = await NewStoreAsync();
        await Task.WhenAll(Enumerable.Range(0, 24).Select(i => Task.Run(() => store.PutAsync(FileKind.Pack, Name(i), Bytes(1000 + i, i)))));
        var listed = await store.ListAsync(FileKind.Pack);
        Assert.Equal(24, listed.Count);
        for (int i = 0; i < 24; i++)
        {
            Assert.Equal(Bytes(1000 + i, i), await store.GetAsync(FileKind.Pack, Name(i)));
        }
    }

    [Fact]
    public async Task Deleting_removes_a_file_and_a_missing_file_is_no_error()
    {
        var store = await NewStoreAsync();
        await store.PutAsync(FileKind.Lock, Name(1), Bytes(10, 1));
        await store.DeleteAsync(FileKind.Lock, Name(1));
        await store.DeleteAsync(FileKind.Lock, Name(1));
        await store.DeleteAsync(FileKind.Pack, Name(2));
        Assert.False(await store.ExistsAsync(FileKind.Lock, Name(1)));
        Assert.Empty(await store.ListAsync(FileKind.Lock));
    }

    [Fact]
    public async Task A_fresh_location_is_empty_and_one_with_a_file_is_not()
    {
        var store = await CreateStoreAsync();
        _stores.Add(store);
        Assert.True(await store.IsEmptyAsync());
        await store.CreateAsync();
        await store.PutAsync(FileKind.Config, "config", Bytes(10, 1));
        Assert.False(await store.IsEmptyAsync());
    }
}

public sealed class LocalBlobStoreContractTests : BlobStoreContract
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "s3-local-" + Guid.NewGuid().ToString("N")[..12]);

    // A folder does not page; each file costs two fsyncs.
    protected override int ManyFiles => 200;

    protected override Task<IBlobStore> CreateStoreAsync() =>
        Task.FromResult<IBlobStore>(new LocalBlobStore(Path.Combine(_root, Guid.NewGuid().ToString("N"))));

    protected override Task CleanUpAsync()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
        return Task.CompletedTask;
    }
}

public sealed class MemoryBlobStoreContractTests : BlobStoreContract
{
    protected override Task<IBlobStore> CreateStoreAsync() => Task.FromResult<IBlobStore>(new MemoryBlobStore());
}

/// <summary>One s3rver for a test class.</summary>
public sealed class S3rverFixture : IAsyncLifetime
{
    public S3rverServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await S3rverServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }
}

public sealed class S3BlobStoreContractTests(S3rverFixture fixture) : BlobStoreContract, IClassFixture<S3rverFixture>
{
    protected override Task<IBlobStore> CreateStoreAsync() =>
        Task.FromResult<IBlobStore>(StoreFactory.Open(fixture.Server.Url("c" + Guid.NewGuid().ToString("N")[..12]), new StoreOptions { Environment = fixture.Server.Environment, RetryBudget = TimeSpan.FromSeconds(20) }));
}

public sealed class AzureBlobStoreContractTests(AzuriteFixture fixture) : BlobStoreContract, IClassFixture<AzuriteFixture>
{
    protected override Task<IBlobStore> CreateStoreAsync() =>
        Task.FromResult<IBlobStore>(StoreFactory.Open($"azure:{AzuriteFixture.Container}:/c{Guid.NewGuid().ToString("N")[..12]}", new StoreOptions { Environment = fixture.Server.Environment(), RetryBudget = TimeSpan.FromSeconds(20) }));
}
