using System.Text;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Platform;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

/// <summary>
/// A repository written by an attacker who holds its key, and so can seal any tree, blob and
/// snapshot so that it authenticates. Restoring, listing, checking or measuring it must end with a
/// clear error or a reported issue: never a write outside the target, a device node, a hang, a stack
/// overflow or memory without bound. (Hostile names, duplicate names and symlinks planted in the
/// target are in <see cref="BadInputTests"/>; decoding limits of single blobs in <see cref="FormatTests"/>.)
/// </summary>
public sealed class HostileRepositoryTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Longest any one operation on a hostile repository may take before the test calls it a hang.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    private const long Mtime = 1_700_000_000_000_000_000;

    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    // ----- cycles and depth -----

    [Theory]
    [InlineData("itself")]
    [InlineData("its grandparent")]
    public async Task A_tree_that_names_itself_or_an_ancestor_as_a_subfolder_is_refused_by_every_reader(string loop)
    {
        // A tree's id is the keyed hash of its bytes, so a tree cannot truly contain its own id: the
        // attacker seals it under the id it names (the seal authenticates, having the key), and the
        // readers must catch that the bytes do not hash to it rather than walk the loop.
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var forged = BlobId.Read(Files.RandomBytes(new Random(TestSeed.Get(output)), 32));
        BlobId root;
        if (loop == "itself")
        {
            root = await forge.BlobAsync(Json(new Tree { Nodes = [DirNode("loop", forged)] }), BlobKind.Tree, forged);
        }
        else
        {
            root = await forge.TreeAsync(new Tree { Nodes = [DirNode("child", forged)] });
            await forge.BlobAsync(Json(new Tree { Nodes = [DirNode("back", root)] }), BlobKind.Tree, forged);
        }
        var snapshot = await forge.SnapshotAsync(root.ToString());

        await AssertEveryReaderRefusesAsync(repo, snapshot, forged.Short);
    }

    [Fact]
    public async Task A_snapshot_nested_100000_folders_deep_is_refused_by_every_reader_without_overflowing_the_stack()
    {
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var payload = "deep"u8.ToArray();
        var tree = await forge.TreeAsync(new Tree { Nodes = [FileNode("bottom.txt", [await forge.DataAsync(payload)], payload.Length)] });
        for (int i = 0; i < 100_000; i++)
        {
            tree = await forge.TreeAsync(new Tree { Nodes = [DirNode("d", tree)] });
        }
        var snapshot = await forge.SnapshotAsync(tree.ToString());

        await AssertEveryReaderRefusesAsync(repo, snapshot, $"deeper than {TreeWalker.MaxDepth}");
    }

    [Fact]
    public async Task Walking_deep_folders_that_share_wide_subfolders_holds_memory_for_the_trees_read_not_depth_times_width()
    {
        // 1000 levels, each folder holding 50 subfolders that are all the same next level: a valid
        // (if odd) snapshot. A walk down to the bottom must not keep a copy of the path per pending subfolder.
        const int Depth = 1000, Width = 50;
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var tree = await forge.TreeAsync(new Tree { Nodes = [] });
        for (int level = 0; level < Depth; level++)
        {
            var next = tree;
            tree = await forge.TreeAsync(new Tree { Nodes = Enumerable.Range(0, Width).Select(i => DirNode($"d{i:00}", next)).ToList() });
        }
        var snapshot = await forge.SnapshotAsync(tree.ToString());
        var index = await repo.LoadIndexAsync();
        using var timeout = new CancellationTokenSource(Bound);
        long before = GC.GetTotalMemory(forceFullCollection: true);
        long atBottom = -1;

        await foreach (var walked in TreeWalker.WalkAsync(repo, index, TreeWalker.RootOf(snapshot), timeout.Token))
        {
            if (walked.Depth == Depth)
            {
                atBottom = GC.GetTotalMemory(forceFullCollection: true) - before;
                break;
            }
        }

        // A few MiB; a copy of the path per pending subfolder held about 1.7 GiB. The margin is for
        // tests running beside this one in the same process.
        output.WriteLine($"live memory at depth {Depth}: {atBottom / (1 << 20)} MiB");
        Assert.InRange(atBottom, 0, 512L << 20);
    }

    [Fact]
    public async Task Check_of_folders_that_share_subfolders_reads_each_tree_once_and_still_names_damage_below_them()
    {
        // 40 levels, each folder holding two subfolders that are the same next level: 2^40 paths,
        // 41 distinct trees. Check must finish (it used to visit every path), and a damaged file at
        // the bottom is still named, through some of its paths.
        const int Depth = 40;
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var payload = "leaf"u8.ToArray();
        var blob = await forge.DataAsync(payload);
        var tree = await forge.TreeAsync(new Tree { Nodes = [FileNode("leaf.txt", [blob], payload.Length)] });
        for (int level = 0; level < Depth; level++)
        {
            var next = tree;
            tree = await forge.TreeAsync(new Tree { Nodes = [DirNode("a", next), DirNode("b", next)] });
        }
        await forge.SnapshotAsync(tree.ToString());

        var clean = await new CheckEngine(repo).RunAsync(new CheckRequest { Host = Sandbox.Host, ReadData = true }).WaitAsync(Bound);
        Assert.True(clean.Ok, string.Join("; ", clean.Problems.Select(p => p.Message)));

        // Damage the leaf's blob: every path to leaf.txt is affected; check lists a bounded number of them.
        var index = await repo.LoadIndexAsync();
        var entry = index.Get(blob);
        string pack = _box.Store.PathOf(FileKind.Pack, entry.Pack.ToString());
        var bytes = File.ReadAllBytes(pack);
        bytes[entry.Offset + 3] ^= 0x01;
        File.WriteAllBytes(pack, bytes);
        var damaged = await new CheckEngine(await _box.OpenAsync()).RunAsync(new CheckRequest { Host = Sandbox.Host, ReadData = true }).WaitAsync(Bound);
        Assert.False(damaged.Ok);
        Assert.NotEmpty(damaged.AffectedFiles);
        Assert.All(damaged.AffectedFiles, f => Assert.EndsWith("/leaf.txt", f.Path, StringComparison.Ordinal));
        Assert.InRange(damaged.AffectedFiles.Count, 1, 10_000);
        Assert.Contains(damaged.Problems, p => p.Message.Contains("only the first are listed", StringComparison.Ordinal));

        // The readers that walk every path (restore, ls and diff, stats) refuse it once the walk has
        // visited 100,000 entries for 82 distinct ones, instead of running for ever or growing without bound.
        var snapshot = (await repo.LoadSnapshotsAsync()).Single();
        await AssertRefusedAsync(() => WalkAllAsync(repo, snapshot), "share subfolders so often");
        await AssertRefusedAsync(() => WalkPreOrderAllAsync(repo, snapshot), "share subfolders so often");
        await AssertRefusedAsync(() => new StatsEngine(repo).RunAsync(snapshot), "share subfolders so often");
        await AssertRestoreRefusesAsync(repo, snapshot, _box.NewTarget("shared"), "share subfolders so often");
    }

    // ----- what a tree may hold -----

    [Fact]
    public async Task Devices_and_sockets_in_a_tree_are_reported_and_never_created()
    {
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var payload = "fine"u8.ToArray();
        var (_, snapshot) = await forge.RootAsync(
            Special("blockdev", NodeType.BlockDevice, (8UL << 32) | 0),
            Special("chardev", NodeType.CharDevice, (1UL << 32) | 1),
            FileNode("fine.txt", [await forge.DataAsync(payload)], payload.Length),
            Special("pipe", NodeType.Fifo, 0, mode: Convert.ToUInt32("4777", 8)),
            Special("socket", NodeType.Socket, 0));
        string target = _box.NewTarget("target");

        var result = await Restore(repo, snapshot, target);

        foreach (var name in new[] { "blockdev", "chardev", "socket" })
        {
            Assert.False(Exists(Path.Combine(target, name)), $"{name} was created");
            var issue = Assert.Single(result.Issues, i => i.Path == "/" + name);
            Assert.StartsWith("warning:", issue.Message, StringComparison.Ordinal);
        }
        Assert.True(Posix.LStat(Path.Combine(target, "pipe")).IsFifo);
        Assert.Equal(payload, File.ReadAllBytes(Path.Combine(target, "fine.txt")));
    }

    public static TheoryData<string, long> HostileSizes => new()
    {
        { "the largest size", long.MaxValue },
        { "a terabyte of nothing", 1L << 40 },
        { "one byte more than its content", 6 },
        { "one byte less than its content", 4 },
    };

    [Theory]
    [MemberData(nameof(HostileSizes))]
    public async Task A_file_whose_size_differs_from_its_content_is_reported_and_not_restored(string what, long size)
    {
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var content = "12345"u8.ToArray();
        var blob = await forge.DataAsync(content);
        var (_, snapshot) = await forge.RootAsync(FileNode("fine.txt", [blob], content.Length), FileNode("liar.bin", [blob], size));
        string target = _box.NewTarget("target");

        var result = await Restore(repo, snapshot, target);

        var issue = Assert.Single(result.Issues);
        Assert.Contains("liar.bin", issue.Path, StringComparison.Ordinal);
        Assert.Contains(size.ToString(System.Globalization.CultureInfo.InvariantCulture), issue.Message, StringComparison.Ordinal);
        Assert.False(Exists(Path.Combine(target, "liar.bin")), $"a file of {what} was left in the target");
        Assert.Equal(content, File.ReadAllBytes(Path.Combine(target, "fine.txt")));
    }

    public static TheoryData<string> BrokenSymlinkTargets => new() { "", "a\0b", new string('x', 5000) };

    [Theory]
    [MemberData(nameof(BrokenSymlinkTargets))]
    public async Task A_symlink_whose_target_cannot_be_created_is_reported_and_the_rest_restored(string linkTarget)
    {
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var payload = "fine"u8.ToArray();
        var (_, snapshot) = await forge.RootAsync(FileNode("fine.txt", [await forge.DataAsync(payload)], payload.Length), Symlink("link", linkTarget));
        string target = _box.NewTarget("target");

        var result = await Restore(repo, snapshot, target);

        var issue = Assert.Single(result.Issues);
        Assert.Equal(Path.Combine(target, "link"), issue.Path);
        Assert.False(Exists(Path.Combine(target, "link")));
        Assert.Equal(payload, File.ReadAllBytes(Path.Combine(target, "fine.txt")));
    }

    [Fact]
    public async Task Links_to_outside_the_target_are_restored_as_links_and_never_written_through_by_a_later_restore()
    {
        var repo = await _box.InitAsync();
        await LinksToOutsideAreNeverWrittenThrough(repo, OverwritePolicy.SameType);
        await LinksToOutsideAreNeverWrittenThrough(repo, OverwritePolicy.Always);
    }

    private async Task LinksToOutsideAreNeverWrittenThrough(Repository repo, OverwritePolicy policy)
    {
        var forge = new Forger(repo);
        string outsideDir = Path.Combine(_box.Root, $"outside-dir-{policy}");
        string outsideFile = Path.Combine(_box.Root, $"outside-{policy}.txt");
        Directory.CreateDirectory(outsideDir);
        File.WriteAllText(outsideFile, "precious");
        File.SetUnixFileMode(outsideFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var outsideBefore = (Posix.LStat(outsideFile), Posix.LStat(outsideDir));
        // First snapshot: links to the outside at every name the second one puts something at.
        var (_, links) = await forge.RootAsync(
            Symlink("dir", outsideDir), Symlink("file", outsideFile), Symlink("hardlink", outsideFile), Symlink("linked", outsideFile), Symlink("pipe", outsideFile));
        // Second snapshot: a folder with a file in it, a file, a FIFO and a pair of hard links, each where a link was.
        var payload = "pwned"u8.ToArray();
        var blob = await forge.DataAsync(payload);
        var inner = await forge.TreeAsync(new Tree { Nodes = [FileNode("x", [blob], payload.Length) with { Mode = Convert.ToUInt32("777", 8) }] });
        var (_, overwrite) = await forge.RootAsync(
            DirNode("dir", inner) with { Mode = Convert.ToUInt32("777", 8) },
            FileNode("file", [blob], payload.Length) with { Mode = Convert.ToUInt32("777", 8) },
            FileNode("hardlink", [blob], payload.Length) with { Links = 2, Device = 7, Inode = 7 },
            FileNode("linked", [blob], payload.Length) with { Links = 2, Device = 7, Inode = 7 },
            Special("pipe", NodeType.Fifo, 0));
        string target = _box.NewTarget($"target-{policy}");

        var first = await Restore(repo, links, target);
        var second = await new RestoreEngine(repo).RunAsync(overwrite, new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = policy });

        Assert.Empty(first.Issues);
        Assert.Equal("precious", File.ReadAllText(outsideFile));
        Assert.Empty(Directory.EnumerateFileSystemEntries(outsideDir));
        if (policy != OverwritePolicy.Always)
        {
            // Each link is left as it is, reported, and not followed.
            Assert.Equal(["dir", "file", "hardlink", "linked", "pipe"], second.Issues.Select(i => Path.GetFileName(i.Path)).Order(StringComparer.Ordinal));
            Assert.All(new[] { "dir", "file", "hardlink", "linked", "pipe" }, name => Assert.True(Posix.LStat(Path.Combine(target, name)).IsSymlink));
            return;
        }
        Assert.Empty(second.Issues);
        Assert.Equal(5, second.MovedAside.Count);
        Assert.Null(new FileInfo(Path.Combine(target, "file")).LinkTarget);
        Assert.Empty(Directory.EnumerateFileSystemEntries(outsideDir));
        var outsideAfter = (Posix.LStat(outsideFile), Posix.LStat(outsideDir));
        Assert.Equal((outsideBefore.Item1.Permissions, outsideBefore.Item1.MtimeNs), (outsideAfter.Item1.Permissions, outsideAfter.Item1.MtimeNs));
        Assert.Equal((outsideBefore.Item2.Permissions, outsideBefore.Item2.MtimeNs), (outsideAfter.Item2.Permissions, outsideAfter.Item2.MtimeNs));
        Assert.True(Posix.LStat(Path.Combine(target, "dir")).IsDirectory);
        Assert.Equal(payload, File.ReadAllBytes(Path.Combine(target, "dir", "x")));
        Assert.True(Posix.LStat(Path.Combine(target, "pipe")).IsFifo);
        Assert.Equal(Posix.LStat(Path.Combine(target, "hardlink")).Inode, Posix.LStat(Path.Combine(target, "linked")).Inode);
    }

    [Fact]
    public async Task A_folder_or_fifo_that_cannot_be_created_is_reported_and_the_rest_restored()
    {
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var payload = "fine"u8.ToArray();
        var blob = await forge.DataAsync(payload);
        string tooLong = new('n', 300);
        var inner = await forge.TreeAsync(new Tree { Nodes = [FileNode("x", [blob], payload.Length)] });
        var (_, snapshot) = await forge.RootAsync(DirNode("d" + tooLong, inner), FileNode("fine.txt", [blob], payload.Length), Special("p" + tooLong, NodeType.Fifo, 0));
        string target = _box.NewTarget("target");

        var result = await Restore(repo, snapshot, target);

        Assert.Contains(result.Issues, i => i.Path.EndsWith("d" + tooLong, StringComparison.Ordinal));
        Assert.Contains(result.Issues, i => i.Path.EndsWith("p" + tooLong, StringComparison.Ordinal));
        Assert.Equal(payload, File.ReadAllBytes(Path.Combine(target, "fine.txt")));
    }

    // ----- malformed trees and snapshots -----

    public static TheoryData<string, string> MalformedTrees => new()
    {
        { "no node list", """{"nodes":null}""" },
        { "a null node", """{"nodes":[null]}""" },
        { "a node without a name", """{"nodes":[{"name":null,"type":"file"}]}""" },
        { "a type beyond the known ones", """{"nodes":[{"name":"x","type":99}]}""" },
        { "a type name beyond the known ones", """{"nodes":[{"name":"x","type":"door"}]}""" },
        { "a subfolder id that is no id", """{"nodes":[{"name":"d","type":"dir","subtree":"../../etc"}]}""" },
        { "a mode that is no number", """{"nodes":[{"name":"x","type":"file","mode":"rwx"}]}""" },
        { "a negative size", """{"nodes":[{"name":"x","type":"file","size":-1,"content":[]}]}""" },
        { "content that is no blob id", """{"nodes":[{"name":"x","type":"file","size":5,"content":["../../../etc/passwd"]}]}""" },
        { "content with a null id", """{"nodes":[{"name":"x","type":"file","size":5,"content":[null]}]}""" },
        { "no JSON at all", "\u0000\u0001garbage" },
    };

    [Theory]
    [MemberData(nameof(MalformedTrees))]
    public async Task A_malformed_tree_is_refused_as_damaged_by_every_reader(string what, string json)
    {
        output.WriteLine(what);
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var bad = await forge.BlobAsync(Encoding.UTF8.GetBytes(json), BlobKind.Tree);
        var (_, snapshot) = await forge.RootAsync(DirNode("bad", bad));

        await AssertEveryReaderRefusesAsync(repo, snapshot, bad.Short);
    }

    [Fact]
    public async Task A_snapshot_whose_tree_is_no_id_is_refused_by_restore_the_walk_and_stats()
    {
        var repo = await _box.InitAsync();
        var snapshot = await new Forger(repo).SnapshotAsync("../../etc");

        await AssertRefusedAsync(() => Restore(repo, snapshot, _box.NewTarget("target")), snapshot.ShortId);
        await AssertRefusedAsync(() => WalkAllAsync(repo, snapshot), snapshot.ShortId);
        await AssertRefusedAsync(() => new StatsEngine(repo).RunAsync(snapshot), snapshot.ShortId);
    }

    [Fact]
    public async Task A_snapshot_whose_tree_is_no_id_is_reported_by_check()
    {
        var repo = await _box.InitAsync();
        var snapshot = await new Forger(repo).SnapshotAsync("../../etc");

        var check = await new CheckEngine(repo).RunAsync(new CheckRequest { Host = Sandbox.Host }).WaitAsync(Bound);

        Assert.Contains(check.Problems, p => p.Severity == "error" && p.Subject.Contains(snapshot.ShortId, StringComparison.Ordinal));
    }

    // ----- decompression bombs through a restore -----

    [Fact]
    public async Task A_content_blob_that_inflates_beyond_its_declared_length_fails_only_its_file()
    {
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        // 256 MiB of zeros in a few KiB, declared as 4 KiB.
        var bomb = new ZstdSharp.Compressor(3).Wrap(new byte[256 << 20]).ToArray();
        var bombId = await forge.EncodedAsync(repo.Key.IdOf(new byte[4096]), BlobKind.Data, BlobCodec.Zstd, 4096, bomb);
        var payload = "fine"u8.ToArray();
        var (_, snapshot) = await forge.RootAsync(FileNode("bomb.bin", [bombId], 4096), FileNode("fine.txt", [await forge.DataAsync(payload)], payload.Length));
        string target = _box.NewTarget("target");

        var result = await Restore(repo, snapshot, target);

        Assert.Contains("bomb.bin", Assert.Single(result.Issues).Path, StringComparison.Ordinal);
        Assert.False(Exists(Path.Combine(target, "bomb.bin")));
        Assert.Equal(payload, File.ReadAllBytes(Path.Combine(target, "fine.txt")));
    }

    [Fact]
    public async Task A_tree_blob_that_inflates_beyond_its_declared_length_is_refused()
    {
        var repo = await _box.InitAsync();
        var forge = new Forger(repo);
        var json = Json(new Tree { Nodes = [] });
        var bomb = new ZstdSharp.Compressor(3).Wrap(Encoding.UTF8.GetBytes("{\"nodes\":[" + new string(' ', 64 << 20) + "]}")).ToArray();
        var bombId = await forge.EncodedAsync(repo.Key.IdOf(json), BlobKind.Tree, BlobCodec.Zstd, json.Length, bomb);
        var (_, snapshot) = await forge.RootAsync(DirNode("bomb", bombId));

        await AssertRestoreRefusesAsync(repo, snapshot, _box.NewTarget("target"), bombId.Short);
        await AssertRefusedAsync(() => WalkAllAsync(repo, snapshot), bombId.Short);
    }

    // ----- helpers -----

    /// <summary>Restore, the walk that ls and diff use, stats and check all end with an error naming <paramref name="expected"/>, and write nothing outside the target.</summary>
    private async Task AssertEveryReaderRefusesAsync(Repository repo, SnapshotRef snapshot, string expected)
    {
        string target = _box.NewTarget("target");
        bool OutsideTarget(string rel) => rel == "repo" || rel.StartsWith("repo/", StringComparison.Ordinal) || rel.StartsWith("restore", StringComparison.Ordinal);
        var before = Files.Listing(_box.Root, OutsideTarget);

        await AssertRestoreRefusesAsync(repo, snapshot, target, expected);
        await AssertRefusedAsync(() => WalkAllAsync(repo, snapshot), expected);
        await AssertRefusedAsync(() => WalkPreOrderAllAsync(repo, snapshot), expected);
        await AssertRefusedAsync(() => new StatsEngine(repo).RunAsync(snapshot), expected);
        await AssertRefusedAsync(() => new StatsEngine(repo).RunAsync([snapshot], StatsMode.RestoreSize), expected);
        await AssertRefusedAsync(() => new DumpEngine(repo).DumpAsync(snapshot, "/", Stream.Null), expected);
        var check = await new CheckEngine(repo).RunAsync(new CheckRequest { Host = Sandbox.Host }).WaitAsync(Bound);

        Assert.False(check.Ok);
        Assert.Contains(check.Problems, p => p.Severity == "error" && p.Subject.Contains(snapshot.ShortId, StringComparison.Ordinal) && p.Message.Contains(expected, StringComparison.Ordinal));
        Assert.Equal(before, Files.Listing(_box.Root, OutsideTarget));
    }

    /// <summary>
    /// Restore refuses what it cannot read: a hostile shape (too deep, a cycle) stops it with an error
    /// naming <paramref name="expected"/>; a folder whose listing is damaged is reported as not
    /// restored, naming it, and the rest of the snapshot is restored.
    /// </summary>
    private async Task AssertRestoreRefusesAsync(Repository repo, SnapshotRef snapshot, string target, string expected)
    {
        RestoreResult restored;
        try
        {
            restored = await Restore(repo, snapshot, target).WaitAsync(Bound);
        }
        catch (KintsugiException e)
        {
            output.WriteLine(e.Message);
            Assert.Equal(ErrorKind.Corrupt, e.Kind);
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
            return;
        }
        Assert.Contains(restored.Issues, i => i.Message.StartsWith("folder not restored", StringComparison.Ordinal) && i.Message.Contains(expected, StringComparison.Ordinal));
    }

    private async Task AssertRefusedAsync(Func<Task> action, string expected)
    {
        var e = await Assert.ThrowsAsync<KintsugiException>(() => action().WaitAsync(Bound));
        output.WriteLine(e.Message);
        Assert.Equal(ErrorKind.Corrupt, e.Kind);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    private static Task<RestoreResult> Restore(Repository repo, SnapshotRef snapshot, string target) =>
        new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host });

    private static async Task WalkAllAsync(Repository repo, SnapshotRef snapshot)
    {
        var index = await repo.LoadIndexAsync();
        await foreach (var _ in TreeWalker.WalkAsync(repo, index, TreeWalker.RootOf(snapshot)))
        {
        }
    }

    /// <summary>The walk ls, find, dump and stats --mode use: each entry, then what is under it.</summary>
    private static async Task WalkPreOrderAllAsync(Repository repo, SnapshotRef snapshot)
    {
        var index = await repo.LoadIndexAsync();
        await foreach (var _ in TreeWalker.WalkPreOrderAsync(repo, index, TreeWalker.RootOf(snapshot), trees: new TreeCache()))
        {
        }
    }

    private static bool Exists(string path)
    {
        try
        {
            Posix.LStat(path);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static byte[] Json(Tree tree) => Repository.SerializeTree(tree);

    private static Node FileNode(string name, IReadOnlyList<string> content, long size) => new()
    {
        Name = name,
        Type = NodeType.File,
        Mode = Convert.ToUInt32("644", 8),
        Size = size,
        Links = 1,
        MtimeNs = Mtime,
        Content = content,
    };

    private static Node FileNode(string name, IEnumerable<BlobId> content, long size) => FileNode(name, content.Select(c => c.ToString()).ToList(), size);

    private static Node DirNode(string name, BlobId subtree) => new()
    {
        Name = name,
        Type = NodeType.Directory,
        Mode = Convert.ToUInt32("755", 8),
        MtimeNs = Mtime,
        Subtree = subtree.ToString(),
    };

    private static Node Symlink(string name, string target) => new()
    {
        Name = name,
        Type = NodeType.Symlink,
        Mode = Convert.ToUInt32("777", 8),
        MtimeNs = Mtime,
        LinkTarget = target,
    };

    private static Node Special(string name, NodeType type, ulong rdev, uint mode = 0x1B6) => new()
    {
        Name = name,
        Type = type,
        Mode = mode,
        MtimeNs = Mtime,
        RDevice = rdev,
    };

    /// <summary>
    /// Writes blobs as an attacker holding the key would: sealed so that they authenticate, packed
    /// and indexed, with any content, any declared length and, where asked, under an id that is not
    /// the keyed hash of the content.
    /// </summary>
    private sealed class Forger(Repository repo)
    {
        private readonly List<IndexEntry> _stored = [];
        private PackWriter? _writer;

        private PackWriter Writer => _writer ??= new PackWriter(repo.Store, repo.Key, repo.Config.PackSize, (stored, _) =>
        {
            lock (_stored)
            {
                _stored.AddRange(stored);
            }
            return Task.CompletedTask;
        });

        public Task<BlobId> TreeAsync(Tree tree) => BlobAsync(Json(tree), BlobKind.Tree);

        public Task<BlobId> DataAsync(byte[] content) => BlobAsync(content, BlobKind.Data);

        public async Task<BlobId> BlobAsync(byte[] plaintext, BlobKind kind, BlobId? forgedId = null)
        {
            var id = forgedId ?? repo.Key.IdOf(plaintext);
            var (codec, sealedBytes) = BlobSealer.Seal(repo.Key, id, kind, plaintext);
            await Writer.AddAsync(id, kind, codec, plaintext.Length, sealedBytes, default, default);
            return id;
        }

        /// <summary>Seals bytes already encoded by <paramref name="codec"/> under a header declaring <paramref name="rawLength"/>.</summary>
        public async Task<BlobId> EncodedAsync(BlobId id, BlobKind kind, BlobCodec codec, int rawLength, byte[] encoded)
        {
            var (sealedBytes, length) = BlobSealer.SealEncodedPooled(repo.Key, id, kind, codec, (uint)rawLength, encoded);
            try
            {
                await Writer.AddAsync(id, kind, codec, rawLength, sealedBytes.AsMemory(0, length), default, default);
            }
            finally
            {
                BufferPool.Shared.Return(sealedBytes);
            }
            return id;
        }

        /// <summary>A root tree of <paramref name="nodes"/> (sorted by name) and a snapshot of it.</summary>
        public async Task<(BlobId Root, SnapshotRef Snapshot)> RootAsync(params Node[] nodes)
        {
            var root = await TreeAsync(new Tree { Nodes = nodes.OrderBy(n => n.Name, StringComparer.Ordinal).ToList() });
            return (root, await SnapshotAsync(root.ToString()));
        }

        /// <summary>Stores and indexes every blob added so far, then writes a snapshot whose root tree is <paramref name="tree"/>.</summary>
        public async Task<SnapshotRef> SnapshotAsync(string tree)
        {
            if (_writer is not null)
            {
                await _writer.FlushAsync(default);
                _writer = null;
            }
            if (_stored.Count > 0)
            {
                await repo.SaveIndexAsync(_stored);
                _stored.Clear();
            }
            var snapshot = new Snapshot { Time = repo.Time.GetUtcNow(), Host = "evil", Paths = ["/evil"], Tree = tree, Kind = "full" };
            return new SnapshotRef(await repo.SaveSnapshotAsync(snapshot), snapshot);
        }
    }
}
