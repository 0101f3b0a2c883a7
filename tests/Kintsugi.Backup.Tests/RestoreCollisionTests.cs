using System.Text;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Platform;

namespace Kintsugi.Backup.Tests;

/// <summary>
/// A restore into a folder that already holds something at a path the snapshot restores (issue 12,
/// item 1). What the user has there is never deleted: an entry of another type than the snapshot's
/// is left as it is and reported (the rest restored), unless the restore is asked to move it aside.
/// </summary>
public sealed class RestoreCollisionTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>What the snapshot holds at the colliding name: "file", "folder", "symlink", "fifo".</summary>
    public static TheoryData<string, string> Collisions()
    {
        var data = new TheoryData<string, string>();
        foreach (var snapshot in new[] { "file", "folder", "symlink", "fifo" })
        {
            foreach (var existing in new[] { "file", "empty folder", "folder", "symlink", "fifo" })
            {
                if (!Same(snapshot, existing))
                {
                    data.Add(snapshot, existing);
                }
            }
        }
        return data;
    }

    private static bool Same(string snapshot, string existing) => snapshot == existing || (snapshot == "folder" && existing == "empty folder");

    private string Outside => Path.Combine(_box.Root, "outside");

    /// <summary>A source with one entry of each type, backed up; returns the repository, the snapshot and the source path of each entry.</summary>
    private async Task<(Repository Repo, Format.SnapshotRef Snapshot)> SnapshotOfEachTypeAsync()
    {
        Files.Write(Path.Combine(_box.Source, "file"), Encoding.UTF8.GetBytes("the snapshot's file\n"));
        Files.Write(Path.Combine(_box.Source, "folder", "inner.txt"), Encoding.UTF8.GetBytes("the snapshot's inner file\n"));
        File.CreateSymbolicLink(Path.Combine(_box.Source, "symlink"), "the-snapshots-link-target");
        Posix.MkFifo(Path.Combine(_box.Source, "fifo"), Convert.ToUInt32("644", 8));
        Files.Write(Path.Combine(_box.Source, "other.txt"), Encoding.UTF8.GetBytes("restored all the same\n"));
        var repo = await _box.InitAsync();
        var backup = await Sandbox.BackupAsync(repo, _box.Source);
        Assert.Empty(backup.Issues);
        Directory.CreateDirectory(Outside);
        return (repo, backup.Snapshot);
    }

    /// <summary>Puts the user's own entry of <paramref name="kind"/> at <paramref name="path"/>.</summary>
    private void MakeUsersEntry(string path, string kind)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        switch (kind)
        {
            case "file":
                File.WriteAllText(path, "mine\n");
                break;
            case "empty folder":
                Directory.CreateDirectory(path);
                break;
            case "folder":
                Directory.CreateDirectory(Path.Combine(path, "deep"));
                File.WriteAllText(Path.Combine(path, "mine.txt"), "mine\n");
                File.WriteAllText(Path.Combine(path, "deep", "mine too.txt"), "mine too\n");
                break;
            case "symlink":
                // Leads outside the target: a restore must never write through it.
                File.CreateSymbolicLink(path, Outside);
                break;
            case "fifo":
                Posix.MkFifo(path, Convert.ToUInt32("600", 8));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    /// <summary>The user's entry of <paramref name="kind"/> is at <paramref name="path"/>, byte for byte as it was made.</summary>
    private void AssertUsersEntry(string path, string kind)
    {
        var st = Posix.LStat(path);
        switch (kind)
        {
            case "file":
                Assert.True(st.IsRegular, $"{path} is no longer a file");
                Assert.Equal("mine\n", File.ReadAllText(path));
                break;
            case "empty folder":
                Assert.True(st.IsDirectory, $"{path} is no longer a folder");
                Assert.Empty(Directory.EnumerateFileSystemEntries(path));
                break;
            case "folder":
                Assert.True(st.IsDirectory, $"{path} is no longer a folder");
                Assert.Equal(
                    [Path.Combine(path, "deep"), Path.Combine(path, "deep", "mine too.txt"), Path.Combine(path, "mine.txt")],
                    Directory.EnumerateFileSystemEntries(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
                Assert.Equal("mine\n", File.ReadAllText(Path.Combine(path, "mine.txt")));
                Assert.Equal("mine too\n", File.ReadAllText(Path.Combine(path, "deep", "mine too.txt")));
                break;
            case "symlink":
                Assert.True(st.IsSymlink, $"{path} is no longer a symlink");
                Assert.Equal(Outside, new FileInfo(path).LinkTarget);
                break;
            case "fifo":
                Assert.True(st.IsFifo, $"{path} is no longer a FIFO");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
        // Nothing went through a link to the outside.
        Assert.Empty(Directory.EnumerateFileSystemEntries(Outside));
    }

    /// <summary>The snapshot's entry of <paramref name="kind"/> was restored at <paramref name="path"/>.</summary>
    private static void AssertSnapshotsEntry(string path, string kind)
    {
        var st = Posix.LStat(path);
        switch (kind)
        {
            case "file":
                Assert.True(st.IsRegular);
                Assert.Equal("the snapshot's file\n", File.ReadAllText(path));
                break;
            case "folder":
                Assert.True(st.IsDirectory);
                Assert.Equal("the snapshot's inner file\n", File.ReadAllText(Path.Combine(path, "inner.txt")));
                break;
            case "symlink":
                Assert.True(st.IsSymlink);
                Assert.Equal("the-snapshots-link-target", new FileInfo(path).LinkTarget);
                break;
            case "fifo":
                Assert.True(st.IsFifo);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    private static string Article(string kind) => kind switch
    {
        "file" => "a file",
        "empty folder" or "folder" => "a folder",
        "symlink" => "a symlink",
        "fifo" => "a FIFO",
        _ => kind,
    };

    [Theory]
    [MemberData(nameof(Collisions))]
    public async Task An_entry_of_another_type_in_the_way_is_left_as_it_is_and_reported(string snapshotKind, string existingKind)
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        string colliding = Sandbox.Restored(target, Path.Combine(_box.Source, snapshotKind));
        MakeUsersEntry(colliding, existingKind);

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host });

        AssertUsersEntry(colliding, existingKind);
        var issue = Assert.Single(result.Issues);
        Assert.Equal(colliding, issue.Path);
        string snapshotWord = snapshotKind == "fifo" ? "FIFO" : snapshotKind;
        Assert.StartsWith($"{Article(existingKind)} is in the way of the snapshot's {snapshotWord}; left as it is", issue.Message, StringComparison.Ordinal);
        Assert.Contains("--overwrite always", issue.Message, StringComparison.Ordinal);
        // Everything else is restored.
        Assert.Equal("restored all the same\n", File.ReadAllText(Sandbox.Restored(target, Path.Combine(_box.Source, "other.txt"))));
        foreach (var other in new[] { "file", "folder", "symlink", "fifo" }.Where(k => k != snapshotKind))
        {
            AssertSnapshotsEntry(Sandbox.Restored(target, Path.Combine(_box.Source, other)), other);
        }
    }

    [Fact]
    public async Task An_included_path_under_a_refused_folder_is_reported_not_called_missing()
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        string folder = Sandbox.Restored(target, Path.Combine(_box.Source, "folder"));
        MakeUsersEntry(folder, "file");

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host, Includes = [Path.Combine(_box.Source, "folder", "inner.txt")] });

        var issue = Assert.Single(result.Issues);
        Assert.Equal(folder, issue.Path);
        AssertUsersEntry(folder, "file");
    }

    [Fact]
    public async Task A_file_in_place_of_a_file_is_overwritten_by_default()
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        string file = Sandbox.Restored(target, Path.Combine(_box.Source, "file"));
        MakeUsersEntry(file, "file");

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host });

        Assert.Empty(result.Issues);
        AssertSnapshotsEntry(file, "file");
    }

    [Fact]
    public async Task A_folder_in_place_of_a_folder_is_merged_into()
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        string folder = Sandbox.Restored(target, Path.Combine(_box.Source, "folder"));
        MakeUsersEntry(folder, "folder");

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host });

        Assert.Empty(result.Issues);
        AssertSnapshotsEntry(folder, "folder");
        Assert.Equal("mine\n", File.ReadAllText(Path.Combine(folder, "mine.txt")));
        Assert.Equal("mine too\n", File.ReadAllText(Path.Combine(folder, "deep", "mine too.txt")));
    }

    [Theory]
    [MemberData(nameof(Collisions))]
    public async Task With_overwrite_always_an_entry_of_another_type_is_moved_aside_whole_never_deleted(string snapshotKind, string existingKind)
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        string colliding = Sandbox.Restored(target, Path.Combine(_box.Source, snapshotKind));
        MakeUsersEntry(colliding, existingKind);

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = OverwritePolicy.Always });

        Assert.Empty(result.Issues);
        var moved = Assert.Single(result.MovedAside);
        Assert.Equal(colliding, moved.Path);
        Assert.Matches(@"\.kintsugi-old-\d{8}T\d{6}Z$", moved.MovedTo);
        Assert.Equal(Path.GetDirectoryName(colliding), Path.GetDirectoryName(moved.MovedTo));
        AssertUsersEntry(moved.MovedTo, existingKind);
        AssertSnapshotsEntry(colliding, snapshotKind);
    }

    [Fact]
    public async Task Moving_aside_never_takes_the_name_of_something_already_moved_aside()
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        string file = Sandbox.Restored(target, Path.Combine(_box.Source, "file"));
        var request = new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = OverwritePolicy.Always };
        var names = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            if (File.Exists(file))
            {
                File.Delete(file);
            }
            MakeUsersEntry(file, "folder");
            File.WriteAllText(Path.Combine(file, "round.txt"), i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var result = await new RestoreEngine(repo).RunAsync(snapshot, request);
            Assert.Empty(result.Issues);
            names.Add(Assert.Single(result.MovedAside).MovedTo);
        }

        Assert.Equal(3, names.Distinct(StringComparer.Ordinal).Count());
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(Path.Combine(names[i], "round.txt")));
        }
    }

    private const long Old = 1_600_000_000_000_000_000;
    private const long Future = 2_000_000_000_000_000_000;

    public static TheoryData<OverwritePolicy, string, long, bool> SameTypePolicies => new()
    {
        // policy, what the user's file holds, its mtime, whether the restore replaces it
        { OverwritePolicy.SameType, "mine\n", Old, true },
        { OverwritePolicy.Always, "mine\n", Old, true },
        { OverwritePolicy.Never, "mine\n", Old, false },
        { OverwritePolicy.IfNewer, "mine\n", Old, true },
        { OverwritePolicy.IfNewer, "mine\n", Future, false },
        { OverwritePolicy.IfChanged, "mine\n", Old, true },
        // Same size and mtime as the snapshot's: taken as unchanged, as a backup would.
        { OverwritePolicy.IfChanged, "the snapshot's FILE\n", 0, false },
    };

    [Theory]
    [MemberData(nameof(SameTypePolicies))]
    public async Task A_file_in_place_of_a_file_is_replaced_as_the_policy_says(OverwritePolicy policy, string mine, long mtimeNs, bool replaced)
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        string file = Sandbox.Restored(target, Path.Combine(_box.Source, "file"));
        Files.Write(file, Encoding.UTF8.GetBytes(mine));
        Files.SetMtime(file, mtimeNs == 0 ? Posix.LStat(Path.Combine(_box.Source, "file")).MtimeNs : mtimeNs);

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = policy });

        Assert.Empty(result.Issues);
        Assert.Empty(result.MovedAside);
        Assert.Equal(replaced ? "the snapshot's file\n" : mine, File.ReadAllText(file));
        Assert.Equal(replaced ? 0 : 1, result.Skipped);
        Assert.Equal(replaced ? 3 : 2, result.Files);
    }

    [Theory]
    [InlineData(OverwritePolicy.SameType, "elsewhere", true)]
    [InlineData(OverwritePolicy.Never, "elsewhere", false)]
    [InlineData(OverwritePolicy.IfChanged, "elsewhere", true)]
    [InlineData(OverwritePolicy.IfChanged, "the-snapshots-link-target", false)]
    public async Task A_symlink_in_place_of_a_symlink_is_replaced_as_the_policy_says(OverwritePolicy policy, string mine, bool replaced)
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        string link = Sandbox.Restored(target, Path.Combine(_box.Source, "symlink"));
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        File.CreateSymbolicLink(link, mine);

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = policy });

        Assert.Empty(result.Issues);
        Assert.Equal(replaced ? "the-snapshots-link-target" : mine, new FileInfo(link).LinkTarget);
        Assert.Equal(replaced ? 0 : 1, result.Skipped);
    }

    [Fact]
    public async Task A_second_restore_with_if_changed_rewrites_nothing()
    {
        var (repo, snapshot) = await SnapshotOfEachTypeAsync();
        string target = _box.NewTarget("target");
        var request = new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = OverwritePolicy.IfChanged };
        var first = await new RestoreEngine(repo).RunAsync(snapshot, request);
        var inode = Posix.LStat(Sandbox.Restored(target, Path.Combine(_box.Source, "file"))).Inode;

        var second = await new RestoreEngine(repo).RunAsync(snapshot, request);

        Assert.Empty(first.Issues);
        Assert.Empty(second.Issues);
        Assert.Equal(0, first.Skipped);
        Assert.Equal(0, second.Files);
        Assert.Equal(0, second.Symlinks);
        // The three files, the symlink and the FIFO.
        Assert.Equal(5, second.Skipped);
        Assert.Equal(inode, Posix.LStat(Sandbox.Restored(target, Path.Combine(_box.Source, "file"))).Inode);
    }

    [Fact]
    public async Task A_hard_link_whose_first_name_is_left_as_it_is_is_restored_whole_under_its_other_name_not_linked_to_the_users_file()
    {
        string first = Path.Combine(_box.Source, "a-first.bin");
        string second = Path.Combine(_box.Source, "b-second.bin");
        Files.Write(first, Encoding.UTF8.GetBytes("the snapshot's linked content\n"));
        Posix.Link(first, second);
        var repo = await _box.InitAsync();
        var snapshot = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        string target = _box.NewTarget("target");
        string firstRestored = Sandbox.Restored(target, first);
        Files.Write(firstRestored, Encoding.UTF8.GetBytes("mine\n"));

        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Sandbox.Host, Overwrite = OverwritePolicy.Never });

        Assert.Empty(result.Issues);
        Assert.Equal(1, result.Skipped);
        Assert.Equal("mine\n", File.ReadAllText(firstRestored));
        Assert.Equal("the snapshot's linked content\n", File.ReadAllText(Sandbox.Restored(target, second)));
        Assert.NotEqual(Posix.LStat(firstRestored).Inode, Posix.LStat(Sandbox.Restored(target, second)).Inode);
    }
}
