using System.Diagnostics;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// Rollbacks whose restore cannot write into the checkpoint folder (a read-only mount, a full disk):
/// they fall back to the newest good checkpoint on disk, or give up loudly, and only start over when
/// no checkpoint before the fault exists at all. Arranging the faults needs root (a mount of its
/// own); where it is missing the test says so and passes without running.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class SupervisorRollbackFaultTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    /// <summary>
    /// Attempt 1 writes checkpoints of steps 10, 20, 30 (64 KiB each) and waits for the file GO; then
    /// (with KEEP_NEWEST=1) it deletes those of steps 10 and 20, its checkpoint folder fails as FAULT
    /// says (ro: the bind mount the test made is remounted read-only; full: the folder's tmpfs is
    /// filled), and it reports a NaN loss at step 30 (so the checkpoint of step 30 is bad) and waits.
    /// Later attempts print where they resumed from and exit 0.
    /// </summary>
    private const string FaultyTrainer = """
        import json, os, subprocess, time
        attempt = int(os.environ["KINTSUGI_ATTEMPT"])
        ckpt = os.environ["KINTSUGI_CHECKPOINT_DIR"]
        resume = os.environ.get("KINTSUGI_RESUME_FROM") or ""
        print(f"attempt {attempt}: resumed from {resume or '-'}", flush=True)
        if attempt > 1:
            raise SystemExit(0)
        for step in (10, 20, 30):
            path = os.path.join(ckpt, f"step-{step:06d}.pt")
            with open(path + ".tmp", "wb") as f:
                f.write(os.urandom(64 * 1024))
            os.replace(path + ".tmp", path)
            time.sleep(0.5)
            if step < 30:
                print("KINTSUGI " + json.dumps({"step": step, "loss": 1.0 / step}), flush=True)
        # The test says when the checkpoints of steps 10 and 20 are protected.
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.05)
        if os.environ.get("KEEP_NEWEST") == "1":
            for old in (10, 20):
                os.remove(os.path.join(ckpt, f"step-{old:06d}.pt"))
        if os.environ["FAULT"] == "ro":
            subprocess.run(["mount", "-o", "remount,ro,bind", ckpt], check=True)
        else:
            with open(os.path.join(ckpt, ".filler"), "wb", buffering=0) as f:
                for size in (1 << 20, 1 << 12, 1):
                    try:
                        while True:
                            f.write(b"\0" * size)
                    except OSError:
                        pass
        print("KINTSUGI " + json.dumps({"step": 30, "loss": float("nan")}), flush=True)
        time.sleep(60)
        """;

    private readonly List<string> _mounts = [];

    private string Ckpt(int step) => Path.Combine(CheckpointDir, $"step-{step:D6}.pt");

    private static bool Run(params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(args[0], args[1..]) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }

    /// <summary>Mounts the checkpoint folder as <paramref name="args"/> say; false (the reason written) where this machine cannot.</summary>
    private bool MountCheckpointFolder(params string[] args)
    {
        if (Environment.UserName != "root")
        {
            Output.WriteLine("not run: arranging a mount of the checkpoint folder needs root");
            return false;
        }
        Directory.CreateDirectory(CheckpointDir);
        if (!Run(["mount", .. args, CheckpointDir]))
        {
            Output.WriteLine($"not run: this machine does not allow `mount {string.Join(' ', args)}`");
            return false;
        }
        _mounts.Add(CheckpointDir);
        return true;
    }

    private void Unmount()
    {
        foreach (var mount in Enumerable.Reverse(_mounts))
        {
            if (!Run("umount", "-l", mount))
            {
                Output.WriteLine($"could not unmount {mount}");
            }
        }
        _mounts.Clear();
    }

    private void WriteTrainerConfig(string fault, bool keepNewest)
    {
        File.WriteAllText(Ws.PathOf("trainer.py"), FaultyTrainer);
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{YamlList(Python, Ws.PathOf("trainer.py"))}}
                env: { FAULT: "{{fault}}", KEEP_NEWEST: "{{(keepNewest ? "1" : "0")}}", GO: {{Quote(Ws.PathOf("go"))}} }
                checkpoints: { dir: ckpt, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 2s }
                monitors:
                  - metric: { name: loss, is: nan-or-inf }
                    then: rollback
            """);
    }

    /// <summary>Starts the supervisor and, once the checkpoints of steps 10 and 20 are protected, lets the trainer's fault happen.</summary>
    private async Task<SupervisorProcess> StartAndFaultAsync()
    {
        var s = StartSupervisor();
        await s.WaitForAsync(ev => ev.Any(e => e.Is("checkpoint.protected", "trainer") && e.Str("path") == Ckpt(10))
            && ev.Any(e => e.Is("checkpoint.protected", "trainer") && e.Str("path") == Ckpt(20)), "the checkpoints of steps 10 and 20 protected");
        File.WriteAllText(Ws.PathOf("go"), "");
        return s;
    }

    [Fact]
    public async Task A_rollback_that_cannot_write_into_a_read_only_checkpoint_folder_resumes_from_the_newest_good_checkpoint_on_disk()
    {
        if (!MountCheckpointFolder("--bind", CheckpointDir))
        {
            return;
        }
        try
        {
            WriteTrainerConfig("ro", keepNewest: false);
            var s = await StartAndFaultAsync();
            int code = await s.WaitForExitAsync();
            var events = await s.EventsAsync();
            Output.WriteLine(Dump(events));

            Check(code == 0, $"expected exit code 0, got {code}", events, s);
            var starts = OfType(events, "process.started", "trainer", 0);
            Check(starts.Count == 2, $"expected 2 process.started, got {starts.Count}", events, s);
            Check(starts[1].Str("resume_from") == Ckpt(20),
                $"expected attempt 2 to resume from {Ckpt(20)}, the newest good checkpoint on disk (the folder is read-only), not from the beginning; got {starts[1].Str("resume_from") ?? "null"}", events, s);
            var rollback = OfType(events, "action.rollback", "trainer", 0).Single();
            Check(rollback.Str("checkpoint") == Ckpt(20), $"expected the rollback to name {Ckpt(20)}", events, s);
            Check(OfType(events, "checkpoint.bad", "trainer").Select(e => e.Str("path")).SequenceEqual([Ckpt(30)]), $"expected {Ckpt(30)} marked bad, and only it", events, s);
            Check(events.Any(e => e.Is("error", "trainer") && e.Str("message") is { } m && m.Contains(Ckpt(20), StringComparison.Ordinal) && m.Contains("repository", StringComparison.Ordinal)),
                $"expected an error event saying {Ckpt(20)} could not be restored from the repository", events, s);
            Check(!OfType(events, "workload.failed").Any(), "expected no workload.failed", events, s);
            Check(File.Exists(Ckpt(20)) && File.Exists(Ckpt(30)), "the read-only folder changed", events, s);
        }
        finally
        {
            Unmount();
        }
    }

    [Fact]
    public async Task A_rollback_that_can_restore_no_good_checkpoint_into_a_full_folder_fails_the_workload_loudly_instead_of_starting_over()
    {
        if (!MountCheckpointFolder("-t", "tmpfs", "-o", "size=16m", "tmpfs"))
        {
            return;
        }
        try
        {
            // The job keeps only its newest checkpoint: the good ones before the fault are only in the repository.
            WriteTrainerConfig("full", keepNewest: true);
            var s = await StartAndFaultAsync();
            int code = await s.WaitForExitAsync();
            var events = await s.EventsAsync();
            Output.WriteLine(Dump(events));

            Check(code != 0, "expected a failed run (nonzero exit code)", events, s);
            var starts = OfType(events, "process.started", "trainer", 0);
            Check(starts.Count == 1, $"expected no second attempt (it could only start from the beginning), got {starts.Count} process.started", events, s);
            var failed = OfType(events, "workload.failed", "trainer").SingleOrDefault();
            string reason = failed?.Str("reason") ?? "";
            Check(reason.StartsWith("rollback: 2 good checkpoints known, none could be restored", StringComparison.Ordinal) && reason.Contains(Ckpt(20), StringComparison.Ordinal) && reason.Contains(Ckpt(10), StringComparison.Ordinal),
                $"expected workload.failed naming both good checkpoints tried; got reason '{reason}'", events, s);
            Check(events.Count(e => e.Is("error", "trainer") && e.Str("message") is { } m && m.Contains("could not be restored", StringComparison.Ordinal)) >= 2,
                "expected an error event for each failed restore", events, s);
            Check(!OfType(events, "action.rollback", "trainer").Any(), "expected no action.rollback (nothing was rolled back to)", events, s);
            Check(OfType(events, "checkpoint.bad", "trainer").Select(e => e.Str("path")).SequenceEqual([Ckpt(30)]), $"expected {Ckpt(30)}, written after the fault, marked bad all the same", events, s);
        }
        finally
        {
            Unmount();
        }
    }

    [Fact]
    public async Task A_rollback_with_no_checkpoint_before_the_fault_starts_over_and_says_why()
    {
        File.WriteAllText(Ws.PathOf("early.py"), """
            import json, os, time
            attempt = int(os.environ["KINTSUGI_ATTEMPT"])
            print(f"attempt {attempt}: resumed from {os.environ.get('KINTSUGI_RESUME_FROM') or '-'}", flush=True)
            if attempt > 1:
                raise SystemExit(0)
            print("KINTSUGI " + json.dumps({"step": 5, "loss": float("nan")}), flush=True)
            time.sleep(60)
            """);
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{YamlList(Python, Ws.PathOf("early.py"))}}
                checkpoints: { dir: ckpt, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 2s }
                monitors:
                  - metric: { name: loss, is: nan-or-inf }
                    then: rollback
            """);
        var s = StartSupervisor();
        int code = await s.WaitForExitAsync();
        var events = await s.EventsAsync();

        Check(code == 0, $"expected exit code 0, got {code}", events, s);
        var rollback = OfType(events, "action.rollback", "trainer", 0).Single();
        Check(rollback.Str("checkpoint") is null && rollback.Str("reason") == "no checkpoint before the fault (step 5)",
            "expected action.rollback with checkpoint null and reason 'no checkpoint before the fault (step 5)'", events, s);
        var starts = OfType(events, "process.started", "trainer", 0);
        Check(starts.Count == 2 && string.IsNullOrEmpty(starts[1].Str("resume_from")), "expected attempt 2 to start from the beginning", events, s);
    }
}
