using System.Security.Cryptography;
using Kintsugi.Backup;
using Kintsugi.Supervision.Checkpoints;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Journal;

namespace Kintsugi.Supervision.Tests;

/// <summary>
/// The checkpoint guard's rollback without a repository (backup off): the newest good checkpoint on
/// disk, a loud failure when good ones are known but none is left, nothing when none existed.
/// </summary>
public sealed class CheckpointGuardTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kintsugi-guard-tests-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
    private EventJournal? _journal;
    private CheckpointGuard? _guard;

    private string Dir => Path.Combine(_root, "ckpt");

    private string Ckpt(int step) => Path.Combine(Dir, $"step-{step:D6}.pt");

    private EventJournal Journal => _journal!;

    private CheckpointGuard Guard => _guard!;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Dir);
        _journal = EventJournal.Open(Path.Combine(_root, "journal.db"), TimeProvider.System);
        var workload = new WorkloadSpec
        {
            Name = "trainer",
            Command = ["true"],
            WorkingDirectory = _root,
            Checkpoints = new CheckpointSpec { Directory = Dir, BackupOnChange = false, SettleTime = TimeSpan.Zero },
        };
        _guard = new CheckpointGuard(workload, _journal, _ => throw new KintsugiException(ErrorKind.Failed, "no repository in this test"), TimeProvider.System, "test-host", _ => { });
        _guard.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_guard is not null)
        {
            await _guard.DisposeAsync();
        }
        _journal?.Dispose();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    /// <summary>Writes checkpoints of these steps and polls until the guard has them all as complete.</summary>
    private void Write(params int[] steps)
    {
        foreach (int step in steps)
        {
            File.WriteAllText(Ckpt(step), $"step {step}");
        }
        // The first look sees them, the second (settle time zero) completes them.
        Guard.Poll();
        Guard.Poll();
    }

    [Fact]
    public async Task Without_a_repository_a_rollback_resumes_from_the_newest_good_checkpoint_on_disk_and_marks_newer_ones_bad()
    {
        Write(10, 20, 30);

        var done = await Guard.RollbackAsync(faultStep: 30, DateTimeOffset.UtcNow, default);

        Assert.NotNull(done);
        Assert.Equal(Ckpt(20), done.Value.Restored.Path);
        Assert.Null(done.Value.Restored.Snapshot);
        Assert.Equal([Ckpt(30)], done.Value.MarkedBad);
        Assert.True(File.Exists(Path.Combine(Dir, ".bad", "step-000030.pt")));
    }

    [Fact]
    public async Task A_rollback_whose_good_checkpoints_are_all_gone_fails_naming_each_instead_of_returning_nothing()
    {
        Write(10, 20, 30);
        File.Delete(Ckpt(10));
        File.Delete(Ckpt(20));

        var e = await Assert.ThrowsAsync<RollbackException>(() => Guard.RollbackAsync(faultStep: 30, DateTimeOffset.UtcNow, default));

        Assert.StartsWith("rollback: 2 good checkpoints known, none could be restored: ", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{Ckpt(20)}: not protected and gone from the folder", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{Ckpt(10)}: not protected and gone from the folder", e.Message, StringComparison.Ordinal);
        // The checkpoint written after the fault is marked bad all the same: nothing may resume from it later.
        Assert.Equal([Ckpt(30)], Journal.Read(type: EventTypes.CheckpointBad).Select(b => b.GetString("path")));
    }

    [Fact]
    public async Task A_rollback_with_no_checkpoint_before_the_fault_returns_nothing()
    {
        Write(30, 40);

        var done = await Guard.RollbackAsync(faultStep: 30, DateTimeOffset.UtcNow, default);

        Assert.Null(done);
    }
}
