using System.Diagnostics;
using System.Globalization;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// 'protection: priority': checkpoints are backed up by a helper process (`kintsugi protect-worker`)
/// whose every thread runs at a lower CPU priority (nice) and I/O priority than the supervisor and the
/// workload, as read back from the kernel (/proc and ioprio_get through `ionice -p`). The helper that
/// dies is replaced at the next checkpoint; the helper of a supervisor killed with SIGKILL ends too.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class SupervisorProtectionPriorityTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    /// <summary>Writes checkpoint N (1 MiB) each time the file GO-N appears, up to 3, then exits 0.</summary>
    private const string Writer = """
        import os, sys, time
        ckpt = os.environ["KINTSUGI_CHECKPOINT_DIR"]
        go = os.environ["GO"]
        for step in (1, 2, 3):
            if step > 1:
                while not os.path.exists(f"{go}-{step}"):
                    time.sleep(0.05)
            path = os.path.join(ckpt, f"step-{step:06d}.pt")
            with open(path + ".tmp", "wb") as f:
                f.write(os.urandom(1 << 20))
            os.replace(path + ".tmp", path)
        """;

    private void WriteWriterConfig(string protection)
    {
        File.WriteAllText(Ws.PathOf("writer.py"), Writer);
        WriteConfig($$"""
            {{protection}}
            workloads:
              writer:
                command: {{YamlList(Python, Ws.PathOf("writer.py"))}}
                env: { GO: {{Quote(Ws.PathOf("go"))}} }
                checkpoints: { dir: ckpt, settle: 100ms }
            """);
    }

    private string Ckpt(int step) => Path.Combine(CheckpointDir, $"step-{step:D6}.pt");

    private static bool Protected(IEnumerable<JournalEntry> events, string path) => events.Any(e => e.Is("checkpoint.protected", "writer") && e.Str("path") == path);

    [Fact]
    public async Task Checkpoints_are_backed_up_by_a_helper_at_low_CPU_and_IO_priority_that_is_replaced_when_it_dies_and_ends_with_the_supervisor()
    {
        WriteWriterConfig("");
        var s = StartSupervisor();
        var events = await s.WaitForAsync(ev => Protected(ev, Ckpt(1)), "checkpoint 1 protected");
        int worker = FindWorker(s.Pid) ?? throw new XunitException($"no `kintsugi protect-worker` child of the supervisor (pid {s.Pid})\n{s.Describe(events)}");

        // Every thread of the helper: nice 10, best-effort I/O at level 7; the supervisor's own threads untouched.
        var nices = ThreadNices(worker);
        Check(nices.Count > 1 && nices.All(n => n == 10), $"expected every thread of the helper (pid {worker}) at nice 10; got {string.Join(", ", nices)}", events, s);
        var io = IoPriorities(worker);
        Check(io.Count > 0 && io.All(p => p == "best-effort: prio 7"), $"expected every thread of the helper at I/O priority best-effort 7; got {string.Join(" | ", io.Distinct())}", events, s);
        var own = ThreadNices(s.Pid);
        Check(own.All(n => n == 0), $"expected the supervisor's own threads at nice 0; got {string.Join(", ", own)}", events, s);

        // The helper killed: the next checkpoint is protected all the same, by a new helper.
        Check(SupervisorProcess.Kill(worker, SupervisorProcess.SIGKILL), $"could not kill the helper {worker}", events, s);
        File.WriteAllText(Ws.PathOf("go") + "-2", "");
        events = await s.WaitForAsync(ev => Protected(ev, Ckpt(2)), "checkpoint 2 protected after the helper was killed");
        int second = FindWorker(s.Pid) ?? throw new XunitException($"no helper after checkpoint 2\n{s.Describe(events)}");
        Check(second != worker, $"expected a new helper after pid {worker} was killed; the same pid runs", events, s);
        Check(ThreadNices(second).All(n => n == 10), "expected the new helper's threads at nice 10", events, s);

        // The supervisor killed with SIGKILL: its helper sees stdin close and ends (no orphan backing up for good).
        s.Signal(SupervisorProcess.SIGKILL);
        var clock = Stopwatch.StartNew();
        while (SupervisorProcess.IsAlive(second) && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
        }
        bool orphan = SupervisorProcess.IsAlive(second);
        if (orphan)
        {
            SupervisorProcess.Kill(second, SupervisorProcess.SIGKILL);
        }
        Check(!orphan, $"expected the helper (pid {second}) to end after its supervisor was killed; it still ran 30 s later", events, s);
    }

    [Fact]
    public async Task Idle_priority_puts_the_helper_in_the_idle_IO_class_and_normal_priority_backs_up_inside_the_supervisor()
    {
        WriteWriterConfig("protection: { priority: idle, limit-upload: 50M }");
        var s = StartSupervisor();
        var events = await s.WaitForAsync(ev => Protected(ev, Ckpt(1)), "checkpoint 1 protected");
        int worker = FindWorker(s.Pid) ?? throw new XunitException($"no `kintsugi protect-worker` child of the supervisor (pid {s.Pid})\n{s.Describe(events)}");
        var nices = ThreadNices(worker);
        Check(nices.All(n => n == 19), $"expected every thread of the helper at nice 19; got {string.Join(", ", nices)}", events, s);
        var io = IoPriorities(worker);
        Check(io.Count > 0 && io.All(p => p.StartsWith("idle", StringComparison.Ordinal)), $"expected every thread of the helper in the idle I/O class; got {string.Join(" | ", io.Distinct())}", events, s);
        File.WriteAllText(Ws.PathOf("go") + "-2", "");
        File.WriteAllText(Ws.PathOf("go") + "-3", "");
        int code = await s.WaitForExitAsync();
        events = await s.EventsAsync();
        Check(code == 0 && Protected(events, Ckpt(3)), $"expected exit 0 with checkpoint 3 protected; exit {code}", events, s);
        Check(!SupervisorProcess.IsAlive(worker), $"expected the helper (pid {worker}) gone once the supervisor exited", events, s);

        // 'normal': no helper; the supervisor backs up itself.
        Directory.Delete(CheckpointDir, recursive: true);
        File.Delete(Ws.PathOf("go") + "-2");
        File.Delete(Ws.PathOf("go") + "-3");
        WriteWriterConfig("protection: { priority: normal }");
        s = StartSupervisor();
        events = await s.WaitForAsync(ev => ev.Count(e => e.Is("checkpoint.protected", "writer")) >= 4, "checkpoint 1 of the second run protected");
        Check(FindWorker(s.Pid) is null, "expected no helper with 'priority: normal'", events, s);
        File.WriteAllText(Ws.PathOf("go") + "-2", "");
        File.WriteAllText(Ws.PathOf("go") + "-3", "");
        code = await s.WaitForExitAsync();
        Check(code == 0, $"expected exit 0, got {code}", await s.EventsAsync(), s);
    }

    /// <summary>The pid of the supervisor's `kintsugi protect-worker` child, or null.</summary>
    private static int? FindWorker(int supervisor)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                continue;
            }
            try
            {
                if (ParentOf(pid) == supervisor && File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0').Contains("protect-worker"))
                {
                    return pid;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // It ended meanwhile.
            }
        }
        return null;
    }

    /// <summary>Fields of /proc/PID[/task/TID]/stat after the command name (which may hold spaces and parentheses).</summary>
    private static string[] StatFields(string statPath)
    {
        string stat = File.ReadAllText(statPath);
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    }

    // After the name: state is field 3 of stat(5), so field N is at index N - 3.
    private static int ParentOf(int pid) => int.Parse(StatFields($"/proc/{pid}/stat")[4 - 3], CultureInfo.InvariantCulture);

    private static List<int> ThreadNices(int pid) =>
        [.. Directory.EnumerateDirectories($"/proc/{pid}/task").Select(t => int.Parse(StatFields(Path.Combine(t, "stat"))[19 - 3], CultureInfo.InvariantCulture))];

    /// <summary>Each thread's I/O priority as util-linux's `ionice -p TID` tells it (ioprio_get).</summary>
    private static List<string> IoPriorities(int pid)
    {
        var result = new List<string>();
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            using var p = Process.Start(new ProcessStartInfo("ionice", ["-p", Path.GetFileName(task)]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            if (p.ExitCode == 0)
            {
                result.Add(text);
            }
        }
        return result;
    }
}
