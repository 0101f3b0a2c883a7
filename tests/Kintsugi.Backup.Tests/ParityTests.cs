using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Parity;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

public sealed class ParityTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>Small stripes and columns, so that a few MiB make several groups of several rows.</summary>
    private static readonly ParitySettings Small = new() { DataColumns = 4, ParityColumns = 2, StripeSize = 4096, ColumnCapacity = 1 << 20 };

    // ----- the code itself -----

    [Fact]
    public void MulAdd_matches_the_field_multiplication_for_every_constant_and_odd_lengths()
    {
        var rng = new Random(TestSeed.Get(output));
        for (int c = 0; c < 256; c++)
        {
            int length = rng.Next(0, 200);
            var src = Files.RandomBytes(rng, length);
            var dst = Files.RandomBytes(rng, length);
            var expected = dst.Select((d, i) => (byte)(d ^ GaloisField.Mul((byte)c, src[i]))).ToArray();
            GaloisField.MulAdd((byte)c, src, dst);
            Assert.Equal(expected, dst);
        }
        for (int a = 1; a < 256; a++)
        {
            Assert.Equal(1, GaloisField.Mul((byte)a, GaloisField.Inverse((byte)a)));
        }
    }

    [Fact]
    public void Reed_Solomon_rebuilds_any_erasures_up_to_m_and_refuses_more()
    {
        var rng = new Random(TestSeed.Get(output));
        int trials = 300, rebuilt = 0, refused = 0;
        for (int t = 0; t < trials; t++)
        {
            int k = rng.Next(1, 24), m = rng.Next(1, 7), length = rng.Next(1, 3000);
            var rs = new ReedSolomon(k, m);
            var data = Enumerable.Range(0, k).Select(_ => Files.RandomBytes(rng, length)).ToArray();
            var parity = Enumerable.Range(0, m).Select(_ => new byte[length]).ToArray();
            for (int i = 0; i < k; i++)
            {
                rs.Accumulate(i, data[i], [.. parity.Select(p => (Memory<byte>)p)]);
            }
            var dataErased = new bool[k];
            var parityErased = new bool[m];
            int lostData = rng.Next(0, Math.Min(k, m + 1) + 1);
            foreach (int i in Enumerable.Range(0, k).OrderBy(_ => rng.Next()).Take(lostData))
            {
                dataErased[i] = true;
            }
            int lostParity = rng.Next(0, m + 1);
            foreach (int j in Enumerable.Range(0, m).OrderBy(_ => rng.Next()).Take(lostParity))
            {
                parityErased[j] = true;
            }
            var work = data.Select((d, i) => dataErased[i] ? Files.RandomBytes(rng, length) : (byte[])d.Clone()).ToArray();
            var parityWork = parity.Select((p, j) => parityErased[j] ? new byte[length] : p).ToArray();
            bool ok = rs.Reconstruct([.. work.Select(w => (Memory<byte>)w)], dataErased, [.. parityWork.Select(p => (Memory<byte>)p)], parityErased);
            bool expected = lostData <= m - lostParity;
            Assert.True(ok == expected, $"trial {t}: k={k} m={m}, {lostData} data and {lostParity} parity stripes lost: expected {(expected ? "a rebuild" : "a refusal")}");
            if (ok)
            {
                rebuilt++;
                for (int i = 0; i < k; i++)
                {
                    Assert.Equal(data[i], work[i]);
                }
            }
            else
            {
                refused++;
            }
        }
        output.WriteLine($"{trials} random codes: {rebuilt} rebuilt exactly, {refused} refused (more lost than parity left)");
        Assert.True(rebuilt > 0 && refused > 0);
    }

    private static readonly byte[] PackSha = System.Security.Cryptography.SHA256.HashData("a pack"u8);
    private static readonly byte[] SnapshotSha = System.Security.Cryptography.SHA256.HashData("a snapshot"u8);

    [Fact]
    public void The_group_header_parser_refuses_every_mutation_with_a_clean_error()
    {
        var rng = new Random(TestSeed.Get(output));
        var group = new ParityGroup
        {
            DataColumns = 3,
            ParityColumns = 2,
            StripeSize = 4096,
            Rows = 2,
            ColumnCapacity = 1 << 20,
            Sequence = 7,
            Members =
            [
                new ParityMember(FileKind.Config, "config", 0, 0, 100, new byte[32]),
                new ParityMember(FileKind.Pack, Convert.ToHexStringLower(PackSha), 1, 0, 5000, PackSha),
                new ParityMember(FileKind.Snapshot, Convert.ToHexStringLower(SnapshotSha), 0, 100, 300, SnapshotSha),
            ],
            StripeHashes = Files.RandomBytes(rng, 5 * 2 * ParityGroup.StripeHashLength),
        };
        var header = group.SerializeHeader();
        var parsed = ParityGroup.Parse(header, "test group");
        Assert.Equal(3, parsed.Members.Count);
        Assert.Equal(header.Length, ParityGroup.ReadHeaderLength(header, header.Length + group.ParityBytes, "test group"));
        int inputs = 3000, accepted = 0;
        for (int i = 0; i < inputs; i++)
        {
            var mutated = (byte[])header.Clone();
            switch (rng.Next(4))
            {
                case 0:
                    mutated[rng.Next(mutated.Length)] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1:
                    mutated = mutated[..rng.Next(mutated.Length)];
                    break;
                case 2:
                    rng.NextBytes(mutated.AsSpan(rng.Next(mutated.Length - 8), 8));
                    break;
                default:
                    mutated = [.. mutated, .. Files.RandomBytes(rng, rng.Next(1, 100))];
                    break;
            }
            try
            {
                ParityGroup.ReadHeaderLength(mutated, rng.Next(2) == 0 ? mutated.Length + group.ParityBytes : rng.NextInt64(long.MaxValue), "mutated");
            }
            catch (KintsugiException)
            {
            }
            try
            {
                ParityGroup.Parse(mutated, "mutated");
                accepted++;
            }
            catch (KintsugiException)
            {
            }
        }
        output.WriteLine($"{inputs} mutated headers: {accepted} parsed (identical bytes), the rest refused cleanly");
        Assert.True(accepted < inputs / 10);
    }

    // ----- a repository with parity -----

    private async Task<(Repository Repo, List<SnapshotRef> Snapshots)> RepositoryWithParityAsync(Random rng, int versions = 2)
    {
        var repo = await _box.InitAsync();
        var engine = new ParityEngine(repo.Store);
        await engine.SaveSettingsAsync(Small);
        await engine.CoverAsync();
        var snapshots = new List<SnapshotRef>();
        for (int v = 0; v < versions; v++)
        {
            for (int i = 0; i < 4; i++)
            {
                Files.Write(Path.Combine(_box.Source, $"v{v}-f{i}.bin"), Files.RandomBytes(rng, rng.Next(300_000, 900_000)));
            }
            Files.Write(Path.Combine(_box.Source, $"v{v}.txt"), Files.CompressibleBytes(rng, 20_000));
            snapshots.Add((await Sandbox.BackupAsync(repo, _box.Source)).Snapshot);
        }
        return (repo, snapshots);
    }

    private static async Task<List<(string Name, ParityGroup Group)>> GroupsAsync(IBlobStore store)
    {
        var result = new List<(string, ParityGroup)>();
        foreach (var f in (await store.ListAsync(FileKind.Parity)))
        {
            var bytes = await store.GetAsync(FileKind.Parity, f.Name);
            long headerLength = ParityGroup.ReadHeaderLength(bytes, bytes.Length, f.Name);
            result.Add((f.Name, ParityGroup.Parse(bytes.AsSpan(0, (int)headerLength), f.Name)));
        }
        return result;
    }

    private async Task AssertAllRestoreBitExactAsync(List<SnapshotRef> snapshots, string label)
    {
        var repo = await _box.OpenAsync();
        var check = await new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = true, Host = Sandbox.Host });
        Assert.True(check.Ok, $"{label}: check --read-data after repair: {string.Join("; ", check.Problems.Select(p => p.Message))}");
        var (target, _) = await _box.RestoreAsync(repo, snapshots[^1], label);
        // File by file: the folder's own mtime moved when a test deleted files from it.
        var restored = Sandbox.Restored(target, _box.Source);
        Assert.Equal(Directory.GetFiles(_box.Source).Select(Path.GetFileName).Order(), Directory.GetFiles(restored).Select(Path.GetFileName).Order());
        foreach (var file in Directory.GetFiles(_box.Source))
        {
            Assert.True(Files.SameContent(file, Path.Combine(restored, Path.GetFileName(file))), $"{label}: {file} restored with other content");
        }
    }

    /// <summary>Damages a file the way disks and people do; returns what was done.</summary>
    private static string Damage(Random rng, string path)
    {
        long length = new FileInfo(path).Length;
        switch (rng.Next(5))
        {
            case 0:
                File.Delete(path);
                return "deleted";
            case 1:
                using (var f = new FileStream(path, FileMode.Open))
                {
                    f.SetLength(rng.NextInt64(0, length));
                }
                return "truncated";
            case 2:
                {
                    var bytes = File.ReadAllBytes(path);
                    int flips = rng.Next(1, 20);
                    for (int i = 0; i < flips; i++)
                    {
                        bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                    }
                    File.WriteAllBytes(path, bytes);
                    return $"{flips} bits flipped";
                }
            case 3:
                {
                    var bytes = File.ReadAllBytes(path);
                    int at = rng.Next(bytes.Length), n = Math.Min(bytes.Length - at, rng.Next(1, 10_000));
                    rng.NextBytes(bytes.AsSpan(at, n));
                    File.WriteAllBytes(path, bytes);
                    return $"{n} bytes overwritten at {at}";
                }
            default:
                File.AppendAllText(path, "trailing garbage");
                return "extended";
        }
    }

    [Fact]
    public async Task Repair_rebuilds_damage_to_up_to_m_files_of_every_group_and_everything_restores_bit_exact()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, snapshots) = await RepositoryWithParityAsync(rng);
        var store = repo.Store;
        var status = await new ParityEngine(store).StatusAsync();
        Assert.Equal(0, status.UncoveredFiles);
        var groups = await GroupsAsync(store);
        output.WriteLine($"{status.CoveredFiles} files ({status.CoveredBytes} bytes) in {groups.Count} groups; parity {status.ParityBytes} bytes ({(double)status.ParityBytes / status.CoveredBytes:P0})");

        // Up to m members of every group, each file damaged once (a file in two groups is not picked twice).
        var damaged = new List<string>();
        var picked = new HashSet<(FileKind, string)>();
        foreach (var (_, group) in groups)
        {
            foreach (var member in group.Members.Where(m => !picked.Contains((m.Kind, m.Name))).OrderBy(_ => rng.Next()).Take(rng.Next(1, group.ParityColumns + 1)).ToList())
            {
                picked.Add((member.Kind, member.Name));
                string path = ((LocalBlobStore)store).PathOf(member.Kind, member.Name);
                damaged.Add($"{member}: {Damage(rng, path)}");
            }
        }
        output.WriteLine($"damaged {damaged.Count} files:\n  " + string.Join("\n  ", damaged));

        var dry = await new ParityEngine(store).RepairAsync(dryRun: true, TimeProvider.System);
        Assert.Equal(0, dry.NotRepaired);
        var progress = new ParityProgress();
        var result = await new ParityEngine(store).RepairAsync(dryRun: false, TimeProvider.System, progress);
        Assert.True(progress.TotalBytes == result.BytesChecked && progress.BytesDone == progress.TotalBytes, $"progress {progress.BytesDone} of {progress.TotalBytes}, {result.BytesChecked} bytes checked");
        output.WriteLine($"repair: {result.Repaired} repaired, {result.NotRepaired} not, {result.BytesChecked} bytes checked in {result.Elapsed.TotalSeconds:F3} s");
        Assert.Equal(0, result.NotRepaired);
        Assert.Equal(picked.Count, result.Repaired);

        await AssertAllRestoreBitExactAsync(snapshots, "after-repair");
        var again = await new ParityEngine(store).RepairAsync(dryRun: false, TimeProvider.System);
        Assert.Empty(again.Files);
    }

    [Fact]
    public async Task Damage_beyond_the_budget_is_reported_as_not_repairable_and_the_rest_is_still_repaired()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, _) = await RepositoryWithParityAsync(rng, versions: 3);
        var store = (LocalBlobStore)repo.Store;
        var groups = await GroupsAsync(store);
        // m + 1 files that all begin in the first stripe row of one group, in different columns: that row has too little parity left.
        var (_, group) = groups.First(g => g.Group.Members.Where(m => m.Offset == 0 && m.Length > 0).Select(m => m.Column).Distinct().Count() > g.Group.ParityColumns);
        var lost = group.Members.Where(m => m.Offset == 0 && m.Length > 0).GroupBy(m => m.Column).Select(c => c.First()).Take(group.ParityColumns + 1).ToList();
        foreach (var m in lost)
        {
            File.Delete(store.PathOf(m.Kind, m.Name));
        }
        // And one file of another group, within that group's budget.
        var other = groups.FirstOrDefault(g => !g.Group.Members.Any(x => lost.Any(l => l.Kind == x.Kind && l.Name == x.Name))).Group?.Members.FirstOrDefault(m => m.Length > 0);
        if (other is not null)
        {
            File.WriteAllBytes(store.PathOf(other.Kind, other.Name), []);
        }

        var result = await new ParityEngine(store).RepairAsync(dryRun: false, TimeProvider.System);
        output.WriteLine(string.Join("\n", result.Files));
        Assert.Equal(lost.Count, result.Files.Count(f => f.Outcome == RepairOutcome.Unrepairable));
        Assert.All(lost, m => Assert.Contains(result.Files, f => f.Name == m.Name && f.Outcome == RepairOutcome.Unrepairable));
        if (other is not null)
        {
            Assert.Contains(result.Files, f => f.Name == other.Name && f.Outcome == RepairOutcome.Repaired);
        }
        // The group is kept: it is all the redundancy the lost files have, should copies turn up.
        Assert.Contains(await store.ListAsync(FileKind.Parity), f => groups.Any(g => g.Name == f.Name && g.Group == group));
    }

    [Fact]
    public async Task Damaged_parity_is_rewritten_by_repair_and_protects_again()
    {
        var rng = new Random(TestSeed.Get(output));
        // At least 4 × 1.2 MB of packs: more than one group of 4 columns of 1 MiB holds.
        var (repo, snapshots) = await RepositoryWithParityAsync(rng, versions: 4);
        var store = (LocalBlobStore)repo.Store;
        var groups = await GroupsAsync(store);
        Assert.True(groups.Count >= 2, $"expected at least 2 groups, got {groups.Count}");
        // One group's parity data bit-rots, another's header is overwritten.
        string dataRot = store.PathOf(FileKind.Parity, groups[0].Name);
        var bytes = File.ReadAllBytes(dataRot);
        bytes[^(1 + rng.Next((int)groups[0].Group.ParityBytes))] ^= 0x10;
        File.WriteAllBytes(dataRot, bytes);
        string headerRot = store.PathOf(FileKind.Parity, groups[1].Name);
        bytes = File.ReadAllBytes(headerRot);
        bytes[rng.Next(4, 60)] ^= 0xff;
        File.WriteAllBytes(headerRot, bytes);
        Assert.Single((await new ParityEngine(store).StatusAsync()).DamagedGroups);

        var result = await new ParityEngine(store).RepairAsync(dryRun: false, TimeProvider.System);
        Assert.Empty(result.Files);
        Assert.True(result.GroupsRewritten >= 1);
        var status = await new ParityEngine(store).StatusAsync();
        Assert.Empty(status.DamagedGroups);
        Assert.Equal(0, status.UncoveredFiles);
        Assert.DoesNotContain(await store.ListAsync(FileKind.Parity), f => f.Name == groups[0].Name || f.Name == groups[1].Name);

        // The rewritten groups protect: lose a pack of each old group and repair it.
        foreach (var g in groups.Take(2))
        {
            var pack = g.Group.Members.First(m => m.Kind == FileKind.Pack);
            File.Delete(store.PathOf(FileKind.Pack, pack.Name));
        }
        var second = await new ParityEngine(store).RepairAsync(dryRun: false, TimeProvider.System);
        Assert.Equal(0, second.NotRepaired);
        await AssertAllRestoreBitExactAsync(snapshots, "parity-rewritten");
    }

    [Fact]
    public async Task Forget_and_prune_keep_every_group_consistent_with_the_files_that_remain()
    {
        var rng = new Random(TestSeed.Get(output));
        var (repo, snapshots) = await RepositoryWithParityAsync(rng, versions: 3);
        var store = (LocalBlobStore)repo.Store;
        // Forget the two newest snapshots (the files only they hold become garbage), prune.
        await new ParityEngine(store).DeleteAsync([(FileKind.Snapshot, snapshots[1].Id.ToString()), (FileKind.Snapshot, snapshots[2].Id.ToString())]);
        foreach (var f in Directory.GetFiles(_box.Source, "v1*").Concat(Directory.GetFiles(_box.Source, "v2*")))
        {
            File.Delete(f);
        }
        var pruned = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host, RepackThreshold = 0.01 });
        output.WriteLine($"prune: {pruned.PacksDeleted} packs deleted, {pruned.PacksRepacked} repacked");
        Assert.True(pruned.PacksDeleted + pruned.PacksRepacked > 0);

        // Every member of every group exists with the bytes recorded, and every file is protected.
        var listed = new HashSet<(FileKind, string)>();
        foreach (var k in ParityFile.ProtectedKinds)
        {
            listed.UnionWith((await store.ListAsync(k)).Select(f => (k, f.Name)));
        }
        foreach (var (name, g) in await GroupsAsync(store))
        {
            foreach (var m in g.Members)
            {
                Assert.True(listed.Contains((m.Kind, m.Name)), $"group {name[..8]} lists {m}, which prune deleted");
            }
        }
        var status = await new ParityEngine(store).StatusAsync();
        Assert.Equal(0, status.UncoveredFiles);
        var clean = await new ParityEngine(store).RepairAsync(dryRun: true, TimeProvider.System);
        Assert.Empty(clean.Files);

        // And it still repairs: lose two packs of one group.
        var group = (await GroupsAsync(store)).First(g => g.Group.Members.Count(m => m.Kind == FileKind.Pack) >= 2).Group;
        foreach (var pack in group.Members.Where(m => m.Kind == FileKind.Pack).Take(2))
        {
            File.Delete(store.PathOf(FileKind.Pack, pack.Name));
        }
        var result = await new ParityEngine(store).RepairAsync(dryRun: false, TimeProvider.System);
        Assert.Equal(2, result.Repaired);
        await AssertAllRestoreBitExactAsync(snapshots.Take(1).ToList(), "after-prune");
    }

    [Fact]
    public async Task Deleting_a_file_whose_stripe_neighbour_is_damaged_deletes_nothing_until_repair_has_run()
    {
        // Small files share stripes. When the neighbour of a file to delete is damaged in the stripe
        // they share, the group cannot be updated in place, and rebuilding it from the files that stay
        // would drop the damaged file's only redundancy: the deletion must refuse, deleting nothing.
        var rng = new Random(TestSeed.Get(output));
        var (repo, _) = await RepositoryWithParityAsync(rng, versions: 4);
        var store = (LocalBlobStore)repo.Store;
        int s = Small.StripeSize;
        var pair = (await GroupsAsync(store)).SelectMany(g => g.Group.Members.Where(a => a.Kind is FileKind.Snapshot or FileKind.Index)
                .SelectMany(a => g.Group.Members.Where(b => b != a && b.Column == a.Column && b.Length > 0 && a.Length > 0
                    && a.Offset / s <= (b.End - 1) / s && b.Offset / s <= (a.End - 1) / s)
                .Select(b => (Leaving: a, Damaged: b))))
            .FirstOrDefault();
        Assert.True(pair != default, "expected two small files sharing a stripe");
        var (leaving, damaged) = pair;
        output.WriteLine($"deleting {leaving}, damaging {damaged} in their shared stripe");
        // Damage the neighbour inside the shared stripe.
        long sharedRow = Math.Max(leaving.Offset, damaged.Offset) / s;
        long at = Math.Clamp((sharedRow * s) - damaged.Offset, 0, damaged.Length - 1);
        string damagedPath = store.PathOf(damaged.Kind, damaged.Name);
        var bytes = File.ReadAllBytes(damagedPath);
        bytes[at] ^= 0x01;
        File.WriteAllBytes(damagedPath, bytes);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => new ParityEngine(store).DeleteAsync([(leaving.Kind, leaving.Name)]));
        output.WriteLine(e.Message);
        Assert.Contains("kintsugi repair", e.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(store.PathOf(leaving.Kind, leaving.Name)), "the file to delete was deleted anyway");

        var repair = await new ParityEngine(store).RepairAsync(dryRun: false, TimeProvider.System);
        Assert.Contains(repair.Files, f => f.Name == damaged.Name && f.Outcome == RepairOutcome.Repaired);
        await new ParityEngine(store).DeleteAsync([(leaving.Kind, leaving.Name)]);
        Assert.False(File.Exists(store.PathOf(leaving.Kind, leaving.Name)));
        Assert.Empty((await new ParityEngine(store).RepairAsync(dryRun: true, TimeProvider.System)).Files);
    }

    [Fact]
    public async Task A_file_whose_bytes_no_longer_match_its_name_is_not_taken_into_parity()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        Files.Write(Path.Combine(_box.Source, "a.bin"), Files.RandomBytes(rng, 300_000));
        await Sandbox.BackupAsync(repo, _box.Source);
        var store = (LocalBlobStore)repo.Store;
        var pack = (await store.ListAsync(FileKind.Pack))[0];
        var bytes = File.ReadAllBytes(store.PathOf(FileKind.Pack, pack.Name));
        bytes[100] ^= 1;
        File.WriteAllBytes(store.PathOf(FileKind.Pack, pack.Name), bytes);

        var engine = new ParityEngine(store);
        await engine.SaveSettingsAsync(Small);
        var cover = await engine.CoverAsync();
        Assert.Contains(cover.Skipped, s => s.Contains(pack.Name, StringComparison.Ordinal) && s.Contains("do not match its name", StringComparison.Ordinal));
        var status = await engine.StatusAsync();
        Assert.Equal(1, status.UncoveredFiles);
        var repair = await engine.RepairAsync(dryRun: false, TimeProvider.System);
        Assert.Contains(repair.Files, f => f.Name == pack.Name && f.Outcome == RepairOutcome.Unprotected);
    }

    [Theory]
    [InlineData("8+2")]
    [InlineData("1+1")]
    [InlineData("128+32")]
    public void Schemes_in_range_parse(string scheme)
    {
        var s = ParitySettings.Parse(scheme);
        Assert.Equal(scheme, s.Scheme);
        Assert.Equal(s, ParitySettings.FromJson(s.ToJson(), "settings"));
    }

    [Theory]
    [InlineData("8")]
    [InlineData("8+0")]
    [InlineData("0+2")]
    [InlineData("129+2")]
    [InlineData("8+33")]
    [InlineData("-1+2")]
    [InlineData("8 + 2")]
    public void Schemes_out_of_range_are_refused_with_an_example(string scheme)
    {
        var e = Assert.Throws<KintsugiException>(() => ParitySettings.Parse(scheme));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains("8+2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Damaged_settings_are_reported_as_damaged_naming_the_fix()
    {
        foreach (var json in new[] { "", "{", "{\"data\":8}", "{\"data\":0,\"parity\":2}", "{\"data\":8,\"parity\":2,\"stripe\":1000}", "[1]" })
        {
            var e = Assert.Throws<KintsugiException>(() => ParitySettings.FromJson(System.Text.Encoding.UTF8.GetBytes(json), "settings"));
            Assert.True(e.Kind == ErrorKind.Corrupt && e.Message.Contains("kintsugi parity set", StringComparison.Ordinal), $"settings '{json}': {e.Kind}: {e.Message}");
        }
    }
}
