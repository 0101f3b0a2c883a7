using System.Globalization;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Parity;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

/// <summary>
/// Random damage to any one file of a repository that keeps parity — a pack, an index file, a
/// snapshot, a key slot, the config, a parity group — by flipping bits, overwriting, truncating,
/// extending or deleting it. Each time: the damage is detected (the repository refuses to open, or
/// <c>check --read-data</c> fails), every file check does not name restores bit-exact, and
/// <c>repair</c> brings the repository back whole. KINTSUGI_CORRUPTION_TRIALS sets the number of
/// trials (default 12); tests/corruption-soak.sh runs many.
/// </summary>
public sealed class CorruptionCampaignTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static int Trials => int.TryParse(Environment.GetEnvironmentVariable("KINTSUGI_CORRUPTION_TRIALS"), CultureInfo.InvariantCulture, out int n) && n > 0 ? n : 12;

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        }
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        }
    }

    private static string Damage(Random rng, string path)
    {
        var bytes = File.ReadAllBytes(path);
        switch (rng.Next(6))
        {
            case 0:
                File.Delete(path);
                return "deleted";
            case 1:
                int keep = rng.Next(bytes.Length);
                File.WriteAllBytes(path, bytes[..keep]);
                return $"truncated to {keep} of {bytes.Length} bytes";
            case 2:
                File.AppendAllText(path, "x");
                return "one byte appended";
            case 3:
                {
                    int at = rng.Next(bytes.Length), n = Math.Min(bytes.Length - at, rng.Next(1, 4096));
                    rng.NextBytes(bytes.AsSpan(at, n));
                    File.WriteAllBytes(path, bytes);
                    return $"{n} bytes overwritten at {at}";
                }
            default:
                {
                    int flips = rng.Next(1, 4);
                    for (int i = 0; i < flips; i++)
                    {
                        int at = rng.Next(bytes.Length);
                        bytes[at] ^= (byte)(1 << rng.Next(8));
                    }
                    File.WriteAllBytes(path, bytes);
                    return $"{flips} bits flipped";
                }
        }
    }

    [Fact]
    public async Task Any_damaged_file_is_detected_everything_unaffected_restores_and_repair_makes_it_whole()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        await repo.AddKeyAsync("second password", Sandbox.Kdf, Sandbox.Host, "tester");
        var engine = new ParityEngine(repo.Store);
        await engine.SaveSettingsAsync(new ParitySettings { DataColumns = 4, ParityColumns = 2, StripeSize = 4096, ColumnCapacity = 1 << 20 });
        await engine.CoverAsync();

        // Two snapshots: the second changes one file and adds two.
        var expected = new Dictionary<string, Dictionary<string, byte[]>>(StringComparer.Ordinal);
        var current = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        void Put(string rel, byte[] content)
        {
            string path = Path.Combine(_box.Source, rel);
            Files.Write(path, content);
            current[path] = content;
        }
        Put("model/weights.bin", Files.RandomBytes(rng, 1_500_000));
        Put("model/config.json", Files.CompressibleBytes(rng, 3_000));
        Put("data/shard-0.bin", Files.RandomBytes(rng, 700_000));
        Put("data/notes.txt", Files.CompressibleBytes(rng, 40_000));
        var first = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        expected[first.Id.ToString()] = new(current, StringComparer.Ordinal);
        Put("model/weights.bin", Files.RandomBytes(rng, 1_500_000));
        Put("data/shard-1.bin", Files.RandomBytes(rng, 900_000));
        Put("logs/run.log", Files.CompressibleBytes(rng, 10_000));
        var second = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        expected[second.Id.ToString()] = new(current, StringComparer.Ordinal);
        Assert.Equal(0, (await engine.StatusAsync()).UncoveredFiles);

        string pristine = Path.Combine(_box.Root, "pristine");
        CopyTree(_box.RepoPath, pristine);
        var candidates = Directory.GetFiles(pristine, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(pristine, f))
            .Where(f => !f.StartsWith("locks", StringComparison.Ordinal) && f != Path.Combine("parity", "settings"))
            .Order(StringComparer.Ordinal)
            .ToList();
        int detected = 0, refusedToOpen = 0, repaired = 0, filesRestored = 0, filesAffected = 0;
        var kinds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int trial = 0; trial < Trials; trial++)
        {
            Directory.Delete(_box.RepoPath, recursive: true);
            CopyTree(pristine, _box.RepoPath);
            string victim = candidates[rng.Next(candidates.Count)];
            string how = Damage(rng, Path.Combine(_box.RepoPath, victim));
            string context = $"trial {trial}: {victim} {how}";
            string top = victim.Split('/')[0];
            kinds[top] = kinds.GetValueOrDefault(top) + 1;

            // Detected: the repository does not open, or check --read-data fails.
            Repository? damagedRepo = null;
            try
            {
                damagedRepo = await _box.OpenAsync();
            }
            catch (KintsugiException)
            {
                refusedToOpen++;
            }
            if (damagedRepo is not null)
            {
                var check = await new CheckEngine(damagedRepo).RunAsync(new CheckRequest { ReadData = true, Host = Sandbox.Host });
                // A deleted parity group loses redundancy, not data: check warns that files are unprotected.
                bool parityGone = top == "parity" && how == "deleted" && check.Problems.Any(p => p.Subject == "parity" && p.Message.Contains("not protected", StringComparison.Ordinal));
                Assert.True(!check.Ok || parityGone, $"{context}: check --read-data did not notice");
                var affected = check.AffectedFiles.Select(a => (a.Snapshot, a.Path)).ToHashSet();
                filesAffected += affected.Count;
                // Everything check does not name restores bit-exact, from every snapshot that still loads.
                foreach (var snap in await damagedRepo.LoadSnapshotsAsync(onError: (_, _) => { }))
                {
                    string target = _box.NewTarget($"t{trial}-{snap.ShortId}");
                    var issues = new List<string>();
                    try
                    {
                        var restoredResult = await new RestoreEngine(damagedRepo).RunAsync(snap, new RestoreRequest { Target = target, Host = Sandbox.Host });
                        issues.AddRange(restoredResult.Issues.Select(i => $"{i.Path}: {i.Message}"));
                    }
                    catch (KintsugiException e)
                    {
                        // A damaged tree can stop a restore; whatever it did write is still checked below.
                        issues.Add(e.Message);
                    }
                    foreach (var (path, content) in expected[snap.Id.ToString()])
                    {
                        // Named itself, or a folder above it whose listing is lost (whose files check cannot name).
                        if (affected.Any(a => a.Snapshot == snap.ShortId && (a.Path == path || path.StartsWith(a.Path.Replace(" (whole folder)", "", StringComparison.Ordinal).TrimEnd('/') + "/", StringComparison.Ordinal))))
                        {
                            continue;
                        }
                        string restored = Sandbox.Restored(target, path);
                        Assert.True(File.Exists(restored) && File.ReadAllBytes(restored).AsSpan().SequenceEqual(content),
                            $"{context}: {path} of snapshot {snap.ShortId} is not named by check but did not restore bit-exact (restored: {File.Exists(restored)}; check named: {string.Join(", ", affected)}; restore said: {string.Join("; ", issues)})");
                        filesRestored++;
                    }
                }
            }
            detected++;

            // One damaged file is always within a group's budget: repair makes the repository whole.
            var result = await new ParityEngine(_box.Store).RepairAsync(dryRun: false, TimeProvider.System);
            Assert.True(result.NotRepaired == 0, $"{context}: repair left {string.Join("; ", result.Files.Where(f => f.Outcome != RepairOutcome.Repaired))}");
            repaired += result.Repaired;
            var whole = await _box.OpenAsync();
            var after = await new CheckEngine(whole).RunAsync(new CheckRequest { ReadData = true, Host = Sandbox.Host });
            Assert.True(after.Ok, $"{context}: after repair: {string.Join("; ", after.Problems.Select(p => p.Subject + ": " + p.Message))}");
            var (target2, _) = await _box.RestoreAsync(whole, second, $"whole-{trial}");
            foreach (var (path, content) in expected[second.Id.ToString()])
            {
                Assert.True(File.ReadAllBytes(Sandbox.Restored(target2, path)).AsSpan().SequenceEqual(content), $"{context}: after repair {path} differs");
            }
            Directory.Delete(Path.Combine(_box.Root, "restore"), recursive: true);
        }
        output.WriteLine($"{Trials} damaged files ({string.Join(", ", kinds.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"{k.Key} {k.Value}"))}): " +
            $"{detected} detected ({refusedToOpen} by refusing to open), {filesAffected} files named as affected, {filesRestored} unaffected files restored bit-exact, {repaired} files repaired; nothing lost");
    }
}
