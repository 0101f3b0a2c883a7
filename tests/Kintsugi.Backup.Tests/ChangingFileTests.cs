using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

/// <summary>A file that changes while the backup reads it is read again, and reported when it keeps changing.</summary>
public sealed class ChangingFileTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Fact]
    public async Task A_file_that_keeps_growing_during_the_backup_is_reported_and_the_snapshot_holds_a_consistent_read()
    {
        var rng = new Random(TestSeed.Get(output));
        string log = Path.Combine(_box.Source, "train.log");
        string stable = Path.Combine(_box.Source, "model.bin");
        Files.Write(log, Files.RandomBytes(rng, 16 << 20));
        var model = Files.RandomBytes(rng, 300_000);
        Files.Write(stable, model);
        var repo = await _box.InitAsync(Sandbox.SmallChunks);
        using var stop = new CancellationTokenSource();
        // A writer that appends lines without pause, as a busy training job appends to its log: every
        // read of the file overlaps some append, whatever the load of the machine.
        var writer = Task.Factory.StartNew(() =>
        {
            using var stream = new FileStream(log, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1);
            while (!stop.IsCancellationRequested)
            {
                stream.Write("step 1 loss 0.5\n"u8);
            }
        }, TaskCreationOptions.LongRunning);

        var result = await Sandbox.BackupAsync(repo, _box.Source);
        await stop.CancelAsync();
        await writer;

        var issue = Assert.Single(result.Issues);
        Assert.Equal(log, issue.Path);
        Assert.Contains("changed while being read", issue.Message, StringComparison.Ordinal);
        Assert.Equal(0, result.Snapshot.Snapshot.Summary!.Errors);
        var (target, restore) = await _box.RestoreAsync(repo, result.Snapshot, "restored");
        Assert.Empty(restore.Issues);
        Assert.Equal(model, File.ReadAllBytes(Sandbox.Restored(target, stable)));
        // What was stored is a prefix of the log as it is now: the bytes read, never bytes made up.
        var restoredLog = File.ReadAllBytes(Sandbox.Restored(target, log));
        var current = File.ReadAllBytes(log);
        Assert.True(restoredLog.Length >= 16 << 20, "the restored log is shorter than the file was before the backup");
        Assert.True(current.AsSpan(0, restoredLog.Length).SequenceEqual(restoredLog), "the restored log is not a prefix of the file");
        var node = (await RepoFacts.FilesOfAsync(repo, result.Snapshot))[log];
        Assert.Equal(restoredLog.Length, node.Size);
    }
}
