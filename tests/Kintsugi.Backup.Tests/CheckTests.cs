using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class CheckTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>A flat tree of distinct random files (no shared chunks), backed up twice with a change in between.</summary>
    private async Task<(Repository Repo, SnapshotRef First, SnapshotRef Second, Dictionary<string, byte[]> Files)> SetUpAsync(Random rng)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (name, size) in new[] { ("victim.bin", 3 << 20), ("bystander.bin", 600_000), ("small.txt", 5_000), ("other.bin", 1 << 20) })
        {
            string path = Path.Combine(_box.Source, name);
            var content = name.EndsWith(".txt", StringComparison.Ordinal) ? Files.CompressibleBytes(rng, size) : Files.RandomBytes(rng, size);
            Files.Write(path, content);
            files[path] = content;
        }
        var repo = await _box.InitAsync();
        var first = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        string late = Path.Combine(_box.Source, "late.bin");
        files[late] = Files.RandomBytes(rng, 200_000);
        Files.Write(late, files[late]);
        var second = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        return (repo, first, second, files);
    }

    private static Task<CheckResult> CheckAsync(Repository repo, bool readData) =>
        new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = readData, Host = Sandbox.Host });

    /// <summary>Files (path inside the snapshot) of both snapshots that use a blob for which <paramref name="hit"/> holds.</summary>
    private static async Task<HashSet<AffectedFile>> FilesUsingAsync(Repository repo, IEnumerable<SnapshotRef> snapshots, Func<IndexEntry, bool> hit)
    {
        var index = await repo.LoadIndexAsync();
        var result = new HashSet<AffectedFile>();
        foreach (var snap in snapshots)
        {
            foreach (var (path, node) in await RepoFacts.FilesOfAsync(repo, snap))
            {
                if ((node.Content ?? []).Any(c => hit(index.Get(BlobId.Parse(c)))))
                {
                    result.Add(new AffectedFile(snap.ShortId, path));
                }
            }
        }
        return result;
    }

    [Fact]
    public async Task A_pack_no_index_names_yet_is_info_while_a_backup_holds_a_lock_or_it_is_recent_and_a_warning_only_after()
    {
        // Issue 12, §5: a concurrent backup's pack was called "left by an interrupted backup" and sent to prune.
        var rng = new Random(TestSeed.Get(output));
        var (repo, _, _, _) = await SetUpAsync(rng);
        var bytes = Files.RandomBytes(rng, 100_000);
        string name = BlobId.HashOf(bytes).ToString();
        await repo.Store.PutAsync(FileKind.Pack, name, bytes);
        string path = _box.Store.PathOf(FileKind.Pack, name);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddHours(-2));

        await using (await repo.LockAsync(false, "other-host", "backup"))
        {
            var during = Assert.Single((await CheckAsync(repo, readData: false)).Problems);
            Assert.Equal(("info", $"data/{name}"), (during.Severity, during.Subject));
            Assert.Contains("being written by a backup in progress (backup, pid", during.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("prune", during.Message, StringComparison.Ordinal);
        }

        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(-5));
        var recent = Assert.Single((await CheckAsync(repo, readData: false)).Problems);
        Assert.Equal(("info", $"data/{name}"), (recent.Severity, recent.Subject));

        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddHours(-2));
        var left = Assert.Single((await CheckAsync(repo, readData: false)).Problems);
        Assert.Equal(("warning", $"data/{name}"), (left.Severity, left.Subject));
        Assert.Contains("left by an interrupted backup", left.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_healthy_repository_checks_ok_with_every_blob_verified()
    {
        var (repo, _, _, _) = await SetUpAsync(new Random(TestSeed.Get(output)));

        var result = await CheckAsync(repo, readData: true);

        Assert.True(result.Ok);
        Assert.Empty(result.Problems);
        Assert.Empty(result.AffectedFiles);
        var index = await repo.LoadIndexAsync();
        Assert.Equal(2, result.Snapshots);
        Assert.Equal((await repo.Store.ListAsync(FileKind.Pack)).Count, result.Packs);
        Assert.Equal(result.Packs, result.PacksRead);
        Assert.Equal(index.Count, result.BlobsVerified);
        Assert.Equal((await repo.Store.ListAsync(FileKind.Pack)).Sum(f => f.Size), result.BytesRead);
    }

    [Fact]
    public async Task A_flipped_byte_in_a_pack_is_found_and_the_affected_files_are_listed()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, first, second, files) = await SetUpAsync(rng);
        string victim = Path.Combine(_box.Source, "victim.bin");
        var victimNode = (await RepoFacts.FilesOfAsync(repo, first))[victim];
        var index = await repo.LoadIndexAsync();
        var damagedEntry = index.Get(BlobId.Parse(victimNode.Content![rng.Next(victimNode.Content.Count)]));
        string packPath = RepoFacts.PackPath(_box, damagedEntry.Pack);
        var bytes = await File.ReadAllBytesAsync(packPath);
        bytes[damagedEntry.Offset + rng.Next((int)damagedEntry.StoredLength)] ^= 0x40;
        await File.WriteAllBytesAsync(packPath, bytes);

        var result = await CheckAsync(repo, readData: true);

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.Severity == "error" && p.Subject == $"data/{damagedEntry.Pack}");
        // Exactly the files that use the damaged blob, in every snapshot that has them.
        var expected = new HashSet<AffectedFile> { new(first.ShortId, victim), new(second.ShortId, victim) };
        Assert.Equal(expected, result.AffectedFiles.ToHashSet());

        // Everything else still restores.
        var (target, restore) = await _box.RestoreAsync(repo, second, "after-damage");
        Assert.Contains(restore.Issues, i => i.Path == Sandbox.Restored(target, victim));
        foreach (var (path, content) in files.Where(f => f.Key != victim))
        {
            Assert.True(content.AsSpan().SequenceEqual(File.ReadAllBytes(Sandbox.Restored(target, path))), $"{path} did not restore");
        }
    }

    [Fact]
    public async Task A_missing_pack_is_reported_without_reading_data()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, first, second, _) = await SetUpAsync(rng);
        string victim = Path.Combine(_box.Source, "victim.bin");
        var index = await repo.LoadIndexAsync();
        // A pack that holds part of victim.bin and no folder listing, so the damage stays at file level.
        var victimBlobs = (await RepoFacts.FilesOfAsync(repo, first))[victim].Content!.Select(BlobId.Parse).ToHashSet();
        var lost = index.Entries.GroupBy(e => e.Pack)
            .Where(g => g.Any(e => victimBlobs.Contains(e.Id)) && g.All(e => e.Kind == BlobKind.Data))
            .Select(g => g.Key).First();
        var expected = await FilesUsingAsync(repo, [first, second], e => e.Pack == lost);
        File.Delete(RepoFacts.PackPath(_box, lost));

        var result = await CheckAsync(repo, readData: false);

        Assert.False(result.Ok);
        Assert.Equal(0, result.PacksRead);
        var problem = Assert.Single(result.Problems, p => p.Severity == "error" && p.Subject == $"data/{lost}");
        Assert.Contains("missing", problem.Message, StringComparison.Ordinal);
        Assert.Contains(new AffectedFile(first.ShortId, victim), expected);
        Assert.Equal(expected, result.AffectedFiles.ToHashSet());
    }

    [Fact]
    public async Task A_missing_pack_that_holds_folder_listings_makes_the_whole_folder_affected()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, _, second, _) = await SetUpAsync(rng);
        var index = await repo.LoadIndexAsync();
        var rootTree = index.Get(BlobId.Parse(second.Snapshot.Tree));
        File.Delete(RepoFacts.PackPath(_box, rootTree.Pack));

        var result = await CheckAsync(repo, readData: false);

        Assert.False(result.Ok);
        output.WriteLine(string.Join("\n", result.AffectedFiles));
        Assert.Contains(new AffectedFile(second.ShortId, "/ (whole folder)"), result.AffectedFiles);
    }

    [Fact]
    public async Task A_truncated_pack_is_reported_without_reading_data()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, _, _, _) = await SetUpAsync(rng);
        var pack = (await repo.Store.ListAsync(FileKind.Pack)).OrderByDescending(p => p.Size).First();
        string path = _box.Store.PathOf(FileKind.Pack, pack.Name);
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.SetLength(pack.Size / 2);
        }

        var result = await CheckAsync(repo, readData: false);

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.Severity == "error" && p.Subject == $"data/{pack.Name}" && p.Message.Contains("truncated", StringComparison.Ordinal));
        Assert.NotEmpty(result.AffectedFiles);
    }

    [Fact]
    public async Task A_damaged_snapshot_file_is_reported()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, first, _, _) = await SetUpAsync(rng);
        string path = _box.Store.PathOf(FileKind.Snapshot, first.Id.ToString());
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[^1] ^= 1;
        await File.WriteAllBytesAsync(path, bytes);

        var result = await CheckAsync(repo, readData: false);

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.Severity == "error" && p.Subject == $"snapshots/{first.Id}");
    }

    [Fact]
    public async Task A_damaged_index_file_is_reported_with_the_files_it_leaves_unreachable()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, first, second, _) = await SetUpAsync(rng);
        // The second backup wrote one index file: the one naming late.bin's blobs.
        var indexFiles = (await repo.Store.ListAsync(FileKind.Index)).Select(f => f.Name).ToList();
        string late = Path.Combine(_box.Source, "late.bin");
        var lateBlob = BlobId.Parse((await RepoFacts.FilesOfAsync(repo, second))[late].Content![0]);
        string damaged = (await Task.WhenAll(indexFiles.Select(async n => (n, await repo.LoadIndexFileAsync(n)))))
            .Single(f => f.Item2.Any(e => e.Id == lateBlob)).n;
        string path = _box.Store.PathOf(FileKind.Index, damaged);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[bytes.Length / 2] ^= 1;
        await File.WriteAllBytesAsync(path, bytes);

        var result = await CheckAsync(repo, readData: false);

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.Severity == "error" && p.Subject == $"index/{damaged}");
        Assert.DoesNotContain(result.AffectedFiles, a => a.Snapshot == first.ShortId);
        Assert.Contains(result.AffectedFiles, a => a.Snapshot == second.ShortId);
    }

    [Fact]
    public async Task Reading_a_fraction_of_the_data_reads_that_many_packs()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, _, _, _) = await SetUpAsync(rng);
        int packs = (await repo.Store.ListAsync(FileKind.Pack)).Count;

        var result = await new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = true, ReadDataFraction = 0.5, Seed = 7, Host = Sandbox.Host });

        Assert.True(result.Ok);
        Assert.Equal((int)Math.Ceiling(packs * 0.5), result.PacksRead);
    }
}
