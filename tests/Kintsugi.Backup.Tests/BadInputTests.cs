using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Platform;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class BadInputTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Fact]
    public async Task Backup_of_a_missing_path_is_refused_naming_it_and_writes_no_snapshot()
    {
        Files.Write(Path.Combine(_box.Source, "present.bin"), [1, 2, 3]);
        var repo = await _box.InitAsync();
        string missing = Path.Combine(_box.Root, "no-such-folder");

        var e = await Assert.ThrowsAsync<KintsugiException>(() =>
            new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [_box.Source, missing], Host = Sandbox.Host }));

        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);
        Assert.Empty(await repo.Store.ListAsync(FileKind.Snapshot));
        Assert.Empty(await repo.Store.ListAsync(FileKind.Pack));
        Assert.Empty(await repo.Store.ListAsync(FileKind.Lock));
    }

    [Fact]
    public async Task Backup_with_no_paths_is_refused()
    {
        var repo = await _box.InitAsync();
        var e = await Assert.ThrowsAsync<KintsugiException>(() => new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [], Host = Sandbox.Host }));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Empty(await repo.Store.ListAsync(FileKind.Snapshot));
    }

    [Fact]
    public async Task An_unreadable_file_is_reported_and_the_snapshot_holds_the_rest()
    {
        if (Posix.IsRoot)
        {
            output.WriteLine("skipped: running as root, which can read a file with mode 000");
            return;
        }
        var rng = new Random(TestSeed.Get(output));
        string unreadable = Path.Combine(_box.Source, "secret.bin");
        string readable = Path.Combine(_box.Source, "fine.bin");
        Files.Write(unreadable, Files.RandomBytes(rng, 1000));
        var content = Files.RandomBytes(rng, 100_000);
        Files.Write(readable, content);
        File.SetUnixFileMode(unreadable, UnixFileMode.None);
        var repo = await _box.InitAsync();

        var result = await Sandbox.BackupAsync(repo, _box.Source);

        var issue = Assert.Single(result.Issues);
        Assert.Equal(unreadable, issue.Path);
        Assert.Equal(1, result.Snapshot.Snapshot.Summary!.Errors);
        var snapshotFiles = await RepoFacts.FilesOfAsync(repo, result.Snapshot);
        Assert.Equal([readable], snapshotFiles.Keys);
        var (target, _) = await _box.RestoreAsync(repo, result.Snapshot, "r");
        Assert.Equal(content, File.ReadAllBytes(Sandbox.Restored(target, readable)));
    }

    /// <summary>Seals a tree blob into a new pack, indexes it, and writes a snapshot whose root is that tree.</summary>
    private static async Task<(BlobId Id, SnapshotRef Snapshot)> PlantTreeAsync(Repository repo, Tree tree, bool asSnapshot)
    {
        var bytes = Repository.SerializeTree(tree);
        var id = repo.Key.IdOf(bytes);
        var (codec, sealedBytes) = BlobSealer.Seal(repo.Key, id, BlobKind.Tree, bytes);
        var entries = new List<IndexEntry>();
        var writer = new PackWriter(repo.Store, repo.Key, repo.Config.PackSize, (stored, _) =>
        {
            entries.AddRange(stored);
            return Task.CompletedTask;
        });
        await writer.AddAsync(id, BlobKind.Tree, codec, bytes.Length, sealedBytes, default, default);
        await writer.FlushAsync(default);
        await repo.SaveIndexAsync(entries);
        if (!asSnapshot)
        {
            return (id, null!);
        }
        var snapshot = new Snapshot { Time = DateTimeOffset.UtcNow, Host = "evil", Paths = ["/evil"], Tree = id.ToString(), Kind = "full" };
        var snapshotId = await repo.SaveSnapshotAsync(snapshot);
        return (id, new SnapshotRef(snapshotId, snapshot));
    }

    private static async Task<string> PlantFileContentAsync(Repository repo, byte[] content)
    {
        var id = repo.Key.IdOf(content);
        var (codec, sealedBytes) = BlobSealer.Seal(repo.Key, id, BlobKind.Data, content);
        var entries = new List<IndexEntry>();
        var writer = new PackWriter(repo.Store, repo.Key, repo.Config.PackSize, (stored, _) =>
        {
            entries.AddRange(stored);
            return Task.CompletedTask;
        });
        await writer.AddAsync(id, BlobKind.Data, codec, content.Length, sealedBytes, default, default);
        await writer.FlushAsync(default);
        await repo.SaveIndexAsync(entries);
        return id.ToString();
    }

    private static Node FileNode(string name, string blob, int size) => new()
    {
        Name = name,
        Type = NodeType.File,
        Mode = Convert.ToUInt32("644", 8),
        Size = size,
        Links = 1,
        MtimeNs = 1_700_000_000_000_000_000,
        Content = [blob],
    };

    private static Node DirNode(string name, BlobId subtree) => new()
    {
        Name = name,
        Type = NodeType.Directory,
        Mode = Convert.ToUInt32("755", 8),
        MtimeNs = 1_700_000_000_000_000_000,
        Subtree = subtree.ToString(),
    };

    public static TheoryData<string> HostileNames => new() { "..", ".", "", "a/b", "../escaped", "/abs", "nul\0byte" };

    [Theory]
    [MemberData(nameof(HostileNames))]
    public async Task Restore_of_a_tree_with_a_hostile_name_is_refused_and_writes_nothing_outside_the_target(string hostile)
    {
        var repo = await _box.InitAsync();
        var payload = "pwned"u8.ToArray();
        string blob = await PlantFileContentAsync(repo, payload);
        // A folder named hostile, holding "escaped.txt"; and a file named hostile, in a subfolder of the root.
        var (inner, _) = await PlantTreeAsync(repo, new Tree { Nodes = [FileNode("escaped.txt", blob, payload.Length)] }, asSnapshot: false);
        var (middle, _) = await PlantTreeAsync(repo, new Tree { Nodes = [DirNode(hostile, inner), FileNode(hostile + "x", blob, payload.Length)] }, asSnapshot: false);
        var (_, snapshot) = await PlantTreeAsync(repo, new Tree { Nodes = [DirNode("evil", middle)] }, asSnapshot: true);
        string target = _box.NewTarget("target");
        bool OutsideTarget(string rel) => rel == "repo" || rel.StartsWith("repo/", StringComparison.Ordinal) || rel == "restore/target" || rel.StartsWith("restore/target/", StringComparison.Ordinal);
        Directory.CreateDirectory(target);
        var before = Files.Listing(_box.Root, OutsideTarget);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host }));

        Assert.Equal(ErrorKind.Corrupt, e.Kind);
        Assert.Equal(before, Files.Listing(_box.Root, OutsideTarget));
        Assert.Empty(Directory.EnumerateFiles(target, "escaped.txt", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Restore_of_a_tree_with_a_duplicate_name_is_refused()
    {
        var repo = await _box.InitAsync();
        var one = "first"u8.ToArray();
        var two = "second"u8.ToArray();
        string blobOne = await PlantFileContentAsync(repo, one);
        string blobTwo = await PlantFileContentAsync(repo, two);
        var (_, snapshot) = await PlantTreeAsync(repo, new Tree { Nodes = [FileNode("same", blobOne, one.Length), FileNode("same", blobTwo, two.Length)] }, asSnapshot: true);
        string target = _box.NewTarget("target");

        var e = await Assert.ThrowsAsync<KintsugiException>(() => new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host }));

        Assert.Equal(ErrorKind.Corrupt, e.Kind);
    }

    [Fact]
    public async Task Restore_of_a_tree_pointing_at_a_data_blob_as_a_folder_is_refused()
    {
        var repo = await _box.InitAsync();
        string blob = await PlantFileContentAsync(repo, "not a tree"u8.ToArray());
        var (_, snapshot) = await PlantTreeAsync(repo, new Tree { Nodes = [DirNode("dir", BlobId.Parse(blob))] }, asSnapshot: true);

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = _box.NewTarget("target"), Host = Sandbox.Host });

        // The folder is reported as unreadable (the blob is no tree), and nothing is restored under it.
        var issue = Assert.Single(result.Issues, i => i.Path == "/dir");
        Assert.StartsWith("folder not restored", issue.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_box.NewTarget("target"), "dir")) && Directory.EnumerateFileSystemEntries(Path.Combine(_box.NewTarget("target"), "dir")).Any());
    }

    [Fact]
    public async Task Restore_never_writes_through_a_planted_symlink_it_leaves_by_default_and_moves_aside_with_overwrite_always()
    {
        var rng = new Random(TestSeed.Get(output));
        string file = Path.Combine(_box.Source, "sub", "data.bin");
        var content = Files.RandomBytes(rng, 50_000);
        Files.Write(file, content);
        var repo = await _box.InitAsync();
        var snapshot = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;

        // Before the restore, the target holds a symlink where the file will go, pointing outside.
        string target = _box.NewTarget("target");
        string outsideFile = Path.Combine(_box.Root, "precious.txt");
        File.WriteAllText(outsideFile, "precious");
        string restoredFile = Sandbox.Restored(target, file);
        Directory.CreateDirectory(Path.GetDirectoryName(restoredFile)!);
        File.CreateSymbolicLink(restoredFile, outsideFile);

        var refused = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host });

        Assert.Equal(restoredFile, Assert.Single(refused.Issues).Path);
        Assert.Equal("precious", File.ReadAllText(outsideFile));
        Assert.Equal(outsideFile, new FileInfo(restoredFile).LinkTarget);

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = OverwritePolicy.Always });

        Assert.Empty(result.Issues);
        Assert.Equal("precious", File.ReadAllText(outsideFile));
        Assert.Null(new FileInfo(restoredFile).LinkTarget);
        Assert.Equal(content, File.ReadAllBytes(restoredFile));
        var moved = Assert.Single(result.MovedAside);
        Assert.Equal(restoredFile, moved.Path);
        Assert.Equal(outsideFile, new FileInfo(moved.MovedTo).LinkTarget);
    }

    [Fact]
    public async Task Restore_never_follows_a_planted_symlink_in_place_of_a_folder_and_moves_it_aside_with_overwrite_always()
    {
        var rng = new Random(TestSeed.Get(output));
        string file = Path.Combine(_box.Source, "sub", "data.bin");
        var content = Files.RandomBytes(rng, 10_000);
        Files.Write(file, content);
        var repo = await _box.InitAsync();
        var snapshot = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;

        string target = _box.NewTarget("target");
        string outsideDir = Path.Combine(_box.Root, "precious-dir");
        Directory.CreateDirectory(outsideDir);
        string restoredSub = Sandbox.Restored(target, Path.Combine(_box.Source, "sub"));
        Directory.CreateDirectory(Path.GetDirectoryName(restoredSub)!);
        File.CreateSymbolicLink(restoredSub, outsideDir);

        var refused = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host });

        Assert.Equal(restoredSub, Assert.Single(refused.Issues).Path);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outsideDir));
        Assert.True(Posix.LStat(restoredSub).IsSymlink);

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = OverwritePolicy.Always });

        Assert.Empty(result.Issues);
        Assert.Equal(outsideDir, new FileInfo(Assert.Single(result.MovedAside).MovedTo).LinkTarget);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outsideDir));
        Assert.True(Posix.LStat(restoredSub).IsDirectory);
        Assert.Equal(content, File.ReadAllBytes(Sandbox.Restored(target, file)));
    }
}
