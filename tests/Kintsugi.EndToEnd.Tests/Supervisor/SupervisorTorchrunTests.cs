using System.Diagnostics;
using System.Globalization;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// <c>kintsugi run</c> supervising <c>torchrun</c> with two ranks of examples/torchrun/train_ddp.py (DDP,
/// gloo, CPU): the supervisor sees one process, the launcher, and the ranks are its children in its
/// process group. A rank killed with SIGKILL makes torchrun exit non-zero, and the launcher is restarted
/// from the newest checkpoint; a rank frozen with SIGSTOP blocks the others in the allreduce, the
/// heartbeat goes stale, and every rank, the frozen one included, is gone before the next attempt.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class SupervisorTorchrunTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    private const string Torchrun = "/usr/bin/torchrun";
    private const int SIGSTOP = 19;

    /// <summary>Generous: on a loaded 2-core machine a launcher and two ranks take several seconds to import torch.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(180);

    private static string TrainDdpPy => Path.Combine(Cli.RepositoryRoot, "examples", "torchrun", "train_ddp.py");

    /// <summary>One rank: its pid, its rank, and its start time (field 22 of /proc/PID/stat), so a reused pid is not taken for it.</summary>
    private sealed record Rank(int Pid, int Number, string StartTicks)
    {
        public bool IsAlive => SupervisorProcess.IsAlive(Pid) && StartTicksOf(Pid) == StartTicks;

        public override string ToString() => $"rank {Number} (pid {Pid}, {(IsAlive ? "state " + StateOf(Pid) : "gone")})";
    }

    /// <summary>
    /// torchrun with the options of examples/torchrun/kintsugi.yaml (--redirects 2 --tee 2: Debian's torch 1.13
    /// launcher crashes on Python 3.11 without them; a rendezvous on a free port, so the test does not
    /// depend on port 29400 being free), with these options for train_ddp.py.
    /// </summary>
    private static string TorchrunCommand(params string[] options) => YamlList(
    [
        Torchrun, "--nnodes", "1", "--nproc_per_node", "2",
        "--rdzv_backend", "c10d", "--rdzv_endpoint", "127.0.0.1:0", "--rdzv_id", "kintsugi-test",
        "--max_restarts", "0", "--monitor_interval", "0.5", "--redirects", "2", "--tee", "2", "--log_dir", "logs",
        TrainDdpPy, .. options,
    ]);

    /// <summary>Fails at once, with a clear message, where torchrun (Debian's python3-torch, which test.sh installs) is missing.</summary>
    private static void RequireTorchrun()
    {
        RequireTorch();
        if (!File.Exists(Torchrun))
        {
            throw new XunitException($"{Torchrun} does not exist: these tests run examples/torchrun/train_ddp.py under torchrun, which Debian's python3-torch provides (./test.sh installs it)");
        }
    }

    [Fact]
    public async Task Torchrun_with_a_rank_killed_by_SIGKILL_is_restarted_from_the_newest_checkpoint_and_finishes()
    {
        RequireTorchrun();
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{TorchrunCommand("--steps", "120", "--checkpoint-every", "20", "--keep", "20", "--step-time", "0.05", "--log-every", "10")}}
                env: { OMP_NUM_THREADS: "1" }
                checkpoints: { dir: ckpt, backup: off, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 2s }
            """);
        var sw = Stopwatch.StartNew();
        var s = StartSupervisor(quiet: false);
        List<Rank> ranks = [];
        try
        {
            var seen = await s.WaitForAsync(ev => ev.Any(e => e.Is("checkpoint.written", "trainer")), "a checkpoint.written", Deadline);
            var first = OfType(seen, "process.started", "trainer", 0).Single();
            int launcher = (int)first.Long("pid")!.Value;
            ranks = await RanksOfAsync(launcher, s, seen);
            var victim = ranks.Single(r => r.Number == 0);  // rank 0: the one that writes checkpoints and prints metrics
            Output.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: launcher {launcher}, {string.Join(", ", ranks)}; kill -9 {victim.Pid}");
            Assert.True(SupervisorProcess.Kill(victim.Pid, SupervisorProcess.SIGKILL), $"kill -9 {victim.Pid} failed");

            var restarted = await s.WaitForAsync(ev => ev.Count(e => e.Is("process.started", "trainer", 0)) >= 2, "a second process.started after the rank was killed", Deadline);
            var second = OfType(restarted, "process.started", "trainer", 0)[1];
            Output.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: attempt {second.Long("attempt")} started, resuming from {second.Str("resume_from") ?? "nothing"}");
            await AssertGoneAsync(ranks, "attempt 1", s, restarted);
            var newest = NewestCheckpointBefore(second.Time);
            Check(newest is not null, "expected a checkpoint written by attempt 1 in the folder", restarted, s);

            int code = await s.WaitForExitAsync(Deadline);
            var events = await s.EventsAsync();
            Output.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: kintsugi run exited with {code}");
            Assert.True(code == 0, $"kintsugi run exited with {code}, expected 0\n{s.Describe(events)}");

            CheckOneProcessAtATime(events, "trainer", 0, s);
            var exited = OfType(events, "process.exited", "trainer", 0).Where(e => e.Long("pid") == launcher).ToList();
            Check(exited.Count == 1 && exited[0].Long("code") is long c && c != 0 && exited[0].Bool("expected") == false,
                $"expected torchrun (pid {launcher}) to exit by itself with a non-zero code once its rank was killed", events, s);
            Check(events.Any(e => e.Is("decision", "trainer", 0) && e.Id > exited[0].Id && e.Id < second.Id && e.Str("action") == "restart"),
                "expected a decision restart between torchrun's exit and attempt 2", events, s);
            var starts = OfType(events, "process.started", "trainer", 0);
            Check(starts.Count == 2 && starts[1].Long("attempt") == 2, $"expected 2 process.started (attempts 1 and 2), got {starts.Count}", events, s);
            Check(second.Str("resume_from") == newest!.Value.Path,
                $"expected attempt 2 to resume from the newest checkpoint attempt 1 left, {newest.Value.Path}; got {second.Str("resume_from") ?? "null"}", events, s);
            Check(events.Any(e => e.Is("checkpoint.written", "trainer") && e.Id > second.Id && e.Long("step") > newest.Value.Step),
                $"expected checkpoints beyond step {newest.Value.Step} after the restart", events, s);
            var last = OfType(events, "process.exited", "trainer", 0)[^1];
            Check(last.Long("pid") == second.Long("pid") && last.Long("code") == 0, "expected attempt 2 to exit with code 0", events, s);

            Assert.Contains($"[trainer/0] resumed from {newest.Value.Path} at step {newest.Value.Step}", s.StdOut, StringComparison.Ordinal);
            Assert.Contains("[trainer/0] done: step 120, loss ", s.StdOut, StringComparison.Ordinal);
            // Only rank 0 prints metrics: the last step's line comes once, not once per rank.
            Assert.Single(s.Lines, l => !l.StdErr && l.Line.Contains("KINTSUGI {\"step\": 120,", StringComparison.Ordinal));
        }
        finally
        {
            KillStragglers(ranks);
        }
    }

    [Fact]
    public async Task Torchrun_with_a_rank_frozen_by_SIGSTOP_is_caught_by_the_heartbeat_and_every_rank_is_killed()
    {
        RequireTorchrun();
        // Rank 0 touches the heartbeat at each step, from the first one on; the import and the
        // rendezvous before it (seconds on a busy machine) are the startup budget, which covers them
        // because the first check comes after stale-after (initial-delay 5s > 4s).
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{TorchrunCommand("--steps", "120", "--checkpoint-every", "20", "--keep", "20", "--step-time", "0.05", "--log-every", "10")}}
                env: { OMP_NUM_THREADS: "1" }
                checkpoints: { dir: ckpt, backup: off, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 2s }
                probes:
                  - heartbeat: { file: ckpt/.heartbeat, stale-after: 4s }
                    initial-delay: 5s
                    startup: 3m
            """);
        var sw = Stopwatch.StartNew();
        var s = StartSupervisor(quiet: false);
        List<Rank> ranks = [];
        try
        {
            var seen = await s.WaitForAsync(ev => ev.Any(e => e.Is("checkpoint.written", "trainer")), "a checkpoint.written", Deadline);
            var first = OfType(seen, "process.started", "trainer", 0).Single();
            int launcher = (int)first.Long("pid")!.Value;
            ranks = await RanksOfAsync(launcher, s, seen);
            var victim = ranks.Single(r => r.Number == 1);  // not rank 0: it is the allreduce that makes rank 0's heartbeat stop
            Output.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: launcher {launcher}, {string.Join(", ", ranks)}; kill -STOP {victim.Pid}");
            Assert.True(SupervisorProcess.Kill(victim.Pid, SIGSTOP), $"kill -STOP {victim.Pid} failed");

            var restarted = await s.WaitForAsync(ev => ev.Count(e => e.Is("process.started", "trainer", 0)) >= 2, "a second process.started after the rank was frozen", Deadline);
            var second = OfType(restarted, "process.started", "trainer", 0)[1];
            Output.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: attempt {second.Long("attempt")} started, resuming from {second.Str("resume_from") ?? "nothing"}");
            await AssertGoneAsync(ranks, "attempt 1 (the frozen rank included: SIGTERM stays pending on a stopped process, only SIGKILL removes it)", s, restarted);
            var newest = NewestCheckpointBefore(second.Time);
            Check(newest is not null, "expected a checkpoint written by attempt 1 in the folder", restarted, s);

            int code = await s.WaitForExitAsync(Deadline);
            var events = await s.EventsAsync();
            Output.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s: kintsugi run exited with {code}");
            Assert.True(code == 0, $"kintsugi run exited with {code}, expected 0\n{s.Describe(events)}");

            CheckOneProcessAtATime(events, "trainer", 0, s);
            var unhealthy = OfType(events, "replica.unhealthy", "trainer", 0);
            Check(unhealthy.Count == 1 && unhealthy[0].Str("source") == "heartbeat" && unhealthy[0].Id < second.Id,
                "expected exactly one replica.unhealthy, from the heartbeat probe, before attempt 2", events, s);
            Output.WriteLine($"heartbeat: {unhealthy[0].Str("detail")}");
            Check(events.Any(e => e.Is("decision", "trainer", 0) && e.Id > unhealthy[0].Id && e.Id < second.Id && e.Str("action") == "restart"),
                "expected a decision restart between the unhealthy replica and attempt 2", events, s);
            var exited = OfType(events, "process.exited", "trainer", 0).Where(e => e.Long("pid") == launcher).ToList();
            // torchrun forwards the SIGTERM to its ranks and waits 30 s for them; the frozen one never
            // goes, so the launcher is still there when the grace (2 s) ends and SIGKILL comes.
            Check(exited.Count == 1 && exited[0].Bool("expected") == true && exited[0].Long("signal") == SupervisorProcess.SIGKILL,
                $"expected torchrun (pid {launcher}) to be stopped by the supervisor (expected=true), by SIGKILL after the grace", events, s);
            var starts = OfType(events, "process.started", "trainer", 0);
            Check(starts.Count == 2 && starts[1].Long("attempt") == 2, $"expected 2 process.started (attempts 1 and 2), got {starts.Count}", events, s);
            Check(second.Str("resume_from") == newest!.Value.Path,
                $"expected attempt 2 to resume from the newest checkpoint attempt 1 left, {newest.Value.Path}; got {second.Str("resume_from") ?? "null"}", events, s);
            var last = OfType(events, "process.exited", "trainer", 0)[^1];
            Check(last.Long("pid") == second.Long("pid") && last.Long("code") == 0, "expected attempt 2 to exit with code 0", events, s);
            Assert.Contains($"[trainer/0] resumed from {newest.Value.Path} at step {newest.Value.Step}", s.StdOut, StringComparison.Ordinal);
            Assert.Contains("[trainer/0] done: step 120, loss ", s.StdOut, StringComparison.Ordinal);
        }
        finally
        {
            KillStragglers(ranks);
        }
    }

    /// <summary>The newest checkpoint file in the folder written before <paramref name="time"/> (the tests keep every file: --keep 20).</summary>
    private (string Path, long Step)? NewestCheckpointBefore(DateTimeOffset time)
    {
        var files = CheckpointFiles(CheckpointDir).Where(c => File.GetLastWriteTimeUtc(c.Path) < time.UtcDateTime).ToList();
        return files.Count > 0 ? files[^1] : null;
    }

    /// <summary>The two ranks torchrun <paramref name="launcher"/> started: its children running train_ddp.py, each with RANK in its environment.</summary>
    private static async Task<List<Rank>> RanksOfAsync(int launcher, SupervisorProcess s, IReadOnlyList<JournalEntry> events)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var ranks = new List<Rank>();
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                {
                    continue;
                }
                try
                {
                    string[] stat = StatFields(pid);
                    if (stat.Length < 20 || stat[1] != launcher.ToString(CultureInfo.InvariantCulture))
                    {
                        continue;
                    }
                    string cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
                    if (!cmdline.Contains("train_ddp.py", StringComparison.Ordinal))
                    {
                        continue;
                    }
                    string? rank = File.ReadAllText($"/proc/{pid}/environ").Split('\0').FirstOrDefault(v => v.StartsWith("RANK=", StringComparison.Ordinal));
                    if (rank is not null)
                    {
                        ranks.Add(new Rank(pid, int.Parse(rank["RANK=".Length..], CultureInfo.InvariantCulture), stat[19]));
                    }
                }
                catch (IOException)
                {
                    // Gone meanwhile.
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
            if (ranks.Count == 2 && ranks.Select(r => r.Number).Order().SequenceEqual([0, 1]))
            {
                return ranks;
            }
            if (sw.Elapsed > TimeSpan.FromSeconds(30))
            {
                throw new XunitException($"expected ranks 0 and 1 as children of torchrun (pid {launcher}), found: {string.Join(", ", ranks)}\n{s.Describe(events)}");
            }
            await Task.Delay(100);
        }
    }

    /// <summary>Fails unless every rank is gone within a generous deadline (a SIGKILL is delivered at once, but the machine may be busy).</summary>
    private static async Task AssertGoneAsync(IReadOnlyList<Rank> ranks, string what, SupervisorProcess s, IReadOnlyList<JournalEntry> events)
    {
        var sw = Stopwatch.StartNew();
        while (ranks.Any(r => r.IsAlive) && sw.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
        }
        var alive = ranks.Where(r => r.IsAlive).ToList();
        if (alive.Count > 0)
        {
            throw new XunitException($"ranks of {what} still run after the next attempt started: {string.Join(", ", alive)}\n{s.Describe(events)}");
        }
    }

    /// <summary>Leaves no rank behind when a test fails half-way (SIGKILL also ends a stopped process).</summary>
    private static void KillStragglers(IEnumerable<Rank> ranks)
    {
        foreach (var r in ranks.Where(r => r.IsAlive))
        {
            SupervisorProcess.Kill(r.Pid, SupervisorProcess.SIGKILL);
        }
    }

    /// <summary>The fields of /proc/PID/stat after the command name: [0] state, [1] ppid, … [19] starttime.</summary>
    private static string[] StatFields(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        int close = stat.LastIndexOf(')');
        return close < 0 ? [] : stat[(close + 2)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    private static string? StartTicksOf(int pid)
    {
        try
        {
            string[] f = StatFields(pid);
            return f.Length > 19 ? f[19] : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string StateOf(int pid)
    {
        try
        {
            string[] f = StatFields(pid);
            return f.Length > 0 ? f[0] : "?";
        }
        catch (IOException)
        {
            return "gone";
        }
    }
}
