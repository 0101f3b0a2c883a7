using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// Choosing snapshots (issue 12, §3): --host, --path and --tag filters with restic's meaning, `latest`
/// as the newest snapshot they pass, forget by id and --group-by, the tag command, and paths inside a
/// snapshot given relative to what was backed up.
/// </summary>
public sealed class SnapshotSelectionTests
{
    private static string Id(JsonElement backup) => backup.GetProperty("snapshot").GetString()!;

    private static async Task<HashSet<string>> IdsAsync(Workspace ws, params string[] filters) =>
        (await ws.RepoAsync(["snapshots", "--json", .. filters])).ShouldSucceed().Json().EnumerateArray().Select(s => s.GetProperty("id").GetString()!).ToHashSet();

    /// <summary>
    /// Two hosts and two folders: proj backed up on host alpha (tags a,b), then data on host beta (tag a),
    /// then proj on beta (no tags) — each newer than the one before. Returns the ids in that order.
    /// </summary>
    private static async Task<(string Proj, string Data, string[] Ids)> ThreeSnapshotsAsync(Workspace ws)
    {
        string proj = ws.PathOf("proj");
        string data = ws.PathOf("data");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(proj, "src")).FullName, "train.py"), "print('train')\n");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(data).FullName, "set.csv"), "a,b\n");
        await ws.InitAsync();
        string first = Id(await ws.BackupAsync("--host", "alpha", "--tag", "a,b", proj));
        string second = Id(await ws.BackupAsync("--host", "beta", "--tag", "a", data));
        string third = Id(await ws.BackupAsync("--host", "beta", proj));
        return (proj, data, [first, second, third]);
    }

    [Fact]
    public async Task Latest_is_the_newest_snapshot_the_host_and_path_filters_pass()
    {
        using var ws = new Workspace();
        var (proj, data, ids) = await ThreeSnapshotsAsync(ws);

        // Restore: the newest of host alpha is the first snapshot, though two are newer.
        string target = ws.PathOf("r-alpha");
        var restored = (await ws.RepoAsync("restore", "latest", "--host", "alpha", "--target", target, "--json")).ShouldSucceed().Json();
        Assert.Equal(ids[0], restored.GetProperty("snapshot").GetString());
        Assert.Equal("print('train')\n", File.ReadAllText(target + Path.Combine(proj, "src", "train.py")));

        // --path: the newest with data among its paths, given relative to the current folder, with a trailing '/'.
        var listed = (await ws.RepoAsync("ls", "latest", "--path", "data/", "--json")).ShouldSucceed().Json();
        Assert.Contains(listed.EnumerateArray(), e => e.GetProperty("path").GetString() == Path.Combine(data, "set.csv"));
        Assert.DoesNotContain(listed.EnumerateArray(), e => e.GetProperty("path").GetString()!.StartsWith(proj, StringComparison.Ordinal));

        // Several hosts: any of them; host and path together: both.
        var stats = (await ws.RepoAsync("stats", "latest", "--host", "alpha", "--host", "beta", "--path", proj, "--json")).ShouldSucceed().Json();
        Assert.Equal(ids[2], stats.GetProperty("snapshot").GetString());
        var diff = (await ws.RepoAsync("diff", "latest", ids[2], "--host", "alpha", "--json")).ShouldSucceed().Json();
        Assert.Equal(ids[0], diff.GetProperty("from").GetString());

        // Without filters, latest is still the newest of all, as in restic.
        var all = (await ws.RepoAsync("stats", "latest", "--json")).ShouldSucceed().Json();
        Assert.Equal(ids[2], all.GetProperty("snapshot").GetString());

        // A filter nothing passes: a clear error naming it, nothing restored.
        string none = ws.PathOf("r-none");
        string line = (await ws.RepoAsync("restore", "latest", "--host", "gamma", "--path", data, "--target", none)).ShouldFailCleanly(1);
        Assert.Contains("host gamma", line, StringComparison.Ordinal);
        Assert.Contains($"path {data}", line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(none) && Directory.EnumerateFileSystemEntries(none).Any(), "nothing should be restored");
    }

    [Fact]
    public async Task Backup_tag_a_comma_b_stores_two_tags_and_the_tag_filter_a_comma_b_means_both()
    {
        using var ws = new Workspace();
        var (_, _, ids) = await ThreeSnapshotsAsync(ws);

        var first = (await ws.SnapshotsAsync()).Single(s => s.GetProperty("id").GetString() == ids[0]);
        Assert.Equal(["a", "b"], first.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));

        Assert.Equal([ids[0]], await IdsAsync(ws, "--tag", "a,b"));
        Assert.Equal([ids[0], ids[1]], await IdsAsync(ws, "--tag", "a"));
        Assert.Equal([ids[0], ids[1]], await IdsAsync(ws, "--tag", "b", "--tag", "a"));
        Assert.Equal([ids[2]], await IdsAsync(ws, "--tag", ""));
        Assert.Equal([ids[1], ids[2]], await IdsAsync(ws, "--host", "beta"));

        string proj = ws.PathOf("proj");
        Assert.Contains("empty tag", (await ws.RepoAsync("backup", "--tag", "a,,b", proj)).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Contains("empty tag", (await ws.RepoAsync("snapshots", "--tag", "a,")).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Equal(3, (await ws.SnapshotsAsync()).Count);
    }

    [Fact]
    public async Task Forget_by_id_removes_exactly_the_snapshots_named()
    {
        using var ws = new Workspace();
        var (_, _, ids) = await ThreeSnapshotsAsync(ws);

        var json = (await ws.RepoAsync("forget", ids[1][..10], "--json")).ShouldSucceed().Json();
        Assert.Equal([ids[1]], json.GetProperty("removed").EnumerateArray().Select(r => r.GetString()));
        Assert.Equal([ids[0], ids[2]], await IdsAsync(ws));

        // latest with a filter, and an id given twice (once as a prefix): each removed once.
        (await ws.RepoAsync("forget", "latest", "--host", "alpha", ids[0][..8])).ShouldSucceed().StdOutShouldContain("removed 1 snapshots");
        Assert.Equal([ids[2]], await IdsAsync(ws));

        // Ids and a policy together are a usage error, as in restic; an unknown id fails; both remove nothing.
        Assert.Contains("not both", (await ws.RepoAsync("forget", ids[2], "--keep-last", "1")).ShouldFailCleanly(2), StringComparison.Ordinal);
        (await ws.RepoAsync("forget", "0000000000")).ShouldFailCleanly(1);
        Assert.Equal([ids[2]], await IdsAsync(ws));
    }

    [Fact]
    public async Task Forget_group_by_host_keeps_the_newest_of_each_host_and_filters_limit_what_is_considered()
    {
        using var ws = new Workspace();
        var (_, _, ids) = await ThreeSnapshotsAsync(ws);

        // By host and paths (the default) every snapshot is alone in its group: --keep-last 1 keeps all three.
        var byDefault = (await ws.RepoAsync("forget", "--keep-last", "1", "--dry-run", "--json")).ShouldSucceed().Json();
        Assert.Empty(byDefault.GetProperty("removed").EnumerateArray());
        Assert.Equal(3, byDefault.GetProperty("groups").GetArrayLength());

        // One group of all: only the newest stays.
        var oneGroup = (await ws.RepoAsync("forget", "--keep-last", "1", "--group-by", "", "--dry-run", "--json")).ShouldSucceed().Json();
        Assert.Equal([ids[0], ids[1]], oneGroup.GetProperty("removed").EnumerateArray().Select(r => r.GetString()!).ToHashSet());

        // Filters: only beta's snapshots are considered; alpha's is left alone.
        var betaOnly = (await ws.RepoAsync("forget", "--keep-last", "1", "--group-by", "host", "--host", "beta", "--dry-run", "--json")).ShouldSucceed().Json();
        Assert.Equal([ids[1]], betaOnly.GetProperty("removed").EnumerateArray().Select(r => r.GetString()));

        (await ws.RepoAsync("forget", "--keep-last", "1", "--group-by", "host")).ShouldSucceed().StdOutShouldContain("host beta:");
        Assert.Equal([ids[0], ids[2]], await IdsAsync(ws));

        Assert.Contains("--group-by", (await ws.RepoAsync("forget", "--keep-last", "1", "--group-by", "hosts")).ShouldFailCleanly(2), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tag_add_remove_and_set_rewrite_the_snapshot_under_a_new_id_with_the_same_content()
    {
        using var ws = new Workspace();
        var (proj, _, ids) = await ThreeSnapshotsAsync(ws);
        var before = (await ws.SnapshotsAsync()).Single(s => s.GetProperty("id").GetString() == ids[0]);

        var added = (await ws.RepoAsync("tag", "--add", "keep,gold", "--remove", "b", ids[0][..8], "--json")).ShouldSucceed().Json();
        var change = Assert.Single(added.GetProperty("changed").EnumerateArray());
        string newId = change.GetProperty("new_id").GetString()!;
        Assert.Equal(ids[0], change.GetProperty("id").GetString());
        Assert.Equal(["a", "keep", "gold"], change.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));

        var snapshots = await ws.SnapshotsAsync();
        Assert.DoesNotContain(snapshots, s => s.GetProperty("id").GetString() == ids[0]);
        var after = Assert.Single(snapshots, s => s.GetProperty("id").GetString() == newId);
        Assert.Equal(ids[0], after.GetProperty("original").GetString());
        foreach (string field in new[] { "time", "host", "paths", "tree", "kind" })
        {
            Assert.Equal(before.GetProperty(field).GetRawText(), after.GetProperty(field).GetRawText());
        }

        // --set through a filter; the original id survives a second rewrite; content restores as it was.
        var set = (await ws.RepoAsync("tag", "--set", "release", "--tag", "gold", "--json")).ShouldSucceed().Json();
        string third = Assert.Single(set.GetProperty("changed").EnumerateArray()).GetProperty("new_id").GetString()!;
        var last = (await ws.SnapshotsAsync()).Single(s => s.GetProperty("id").GetString() == third);
        Assert.Equal(["release"], last.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(ids[0], last.GetProperty("original").GetString());
        string target = ws.PathOf("r");
        (await ws.RepoAsync("restore", "latest", "--tag", "release", "--target", target)).ShouldSucceed();
        Assert.Equal("print('train')\n", File.ReadAllText(target + Path.Combine(proj, "src", "train.py")));
        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed();

        // A tag the snapshot already has changes nothing; no snapshot and no filter means all, and says so.
        (await ws.RepoAsync("tag", "--add", "release", third)).ShouldSucceed().StdOutShouldContain("changed the tags of 0 of 1 snapshots");
        (await ws.RepoAsync("tag", "--add", "everyone")).ShouldSucceed().StdOutShouldContain("changed the tags of 3 of 3 snapshots (every snapshot in the repository");
        Assert.Equal(3, (await IdsAsync(ws, "--tag", "everyone")).Count);

        Assert.Contains("--set", (await ws.RepoAsync("tag", "--set", "x", "--add", "y")).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Contains("nothing to change", (await ws.RepoAsync("tag", "latest")).ShouldFailCleanly(2), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tag_says_why_it_left_snapshots_unchanged_in_the_words_of_the_change_and_names_the_option_of_an_empty_tag()
    {
        using var ws = new Workspace();
        await ThreeSnapshotsAsync(ws);

        var removed = (await ws.RepoAsync("tag", "--remove", "nosuch")).ShouldSucceed();
        removed.StdOutShouldContain("changed the tags of 0 of 3 snapshots (every snapshot in the repository: no snapshot or filter was given); 3 had none of them to remove");
        Assert.DoesNotContain("already had", removed.StdOut, StringComparison.Ordinal);
        (await ws.RepoAsync("tag", "--add", "a", "--tag", "a")).ShouldSucceed().StdOutShouldContain("; 2 already had them");

        foreach (string option in new[] { "--add", "--remove", "--set" })
        {
            string line = (await ws.RepoAsync("tag", option, "x,,y", "latest")).ShouldFailCleanly(2);
            Assert.Contains($"give {option} a,b", line, StringComparison.Ordinal);
        }
        Assert.Contains("give --add a,b", (await ws.RepoAsync("tag", "--add", "", "latest")).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Contains("give --tag a,b", (await ws.RepoAsync("snapshots", "--tag", "a,")).ShouldFailCleanly(2), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tag_keeps_parity_covering_the_new_snapshot_file()
    {
        using var ws = new Workspace();
        string proj = ws.PathOf("proj");
        FileTree.WriteRandom(Path.Combine(proj, "w.bin"), 5_000);
        (await ws.RepoAsync(["init", .. Workspace.CheapKdf, "--parity", "4+2"])).ShouldSucceed();
        string id = Id(await ws.BackupAsync(proj));

        var json = (await ws.RepoAsync("tag", "--add", "x", id, "--json")).ShouldSucceed().Json();
        string newId = Assert.Single(json.GetProperty("changed").EnumerateArray()).GetProperty("new_id").GetString()!;

        var status = (await ws.RepoAsync("parity", "--json")).ShouldSucceed().Json();
        Assert.True(status.GetProperty("unprotected_files").GetInt32() == 0, $"every file should be in a parity group after tag: {status}");
        (await ws.RepoAsync("check")).ShouldSucceed();
        // The new snapshot file is rebuilt from parity when it is lost.
        File.Delete(Path.Combine(ws.Repo, "snapshots", newId));
        (await ws.RepoAsync("repair")).ShouldSucceed();
        Assert.Equal([newId], await IdsAsync(ws));
    }

    /// <summary>proj/{src/train.py, data/x/a.pt, data/x/notes.txt, data/y.pt, empty/} backed up; returns proj's absolute path.</summary>
    private static async Task<string> ProjectAsync(Workspace ws)
    {
        string proj = ws.PathOf("proj");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(proj, "src")).FullName, "train.py"), "print('train')\n");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(Path.Combine(proj, "data", "x")).FullName, "a.pt"), "a\n");
        File.WriteAllText(Path.Combine(proj, "data", "x", "notes.txt"), "notes\n");
        File.WriteAllText(Path.Combine(proj, "data", "y.pt"), "y\n");
        Directory.CreateDirectory(Path.Combine(proj, "empty"));
        await ws.InitAsync();
        await ws.BackupAsync(proj);
        return proj;
    }

    private static List<string> Restored(string target) =>
        FileTree.Walk(target).Where(p => FileTree.KindOf(p) == FileTree.EntryKind.File).Select(p => p[target.Length..]).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public async Task Restore_include_and_ls_take_paths_relative_to_what_was_backed_up()
    {
        using var ws = new Workspace();
        string proj = await ProjectAsync(ws);

        string target = ws.PathOf("r1");
        (await ws.RepoAsync("restore", "latest", "--include", "data/x", "--target", target)).ShouldSucceed();
        Assert.Equal([Path.Combine(proj, "data", "x", "a.pt"), Path.Combine(proj, "data", "x", "notes.txt")], Restored(target));
        Assert.False(Directory.Exists(target + Path.Combine(proj, "empty")), "only the folders above what is included are created");

        // The backed-up folder's own name may lead, and --exclude takes the same syntax.
        string second = ws.PathOf("r2");
        (await ws.RepoAsync("restore", "latest", "--include", "proj/data", "--exclude", "data/x/notes.txt", "--target", second)).ShouldSucceed();
        Assert.Equal([Path.Combine(proj, "data", "x", "a.pt"), Path.Combine(proj, "data", "y.pt")], Restored(second));

        var listed = (await ws.RepoAsync("ls", "latest", "data", "--json")).ShouldSucceed().Json().EnumerateArray().Select(e => e.GetProperty("path").GetString()).ToList();
        Assert.Equal(
            new[] { "data", "data/x", "data/y.pt", "data/x/a.pt", "data/x/notes.txt" }.Select(p => proj + "/" + p).Order(StringComparer.Ordinal),
            listed.Order(StringComparer.Ordinal));

        // A relative path that is nowhere fails clearly, naming it and where it was looked for, and writes nothing.
        string none = ws.PathOf("r3");
        string line = (await ws.RepoAsync("restore", "latest", "--include", "data/nope", "--target", none)).ShouldFailCleanly(1);
        Assert.Contains($"data/nope is not in snapshot", line, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(proj, "data", "nope"), line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(none), "a restore whose include matches nothing must not create its target");
        (await ws.RepoAsync("ls", "latest", "nope")).ShouldFailCleanly(1);
    }

    [Fact]
    public async Task Restore_include_and_ls_take_globs()
    {
        using var ws = new Workspace();
        string proj = await ProjectAsync(ws);

        string target = ws.PathOf("r1");
        (await ws.RepoAsync("restore", "latest", "--include", "*.pt", "--target", target)).ShouldSucceed();
        Assert.Equal([Path.Combine(proj, "data", "x", "a.pt"), Path.Combine(proj, "data", "y.pt")], Restored(target));
        Assert.False(Directory.Exists(target + Path.Combine(proj, "src")), "a folder with no match is not created");

        var listed = (await ws.RepoAsync("ls", "latest", proj + "/**/x/*.txt", "--json")).ShouldSucceed().Json().EnumerateArray().Select(e => e.GetProperty("path").GetString());
        Assert.Equal([Path.Combine(proj, "data", "x", "notes.txt")], listed);

        string line = (await ws.RepoAsync("restore", "latest", "--include", "*.safetensors", "--target", ws.PathOf("r2"))).ShouldFailCleanly(1);
        Assert.Contains("*.safetensors is not in snapshot", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Snapshots_takes_ids_prefixes_and_latest_as_restic_does()
    {
        using var ws = new Workspace();
        var (_, _, ids) = await ThreeSnapshotsAsync(ws);

        Assert.Equal([ids[2]], await IdsAsync(ws, "latest"));
        Assert.Equal([ids[0]], await IdsAsync(ws, "latest", "--host", "alpha"));
        var listed = (await ws.RepoAsync("snapshots", ids[1][..8], ids[0], "--json")).ShouldSucceed().Json();
        Assert.Equal([ids[0], ids[1]], listed.EnumerateArray().Select(s => s.GetProperty("id").GetString()!).ToArray());
        Assert.Contains("no snapshot with id ffffffff", (await ws.RepoAsync("snapshots", "ffffffff")).ShouldFailCleanly(1), StringComparison.Ordinal);
        Assert.Contains("3 snapshots", (await ws.RepoAsync("snapshots")).ShouldSucceed().StdOut, StringComparison.Ordinal);
    }
}
