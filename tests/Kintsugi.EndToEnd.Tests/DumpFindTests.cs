using System.Buffers.Binary;
using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>The commands a restic user reaches for: dump, find, ls in depth-first order, stats --mode, and mount's absence.</summary>
public sealed partial class DumpFindTests(ITestOutputHelper output)
{
    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string newPath);

    /// <summary>A safetensors file of fp32 tensors (each over the 64 KiB the splitter cuts), their values from <paramref name="rng"/>.</summary>
    private static void WriteSafetensors(string path, Random rng, int tensors, int floats)
    {
        var json = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        for (int t = 0; t < tensors; t++)
        {
            json.Append(CultureInfo.InvariantCulture, $",\"layer{t}.weight\":{{\"dtype\":\"F32\",\"shape\":[{floats}],\"data_offsets\":[{(long)t * floats * 4},{(long)(t + 1) * floats * 4}]}}");
        }
        json.Append('}');
        while (json.Length % 8 != 0)
        {
            json.Append(' ');
        }
        var header = Encoding.UTF8.GetBytes(json.ToString());
        using var stream = File.Create(path);
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        var data = new byte[floats * 4];
        for (int t = 0; t < tensors; t++)
        {
            for (int i = 0; i < floats; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), (float)(rng.NextDouble() - 0.5) * 0.04f);
            }
            stream.Write(data);
        }
    }

    [Fact]
    public async Task Dump_writes_a_file_byte_for_byte_a_multi_chunk_file_and_a_tensor_file_stored_as_deltas()
    {
        int seed = Environment.TickCount;
        output.WriteLine($"seed {seed}");
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        Directory.CreateDirectory(src);
        string big = Path.Combine(src, "big.bin");
        string model = Path.Combine(src, "model.safetensors");
        string note = Path.Combine(src, "note.txt");
        FileTree.WriteRandom(big, 9_000_000);
        File.WriteAllText(note, "hello from the snapshot\n");
        await ws.InitAsync();
        WriteSafetensors(model, new Random(seed), 3, 40_000);
        await ws.BackupAsync(src);
        // A second version: its tensors are stored as pieces and deltas against the first's.
        WriteSafetensors(model, new Random(seed + 1), 3, 40_000);
        await ws.BackupAsync(src);

        var stats = (await ws.RepoAsync("stats", "latest", "--json")).ShouldSucceed().Json();
        var files = stats.GetProperty("files").EnumerateArray().ToDictionary(f => f.GetProperty("path").GetString()!, f => f);
        Assert.Equal("safetensors", files[model].GetProperty("layout").GetString());
        Assert.True(files[big].GetProperty("blobs").GetInt32() > 1, "big.bin is stored in several chunks");

        foreach (var file in new[] { big, model })
        {
            string dumped = ws.PathOf(Path.GetFileName(file) + ".dumped");
            (await ws.RepoAsync("dump", "latest", file, "--target", dumped)).ShouldSucceed();
            Assert.True(File.ReadAllBytes(file).AsSpan().SequenceEqual(File.ReadAllBytes(dumped)), $"{file} dumps byte for byte");
            Assert.False(File.Exists(dumped + ".kintsugi-partial"));
        }
        // Without --target the bytes go to stdout.
        Assert.Equal("hello from the snapshot\n", (await ws.RepoAsync("dump", "latest", note)).ShouldSucceed().StdOut);
    }

    [Fact]
    public async Task Dump_of_a_folder_is_a_tar_stream_with_names_contents_modes_mtimes_and_symlinks()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        string longName = new string('n', 150) + ".txt";
        Directory.CreateDirectory(Path.Combine(src, "sub", "empty"));
        File.WriteAllText(Path.Combine(src, "a.txt"), "alpha");
        File.WriteAllText(Path.Combine(src, "sub", "run.sh"), "#!/bin/sh\n");
        File.WriteAllText(Path.Combine(src, "sub", longName), "long");
        File.SetUnixFileMode(Path.Combine(src, "a.txt"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        File.SetUnixFileMode(Path.Combine(src, "sub", "run.sh"), (UnixFileMode)Convert.ToInt32("755", 8));
        File.CreateSymbolicLink(Path.Combine(src, "link"), "sub/run.sh");
        var mtime = new DateTimeOffset(2024, 5, 6, 7, 8, 9, TimeSpan.Zero);
        File.SetLastWriteTimeUtc(Path.Combine(src, "a.txt"), mtime.UtcDateTime);
        await ws.InitAsync();
        await ws.BackupAsync(src);

        string tar = ws.PathOf("out.tar");
        (await ws.RepoAsync("dump", "latest", src, "--target", tar)).ShouldSucceed();
        string root = src.TrimStart('/');
        var entries = new List<(string Name, TarEntryType Type, string? Content, UnixFileMode Mode, string Link, DateTimeOffset Mtime)>();
        using (var reader = new TarReader(File.OpenRead(tar)))
        {
            while (reader.GetNextEntry() is { } e)
            {
                string? content = e.DataStream is { } d ? new StreamReader(d).ReadToEnd() : null;
                entries.Add((e.Name, e.EntryType, content, e.Mode, e.LinkName, e.ModificationTime));
            }
        }
        // The folder itself, then depth first in name order, paths as in the snapshot without the leading '/'.
        Assert.Equal(
            [root + "/", root + "/a.txt", root + "/link", root + "/sub/", root + "/sub/empty/", root + "/sub/" + longName, root + "/sub/run.sh"],
            entries.Select(e => e.Name));
        var byName = entries.ToDictionary(e => e.Name);
        Assert.Equal(("alpha", TarEntryType.RegularFile), (byName[root + "/a.txt"].Content, byName[root + "/a.txt"].Type));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, byName[root + "/a.txt"].Mode);
        Assert.Equal(mtime, byName[root + "/a.txt"].Mtime);
        Assert.Equal((UnixFileMode)Convert.ToInt32("755", 8), byName[root + "/sub/run.sh"].Mode);
        Assert.Equal("#!/bin/sh\n", byName[root + "/sub/run.sh"].Content);
        Assert.Equal("long", byName[root + "/sub/" + longName].Content);
        Assert.Equal((TarEntryType.SymbolicLink, "sub/run.sh"), (byName[root + "/link"].Type, byName[root + "/link"].Link));
        Assert.Equal(TarEntryType.Directory, byName[root + "/sub/empty/"].Type);

        string zip = ws.PathOf("out.zip");
        (await ws.RepoAsync("dump", "latest", src + "/sub", "--archive", "zip", "--target", zip)).ShouldSucceed();
        using var archive = ZipFile.OpenRead(zip);
        Assert.Equal([root + "/sub/", root + "/sub/empty/", root + "/sub/" + longName, root + "/sub/run.sh"], archive.Entries.Select(e => e.FullName));
        using var run = new StreamReader(archive.GetEntry(root + "/sub/run.sh")!.Open());
        Assert.Equal("#!/bin/sh\n", await run.ReadToEndAsync());
    }

    [Fact]
    public async Task Dump_of_a_missing_path_or_a_damaged_blob_fails_with_one_line_and_writes_no_file()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        string weights = Path.Combine(src, "weights.bin");
        FileTree.WriteRandom(weights, 400_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);

        string missing = (await ws.RepoAsync("dump", "latest", src + "/nope.bin")).ShouldFailCleanly(1);
        Assert.Contains(src + "/nope.bin", missing, StringComparison.Ordinal);
        Assert.Contains("kintsugi ls", missing, StringComparison.Ordinal);
        Assert.Contains("is not in snapshot", (await ws.RepoAsync("dump", "latest", weights + "/x")).ShouldFailCleanly(1), StringComparison.Ordinal);

        var pack = new DirectoryInfo(Path.Combine(ws.Repo, "data")).EnumerateFiles("*", SearchOption.AllDirectories).MaxBy(f => f.Length)!;
        var bytes = File.ReadAllBytes(pack.FullName);
        bytes[bytes.Length / 2] ^= 0x40;
        File.SetUnixFileMode(pack.FullName, File.GetUnixFileMode(pack.FullName) | UnixFileMode.UserWrite);
        File.WriteAllBytes(pack.FullName, bytes);

        string target = ws.PathOf("weights.dumped");
        string damaged = (await ws.RepoAsync("dump", "latest", weights, "--target", target)).ShouldFailCleanly(1);
        Assert.Contains("damaged", damaged, StringComparison.Ordinal);
        Assert.False(File.Exists(target), "a failed dump leaves no file that looks complete");
        Assert.False(File.Exists(target + ".kintsugi-partial"));
        (await ws.RepoAsync("dump", "latest", src)).ShouldFailCleanly(1);
    }

    private static string[] FoundPaths(JsonElement snapshot) =>
        snapshot.GetProperty("matches").EnumerateArray().Select(m => m.GetProperty("path").GetString()!).ToArray();

    [Fact]
    public async Task Find_lists_matches_per_snapshot_oldest_first_by_name_glob_path_glob_and_ignoring_case()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        Directory.CreateDirectory(Path.Combine(src, "ckpt"));
        await ws.InitAsync();
        File.WriteAllText(Path.Combine(src, "ckpt", "step-1.pt"), "1");
        File.WriteAllText(Path.Combine(src, "README.PT"), "upper");
        string first = (await ws.BackupAsync(src)).GetProperty("snapshot").GetString()!;
        File.WriteAllText(Path.Combine(src, "ckpt", "step-2.pt"), "22");
        string second = (await ws.BackupAsync(src)).GetProperty("snapshot").GetString()!;
        File.Delete(Path.Combine(src, "ckpt", "step-1.pt"));
        File.Delete(Path.Combine(src, "README.PT"));
        File.WriteAllText(Path.Combine(src, "notes.txt"), "no checkpoint");
        string third = (await ws.BackupAsync(src)).GetProperty("snapshot").GetString()!;

        var found = (await ws.RepoAsync("find", "*.pt", "--json")).ShouldSucceed().Json().EnumerateArray().ToList();
        Assert.Equal([first, second, third], found.Select(s => s.GetProperty("snapshot").GetString()));
        Assert.Equal([src + "/ckpt/step-1.pt"], FoundPaths(found[0]));
        Assert.Equal([src + "/ckpt/step-1.pt", src + "/ckpt/step-2.pt"], FoundPaths(found[1]));
        Assert.Equal([src + "/ckpt/step-2.pt"], FoundPaths(found[2]));
        var match = found[1].GetProperty("matches")[1];
        Assert.Equal(("file", 2L), (match.GetProperty("type").GetString(), match.GetProperty("size").GetInt64()));

        var folded = (await ws.RepoAsync("find", "-i", "*.pt", "--json")).ShouldSucceed().Json().EnumerateArray().ToList();
        Assert.Equal([src + "/README.PT", src + "/ckpt/step-1.pt"], FoundPaths(folded[0]));

        // With '/': the end of the path, whole names; a leading '/' anchors it at the root.
        var byPath = (await ws.RepoAsync("find", "ckpt/step-?.pt", "--snapshot", third[..8], "--json")).ShouldSucceed().Json().EnumerateArray().Single();
        Assert.Equal([src + "/ckpt/step-2.pt"], FoundPaths(byPath));
        Assert.Empty((await ws.RepoAsync("find", "/ckpt/*.pt", "--json")).ShouldSucceed().Json().EnumerateArray());
        Assert.Equal(3, (await ws.RepoAsync("find", src + "/**/step-[12].pt", "--json")).ShouldSucceed().Json().GetArrayLength());

        var text = (await ws.RepoAsync("find", "step-2.pt", "--snapshot", "latest")).ShouldSucceed();
        Assert.Equal($"Found matching entries in snapshot {third[..8]}", text.StdOutLines[0][..(35 + 8)]);
        Assert.EndsWith(" " + src + "/ckpt/step-2.pt", text.StdOutLines[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ls_lists_depth_first_each_folder_then_everything_under_it_in_name_order()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        foreach (var file in new[] { "a/x/f", "a/y", "b", "c/z" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(src, file))!);
            File.WriteAllText(Path.Combine(src, file), file);
        }
        await ws.InitAsync();
        await ws.BackupAsync(src);

        var lines = (await ws.RepoAsync("ls", "latest")).ShouldSucceed().StdOutLines;
        Assert.Equal(
            new[] { "", "/a", "/a/x", "/a/x/f", "/a/y", "/b", "/c", "/c/z" }.Select(p => src + p),
            lines.SkipWhile(l => l != src));
        var json = (await ws.RepoAsync("ls", "latest", src + "/a", "--json")).ShouldSucceed().Json();
        Assert.Equal(new[] { "/a", "/a/x", "/a/x/f", "/a/y" }.Select(p => src + p), json.EnumerateArray().Select(e => e.GetProperty("path").GetString()));
    }

    [Fact]
    public async Task Stats_modes_count_what_a_restore_writes_and_the_distinct_data_stored()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        var a = FileTree.WriteRandom(Path.Combine(src, "a.bin"), 300_000);
        FileTree.WriteRandom(Path.Combine(src, "b.bin"), 200_000);
        File.WriteAllBytes(Path.Combine(src, "copy-of-a.bin"), a);
        Assert.Equal(0, Link(Path.Combine(src, "b.bin"), Path.Combine(src, "hard-b.bin")));
        File.CreateSymbolicLink(Path.Combine(src, "link"), "a.bin");
        await ws.InitAsync();
        await ws.BackupAsync(src);
        FileTree.WriteRandom(Path.Combine(src, "c.bin"), 100_000);
        await ws.BackupAsync(src);

        // A restore writes every file (a copy again, a hard link once) and counts every non-folder entry.
        long first = 300_000 + 200_000 + 300_000, second = first + 100_000;
        var restore = (await ws.RepoAsync("stats", "--mode", "restore-size", "--json")).ShouldSucceed().Json();
        Assert.Equal(first + second, restore.GetProperty("total_size").GetInt64());
        Assert.Equal(5 + 6, restore.GetProperty("total_file_count").GetInt64());
        Assert.Equal(2, restore.GetProperty("snapshots_count").GetInt32());
        var latest = (await ws.RepoAsync("stats", "latest", "--mode", "restore-size", "--json")).ShouldSucceed().Json();
        Assert.Equal(second, latest.GetProperty("total_size").GetInt64());

        // Distinct content once (a.bin and its copy are one), plus the trees; stored, it fits in the packs.
        long distinct = 300_000 + 200_000 + 100_000;
        var raw = (await ws.RepoAsync("stats", "--mode", "raw-data", "--json")).ShouldSucceed().Json();
        long uncompressed = raw.GetProperty("total_uncompressed_size").GetInt64();
        long stored = raw.GetProperty("total_size").GetInt64();
        long packs = new DirectoryInfo(Path.Combine(ws.Repo, "data")).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        output.WriteLine($"raw-data: {uncompressed} uncompressed, {stored} stored; packs {packs}");
        Assert.InRange(uncompressed, distinct + 1, distinct + 16_384);
        Assert.InRange(stored, distinct, packs);

        var repo = (await ws.RepoAsync("stats", "--json")).ShouldSucceed().Json();
        Assert.Equal(2, repo.GetProperty("snapshots_count").GetInt32());
        Assert.Equal(packs, repo.GetProperty("pack_bytes").GetInt64());
        Assert.Equal(first + second, repo.GetProperty("restore_size").GetInt64());
        Assert.InRange(repo.GetProperty("deduplication_ratio").GetDouble(), (first + second) / (double)distinct - 0.01, (first + second) / (double)distinct + 0.01);
        (await ws.RepoAsync("stats")).ShouldSucceed().StdOutShouldContain("Deduplication");
        (await ws.RepoAsync("stats", "latest")).ShouldSucceed().StdOutShouldContain("copy-of-a.bin");
        string oldest = (await ws.SnapshotsAsync())[0].GetProperty("short_id").GetString()!;
        (await ws.RepoAsync("stats", oldest, "latest")).ShouldFailCleanly(2);
        Assert.Equal(first, (await ws.RepoAsync("stats", oldest, "--mode", "restore-size", "--json")).ShouldSucceed().Json().GetProperty("total_size").GetInt64());
    }

    [Fact]
    public async Task Stats_with_filters_counts_the_blobs_of_the_chosen_snapshots_and_fails_when_they_choose_none()
    {
        using var ws = new Workspace();
        string a = ws.PathOf("a"), b = ws.PathOf("b");
        FileTree.WriteRandom(Path.Combine(a, "big.bin"), 400_000);
        var small = FileTree.WriteRandom(Path.Combine(b, "small.bin"), 50_000);
        File.WriteAllBytes(Path.Combine(b, "copy.bin"), small);
        await ws.InitAsync();
        await ws.BackupAsync("--host", "hostA", a);
        await ws.BackupAsync("--host", "hostB", b);
        await ws.BackupAsync("--host", "hostB", b);

        // hostB's two snapshots restore 4 × 50,000 bytes from 50,000 distinct: 4x, whatever hostA stored.
        var whole = (await ws.RepoAsync("stats", "--json")).ShouldSucceed().Json();
        var chosen = (await ws.RepoAsync("stats", "--host", "hostB", "--json")).ShouldSucceed().Json();
        Assert.Equal(2, chosen.GetProperty("snapshots_count").GetInt32());
        Assert.Equal(4 * 50_000, chosen.GetProperty("restore_size").GetInt64());
        Assert.InRange(chosen.GetProperty("deduplication_ratio").GetDouble(), 3.99, 4.01);
        Assert.InRange(chosen.GetProperty("total_uncompressed_size").GetInt64(), 50_001, 50_000 + 16_384);
        Assert.True(chosen.GetProperty("total_blob_count").GetInt64() < whole.GetProperty("total_blob_count").GetInt64());
        Assert.Equal(whole.GetProperty("pack_bytes").GetInt64(), chosen.GetProperty("pack_bytes").GetInt64());
        Assert.Equal("host hostB", chosen.GetProperty("filter").GetString());
        (await ws.RepoAsync("stats", "--host", "hostB")).ShouldSucceed()
            .StdOutShouldContain("Snapshots of host hostB").StdOutShouldContain("(the whole repository)").StdOutShouldContain("4.00x");

        // Filters that pass nothing fail as `latest` does, naming them, with or without --mode.
        foreach (var args in new[] { new[] { "stats", "--tag", "nosuchtag" }, ["stats", "--host", "nosuch", "--mode", "raw-data"] })
        {
            string line = (await ws.RepoAsync(args)).ShouldFailCleanly(1);
            Assert.Contains(args[2], line, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Stats_of_a_snapshot_gives_the_compression_ratio_as_in_over_stored_like_the_totals()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        Directory.CreateDirectory(src);
        File.WriteAllBytes(Path.Combine(src, "zeros.bin"), new byte[400_000]);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        var stats = (await ws.RepoAsync("stats", "latest", "--json")).ShouldSucceed().Json();
        var file = stats.GetProperty("files").EnumerateArray().Single(f => f.GetProperty("path").GetString()!.EndsWith("zeros.bin", StringComparison.Ordinal));
        double ratio = file.GetProperty("bytes_in").GetInt64() / (double)file.GetProperty("bytes_stored").GetInt64();
        Assert.True(ratio > 10, $"zeros compress: {ratio}");
        string text = (await ws.RepoAsync("stats", "latest")).ShouldSucceed().StdOut;
        string row = text.Split('\n').Single(l => l.Contains("zeros.bin", StringComparison.Ordinal));
        Assert.EndsWith(ratio.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + "x", row.TrimEnd());
        Assert.Contains("compression ratio ", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Find_json_writes_mtime_as_ls_json_does()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        string file = Path.Combine(src, "model.pt");
        FileTree.WriteRandom(file, 1_000);
        // Sub-millisecond digits, which one form kept and the other dropped.
        File.SetLastWriteTimeUtc(file, new DateTime(2026, 3, 4, 5, 6, 7, DateTimeKind.Utc).AddTicks(1_234_567));
        await ws.InitAsync();
        await ws.BackupAsync(src);

        var ls = (await ws.RepoAsync("ls", "latest", "--json")).ShouldSucceed().Json().EnumerateArray().Single(e => e.GetProperty("path").GetString() == file);
        var found = (await ws.RepoAsync("find", "model.pt", "--json")).ShouldSucceed().Json().EnumerateArray().Single();
        var match = Assert.Single(found.GetProperty("matches").EnumerateArray());

        Assert.Equal(ls.GetProperty("mtime").GetString(), match.GetProperty("mtime").GetString());
        Assert.StartsWith("2026-03-04T05:06:07.123", match.GetProperty("mtime").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mount_is_not_available_and_names_what_to_use_instead()
    {
        using var ws = new Workspace();
        foreach (var args in new[] { new[] { "mount", "/mnt/restic" }, ["mount"], ["--repo", ws.Repo, "mount", "--allow-other", "/mnt/x"] })
        {
            string line = (await ws.RunAsync(args)).ShouldFailCleanly(2);
            Assert.Contains("mount is not available", line, StringComparison.Ordinal);
            Assert.Contains("FUSE", line, StringComparison.Ordinal);
            Assert.Contains("kintsugi dump", line, StringComparison.Ordinal);
            Assert.Contains("restore SNAPSHOT --include", line, StringComparison.Ordinal);
        }
        (await ws.RunAsync("mount", "--help")).ShouldSucceed().StdOutShouldContain("Not available");
    }

    [Theory]
    [InlineData(2, "argument missing for command: 'dump'", "dump", "latest")]
    [InlineData(2, "--archive rar", "dump", "latest", "/", "--archive", "rar")]
    [InlineData(2, "argument missing for command: 'find'", "find")]
    [InlineData(2, "--oldest 'yesterday-ish'", "find", "x", "--oldest", "yesterday-ish")]
    [InlineData(2, "\"[abc\" is malformed", "find", "[abc")]
    [InlineData(2, "--mode everything", "stats", "--mode", "everything")]
    [InlineData(1, "no snapshot with id ffffffff", "find", "x", "--snapshot", "ffffffff")]
    public async Task Bad_arguments_fail_with_one_line_that_names_them(int exitCode, string named, params string[] args)
    {
        using var ws = new Workspace();
        FileTree.WriteRandom(ws.PathOf("src/a.bin"), 1_000);
        await ws.InitAsync();
        await ws.BackupAsync(ws.PathOf("src"));
        Assert.Contains(named, (await ws.RepoAsync(args)).ShouldFailCleanly(exitCode), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dump_to_a_target_in_a_folder_that_does_not_exist_fails_in_one_line_naming_the_target()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "weights.bin"), 10_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        string target = ws.PathOf("dd/nodir/x");

        string line = (await ws.RepoAsync("dump", "latest", src + "/weights.bin", "--target", target)).ShouldFailCleanly(1);

        Assert.Contains($"dump target {target}", line, StringComparison.Ordinal);
        Assert.Contains("does not exist", line, StringComparison.Ordinal);
        Assert.Contains("mkdir", line, StringComparison.Ordinal);
        Assert.DoesNotContain("kintsugi-partial", line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(ws.PathOf("dd")), "a failed dump creates no folders");
    }

    [Fact]
    public async Task Dump_and_find_take_the_snapshot_filters_and_dump_takes_a_path_relative_to_what_was_backed_up()
    {
        using var ws = new Workspace();
        string proj = ws.PathOf("proj");
        string other = ws.PathOf("other");
        Directory.CreateDirectory(Path.Combine(proj, "cfg"));
        Directory.CreateDirectory(Path.Combine(other, "cfg"));
        File.WriteAllText(Path.Combine(proj, "cfg", "run.yaml"), "alpha\n");
        File.WriteAllText(Path.Combine(other, "cfg", "run.yaml"), "other\n");
        await ws.InitAsync();
        var first = await ws.BackupAsync("--host", "alpha", "--tag", "keep", proj);
        File.WriteAllText(Path.Combine(proj, "cfg", "run.yaml"), "beta\n");
        await ws.BackupAsync("--host", "beta", proj);

        // --host, --tag and --path choose what latest is; the path is relative to what was backed up (or to its parent).
        Assert.Equal("beta\n", (await ws.RepoAsync("dump", "latest", "cfg/run.yaml")).ShouldSucceed().StdOut);
        Assert.Equal("alpha\n", (await ws.RepoAsync("dump", "latest", "cfg/run.yaml", "--host", "alpha")).ShouldSucceed().StdOut);
        Assert.Equal("alpha\n", (await ws.RepoAsync("dump", "latest", "proj/cfg/run.yaml", "--tag", "keep", "--path", proj)).ShouldSucceed().StdOut);
        Assert.Contains("no snapshot of host gamma", (await ws.RepoAsync("dump", "latest", "cfg/run.yaml", "--host", "gamma")).ShouldFailCleanly(1), StringComparison.Ordinal);

        // find searches only the snapshots the filters pass.
        var found = (await ws.RepoAsync("find", "run.yaml", "--host", "alpha", "--json")).ShouldSucceed().Json();
        Assert.Equal(first.GetProperty("snapshot").GetString(), Assert.Single(found.EnumerateArray()).GetProperty("snapshot").GetString());
        Assert.Equal(2, (await ws.RepoAsync("find", "run.yaml", "--json")).ShouldSucceed().Json().GetArrayLength());
        Assert.Empty((await ws.RepoAsync("find", "run.yaml", "--tag", "nosuch", "--json")).ShouldSucceed().Json().EnumerateArray());

        // A relative path that names an entry under two backed-up paths is refused, listing both.
        await ws.BackupAsync(proj, other);
        string line = (await ws.RepoAsync("dump", "latest", "cfg/run.yaml")).ShouldFailCleanly(1);
        Assert.Contains($"{other}/cfg/run.yaml, {proj}/cfg/run.yaml", line, StringComparison.Ordinal);
        Assert.Equal("other\n", (await ws.RepoAsync("dump", "latest", "other/cfg/run.yaml")).ShouldSucceed().StdOut);
    }
}
