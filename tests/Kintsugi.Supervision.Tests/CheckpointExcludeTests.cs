using System.Security.Cryptography;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;
using Kintsugi.Supervision.Checkpoints;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Journal;

namespace Kintsugi.Supervision.Tests;

/// <summary>A checkpoint's backup leaves out what the checkpoints' <c>exclude:</c> patterns name (issue 12, §2).</summary>
public sealed class CheckpointExcludeTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "kintsugi-exclude-tests-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));

    private string Dir => Path.Combine(_root, "ckpt");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Dir);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
        return Task.CompletedTask;
    }

    private async Task<List<string>> ProtectAsync(string yamlExclude)
    {
        var config = ConfigLoader.Parse($"workloads:\n  trainer:\n    command: [\"true\"]\n    checkpoints:\n      dir: {Dir}\n      settle: 0s\n{yamlExclude}", Path.Combine(_root, "kintsugi.yaml"));
        var workload = config.Workloads[0];
        var store = new LocalBlobStore(Path.Combine(_root, "repo"));
        var repo = await Repository.InitAsync(store, "pw", new KdfParameters(8 * 1024, 1, 1), null, "test-host", "tester", TimeProvider.System);
        using var journal = EventJournal.Open(Path.Combine(_root, "journal.db"), TimeProvider.System);
        await using (var guard = new CheckpointGuard(workload, journal, _ => Task.FromResult(repo), TimeProvider.System, "test-host", _ => { }))
        {
            string ckpt = Path.Combine(Dir, "step-000100");
            Directory.CreateDirectory(Path.Combine(ckpt, "optimizer"));
            File.WriteAllText(Path.Combine(ckpt, "model.safetensors.bin"), "weights");
            File.WriteAllText(Path.Combine(ckpt, "optimizer", "state.bin"), "moments");
            File.WriteAllText(Path.Combine(ckpt, "rng.pt"), "rng");
            File.WriteAllText(Path.Combine(ckpt, "trace.LOG"), "trace");
            guard.Poll();
            guard.Poll();
            await guard.FlushAsync();
        }
        var snapshots = await repo.LoadSnapshotsAsync();
        var snapshot = Assert.Single(snapshots);
        var index = await repo.LoadIndexAsync();
        var paths = new List<string>();
        await foreach (var node in TreeWalker.WalkAsync(repo, index, BlobId.Parse(snapshot.Snapshot.Tree)))
        {
            if (node.Path.StartsWith(Dir + "/", StringComparison.Ordinal))
            {
                paths.Add(node.Path[(Dir.Length + 1)..]);
            }
        }
        paths.Sort(StringComparer.Ordinal);
        return paths;
    }

    [Fact]
    public async Task Without_exclude_the_whole_checkpoint_is_stored()
    {
        Assert.Equal(
            ["step-000100", "step-000100/model.safetensors.bin", "step-000100/optimizer", "step-000100/optimizer/state.bin", "step-000100/rng.pt", "step-000100/trace.LOG"],
            await ProtectAsync(""));
    }

    [Fact]
    public async Task Excluded_files_and_folders_are_left_out_of_the_checkpoints_backup()
    {
        Assert.Equal(
            ["step-000100", "step-000100/model.safetensors.bin", "step-000100/trace.LOG"],
            await ProtectAsync("      exclude: [optimizer/, \"*.pt\", \"*.log\"]\n"));
    }
}
