using System.Security.Cryptography;
using Kintsugi.Backup;
using Kintsugi.Backup.Storage;
using Kintsugi.Supervision.Checkpoints;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Journal;

namespace Kintsugi.Supervision.Tests;

/// <summary>
/// Copies of protected checkpoints to a second repository: a failed copy is journaled and made after
/// the next checkpoint, and a rollback whose main repository is gone restores from the copy.
/// </summary>
public sealed class CheckpointCopyTests : IAsyncLifetime
{
    private const string Password = "correct horse";
    private static readonly KdfParameters FastKdf = new(8 * 1024, 1, 1);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "copies-guard-tests-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
    private EventJournal? _journal;

    private string Dir => Path.Combine(_root, "ckpt");

    private string Primary => Path.Combine(_root, "primary");

    private string Offsite => Path.Combine(_root, "offsite");

    private string Ckpt(int step) => Path.Combine(Dir, $"step-{step:D6}.pt");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Dir);
        _journal = EventJournal.Open(Path.Combine(_root, "journal.db"), TimeProvider.System);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        _journal?.Dispose();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
        return Task.CompletedTask;
    }

    /// <summary>Opens (creating on first use) the repository in <paramref name="folder"/>, once.</summary>
    private static Func<CancellationToken, Task<Repository>> Opener(string folder)
    {
        Task<Repository>? opened = null;
        return ct => opened ??= Repository.InitAsync(new LocalBlobStore(folder), Password, FastKdf, null, "test-host", "test", TimeProvider.System, ct);
    }

    /// <summary>Fails its first copy (an unreachable off-site store), then copies as the backup copier does.</summary>
    private sealed class FailsOnceCopier(ICheckpointCopier inner) : ICheckpointCopier
    {
        private int _calls;

        public Task<CopyOutcome> CopyAsync(CheckpointCopyRequest request, CopySpec target, CancellationToken ct) =>
            Interlocked.Increment(ref _calls) == 1 ? throw new IOException("offsite unreachable") : inner.CopyAsync(request, target, ct);
    }

    private static async Task WaitUntil(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("waited in vain for " + what);
            }
            await Task.Delay(50);
        }
    }

    private List<JournalEvent> Events(string type) => [.. _journal!.Read(workload: "trainer", type: type)];

    [Fact]
    public async Task A_failed_copy_is_journaled_and_made_after_the_next_checkpoint_and_a_rollback_without_the_main_repository_restores_from_the_copy()
    {
        var target = new CopySpec { Repository = Offsite };
        var openCopy = Opener(Offsite);
        Task<Repository> OpenCopy(CopySpec spec, CancellationToken ct) => openCopy(ct);
        var workload = new WorkloadSpec
        {
            Name = "trainer",
            Command = ["true"],
            WorkingDirectory = _root,
            Checkpoints = new CheckpointSpec { Directory = Dir, SettleTime = TimeSpan.Zero },
        };
        var copies = new CheckpointCopies([target], new FailsOnceCopier(new BackupCheckpointCopier(OpenCopy, "test-host")), OpenCopy);
        await using var guard = new CheckpointGuard(workload, _journal!, Opener(Primary), TimeProvider.System, "test-host", _ => { }, Primary, copies);
        guard.Start();

        File.WriteAllBytes(Ckpt(10), RandomNumberGenerator.GetBytes(50_000));
        guard.Poll();
        guard.Poll();
        await WaitUntil(() => Events(EventTypes.CheckpointCopyFailed).Count == 1, "the first copy to fail");
        var failed = Events(EventTypes.CheckpointCopyFailed).Single();
        Assert.Equal((Ckpt(10), Offsite, "offsite unreachable"), (failed.GetString("path"), failed.GetString("repository"), failed.GetString("message")));
        Assert.Single(Events(EventTypes.CheckpointProtected));

        byte[] twenty = RandomNumberGenerator.GetBytes(50_000);
        File.WriteAllBytes(Ckpt(20), twenty);
        guard.Poll();
        guard.Poll();
        await WaitUntil(() => Events(EventTypes.CheckpointCopied).Count == 2, "both checkpoints copied after the second was protected");
        await guard.FlushCopiesAsync();
        Assert.Equal([Ckpt(10), Ckpt(20)], Events(EventTypes.CheckpointCopied).Select(e => e.GetString("path")));
        Assert.All(Events(EventTypes.CheckpointCopied), e => Assert.Equal(Offsite, e.GetString("repository")));
        Assert.All(Events(EventTypes.CheckpointProtected), e => Assert.Equal(Primary, e.GetString("repository")));

        // The main repository and the checkpoints on disk are lost; a fault at step 30.
        Directory.Delete(Primary, recursive: true);
        File.Delete(Ckpt(10));
        File.Delete(Ckpt(20));
        var done = await guard.RollbackAsync(faultStep: 30, DateTimeOffset.UtcNow, default);

        Assert.NotNull(done);
        Assert.Equal(Ckpt(20), done.Value.Restored.Path);
        Assert.Equal(Offsite, done.Value.Restored.RestoredFrom);
        Assert.Equal(twenty, File.ReadAllBytes(Ckpt(20)));
        Assert.Contains(_journal!.Read(workload: "trainer", type: EventTypes.Error), e => e.GetString("message") is { } m && m.StartsWith($"checkpoint {Ckpt(20)} could not be restored from the repository", StringComparison.Ordinal));
    }
}
