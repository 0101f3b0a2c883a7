using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class PruneTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>The content of the source tree at each snapshot.</summary>
    private sealed record History(Repository Repo, List<(SnapshotRef Snapshot, Dictionary<string, byte[]> Files)> Snapshots);

    private void Write(Dictionary<string, byte[]> files, string name, byte[] content)
    {
        string path = Path.Combine(_box.Source, name);
        Files.Write(path, content);
        files[path] = content;
    }

    /// <summary>
    /// Three snapshots: 1 = shared + old (3 MiB); 2 = shared + new (old deleted); 3 = 2 + a small file.
    /// Forgetting snapshot 1 leaves old.bin's 3 MiB unneeded.
    /// </summary>
    private async Task<History> MakeHistoryAsync(Random rng)
    {
        var repo = await _box.InitAsync();
        var history = new List<(SnapshotRef, Dictionary<string, byte[]>)>();
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        Write(files, "shared.bin", Files.RandomBytes(rng, 1 << 20));
        Write(files, "old.bin", Files.RandomBytes(rng, 3 << 20));
        history.Add(((await BackupInOrderAsync(repo)).Snapshot, new(files, StringComparer.Ordinal)));

        File.Delete(Path.Combine(_box.Source, "old.bin"));
        files.Remove(Path.Combine(_box.Source, "old.bin"));
        Write(files, "dir/new.bin", Files.RandomBytes(rng, 2 << 20));
        history.Add(((await BackupInOrderAsync(repo)).Snapshot, new(files, StringComparer.Ordinal)));

        Write(files, "dir/small.txt", Files.CompressibleBytes(rng, 10_000));
        history.Add(((await BackupInOrderAsync(repo)).Snapshot, new(files, StringComparer.Ordinal)));
        return new History(repo, history);
    }

    /// <summary>
    /// One reader and one sealer: files go into packs in name order, so old.bin fills packs of its
    /// own (with parallel workers its chunks may interleave with others' in every pack).
    /// </summary>
    private async Task<BackupResult> BackupInOrderAsync(Repository repo) =>
        await new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [_box.Source], Host = Sandbox.Host, Workers = 1 });

    /// <summary>Forget: deletes the snapshot files the policy does not keep; returns the ids removed.</summary>
    private static async Task<List<BlobId>> ForgetAsync(Repository repo, RetentionPolicy policy)
    {
        var snapshots = await repo.LoadSnapshotsAsync();
        var removed = Retention.Apply(snapshots, policy, TimeZoneInfo.Utc).SelectMany(g => g.Decisions).Where(d => !d.Keep).Select(d => d.Snapshot.Id).ToList();
        foreach (var id in removed)
        {
            await repo.Store.DeleteAsync(FileKind.Snapshot, id.ToString());
        }
        return removed;
    }

    private async Task AssertRestoresAsync(Repository repo, SnapshotRef snapshot, Dictionary<string, byte[]> files, string name)
    {
        var (target, result) = await _box.RestoreAsync(repo, snapshot, name);
        Assert.Empty(result.Issues);
        foreach (var (path, content) in files)
        {
            Assert.True(content.AsSpan().SequenceEqual(File.ReadAllBytes(Sandbox.Restored(target, path))), $"{path} of snapshot {snapshot.ShortId} restored with other content");
        }
        Assert.Equal(files.Count, Directory.EnumerateFiles(Sandbox.Restored(target, _box.Source), "*", SearchOption.AllDirectories).Count());
    }

    private static async Task<HashSet<BlobId>> UsedBlobsAsync(Repository repo)
    {
        var used = new HashSet<BlobId>();
        foreach (var snap in await repo.LoadSnapshotsAsync())
        {
            used.UnionWith(await RepoFacts.BlobsOfAsync(repo, snap));
        }
        return used;
    }

    private static async Task<CheckResult> CheckAsync(Repository repo) =>
        await new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = true, Host = Sandbox.Host });

    [Fact]
    public async Task Prune_after_forget_removes_unneeded_packs_and_keeps_the_rest_whole()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, history) = await MakeHistoryAsync(rng);
        long sizeBefore = Files.TotalSize(_box.RepoPath);

        var forgotten = await ForgetAsync(repo, new RetentionPolicy { Last = 2 });
        Assert.Equal([history[0].Snapshot.Id], forgotten);
        var used = await UsedBlobsAsync(repo);
        var deadPacks = (await repo.LoadIndexAsync()).Entries.GroupBy(e => e.Pack).Where(g => !g.Any(e => used.Contains(e.Id))).Select(g => g.Key).ToList();
        Assert.NotEmpty(deadPacks);

        var result = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host });

        output.WriteLine($"prune: {result}");
        Assert.False(result.DryRun);
        Assert.True(result.PacksDeleted >= deadPacks.Count);
        Assert.All(deadPacks, p => Assert.False(File.Exists(RepoFacts.PackPath(_box, p)), $"pack {p.Short} that no snapshot needs is still there"));
        long sizeAfter = Files.TotalSize(_box.RepoPath);
        output.WriteLine($"repository: {sizeBefore} bytes before, {sizeAfter} after");
        // old.bin's 3 MiB of random data are unneeded; at most the part sharing kept packs (under half of them) may stay.
        Assert.True(sizeBefore - sizeAfter >= (3 << 20) / 2, $"repository shrank only from {sizeBefore} to {sizeAfter} bytes");

        await AssertRestoresAsync(repo, history[1].Snapshot, history[1].Files, "second");
        await AssertRestoresAsync(repo, history[2].Snapshot, history[2].Files, "third");
        var check = await CheckAsync(repo);
        Assert.True(check.Ok, string.Join("\n", check.Problems));
        Assert.Empty(check.Problems);
    }

    [Fact]
    public async Task After_prune_no_pack_is_more_unused_than_the_repack_threshold()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, _) = await MakeHistoryAsync(rng);
        await ForgetAsync(repo, new RetentionPolicy { Last = 1 });

        var request = new PruneRequest { Host = Sandbox.Host, RepackThreshold = 0.3 };
        await new PruneEngine(repo).RunAsync(request);

        var used = await UsedBlobsAsync(repo);
        var index = await repo.LoadIndexAsync();
        var onDisk = (await repo.Store.ListAsync(FileKind.Pack)).Select(f => f.Name).ToHashSet();
        Assert.All(used, id => Assert.True(index.TryGet(id, out var e) && onDisk.Contains(e.Pack.ToString()), $"blob {id.Short} a snapshot needs is gone"));
        foreach (var pack in index.Entries.GroupBy(e => e.Pack))
        {
            long total = pack.Sum(e => (long)e.StoredLength);
            long dead = pack.Where(e => !used.Contains(e.Id)).Sum(e => (long)e.StoredLength);
            Assert.True(dead < total * request.RepackThreshold, $"pack {pack.Key.Short} kept with {dead} of {total} bytes unused");
        }
        Assert.True(onDisk.SetEquals(index.Entries.Select(e => e.Pack.ToString())), "packs on disk and packs in the index differ");
    }

    [Fact]
    public async Task Prune_keeps_one_copy_of_blobs_stored_twice()
    {
        // Two backups racing can store the same blob twice; here every blob gets a second copy in new packs.
        var rng = new Random(TestSeed.Get(output));
        var (repo, history) = await MakeHistoryAsync(rng);
        var original = (await repo.LoadIndexAsync()).Entries.ToList();
        var copies = new List<IndexEntry>();
        var writer = new PackWriter(repo.Store, repo.Key, repo.Config.PackSize, (stored, _) =>
        {
            copies.AddRange(stored);
            return Task.CompletedTask;
        });
        foreach (var entry in original)
        {
            var plain = await repo.ReadBlobAsync(entry);
            var (codec, sealedBytes) = BlobSealer.Seal(repo.Key, entry.Id, entry.Kind, plain);
            await writer.AddAsync(entry.Id, entry.Kind, codec, plain.Length, sealedBytes, default, default);
        }
        await writer.FlushAsync(default);
        await repo.SaveIndexAsync(copies);
        long sizeBefore = Files.TotalSize(_box.RepoPath);

        await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host });

        var index = await repo.LoadIndexAsync();
        var stored = (await Task.WhenAll((await repo.Store.ListAsync(FileKind.Index)).Select(f => repo.LoadIndexFileAsync(f.Name)))).SelectMany(l => l).ToList();
        Assert.Equal(stored.Count, stored.Select(e => e.Id).Distinct().Count());
        Assert.Equal(original.Select(e => e.Id).ToHashSet(), index.Entries.Select(e => e.Id).ToHashSet());
        long sizeAfter = Files.TotalSize(_box.RepoPath);
        Assert.True(sizeAfter < sizeBefore * 0.6, $"repository of {sizeBefore} bytes shrank only to {sizeAfter}");
        foreach (var (snapshot, files) in history)
        {
            await AssertRestoresAsync(repo, snapshot, files, snapshot.ShortId);
        }
        Assert.Empty((await CheckAsync(repo)).Problems);
    }

    [Fact]
    public async Task Prune_dry_run_changes_nothing_and_predicts_the_real_run()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, _) = await MakeHistoryAsync(rng);
        await ForgetAsync(repo, new RetentionPolicy { Last = 1 });
        var before = Files.Listing(_box.RepoPath);

        var dry = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host, DryRun = true });

        Assert.Equal(before, Files.Listing(_box.RepoPath));
        Assert.True(dry.DryRun);
        Assert.True(dry.PacksDeleted > 0);
        var real = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host });
        Assert.Equal(
            (dry.PacksDeleted, dry.PacksRepacked, dry.PacksWritten, dry.BytesFreed, dry.BlobsRemoved, dry.BlobsKept),
            (real.PacksDeleted, real.PacksRepacked, real.PacksWritten, real.BytesFreed, real.BlobsRemoved, real.BlobsKept));
    }

    [Fact]
    public async Task Prune_with_nothing_forgotten_keeps_every_pack()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, history) = await MakeHistoryAsync(rng);
        var packsBefore = Files.Listing(_box.RepoPath).Where(kv => kv.Key.StartsWith("data/", StringComparison.Ordinal)).ToList();

        var result = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host });

        Assert.Equal(0, result.PacksDeleted + result.PacksRepacked);
        Assert.Equal(packsBefore, Files.Listing(_box.RepoPath).Where(kv => kv.Key.StartsWith("data/", StringComparison.Ordinal)).ToList());
        await AssertRestoresAsync(repo, history[0].Snapshot, history[0].Files, "first");
    }

    [Fact]
    public async Task Prune_removes_a_pack_that_no_index_names()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, history) = await MakeHistoryAsync(rng);
        // Left by a backup that died before writing its index: a pack-shaped file no index knows.
        var garbage = Files.RandomBytes(rng, 100_000);
        var name = BlobId.HashOf(garbage).ToString();
        await repo.Store.PutAsync(FileKind.Pack, name, garbage);
        Assert.True(File.Exists(_box.Store.PathOf(FileKind.Pack, name)));
        File.SetLastWriteTimeUtc(_box.Store.PathOf(FileKind.Pack, name), DateTime.UtcNow.AddHours(-2));
        var before = await new CheckEngine(repo).RunAsync(new CheckRequest { Host = Sandbox.Host });
        Assert.Contains(before.Problems, p => p.Severity == "warning" && p.Subject == $"data/{name}");

        var result = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host });

        Assert.False(File.Exists(_box.Store.PathOf(FileKind.Pack, name)));
        Assert.True(result.PacksDeleted >= 1);
        await AssertRestoresAsync(repo, history[2].Snapshot, history[2].Files, "third");
        Assert.Empty((await CheckAsync(repo)).Problems);
    }

    [Fact]
    public async Task Prune_removes_the_packs_of_a_backup_whose_index_and_snapshot_were_never_written()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        Write(files, "kept.bin", Files.RandomBytes(rng, 1 << 20));
        var kept = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        var indexBefore = (await repo.Store.ListAsync(FileKind.Index)).Select(f => f.Name).ToHashSet();
        var packsBefore = (await repo.Store.ListAsync(FileKind.Pack)).Select(f => f.Name).ToHashSet();

        // A second backup, then undo its commit: its index files and its snapshot go, its packs stay.
        File.WriteAllBytes(Path.Combine(_box.Source, "interrupted.bin"), Files.RandomBytes(rng, 2 << 20));
        var interrupted = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        await repo.Store.DeleteAsync(FileKind.Snapshot, interrupted.Id.ToString());
        foreach (var index in (await repo.Store.ListAsync(FileKind.Index)).Where(f => !indexBefore.Contains(f.Name)))
        {
            await repo.Store.DeleteAsync(FileKind.Index, index.Name);
        }
        File.Delete(Path.Combine(_box.Source, "interrupted.bin"));
        var leftovers = (await repo.Store.ListAsync(FileKind.Pack)).Select(f => f.Name).Where(n => !packsBefore.Contains(n)).ToList();
        Assert.NotEmpty(leftovers);

        var result = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host });

        Assert.Equal(packsBefore, (await repo.Store.ListAsync(FileKind.Pack)).Select(f => f.Name).ToHashSet());
        Assert.Equal(leftovers.Count, result.PacksDeleted);
        await AssertRestoresAsync(repo, kept, files, "kept");
        Assert.Empty((await CheckAsync(repo)).Problems);
    }

    [Fact]
    public async Task Prune_removes_temporary_files_left_by_dead_writers()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, _) = await MakeHistoryAsync(rng);
        string leftover = Path.Combine(_box.RepoPath, "tmp", "0123456789abcdef");
        File.WriteAllBytes(leftover, Files.RandomBytes(rng, 1000));

        var result = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host });

        Assert.False(File.Exists(leftover));
        Assert.Equal(1, result.TempFilesRemoved);
    }

    [Fact]
    public async Task Prune_stops_before_changing_anything_when_a_snapshot_needs_what_the_index_lacks()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, _) = await MakeHistoryAsync(rng);
        await ForgetAsync(repo, new RetentionPolicy { Last = 2 });
        // Lose the index file that names snapshot 3's blobs.
        var lastIndex = (await repo.Store.ListAsync(FileKind.Index)).OrderBy(f => File.GetLastWriteTimeUtc(_box.Store.PathOf(FileKind.Index, f.Name))).Last();
        await repo.Store.DeleteAsync(FileKind.Index, lastIndex.Name);
        var before = Files.Listing(_box.RepoPath);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host }));

        Assert.Equal(ErrorKind.Corrupt, e.Kind);
        Assert.Equal(before, Files.Listing(_box.RepoPath));
    }
}
