using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// <c>kintsugi backup</c> and <c>kintsugi forget --prune</c> killed with SIGKILL at random moments, as
/// real processes. After every kill, with no manual unlock: <c>check --read-data</c> passes, every
/// snapshot restores bit-exact, and the next backup succeeds and stores nothing it already has; at the
/// end prune removes every leftover. The default run tries a few kill points; KINTSUGI_CRASH_RUNS
/// raises it (tests/crash-soak.sh), and KINTSUGI_TEST_SEED replays one.
/// </summary>
public sealed class CrashConsistencyTests(ITestOutputHelper output)
{
    private static int Runs => int.TryParse(Environment.GetEnvironmentVariable("KINTSUGI_CRASH_RUNS"), CultureInfo.InvariantCulture, out int n) && n > 0 ? n : 4;

    private static int Seed(ITestOutputHelper output)
    {
        string? fromEnv = Environment.GetEnvironmentVariable("KINTSUGI_TEST_SEED");
        int seed = string.IsNullOrWhiteSpace(fromEnv) ? Random.Shared.Next() : int.Parse(fromEnv, CultureInfo.InvariantCulture);
        output.WriteLine($"seed {seed} (rerun with KINTSUGI_TEST_SEED={seed} to reproduce)");
        return seed;
    }

    /// <summary>Starts kintsugi against the workspace's repository and SIGKILLs it after <paramref name="delay"/>; returns whether it had already finished.</summary>
    private static async Task<bool> RunAndKillAsync(Workspace ws, TimeSpan delay, params string[] args)
    {
        var psi = new ProcessStartInfo(Cli.Command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in Cli.Command.Skip(1).Concat(["--repo", ws.Repo, "--password-file", ws.PasswordFile, "--quiet"]).Concat(args))
        {
            psi.ArgumentList.Add(a);
        }
        using var process = Process.Start(psi)!;
        process.StandardInput.Close();
        var drain = Task.WhenAll(process.StandardOutput.ReadToEndAsync(), process.StandardError.ReadToEndAsync());
        bool finished = process.WaitForExit((int)delay.TotalMilliseconds);
        if (!finished)
        {
            process.Kill(entireProcessTree: false); // SIGKILL
        }
        await process.WaitForExitAsync();
        await drain;
        return finished;
    }

    private static void Mutate(Random rng, string src, int step)
    {
        FileTree.WriteRandom(Path.Combine(src, $"step-{step:D3}.bin"), rng.Next(8, 25) << 20);
        File.WriteAllText(Path.Combine(src, "notes", "log.txt"), $"step {step}\n");
    }

    private async Task AssertRepositoryWholeAsync(Workspace ws, Dictionary<string, SortedDictionary<string, string>> expected, string src, string context)
    {
        var check = await ws.RepoAsync("check", "--read-data", "--json");
        Assert.True(check.ExitCode == 0, $"{context}: check --read-data failed\n{check}");
        // Parity groups never name a file that is gone or changed: a kill leaves at most files not yet protected.
        var repair = await ws.RepoAsync("repair", "--dry-run", "--json");
        Assert.True(repair.ExitCode == 0 && repair.Json().GetProperty("files").GetArrayLength() == 0, $"{context}: repair --dry-run found damage\n{repair}");
        foreach (var snap in await ws.SnapshotsAsync())
        {
            string id = snap.GetProperty("id").GetString()!;
            Assert.True(expected.TryGetValue(id, out var listing), $"{context}: snapshot {id[..8]} was not made by any backup of this test");
            string target = ws.PathOf("restore-" + Guid.NewGuid().ToString("N")[..8]);
            (await ws.RepoAsync("restore", id, "--target", target)).ShouldSucceed();
            FileTree.AssertSameListing(listing, FileTree.Listing(target + src), $"{context}: snapshot {id[..8]} restored");
            Directory.Delete(target, recursive: true);
        }
    }

    [Fact]
    public async Task Backups_and_prunes_killed_at_random_moments_lose_nothing_committed()
    {
        var rng = new Random(Seed(output));
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        Directory.CreateDirectory(Path.Combine(src, "notes"));
        await ws.InitAsync();
        // With parity on, kills also land while parity groups are extended, shrunk and replaced.
        (await ws.RepoAsync("parity", "set", "4+2")).ShouldSucceed();
        var expected = new Dictionary<string, SortedDictionary<string, string>>(StringComparer.Ordinal);
        int step = 0, killed = 0, completedBeforeKill = 0;

        async Task BackupAsync()
        {
            var listing = FileTree.Listing(src);
            string id = (await ws.BackupAsync(src)).GetProperty("snapshot").GetString()!;
            expected[id] = listing;
        }

        Mutate(rng, src, step++);
        var clock = Stopwatch.StartNew();
        await BackupAsync();
        // Kill points spread over a whole run, start-up included (a backup of a new step file takes about as long as this one).
        int span = Math.Max(200, (int)clock.ElapsedMilliseconds);
        output.WriteLine($"a full backup takes {span} ms here");
        for (int run = 0; run < Runs; run++)
        {
            bool prune = run % 3 == 2;
            var delay = TimeSpan.FromMilliseconds(rng.Next(span / 10, span));
            string context = $"run {run} ({(prune ? "forget --prune" : "backup")} killed after {delay.TotalMilliseconds} ms)";
            var before = (await ws.SnapshotsAsync()).Select(s => s.GetProperty("id").GetString()!).ToHashSet(StringComparer.Ordinal);
            var listing = FileTree.Listing(src);
            if (!prune)
            {
                Mutate(rng, src, step++);
                listing = FileTree.Listing(src);
            }
            bool finished = prune
                ? await RunAndKillAsync(ws, delay, "forget", "--keep-last", "2", "--prune")
                : await RunAndKillAsync(ws, delay, "backup", src);
            killed += finished ? 0 : 1;
            completedBeforeKill += finished ? 1 : 0;
            foreach (var id in (await ws.SnapshotsAsync()).Select(s => s.GetProperty("id").GetString()!).Where(id => !before.Contains(id)))
            {
                // The killed backup got as far as its snapshot: it holds the tree as it was.
                expected[id] = listing;
            }
            output.WriteLine($"{context}: {(finished ? "finished before the kill" : "killed")}");
            await AssertRepositoryWholeAsync(ws, expected, src, context);

            var next = await ws.BackupAsync(src);
            expected[next.GetProperty("snapshot").GetString()!] = FileTree.Listing(src);
            Assert.True(next.GetProperty("summary").GetProperty("bytes_read").GetInt64() <= new FileInfo(Path.Combine(src, "notes", "log.txt")).Length + (25 << 20),
                $"{context}: the backup after the kill read more than what changed since the last snapshot");
        }

        (await ws.RepoAsync("prune")).ShouldSucceed();
        var final = (await ws.RepoAsync("check", "--read-data", "--json")).ShouldSucceed().Json();
        var warnings = final.GetProperty("problems").EnumerateArray().Select(p => p.GetProperty("message").GetString()).ToList();
        Assert.True(warnings.Count == 0, "prune leaves no leftovers: " + string.Join("; ", warnings));
        await AssertRepositoryWholeAsync(ws, expected, src, "after the final prune");
        (await ws.RepoAsync("parity", "update")).ShouldSucceed();
        var parity = (await ws.RepoAsync("parity", "--json")).ShouldSucceed().Json();
        Assert.Equal(0, parity.GetProperty("unprotected_files").GetInt32());
        output.WriteLine($"{Runs} runs: {killed} killed, {completedBeforeKill} finished before their kill point");
    }

    [Fact]
    public async Task Two_backups_at_once_and_a_prune_during_a_backup_lose_nothing_either_committed()
    {
        var rng = new Random(Seed(output));
        using var ws = new Workspace();
        string a = ws.PathOf("a"), b = ws.PathOf("b");
        for (int i = 0; i < 3; i++)
        {
            FileTree.WriteRandom(Path.Combine(a, $"a{i}.bin"), rng.Next(8, 17) << 20);
            FileTree.WriteRandom(Path.Combine(b, $"b{i}.bin"), rng.Next(8, 17) << 20);
        }
        File.Copy(Path.Combine(a, "a0.bin"), Path.Combine(b, "shared.bin")); // both store the same chunks at once
        await ws.InitAsync();
        string gone = ws.PathOf("gone");
        FileTree.WriteRandom(Path.Combine(gone, "old.bin"), 4 << 20);
        await ws.BackupAsync(gone);
        (await ws.RepoAsync("forget", "--keep-tag", "keep")).ShouldSucceed(); // leaves 4 MiB for prune to remove

        var backupA = ws.RepoAsync("backup", "--json", a);
        var backupB = ws.RepoAsync("backup", "--json", b);
        // Prune starts once both backups hold their (shared) locks, then after a random pause.
        var clock = Stopwatch.StartNew();
        while (Directory.EnumerateFiles(Path.Combine(ws.Repo, "locks")).Count() < 2 && !backupA.IsCompleted && !backupB.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(10);
        }
        await Task.Delay(rng.Next(0, 200));
        var prune = await ws.RepoAsync("prune");
        var results = await Task.WhenAll(backupA, backupB);
        foreach (var r in results)
        {
            r.ShouldSucceed();
        }
        // Prune needs the repository to itself: while a backup runs it refuses with a clear line; after, it runs.
        Assert.True(prune.ExitCode is 0 or 1, $"prune during backups: {prune}");
        if (prune.ExitCode == 1)
        {
            prune.ShouldHaveNoStackTrace().StdErrShouldContain("locked");
        }
        output.WriteLine($"prune during the backups exited {prune.ExitCode}");

        (await ws.RepoAsync("prune")).ShouldSucceed();
        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed();
        foreach (var (result, src) in new[] { (results[0], a), (results[1], b) })
        {
            string id = result.Json().GetProperty("snapshot").GetString()!;
            string target = ws.PathOf("restore-" + id[..8]);
            (await ws.RepoAsync("restore", id, "--target", target)).ShouldSucceed();
            FileTree.AssertSameTree(src, target + src);
        }
    }
}
