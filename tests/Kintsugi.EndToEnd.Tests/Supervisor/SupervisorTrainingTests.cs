using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// <c>kintsugi run</c> recovering the real PyTorch job of examples/train from each fault it is meant
/// to survive, in real time, judged by the journal (<c>kintsugi events --json</c>) and the job's output.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed partial class SupervisorTrainingTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    [GeneratedRegex(@"done: step (\d+), loss (\S+)")]
    private static partial Regex DoneLine();

    [Fact]
    public async Task A_trainer_killed_with_SIGKILL_is_restarted_from_its_newest_checkpoint_and_finishes()
    {
        RequireTorch();
        // 1.5 s between checkpoints: the kill comes right after one is journaled, long before the next.
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{Train("--steps", "90", "--checkpoint-every", "30", "--step-time", "0.05", "--log-every", "5")}}
                checkpoints: { dir: ckpt, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
            """);
        var s = StartSupervisor(quiet: false);
        var seen = await s.WaitForAsync(ev => ev.Any(e => e.Is("checkpoint.written", "trainer")), "a checkpoint.written");
        int pid = (int)OfType(seen, "process.started", "trainer", 0).Single().Long("pid")!.Value;

        Assert.True(SupervisorProcess.Kill(pid, SupervisorProcess.SIGKILL), $"kill -9 {pid} failed");
        var sw = Stopwatch.StartNew();
        while (SupervisorProcess.IsAlive(pid) && sw.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(10);
        }
        var newestAtKill = CheckpointFiles(CheckpointDir)[^1];
        Output.WriteLine($"killed trainer pid {pid}; newest checkpoint then: {newestAtKill.Path}");

        int code = await s.WaitForExitAsync();
        var events = await s.EventsAsync();
        Assert.True(code == 0, $"kintsugi run exited with {code}, expected 0\n{s.Describe(events)}");

        CheckOneProcessAtATime(events, "trainer", 0, s);
        var exited = OfType(events, "process.exited", "trainer", 0).Where(e => e.Long("pid") == pid).ToList();
        Check(exited.Count == 1 && exited[0].Long("signal") == 9 && exited[0].Long("code") is null && exited[0].Bool("expected") == false,
            $"expected one process.exited of pid {pid} with signal 9, expected=false", events, s);
        Check(events.Any(e => e.Is("decision", "trainer", 0) && e.Id > exited[0].Id && e.Str("action") == "restart"),
            "expected a decision restart after the kill", events, s);
        var starts = OfType(events, "process.started", "trainer", 0);
        Check(starts.Count == 2, $"expected 2 process.started, got {starts.Count}", events, s);
        var second = starts[1];
        Check(second.Long("attempt") == 2, "expected the second process.started to be attempt 2", events, s);
        Check(second.Str("resume_from") == newestAtKill.Path,
            $"expected attempt 2 to resume from the newest checkpoint at the kill, {newestAtKill.Path}; got {second.Str("resume_from") ?? "null"}", events, s);
        Check(events.Any(e => e.Is("checkpoint.written", "trainer") && e.Id > second.Id && e.Long("step") > newestAtKill.Step),
            $"expected checkpoints beyond step {newestAtKill.Step} after the restart", events, s);
        var last = OfType(events, "process.exited", "trainer", 0)[^1];
        Check(last.Long("pid") == second.Long("pid") && last.Long("code") == 0, "expected attempt 2 to exit with code 0", events, s);

        Assert.Contains($"[trainer/0] resumed from {newestAtKill.Path} at step {newestAtKill.Step}", s.StdOut, StringComparison.Ordinal);
        Assert.Contains("[trainer/0] done: step 90, loss ", s.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_trainer_killed_just_after_writing_a_checkpoint_resumes_from_that_checkpoint()
    {
        RequireTorch();
        // The job saves step-000030.pt (written as .tmp, then renamed: complete at once) and is killed
        // at the start of step 31, 50 ms later. That checkpoint is the newest that exists.
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{Train("--steps", "40", "--checkpoint-every", "10", "--step-time", "0.05", "--log-every", "1000")}}
                env: { FAULT_KILL_AT_STEP: "31" }
                checkpoints: { dir: ckpt, backup: off, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
            """);
        var s = StartSupervisor(quiet: false);
        int code = await s.WaitForExitAsync(TimeSpan.FromSeconds(90));
        var events = await s.EventsAsync();
        Assert.True(code == 0, $"kintsugi run exited with {code}, expected 0\n{s.Describe(events)}");
        Assert.Contains("fault injection: SIGKILL at step 31", s.StdErr, StringComparison.Ordinal);
        var starts = OfType(events, "process.started", "trainer", 0);
        Check(starts.Count == 2 && starts[1].Long("attempt") == 2, "expected attempts 1 and 2", events, s);
        Check(OfType(events, "process.exited", "trainer", 0)[0].Long("signal") == 9, "expected attempt 1 killed by signal 9", events, s);
        string expected = Path.Combine(CheckpointDir, "step-000030.pt");
        Check(starts[1].Str("resume_from") == expected,
            $"expected attempt 2 to resume from {expected}, the newest checkpoint when attempt 1 was killed; got {starts[1].Str("resume_from") ?? "null"}", events, s);
    }

    [Fact]
    public async Task A_hung_trainer_is_found_by_its_heartbeat_and_the_next_attempt_finishes()
    {
        RequireTorch();
        // The torch import (1-3 s on a busy 2-core machine) touches no heartbeat, which with stale-after
        // 2s would look like a hang: the probe starts after 6 s, and the hang comes later (step 120 at
        // 0.05 s a step, after the import).
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{Train("--steps", "150", "--checkpoint-every", "50", "--step-time", "0.05", "--log-every", "1")}}
                env: { FAULT_HANG_AT_STEP: "120" }
                checkpoints: { dir: ckpt, backup: off, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 5s }
                probes:
                  - heartbeat: { file: .heartbeat, stale-after: 2s }
                    initial-delay: 6s
            """);
        var s = StartSupervisor(quiet: false);
        int code = await s.WaitForExitAsync(TimeSpan.FromSeconds(90));
        var events = await s.EventsAsync();
        Assert.True(code == 0, $"kintsugi run exited with {code}, expected 0\n{s.Describe(events)}");

        CheckOneProcessAtATime(events, "trainer", 0, s);
        var unhealthy = OfType(events, "replica.unhealthy", "trainer", 0);
        Check(unhealthy.Count == 1 && unhealthy[0].Str("source") == "heartbeat", "expected exactly one replica.unhealthy, from the heartbeat probe", events, s);
        var starts = OfType(events, "process.started", "trainer", 0);
        Check(starts.Count == 2 && starts[1].Long("attempt") == 2, "expected two process.started (attempts 1 and 2)", events, s);
        Check(events.Any(e => e.Is("decision", "trainer", 0) && e.Id > unhealthy[0].Id && e.Id < starts[1].Id && e.Str("action") == "restart"),
            "expected a decision restart between the unhealthy replica and attempt 2", events, s);
        var exits = OfType(events, "process.exited", "trainer", 0);
        Check(exits.Count == 2 && exits[0].Long("pid") == starts[0].Long("pid") && exits[0].Bool("expected") == true,
            "expected the hung attempt 1 to be stopped by the supervisor (expected=true)", events, s);
        Check(exits[1].Long("pid") == starts[1].Long("pid") && exits[1].Long("code") == 0, "expected attempt 2 to finish with code 0", events, s);
        Assert.Contains("[trainer/0] done: step 150, loss ", s.StdOut, StringComparison.Ordinal);

        // Hang detection time: from the hang (the job's notice, printed right after its last heartbeat) to replica.unhealthy.
        var hang = s.Lines.First(l => l.Line.Contains("fault injection: hanging at step 120", StringComparison.Ordinal));
        var lastMetric = s.Lines.Last(l => l.Time <= hang.Time && l.Line.Contains("KINTSUGI {\"step\"", StringComparison.Ordinal));
        double detection = (unhealthy[0].Time - hang.Time).TotalSeconds;
        Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"hang detection: {detection:F2} s from the hang notice (last metric line {(unhealthy[0].Time - lastMetric.Time).TotalSeconds:F2} s before replica.unhealthy) with stale-after 2s, probe every 0.5s; probe detail: {unhealthy[0].Str("detail")}"));
        Assert.True(detection > 0, $"replica.unhealthy ({unhealthy[0].Time:O}) came before the hang ({hang.Time:O})\n{s.Describe(events)}");
    }

    [Fact]
    public async Task A_NaN_loss_rolls_back_to_the_last_good_checkpoint_skips_the_bad_batch_and_finishes_finite()
    {
        RequireTorch();
        const int nanStep = 45;
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{Train("--steps", "100", "--checkpoint-every", "10", "--step-time", "0.03", "--log-every", "1")}}
                env: { FAULT_NAN_AT_STEP: "{{nanStep}}" }
                checkpoints: { dir: ckpt, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                monitors:
                  - metric: { name: loss, is: nan-or-inf }
                    then: rollback
            """);
        var s = StartSupervisor(quiet: false);
        int code = await s.WaitForExitAsync(TimeSpan.FromSeconds(90));
        var events = await s.EventsAsync();
        Assert.True(code == 0, $"kintsugi run exited with {code}, expected 0\n{s.Describe(events)}");

        var rollbacks = OfType(events, "action.rollback", "trainer", 0);
        Check(rollbacks.Count == 1, $"expected exactly one action.rollback, got {rollbacks.Count}", events, s);
        var rollback = rollbacks[0];
        string? restored = rollback.Str("checkpoint");
        long? restoredStep = StepOf(restored);
        long skip = rollback.Long("skip_steps") ?? 0;
        Check(restoredStep is long rs && rs < nanStep, $"expected the rollback to restore a checkpoint below step {nanStep}, got {restored ?? "null"}", events, s);
        Check(skip > 0 && restoredStep + skip >= nanStep, $"expected skip_steps > 0 reaching the NaN step: {restoredStep} + {skip} >= {nanStep}", events, s);
        Output.WriteLine($"rolled back to {restored} (step {restoredStep}), skipping {skip} steps; marked bad: [{string.Join(", ", rollback.Strings("marked_bad"))}]");

        // Every checkpoint of step >= the NaN step known before the rollback holds NaN weights: each is marked bad.
        var badBefore = OfType(events, "checkpoint.written", "trainer").Where(e => e.Id < rollback.Id && e.Long("step") >= nanStep).Select(e => e.Str("path")).ToList();
        var marked = OfType(events, "checkpoint.bad", "trainer").Select(e => e.Str("path")).ToHashSet();
        Check(badBefore.All(marked.Contains), $"expected checkpoint.bad for {string.Join(", ", badBefore)}", events, s);
        Check(marked.All(p => StepOf(p) >= nanStep), "expected checkpoint.bad only for checkpoints at or after the NaN step", events, s);

        var starts = OfType(events, "process.started", "trainer", 0);
        Check(starts.Count == 2, $"expected 2 process.started, got {starts.Count}", events, s);
        Check(starts[1].Id > rollback.Id && starts[1].Long("attempt") == 2 && starts[1].Str("resume_from") == restored && starts[1].Long("skip_steps") == skip,
            $"expected attempt 2 to resume from {restored} skipping {skip} steps", events, s);
        Check(events.Any(e => e.Is("signal", "trainer", 0) && e.Str("kind") == "metric" && e.Id < rollback.Id), "expected a metric signal before the rollback", events, s);

        var done = DoneLine().Match(s.StdOut);
        Assert.True(done.Success, $"no 'done:' line\n{s.Describe(events)}");
        Assert.Equal("100", done.Groups[1].Value);
        Assert.True(double.TryParse(done.Groups[2].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double loss) && double.IsFinite(loss),
            $"expected a finite final loss, got '{done.Groups[2].Value}'\n{s.Describe(events)}");
        Assert.Contains($"[trainer/0] resumed from {restored} at step {restoredStep}, skipping {skip} steps", s.StdOut, StringComparison.Ordinal);

        // The checkpoints the resumed attempt writes afterwards are checkpoints like any other: journaled (and protected).
        var after = OfType(events, "checkpoint.written", "trainer").Where(e => e.Id > starts[1].Id).Select(e => e.Long("step")).ToHashSet();
        var expected = Enumerable.Range(1, 10).Select(i => (long)i * 10).Where(st => st > restoredStep).ToList();
        var missing = expected.Where(st => !after.Contains(st)).ToList();
        Check(missing.Count == 0, $"expected a checkpoint.written after the rollback for each checkpoint attempt 2 wrote (steps {string.Join(", ", expected)}); missing: {string.Join(", ", missing)}", events, s);
    }

    [Fact]
    public async Task CUDA_out_of_memory_halves_the_batch_size_until_the_job_fits()
    {
        RequireTorch();
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{Train("--steps", "20", "--checkpoint-every", "0", "--log-every", "10")}}
                env: { BATCH_SIZE: "64", FAULT_OOM_IF_BATCH_ABOVE: "16" }
                restart:
                  backoff: { initial: 100ms }
                monitors:
                  - log: "CUDA out of memory"
                    then: { restart: { adjust: { env: { BATCH_SIZE: halve } } } }
            """);
        var s = StartSupervisor(quiet: false);
        int code = await s.WaitForExitAsync(TimeSpan.FromSeconds(90));
        var events = await s.EventsAsync();
        Assert.True(code == 0, $"kintsugi run exited with {code}, expected 0\n{s.Describe(events)}");

        CheckOneProcessAtATime(events, "trainer", 0, s);
        var restarts = OfType(events, "action.restart", "trainer", 0);
        Check(restarts.Count == 2, $"expected exactly 2 action.restart, got {restarts.Count}", events, s);
        Assert.Equal(["env BATCH_SIZE 64 -> 32"], restarts[0].Strings("adjustments"));
        Assert.Equal(["env BATCH_SIZE 32 -> 16"], restarts[1].Strings("adjustments"));
        var starts = OfType(events, "process.started", "trainer", 0);
        Check(starts.Count == 3, $"expected 3 process.started, got {starts.Count}", events, s);
        Check(starts.Select(e => e.Long("attempt")).SequenceEqual([1L, 2L, 3L]), "expected attempts 1, 2, 3", events, s);
        Check(starts[^1].Property("env") is { } env && env.TryGetProperty("BATCH_SIZE", out var b) && b.GetString() == "16",
            "expected the last process.started env to show BATCH_SIZE 16", events, s);
        Check(OfType(events, "process.exited", "trainer", 0)[^1].Long("code") == 0, "expected the last attempt to exit with 0", events, s);
        Assert.Contains("attempt 3, batch_size 16", s.StdOut, StringComparison.Ordinal);
        Assert.Contains("[trainer/0] done: step 20, loss ", s.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_supervisor_killed_with_SIGKILL_and_started_again_carries_on_from_the_newest_checkpoint()
    {
        RequireTorch();
        // --log-every 1000: the job prints (almost) nothing, so it outlives its dead supervisor's pipe
        // and keeps training and writing checkpoints, as an orphan does.
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{Train("--steps", "400", "--checkpoint-every", "80", "--step-time", "0.05", "--log-every", "1000")}}
                checkpoints: { dir: ckpt, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 5s }
            """);
        // Under a subreaper that reaps at once, as a normal init does: a stopped orphan is gone from
        // /proc at once, not a zombie for the second or two this VM's init takes to reap it.
        var first = StartSupervisor(quiet: true, subreaper: true);
        // Wait for a checkpoint.protected of the newest checkpoint on disk: everything written so far is
        // protected. A checkpoint every 4 s, so that a backup slowed by a loaded machine keeps up (at one
        // every 1.2 s, the job sometimes finished before this held, and the supervisor with it).
        var seen = await first.WaitForAsync(ev =>
        {
            var files = CheckpointFiles(CheckpointDir);
            return files.Count > 0 && ev.Any(e => e.Is("checkpoint.protected", "trainer") && e.Str("path") == files[^1].Path);
        }, "a checkpoint.protected of the newest checkpoint");
        int supervisorPid = (int)OfType(seen, "supervisor.started").Single().Long("pid")!.Value;
        var orphan = OfType(seen, "process.started", "trainer", 0).Single();
        int orphanPid = (int)orphan.Long("pid")!.Value;

        Assert.True(SupervisorProcess.Kill(supervisorPid, SupervisorProcess.SIGKILL), $"kill -9 {supervisorPid} failed");
        var sw = Stopwatch.StartNew();
        while (SupervisorProcess.IsAlive(supervisorPid) && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20);
        }
        var beforeRestart = await first.EventsAsync();
        var protectedBefore = OfType(beforeRestart, "checkpoint.protected", "trainer").Select(e => e.Str("path")).ToList();
        Assert.True(SupervisorProcess.IsAlive(orphanPid), $"the trainer (pid {orphanPid}) died with its supervisor; it runs in its own session and should not\n{first.Describe(beforeRestart)}");
        // The orphan goes on training: let it write a checkpoint no supervisor watched.
        var newestBefore = CheckpointFiles(CheckpointDir)[^1];
        sw.Restart();
        while (CheckpointFiles(CheckpointDir)[^1].Step == newestBefore.Step && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
        }
        Output.WriteLine($"supervisor {supervisorPid} killed; orphan {orphanPid} went on from {newestBefore.Path} to {CheckpointFiles(CheckpointDir)[^1].Path}");

        var second = StartSupervisor(quiet: false);
        var carried = await second.WaitForAsync(ev => ev.Count(e => e.Is("process.started", "trainer", 0)) >= 2, "a process.started after the supervisor restart");
        var newestAtRestart = CheckpointFiles(CheckpointDir).Where(c => !OfType(carried, "checkpoint.bad", "trainer").Any(b => b.Str("path") == c.Path)).Last();
        int code = await second.WaitForExitAsync(TimeSpan.FromSeconds(90));
        var events = await second.EventsAsync();
        Assert.True(code == 0, $"the second kintsugi run exited with {code}, expected 0\n{second.Describe(events)}");

        var supervisors = OfType(events, "supervisor.started");
        Check(supervisors.Count == 2 && supervisors[1].Bool("resumed") == true && supervisors[1].Long("pid") == second.Pid,
            "expected a second supervisor.started with resumed=true", events, second);
        var orphanExit = OfType(events, "process.exited", "trainer", 0).Where(e => e.Long("pid") == orphanPid).ToList();
        Check(orphanExit.Count == 1 && orphanExit[0].Bool("expected") == true && orphanExit[0].Id > supervisors[1].Id,
            $"expected the orphan (pid {orphanPid}) to be stopped: one process.exited expected=true after the second supervisor.started", events, second);
        Assert.False(SupervisorProcess.IsAlive(orphanPid), $"the orphan {orphanPid} still runs");
        var starts = OfType(events, "process.started", "trainer", 0);
        Check(starts.Count == 2, $"expected 2 process.started, got {starts.Count}", events, second);
        var next = starts[1];
        Check(next.Id > orphanExit[0].Id && next.Long("attempt") == orphan.Long("attempt") + 1,
            $"expected attempt {orphan.Long("attempt") + 1} after the orphan was stopped", events, second);
        Check(!events.Any(e => e.Type == "action.restart"), "expected no action.restart: a supervisor restart is no restart of the workload (budget not consumed)", events, second);
        var repeated = OfType(events, "checkpoint.protected", "trainer").Where(e => e.Id > supervisors[1].Id && protectedBefore.Contains(e.Str("path"))).ToList();
        Check(repeated.Count == 0, $"expected no checkpoint.protected repeated for a path protected before the restart: {string.Join(", ", repeated.Select(e => e.Str("path")))}", events, second);
        Check(OfType(events, "process.exited", "trainer", 0)[^1].Long("code") == 0, "expected the new attempt to finish with exit code 0", events, second);
        Assert.Contains("[trainer/0] done: step 400, loss ", second.StdOut, StringComparison.Ordinal);
        Output.WriteLine(JournalReader.Dump(events.Where(e => e.Id >= supervisors[1].Id).Take(12)));
        Check(next.Str("resume_from") == newestAtRestart.Path,
            $"expected the new attempt to resume from the newest checkpoint, {newestAtRestart.Path}; got {next.Str("resume_from") ?? "null"}", events, second);
    }
}
