using System.Text.Json;
using System.Text.RegularExpressions;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>The main path: init, backup, snapshots, diff, ls, restore, check.</summary>
public sealed partial class WorkflowTests
{
    [GeneratedRegex(@"^(\S+)\s+(/.*)$")]
    private static partial Regex DiffLine();

    private static long Summary(JsonElement snapshotOrBackup, string field) =>
        snapshotOrBackup.GetProperty("summary").GetProperty(field).GetInt64();

    [Fact]
    public async Task Init_backup_snapshots_diff_ls_restore_and_check_work_end_to_end()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        string model = Path.Combine(src, "model.bin");
        string config = Path.Combine(src, "config.json");
        string notes = Path.Combine(src, "sub", "notes.txt");
        string link = Path.Combine(src, "latest");
        FileTree.WriteRandom(model, 150_000);
        File.WriteAllText(config, "{\"lr\": 0.001}\n");
        Directory.CreateDirectory(Path.GetDirectoryName(notes)!);
        File.WriteAllText(notes, "epoch 1\n");
        File.CreateSymbolicLink(link, "model.bin");

        await ws.InitAsync();
        var first = await ws.BackupAsync(src, "--tag", "nightly");
        string firstId = first.GetProperty("snapshot").GetString()!;

        var snapshot = Assert.Single(await ws.SnapshotsAsync());
        Assert.Equal(firstId, snapshot.GetProperty("id").GetString());
        Assert.Contains("nightly", snapshot.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        // A first backup has no parent, so it reads everything: it is recorded as full.
        Assert.Equal("full", snapshot.GetProperty("kind").GetString());
        Assert.Equal([src], snapshot.GetProperty("paths").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal(3, Summary(snapshot, "files_new"));
        Assert.False(snapshot.TryGetProperty("parent", out var noParent) && noParent.ValueKind != JsonValueKind.Null, "the first snapshot has no parent");

        byte[] oldConfig = File.ReadAllBytes(config);
        File.WriteAllText(config, "{\"lr\": 0.0005, \"epochs\": 3}\n");
        string added = Path.Combine(src, "sub", "added.txt");
        File.WriteAllText(added, "epoch 2\n");

        var second = await ws.BackupAsync(src);
        string secondId = second.GetProperty("snapshot").GetString()!;
        Assert.Equal("incremental", second.GetProperty("kind").GetString());
        Assert.Equal(firstId, second.GetProperty("parent").GetString());
        Assert.Equal(1, Summary(second, "files_changed"));
        Assert.Equal(1, Summary(second, "files_new"));
        Assert.Equal(2, Summary(second, "files_unchanged"));

        var diff = (await ws.RepoAsync("diff", firstId, secondId)).ShouldSucceed();
        var changes = diff.StdOutLines.Select(l => DiffLine().Match(l)).Where(m => m.Success).ToDictionary(m => m.Groups[2].Value, m => m.Groups[1].Value, StringComparer.Ordinal);
        Assert.True(changes.TryGetValue(config, out var configMark) && configMark == "M", $"diff should list M {config}\n{diff}");
        Assert.True(changes.TryGetValue(added, out var addedMark) && addedMark == "+", $"diff should list + {added}\n{diff}");
        foreach (var unchanged in new[] { model, notes, link })
        {
            Assert.False(changes.ContainsKey(unchanged), $"diff should not list the unchanged {unchanged}\n{diff}");
        }

        // The same in JSON (reflection-based serialization: kept working in the trimmed, installed build).
        var diffJson = (await ws.RepoAsync("diff", firstId, secondId, "--json")).ShouldSucceed().Json();
        Assert.Contains(diffJson.GetProperty("changes").EnumerateArray(), c => c.GetProperty("path").GetString() == added && c.GetProperty("change").GetString() == "+");
        Assert.Contains(diffJson.GetProperty("changes").EnumerateArray(), c => c.GetProperty("path").GetString() == config && c.GetProperty("change").GetString() == "M");

        var ls = (await ws.RepoAsync("ls", "latest")).ShouldSucceed();
        foreach (var path in new[] { src, model, config, notes, link, added, Path.Combine(src, "sub") })
        {
            Assert.True(ls.StdOutLines.Contains(path), $"ls latest should list {path}\n{ls}");
        }

        string target = ws.PathOf("restored");
        (await ws.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);

        string partial = ws.PathOf("partial");
        (await ws.RepoAsync("restore", firstId, "--target", partial, "--include", config)).ShouldSucceed();
        Assert.Equal(oldConfig, File.ReadAllBytes(partial + config));
        var restoredFiles = FileTree.Walk(partial).Where(p => FileTree.KindOf(p) != FileTree.EntryKind.Directory).ToList();
        Assert.Equal([partial + config], restoredFiles);

        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed().StdOutShouldContain("no errors found");
    }

    [Fact]
    public async Task Full_backup_rereads_every_file_while_an_incremental_one_reads_none_that_are_unchanged()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 300_000);
        FileTree.WriteRandom(Path.Combine(src, "optimizer.bin"), 70_000);
        FileTree.WriteRandom(Path.Combine(src, "meta", "step.txt"), 10);
        long total = FileTree.TotalFileBytes(src);
        await ws.InitAsync();

        var first = await ws.BackupAsync(src);
        Assert.Equal("full", first.GetProperty("kind").GetString());
        Assert.Equal(total, Summary(first, "bytes_total"));
        Assert.Equal(total, Summary(first, "bytes_read"));

        var incremental = await ws.BackupAsync(src);
        Assert.Equal("incremental", incremental.GetProperty("kind").GetString());
        Assert.Equal(total, Summary(incremental, "bytes_total"));
        Assert.Equal(0, Summary(incremental, "bytes_read"));
        Assert.Equal(3, Summary(incremental, "files_unchanged"));

        var full = await ws.BackupAsync(src, "--full");
        Assert.Equal("full", full.GetProperty("kind").GetString());
        Assert.Equal(incremental.GetProperty("snapshot").GetString(), full.GetProperty("parent").GetString());
        Assert.Equal(total, Summary(full, "bytes_total"));
        Assert.Equal(total, Summary(full, "bytes_read"));
        Assert.Equal(3, Summary(full, "files_unchanged"));
        Assert.Equal(0, Summary(full, "files_changed"));
        Assert.Equal(0, Summary(full, "files_new"));
        Assert.True(Summary(full, "bytes_added") < total / 10, $"a full backup of unchanged files must not store their data again; bytes_added {Summary(full, "bytes_added")} of {total}");

        var snapshots = await ws.SnapshotsAsync();
        Assert.Equal(["full", "incremental", "full"], snapshots.Select(s => s.GetProperty("kind").GetString()));
    }

    [Fact]
    public async Task Check_read_data_subset_n_of_m_reads_each_pack_in_exactly_one_group_and_a_size_reads_about_that_much()
    {
        // Issue 12, §5: n/m was a random share, so rotating 1/m … m/m (as restic scripts do) missed packs.
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        await ws.InitAsync();
        for (int i = 0; i < 6; i++)
        {
            FileTree.WriteRandom(Path.Combine(src, $"part-{i}.bin"), 40_000);
            await ws.BackupAsync(src);
        }
        long packs = (await ws.RepoAsync("check", "--read-data", "--json")).ShouldSucceed().Json().GetProperty("packs").GetInt64();
        Assert.True(packs >= 6, $"each backup should have written a pack: {packs}");

        long read = 0;
        for (int n = 1; n <= 4; n++)
        {
            var group = (await ws.RepoAsync("check", "--read-data-subset", $"{n}/4", "--json")).ShouldSucceed().Json();
            var again = (await ws.RepoAsync("check", "--read-data-subset", $"{n}/4", "--json")).ShouldSucceed().Json();
            Assert.Equal(group.GetProperty("packs_read").GetInt64(), again.GetProperty("packs_read").GetInt64());
            read += group.GetProperty("packs_read").GetInt64();
        }
        Assert.Equal(packs, read);

        var one = (await ws.RepoAsync("check", "--read-data-subset", "1K", "--json")).ShouldSucceed().Json();
        Assert.Equal(1, one.GetProperty("packs_read").GetInt64());
        var all = (await ws.RepoAsync("check", "--read-data-subset", "1G", "--json")).ShouldSucceed().Json();
        Assert.Equal(packs, all.GetProperty("packs_read").GetInt64());

        (await ws.RepoAsync("check", "--read-data-subset", "5/4")).ShouldFailCleanly(2);
        (await ws.RepoAsync("check", "--read-data-subset", "0/4")).ShouldFailCleanly(2);
        (await ws.RepoAsync("check", "--read-data-subset", "12X")).ShouldFailCleanly(2);
    }
}
