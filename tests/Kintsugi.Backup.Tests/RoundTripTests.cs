using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Platform;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class RoundTripTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private const int Min = 16 * 1024, Average = 64 * 1024, Max = 256 * 1024;

    private static readonly UnixFileMode[] FileModes = [(UnixFileMode)Convert.ToInt32("600", 8), (UnixFileMode)Convert.ToInt32("644", 8), (UnixFileMode)Convert.ToInt32("755", 8), (UnixFileMode)Convert.ToInt32("640", 8), (UnixFileMode)Convert.ToInt32("700", 8)];
    private static readonly UnixFileMode[] DirModes = [(UnixFileMode)Convert.ToInt32("755", 8), (UnixFileMode)Convert.ToInt32("700", 8), (UnixFileMode)Convert.ToInt32("750", 8)];

    private static long RandomMtimeNs(Random rng) =>
        new DateTimeOffset(2001, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() * 1_000_000L + rng.NextInt64(0, 30L * 365 * 24 * 3600 * 1_000_000_000L);

    /// <summary>Builds a random tree with every kind of entry the format knows about; returns the path of the sparse file.</summary>
    private static string BuildTree(string root, Random rng)
    {
        var dirs = new List<string> { root };
        foreach (var name in new[] { "a", "a/b", "a/b/c", "d", "データ", "d/空", "a/b/c/deep" })
        {
            string dir = Path.Combine(root, name);
            Directory.CreateDirectory(dir);
            dirs.Add(dir);
        }
        string RandomDir() => dirs[rng.Next(dirs.Count)];

        var files = new List<string>();
        // Sizes around the chunk boundaries, random and compressible.
        int[] sizes = [0, 1, 2, Min - 1, Min, Min + 1, Average - 1, Average, Average + 1, Max - 1, Max, Max + 1, 2 * Max + 3, rng.Next(1, 400_000)];
        for (int i = 0; i < sizes.Length; i++)
        {
            string path = Path.Combine(RandomDir(), $"f{i:D2}-{sizes[i]}.bin");
            Files.Write(path, i % 3 == 0 ? Files.CompressibleBytes(rng, sizes[i]) : Files.RandomBytes(rng, sizes[i]));
            files.Add(path);
        }
        // A multi-MiB file: random with a compressible stretch.
        string big = Path.Combine(root, "a", "model.safetensors");
        Files.Write(big, [.. Files.RandomBytes(rng, 2 << 20), .. Files.CompressibleBytes(rng, 1 << 20), .. Files.RandomBytes(rng, 12345)]);
        files.Add(big);
        // Unicode names.
        foreach (var name in new[] { "модель-ß-日本.pt", "🦀 weights 🚀.bin", "e\u0301-combining.txt", "tab\tand newline\n.txt" })
        {
            string path = Path.Combine(RandomDir(), name);
            Files.Write(path, Files.RandomBytes(rng, rng.Next(0, 5000)));
            files.Add(path);
        }
        // Hard links: two names of one inode, in different folders, and a third name.
        string linked = Path.Combine(root, "a", "b", "shared.bin");
        Files.Write(linked, Files.RandomBytes(rng, 100_000));
        files.Add(linked);
        Posix.Link(linked, Path.Combine(root, "d", "shared-link.bin"));
        Posix.Link(linked, Path.Combine(root, "shared-link-2.bin"));
        // Symlinks: relative, absolute, dangling, to a folder.
        var links = new List<string>();
        foreach (var (name, target) in new[] { ("link-rel", "a/model.safetensors"), ("link-dangling", "does/not/exist"), ("link-abs", "/etc/hostname"), ("link-dir", "d"), ("a/b/link-up", "../../d/空") })
        {
            string path = Path.Combine(root, name);
            File.CreateSymbolicLink(path, target);
            links.Add(path);
        }
        // A sparse file: 8 MiB with a little data in the middle.
        string sparse = Path.Combine(root, "d", "sparse.img");
        using (var stream = new FileStream(sparse, FileMode.CreateNew))
        {
            stream.SetLength(8 << 20);
            stream.Position = 3 << 20;
            stream.Write(Files.RandomBytes(rng, 10_000));
            stream.Position = 5 << 20;
            stream.Write(Files.CompressibleBytes(rng, 3_000));
        }
        files.Add(sparse);

        // Metadata last: modes, owners, then nanosecond mtimes, folders deepest first.
        foreach (var file in files)
        {
            File.SetUnixFileMode(file, FileModes[rng.Next(FileModes.Length)]);
            Files.SetMtime(file, RandomMtimeNs(rng));
        }
        if (Posix.IsRoot)
        {
            Posix.LChown(files[1], 1234, 5678);
            Posix.LChown(links[0], 4321, 8765);
        }
        foreach (var link in links)
        {
            Files.SetMtime(link, RandomMtimeNs(rng));
        }
        foreach (var dir in dirs.OrderByDescending(d => d.Length))
        {
            File.SetUnixFileMode(dir, DirModes[rng.Next(DirModes.Length)]);
            Files.SetMtime(dir, RandomMtimeNs(rng));
        }
        return sparse;
    }

    [Fact]
    public async Task A_random_tree_restores_with_identical_content_and_metadata()
    {
        var rng = new Random(TestSeed.Get(output));
        string sparse = BuildTree(_box.Source, rng);
        var repo = await _box.InitAsync();

        var backup = await Sandbox.BackupAsync(repo, _box.Source);
        Assert.Empty(backup.Issues);
        var (target, restore) = await _box.RestoreAsync(repo, backup.Snapshot, "all");

        Assert.Empty(restore.Issues);
        string restored = Sandbox.Restored(target, _box.Source);
        Files.AssertSameTree(_box.Source, restored);

        var source = Posix.LStat(sparse);
        if (source.Blocks * 512 < source.Size)
        {
            var copy = Posix.LStat(Sandbox.Restored(target, sparse));
            Assert.True(copy.Blocks * 512 < copy.Size, $"sparse file restored with {copy.Blocks * 512} bytes allocated for {copy.Size}");
        }
        else
        {
            output.WriteLine("the file system did not keep the source file sparse; sparseness not checked");
        }
    }

    [Fact]
    public async Task Restoring_over_an_earlier_restore_gives_the_newer_snapshot()
    {
        var rng = new Random(TestSeed.Get(output));
        BuildTree(_box.Source, rng);
        var repo = await _box.InitAsync();
        var first = await Sandbox.BackupAsync(repo, _box.Source);
        // Change contents, types and links: a file becomes a folder, a symlink a file, a hard link a plain file.
        string model = Path.Combine(_box.Source, "a", "model.safetensors");
        File.Delete(model);
        Files.Write(Path.Combine(model, "part-0"), Files.RandomBytes(rng, 70_000));
        File.Delete(Path.Combine(_box.Source, "link-rel"));
        Files.Write(Path.Combine(_box.Source, "link-rel"), Files.RandomBytes(rng, 10));
        File.Delete(Path.Combine(_box.Source, "shared-link-2.bin"));
        Files.Write(Path.Combine(_box.Source, "shared-link-2.bin"), Files.RandomBytes(rng, 20));
        await File.WriteAllBytesAsync(Path.Combine(_box.Source, "a", "b", "shared.bin"), Files.RandomBytes(rng, 5000));
        var second = await Sandbox.BackupAsync(repo, _box.Source);

        string target = _box.NewTarget("same");
        await new RestoreEngine(repo).RunAsync(first.Snapshot, new RestoreRequest { Target = target });
        // By default an entry whose type changed is left as the earlier restore made it, and reported.
        var refused = await new RestoreEngine(repo).RunAsync(second.Snapshot, new RestoreRequest { Target = target });
        Assert.Equal(
            [Sandbox.Restored(target, model), Sandbox.Restored(target, Path.Combine(_box.Source, "link-rel"))],
            refused.Issues.Select(i => i.Path).Order(StringComparer.Ordinal));
        Assert.True(Posix.LStat(Sandbox.Restored(target, model)).IsRegular);

        // With --overwrite always they are moved aside, and the target holds the newer snapshot.
        var result = await new RestoreEngine(repo).RunAsync(second.Snapshot, new RestoreRequest { Target = target, Overwrite = OverwritePolicy.Always });

        Assert.Empty(result.Issues);
        Assert.Equal(2, result.MovedAside.Count);
        foreach (var moved in result.MovedAside)
        {
            File.Delete(moved.MovedTo);
        }
        // Once they are gone, one more restore gives the folders their mtimes back, with nothing in the way.
        Assert.Empty((await new RestoreEngine(repo).RunAsync(second.Snapshot, new RestoreRequest { Target = target })).Issues);
        Files.AssertSameTree(_box.Source, Sandbox.Restored(target, _box.Source));
    }

    [Fact]
    public async Task Snapshot_summary_counts_what_was_backed_up()
    {
        var rng = new Random(TestSeed.Get(output));
        var sizes = new[] { 0, 10, 100_000, 1 << 20 };
        for (int i = 0; i < sizes.Length; i++)
        {
            Files.Write(Path.Combine(_box.Source, "sub", $"f{i}"), Files.RandomBytes(rng, sizes[i]));
        }
        var repo = await _box.InitAsync();
        var result = await Sandbox.BackupAsync(repo, _box.Source);
        var summary = result.Snapshot.Snapshot.Summary!;

        Assert.Equal(sizes.Length, summary.FilesNew);
        Assert.Equal(0, summary.FilesChanged + summary.FilesUnchanged + summary.Errors);
        Assert.Equal(2, summary.Directories);
        Assert.Equal(sizes.Sum(), summary.BytesTotal);
        Assert.Equal(sizes.Sum(), summary.BytesRead);
        var index = await repo.LoadIndexAsync();
        Assert.Equal(index.Count, summary.BlobsAdded);
        Assert.Equal(index.Entries.Sum(e => (long)e.RawLength), summary.BytesAdded);
        Assert.Equal(index.Entries.Sum(e => (long)e.StoredLength), summary.BytesAddedStored);
        Assert.Equal([_box.Source], result.Snapshot.Snapshot.Paths);
        Assert.Equal(Sandbox.Host, result.Snapshot.Snapshot.Host);
        // The snapshot as stored is the snapshot returned.
        var loaded = await repo.LoadSnapshotAsync(result.Snapshot.Id.ToString());
        Assert.Equal(result.Snapshot.Snapshot.Tree, loaded.Snapshot.Tree);
        Assert.Equal(summary, loaded.Snapshot.Summary);
    }

    [Fact]
    public async Task Identical_content_is_stored_once()
    {
        var rng = new Random(TestSeed.Get(output));
        var content = Files.RandomBytes(rng, 1 << 20);
        Files.Write(Path.Combine(_box.Source, "one.bin"), content);
        Files.Write(Path.Combine(_box.Source, "x", "two.bin"), content);
        var repo = await _box.InitAsync();
        var result = await Sandbox.BackupAsync(repo, _box.Source);

        var index = await repo.LoadIndexAsync();
        long dataBytes = index.Entries.Where(e => e.Kind == Format.BlobKind.Data).Sum(e => (long)e.RawLength);
        Assert.Equal(content.Length, dataBytes);
        Assert.Equal(2 * content.Length, result.Snapshot.Snapshot.Summary!.BytesRead);

        var (target, restore) = await _box.RestoreAsync(repo, result.Snapshot, "r");
        Assert.Empty(restore.Issues);
        Files.AssertSameTree(_box.Source, Sandbox.Restored(target, _box.Source));
    }

    [Fact]
    public async Task Files_up_to_the_chunk_minimum_are_one_blob_of_their_whole_content_and_an_empty_one_none()
    {
        // Files this small are read in one call without looking for a tensor layout; they must be
        // stored as the chunker stores them (one chunk), so they deduplicate against earlier snapshots.
        var rng = new Random(TestSeed.Get(output));
        int[] sizes = [0, 1, 4000, Min - 1, Min, Min + 1, 3 * Min];
        var contents = new Dictionary<string, byte[]>();
        foreach (int size in sizes)
        {
            // Many in one folder, so several are read at once.
            for (int copy = 0; copy < 20; copy++)
            {
                string path = Path.Combine(_box.Source, $"f{size}-{copy}.jsonl");
                contents[path] = copy % 2 == 0 ? Files.CompressibleBytes(rng, size) : Files.RandomBytes(rng, size);
                Files.Write(path, contents[path]);
            }
        }
        var repo = await _box.InitAsync();
        var backup = await Sandbox.BackupAsync(repo, _box.Source);
        Assert.Empty(backup.Issues);

        var nodes = await RepoFacts.FilesOfAsync(repo, backup.Snapshot);
        Assert.Equal(contents.Count, nodes.Count);
        foreach (var (path, content) in contents)
        {
            var node = nodes[path];
            Assert.Equal(content.Length, node.Size);
            if (content.Length == 0)
            {
                Assert.Empty(node.Content!);
            }
            else if (content.Length <= Min)
            {
                Assert.Equal([repo.Key.IdOf(content).ToString()], node.Content);
            }
            else
            {
                Assert.True(node.Content!.Count >= 1);
            }
        }
        var (target, restore) = await _box.RestoreAsync(repo, backup.Snapshot, "r");
        Assert.Empty(restore.Issues);
        Assert.Equal(contents.Count, restore.Files);
        Files.AssertSameTree(_box.Source, Sandbox.Restored(target, _box.Source));
    }

    [Fact]
    public async Task A_folder_of_many_files_backs_up_with_one_reader_and_restores_with_one_writer()
    {
        // The walk waits for a read slot before each file: with one, files are read one after another.
        var rng = new Random(TestSeed.Get(output));
        for (int i = 0; i < 300; i++)
        {
            Files.Write(Path.Combine(_box.Source, $"d{i % 3}", $"s{i:D4}.json"), Files.CompressibleBytes(rng, rng.Next(0, 3000)));
        }
        var repo = await _box.InitAsync();
        var backup = await new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [_box.Source], Host = Sandbox.Host, Workers = 1, QueuedChunks = 1 });
        Assert.Empty(backup.Issues);
        Assert.Equal(300, backup.Snapshot.Snapshot.Summary!.FilesNew);

        string target = _box.NewTarget("one");
        var restore = await new RestoreEngine(repo).RunAsync(backup.Snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host, Workers = 1 });
        Assert.Empty(restore.Issues);
        Assert.Equal(300, restore.Files);
        Files.AssertSameTree(_box.Source, Sandbox.Restored(target, _box.Source));
    }

    [Fact]
    public async Task Several_paths_and_a_single_file_restore_under_their_absolute_paths()
    {
        var rng = new Random(TestSeed.Get(output));
        string dirA = Path.Combine(_box.Source, "first");
        string fileB = Path.Combine(_box.Source, "second", "alone.bin");
        Files.Write(Path.Combine(dirA, "inside.bin"), Files.RandomBytes(rng, 70_000));
        Files.Write(fileB, Files.RandomBytes(rng, 300_000));
        Files.Write(Path.Combine(_box.Source, "second", "not-included.bin"), Files.RandomBytes(rng, 10));
        var repo = await _box.InitAsync();

        var result = await new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [fileB, dirA + "/"], Host = Sandbox.Host });
        Assert.Equal([dirA, fileB], result.Snapshot.Snapshot.Paths);
        var (target, restore) = await _box.RestoreAsync(repo, result.Snapshot, "r");

        Assert.Empty(restore.Issues);
        Files.AssertSameTree(dirA, Sandbox.Restored(target, dirA));
        Assert.True(Files.SameContent(fileB, Sandbox.Restored(target, fileB)));
        Assert.False(File.Exists(Sandbox.Restored(target, Path.Combine(_box.Source, "second", "not-included.bin"))));
    }

    [Fact]
    public void Backup_paths_are_made_absolute_without_duplicates_or_nesting()
    {
        string a = Path.Combine(_box.Source, "a");
        string b = Path.Combine(_box.Source, "b");
        Directory.CreateDirectory(Path.Combine(a, "inner"));
        Files.Write(Path.Combine(b, "file"), [1]);

        var paths = BackupEngine.NormalizePaths([b + "/file", a + "/", Path.Combine(a, "inner"), a, Path.GetRelativePath(Environment.CurrentDirectory, b)]);

        Assert.Equal([a, b], paths);
    }

    [Fact]
    public async Task Restore_of_included_paths_restores_only_those()
    {
        var rng = new Random(TestSeed.Get(output));
        Files.Write(Path.Combine(_box.Source, "keep", "a.bin"), Files.RandomBytes(rng, 1000));
        Files.Write(Path.Combine(_box.Source, "keep", "deeper", "b.bin"), Files.RandomBytes(rng, 1000));
        Files.Write(Path.Combine(_box.Source, "skip", "c.bin"), Files.RandomBytes(rng, 1000));
        var repo = await _box.InitAsync();
        var result = await Sandbox.BackupAsync(repo, _box.Source);

        string target = _box.NewTarget("partial");
        string include = Path.Combine(_box.Source, "keep");
        var restore = await new RestoreEngine(repo).RunAsync(result.Snapshot, new RestoreRequest { Target = target, Includes = [include] });

        Assert.Equal(2, restore.Files);
        Files.AssertSameTree(include, Sandbox.Restored(target, include));
        Assert.False(Directory.Exists(Sandbox.Restored(target, Path.Combine(_box.Source, "skip"))));
        var missing = await Assert.ThrowsAsync<KintsugiException>(() =>
            new RestoreEngine(repo).RunAsync(result.Snapshot, new RestoreRequest { Target = _box.NewTarget("none"), Includes = [Path.Combine(_box.Source, "nope")] }));
        Assert.Equal(ErrorKind.NotFound, missing.Kind);
    }
}
