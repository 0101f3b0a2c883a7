using Kintsugi.Backup.Format;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class IncrementalTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>Writes a small tree; returns file path → content.</summary>
    private Dictionary<string, byte[]> BuildTree(Random rng)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        string[] names = ["a.bin", "b.txt", "empty", "sub/c.bin", "sub/deeper/d.bin", "sub/deeper/e.txt", "other/f.bin"];
        foreach (var name in names)
        {
            int size = name == "empty" ? 0 : rng.Next(1, 600_000);
            var content = name.EndsWith(".txt", StringComparison.Ordinal) ? Files.CompressibleBytes(rng, size) : Files.RandomBytes(rng, size);
            string path = Path.Combine(_box.Source, name);
            Files.Write(path, content);
            files[path] = content;
        }
        return files;
    }

    private static HashSet<IndexEntry> Entries(MasterIndex index) => index.Entries.ToHashSet();

    private static void AssertRestoresTo(string restoredRoot, string sourceRoot, Dictionary<string, byte[]> expected)
    {
        foreach (var (path, content) in expected)
        {
            string copy = Sandbox.Restored(restoredRoot, path);
            Assert.True(File.Exists(copy), $"{path} was not restored");
            Assert.True(content.AsSpan().SequenceEqual(File.ReadAllBytes(copy)), $"{path} restored with other content");
        }
        int restoredFiles = Directory.EnumerateFiles(Sandbox.Restored(restoredRoot, sourceRoot), "*", SearchOption.AllDirectories).Count();
        Assert.Equal(expected.Count, restoredFiles);
    }

    [Fact]
    public async Task Second_backup_of_an_unchanged_tree_reads_nothing_and_adds_only_trees()
    {
        var files = BuildTree(new Random(TestSeed.Get(output)));
        var repo = await _box.InitAsync();
        await Sandbox.BackupAsync(repo, _box.Source);
        var before = Entries(await repo.LoadIndexAsync());

        var second = await Sandbox.BackupAsync(repo, _box.Source);

        var summary = second.Snapshot.Snapshot.Summary!;
        Assert.Equal(0, summary.BytesRead);
        Assert.Equal(files.Count, summary.FilesUnchanged);
        Assert.Equal(0, summary.FilesNew + summary.FilesChanged);
        Assert.Equal(files.Values.Sum(c => (long)c.Length), summary.BytesTotal);
        var added = Entries(await repo.LoadIndexAsync()).Except(before).ToList();
        Assert.All(added, e => Assert.Equal(BlobKind.Tree, e.Kind));
        Assert.Equal(added.Count, summary.BlobsAdded);
    }

    [Fact]
    public async Task Snapshot_records_its_kind_and_parent()
    {
        BuildTree(new Random(TestSeed.Get(output)));
        var repo = await _box.InitAsync();

        var first = await Sandbox.BackupAsync(repo, _box.Source);
        var second = await Sandbox.BackupAsync(repo, _box.Source);
        var full = await Sandbox.BackupAsync(repo, _box.Source, full: true);
        var otherHost = await Sandbox.BackupAsync(repo, _box.Source, host: "another-host");

        // Without a parent everything is read: the first snapshot is a full one.
        Assert.Null(first.Snapshot.Snapshot.Parent);
        Assert.Equal("full", first.Snapshot.Snapshot.Kind);
        Assert.Equal(first.Snapshot.Id.ToString(), second.Snapshot.Snapshot.Parent);
        Assert.Equal("incremental", second.Snapshot.Snapshot.Kind);
        Assert.Equal(second.Snapshot.Id.ToString(), full.Snapshot.Snapshot.Parent);
        Assert.Equal("full", full.Snapshot.Snapshot.Kind);
        // The parent is the newest snapshot of the same host and paths.
        Assert.Null(otherHost.Snapshot.Snapshot.Parent);
        Assert.Equal("full", otherHost.Snapshot.Snapshot.Kind);
        // As stored, too.
        var stored = await repo.LoadSnapshotAsync(second.Snapshot.Id.ToString());
        Assert.Equal(first.Snapshot.Id.ToString(), stored.Snapshot.Parent);
        Assert.Equal("incremental", stored.Snapshot.Kind);
    }

    [Fact]
    public async Task After_changing_one_file_only_that_file_is_read()
    {
        var rng = new Random(TestSeed.Get(output));
        var files = BuildTree(rng);
        var repo = await _box.InitAsync();
        await Sandbox.BackupAsync(repo, _box.Source);

        string changed = Path.Combine(_box.Source, "sub", "c.bin");
        var newContent = Files.RandomBytes(rng, files[changed].Length + 1000);
        await File.WriteAllBytesAsync(changed, newContent);
        var second = await Sandbox.BackupAsync(repo, _box.Source);

        var summary = second.Snapshot.Snapshot.Summary!;
        Assert.Equal(newContent.Length, summary.BytesRead);
        Assert.Equal(1, summary.FilesChanged);
        Assert.Equal(files.Count - 1, summary.FilesUnchanged);
        Assert.Equal(0, summary.FilesNew);
    }

    [Fact]
    public async Task A_file_rewritten_with_the_same_size_and_its_old_mtime_is_still_read()
    {
        var rng = new Random(TestSeed.Get(output));
        var files = BuildTree(rng);
        string changed = Path.Combine(_box.Source, "sub", "c.bin");
        var status = Platform.Posix.LStat(changed);
        var repo = await _box.InitAsync();
        await Sandbox.BackupAsync(repo, _box.Source);

        // Same size, mtime put back: only the ctime tells that the content changed.
        var newContent = Files.RandomBytes(rng, files[changed].Length);
        await File.WriteAllBytesAsync(changed, newContent);
        Files.SetMtime(changed, status.MtimeNs);
        var second = await Sandbox.BackupAsync(repo, _box.Source);

        var summary = second.Snapshot.Snapshot.Summary!;
        Assert.Equal(newContent.Length, summary.BytesRead);
        Assert.Equal(1, summary.FilesChanged);
        var (target, _) = await _box.RestoreAsync(repo, second.Snapshot, "r");
        Assert.Equal(newContent, File.ReadAllBytes(Sandbox.Restored(target, changed)));
    }

    [Fact]
    public async Task A_new_file_is_counted_as_new_and_read()
    {
        var rng = new Random(TestSeed.Get(output));
        var files = BuildTree(rng);
        var repo = await _box.InitAsync();
        await Sandbox.BackupAsync(repo, _box.Source);

        var content = Files.RandomBytes(rng, 123_456);
        Files.Write(Path.Combine(_box.Source, "sub", "new.bin"), content);
        var second = await Sandbox.BackupAsync(repo, _box.Source);

        var summary = second.Snapshot.Snapshot.Summary!;
        Assert.Equal(1, summary.FilesNew);
        Assert.Equal(content.Length, summary.BytesRead);
        Assert.Equal(files.Count, summary.FilesUnchanged);
    }

    [Fact]
    public async Task Full_backup_rereads_everything_but_adds_no_data()
    {
        var files = BuildTree(new Random(TestSeed.Get(output)));
        var repo = await _box.InitAsync();
        await Sandbox.BackupAsync(repo, _box.Source);
        var before = Entries(await repo.LoadIndexAsync());

        var full = await Sandbox.BackupAsync(repo, _box.Source, full: true);

        var summary = full.Snapshot.Snapshot.Summary!;
        Assert.Equal(files.Values.Sum(c => (long)c.Length), summary.BytesRead);
        Assert.Equal(files.Count, summary.FilesUnchanged);
        var added = Entries(await repo.LoadIndexAsync()).Except(before).ToList();
        Assert.DoesNotContain(added, e => e.Kind == BlobKind.Data);
    }

    [Fact]
    public async Task Every_snapshot_restores_its_own_state()
    {
        var rng = new Random(TestSeed.Get(output));
        var v1 = BuildTree(rng);
        var repo = await _box.InitAsync();
        var first = await Sandbox.BackupAsync(repo, _box.Source);

        // Change one file, delete one, add one.
        var v2 = new Dictionary<string, byte[]>(v1, StringComparer.Ordinal);
        string changed = Path.Combine(_box.Source, "a.bin");
        v2[changed] = Files.RandomBytes(rng, v1[changed].Length + 1);
        await File.WriteAllBytesAsync(changed, v2[changed]);
        string deleted = Path.Combine(_box.Source, "sub", "deeper", "d.bin");
        File.Delete(deleted);
        v2.Remove(deleted);
        string added = Path.Combine(_box.Source, "other", "g.bin");
        v2[added] = Files.RandomBytes(rng, 70_000);
        Files.Write(added, v2[added]);
        var second = await Sandbox.BackupAsync(repo, _box.Source);
        var third = await Sandbox.BackupAsync(repo, _box.Source);

        AssertRestoresTo((await _box.RestoreAsync(repo, first.Snapshot, "first")).Target, _box.Source, v1);
        AssertRestoresTo((await _box.RestoreAsync(repo, second.Snapshot, "second")).Target, _box.Source, v2);
        AssertRestoresTo((await _box.RestoreAsync(repo, third.Snapshot, "third")).Target, _box.Source, v2);
    }
}
