using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Tests;

public sealed class LockTests : IDisposable
{
    private const string ThisHost = "this-host";
    private const string OtherHost = "other-host";

    private readonly Sandbox _box = new();
    private readonly LocalBlobStore _store;

    public LockTests()
    {
        _store = _box.Store;
        // A local store does its work at once: the task is complete when it returns.
        _store.CreateAsync().GetAwaiter().GetResult();
    }

    public void Dispose() => _box.Dispose();

    private static TimeProvider Time => TimeProvider.System;

    private Task<RepositoryLock> AcquireAsync(bool exclusive, string host = ThisHost) =>
        RepositoryLock.AcquireAsync(_store, exclusive, host, "test", Time, default);

    private async Task<string> PlantAsync(LockRecord record)
    {
        string name = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        await _store.PutAsync(FileKind.Lock, name, JsonSerializer.SerializeToUtf8Bytes(record, FormatJson.Default.LockRecord));
        return name;
    }

    private async Task<List<string>> LockFilesAsync() => (await _store.ListAsync(FileKind.Lock)).Select(f => f.Name).ToList();

    /// <summary>A pid that belonged to a process that has exited.</summary>
    private static int DeadPid()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        process.WaitForExit();
        return process.Id;
    }

    private static LockRecord Record(bool exclusive, string host, int pid, DateTimeOffset time, long processStart = 0) => new()
    {
        Time = time,
        Exclusive = exclusive,
        Host = host,
        Pid = pid,
        ProcessStart = processStart,
        Command = "backup",
    };

    [Fact]
    public async Task A_lock_of_a_dead_process_on_this_host_does_not_block_and_is_removed()
    {
        string dead = await PlantAsync(Record(exclusive: true, ThisHost, DeadPid(), Time.GetUtcNow(), processStart: 12345));

        await using (var held = await AcquireAsync(exclusive: true))
        {
            Assert.Equal([held.Name], await LockFilesAsync());
        }
        Assert.DoesNotContain(dead, await LockFilesAsync());
        Assert.Empty(await LockFilesAsync());
    }

    [Fact]
    public async Task A_lock_whose_pid_now_belongs_to_another_process_is_stale()
    {
        // Our own pid, but a start time that is not ours: the pid was reused.
        long ourStart = Platform.Posix.ProcessStartTicks(Environment.ProcessId);
        await PlantAsync(Record(exclusive: true, ThisHost, Environment.ProcessId, Time.GetUtcNow(), processStart: ourStart + 1));

        await using var held = await AcquireAsync(exclusive: true);

        Assert.Equal([held.Name], await LockFilesAsync());
    }

    [Fact]
    public async Task A_lock_from_another_pid_namespace_with_our_host_name_is_not_judged_by_its_pid()
    {
        // Another container with the same host name: its pid means nothing here, so only age makes it stale.
        var record = Record(exclusive: true, ThisHost, DeadPid(), Time.GetUtcNow()) with { PidNamespace = "pid:[1]" };
        string theirs = await PlantAsync(record);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => AcquireAsync(exclusive: false));
        Assert.Equal(ErrorKind.Locked, e.Kind);
        Assert.Equal([theirs], await LockFilesAsync());

        string old = await PlantAsync(record with { Time = Time.GetUtcNow() - TimeSpan.FromMinutes(31) });
        var locks = await RepositoryLock.ListAsync(_store, ThisHost, Time, default);
        Assert.False(locks.Single(l => l.Name == theirs).Stale);
        Assert.True(locks.Single(l => l.Name == old).Stale);
    }

    [Fact]
    public async Task A_live_exclusive_lock_from_another_host_blocks_a_shared_lock()
    {
        string theirs = await PlantAsync(Record(exclusive: true, OtherHost, 4242, Time.GetUtcNow()));

        var e = await Assert.ThrowsAsync<KintsugiException>(() => AcquireAsync(exclusive: false));

        Assert.Equal(ErrorKind.Locked, e.Kind);
        Assert.Contains(OtherHost, e.Message, StringComparison.Ordinal);
        // Their lock is left alone, and the refused attempt leaves no lock behind.
        Assert.Equal([theirs], await LockFilesAsync());
    }

    [Fact]
    public async Task A_live_shared_lock_from_another_host_blocks_an_exclusive_lock_only()
    {
        string theirs = await PlantAsync(Record(exclusive: false, OtherHost, 4242, Time.GetUtcNow()));

        var e = await Assert.ThrowsAsync<KintsugiException>(() => AcquireAsync(exclusive: true));
        Assert.Equal(ErrorKind.Locked, e.Kind);
        Assert.Equal([theirs], await LockFilesAsync());

        await using var shared = await AcquireAsync(exclusive: false);
        Assert.Equal(2, (await LockFilesAsync()).Count);
    }

    [Fact]
    public async Task A_lock_from_another_host_older_than_30_minutes_is_stale_and_removed_by_unlock()
    {
        string stale = await PlantAsync(Record(exclusive: true, OtherHost, 4242, Time.GetUtcNow() - TimeSpan.FromMinutes(31)));
        string fresh = await PlantAsync(Record(exclusive: false, OtherHost, 4343, Time.GetUtcNow() - TimeSpan.FromMinutes(29)));

        var locks = await RepositoryLock.ListAsync(_store, ThisHost, Time, default);
        Assert.True(locks.Single(l => l.Name == stale).Stale);
        Assert.False(locks.Single(l => l.Name == fresh).Stale);
        // Listing does not remove another host's locks.
        Assert.Equal(2, (await LockFilesAsync()).Count);

        Assert.Equal(1, await RepositoryLock.RemoveAsync(_store, ThisHost, all: false, Time, default));
        Assert.Equal([fresh], await LockFilesAsync());
        Assert.Equal(1, await RepositoryLock.RemoveAsync(_store, ThisHost, all: true, Time, default));
        Assert.Empty(await LockFilesAsync());
    }

    [Fact]
    public async Task A_stale_lock_from_another_host_does_not_block()
    {
        await PlantAsync(Record(exclusive: true, OtherHost, 4242, Time.GetUtcNow() - TimeSpan.FromHours(2)));

        await using var held = await AcquireAsync(exclusive: true);

        Assert.Equal(2, (await LockFilesAsync()).Count);
    }

    [Fact]
    public async Task Two_shared_locks_coexist_and_together_block_an_exclusive_one()
    {
        var first = await AcquireAsync(exclusive: false);
        var second = await AcquireAsync(exclusive: false);
        Assert.Equal(2, (await LockFilesAsync()).Count);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => AcquireAsync(exclusive: true));
        Assert.Equal(ErrorKind.Locked, e.Kind);
        Assert.Equal(2, (await LockFilesAsync()).Count);

        await first.DisposeAsync();
        await second.DisposeAsync();
        Assert.Empty(await LockFilesAsync());
        await using var exclusive = await AcquireAsync(exclusive: true);
        Assert.Single(await LockFilesAsync());
    }

    [Fact]
    public async Task An_exclusive_lock_blocks_a_shared_one_of_the_same_host()
    {
        await using var exclusive = await AcquireAsync(exclusive: true);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => AcquireAsync(exclusive: false));

        Assert.Equal(ErrorKind.Locked, e.Kind);
        Assert.Equal([exclusive.Name], await LockFilesAsync());
    }

    [Fact]
    public async Task A_garbage_lock_file_does_not_block()
    {
        await _store.PutAsync(FileKind.Lock, "garbage", "{ not json"u8.ToArray());

        await using var held = await AcquireAsync(exclusive: true);

        Assert.True(held.Exclusive);
    }

    [Fact]
    public async Task A_lock_records_who_holds_it()
    {
        await using var held = await AcquireAsync(exclusive: true);

        var info = Assert.Single(await RepositoryLock.ListAsync(_store, ThisHost, Time, default));
        Assert.Equal(held.Name, info.Name);
        Assert.False(info.Stale);
        Assert.Equal((true, ThisHost, Environment.ProcessId, "test"), (info.Record.Exclusive, info.Record.Host, info.Record.Pid, info.Record.Command));
        Assert.Equal(Platform.Posix.ProcessStartTicks(Environment.ProcessId), info.Record.ProcessStart);
    }
}
