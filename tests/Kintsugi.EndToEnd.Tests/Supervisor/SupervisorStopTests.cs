using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// How <c>kintsugi run</c> ends: a stop signal runs the whole stop sequence however long the
/// workloads' grace, a second one shortens it to SIGKILL, and a second supervisor of the same
/// journal is refused instead of taking the first one's workloads over.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class SupervisorStopTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    /// <summary>Takes 4 s to exit on SIGTERM (as a job saving its state would), writing its pid first and "clean" last.</summary>
    private const string SlowToStop = """
        import os, signal, sys, time
        folder = sys.argv[1]
        def on_term(*_):
            time.sleep(4)
            open(os.path.join(folder, "clean"), "w").close()
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        with open(os.path.join(folder, "pid.tmp"), "w") as f:
            f.write(str(os.getpid()))
        os.replace(os.path.join(folder, "pid.tmp"), os.path.join(folder, "pid"))
        while True:
            time.sleep(0.05)
        """;

    private async Task<(SupervisorProcess Supervisor, int WorkloadPid)> StartSlowToStopAsync()
    {
        File.WriteAllText(Ws.PathOf("slow.py"), SlowToStop);
        WriteConfig($$"""
            workloads:
              slow:
                command: {{YamlList(Python, Ws.PathOf("slow.py"), Ws.Root)}}
                stop: { signal: SIGTERM, grace: 20s }
            """);
        var s = StartSupervisor();
        await s.WaitForAsync(_ => File.Exists(Ws.PathOf("pid")), "the workload to write its pid");
        return (s, int.Parse(File.ReadAllText(Ws.PathOf("pid")), System.Globalization.CultureInfo.InvariantCulture));
    }

    [Theory]
    [InlineData(SupervisorProcess.SIGTERM)]
    [InlineData(SupervisorProcess.SIGINT)]
    public async Task A_stop_signal_waits_out_the_workloads_grace_and_leaves_nothing_running(int signal)
    {
        var (s, pid) = await StartSlowToStopAsync();

        s.Signal(signal);
        int code = await s.WaitForExitAsync(TimeSpan.FromSeconds(60));

        var events = await s.EventsAsync();
        Check(!SupervisorProcess.IsAlive(pid), $"the workload (pid {pid}) still runs after kintsugi run exited: orphaned", events, s);
        Check(File.Exists(Ws.PathOf("clean")), "the workload did not finish its SIGTERM handler (4 s) before kintsugi run exited", events, s);
        Check(code == 0, $"kintsugi run exited with {code} after signal {signal}, expected 0 (a clean stop)", events, s);
        var exited = events.LastOrDefault(e => e.Is("process.exited", "slow") && e.Long("pid") == pid);
        Check(exited is not null && exited.Long("code") == 0, "expected the workload's process.exited with code 0 (its handler's exit)", events, s);
        var stopped = events.LastOrDefault(e => e.Type == "supervisor.stopped");
        Check(stopped is not null && stopped.Id > exited!.Id && stopped.Str("reason") == "stopped", "expected supervisor.stopped (reason stopped) after the exit", events, s);
    }

    [Fact]
    public async Task A_second_stop_signal_kills_the_workloads_at_once_and_still_records_their_end()
    {
        var (s, pid) = await StartSlowToStopAsync();

        s.Signal(SupervisorProcess.SIGINT);
        await Task.Delay(500);
        s.Signal(SupervisorProcess.SIGINT);
        int code = await s.WaitForExitAsync(TimeSpan.FromSeconds(60));

        var events = await s.EventsAsync();
        Check(!SupervisorProcess.IsAlive(pid), $"the workload (pid {pid}) still runs after kintsugi run exited: orphaned", events, s);
        Check(!File.Exists(Ws.PathOf("clean")), "the workload finished its 4 s handler: the second SIGINT did not kill it", events, s);
        var exited = events.LastOrDefault(e => e.Is("process.exited", "slow") && e.Long("pid") == pid);
        Check(exited is not null && exited.Long("signal") == 9, "expected the workload's process.exited with signal 9", events, s);
        Check(events.Any(e => e.Type == "supervisor.stopped" && e.Id > exited!.Id), "expected supervisor.stopped after the exit", events, s);
        Check(code == 0, $"kintsugi run exited with {code}, expected 0", events, s);
    }

    [Fact]
    public async Task A_second_supervisor_of_the_same_config_is_refused_naming_the_first_and_touches_nothing()
    {
        var (s, pid) = await StartSlowToStopAsync();
        var before = await s.EventsAsync();
        long supervisorPid = before.Last(e => e.Type == "supervisor.started").Long("pid")!.Value;

        var second = await Ws.RunAsync("run", "--config", ConfigPath);

        string line = second.ShouldFailCleanly(1);
        Assert.Contains($"pid {supervisorPid}", line, StringComparison.Ordinal);
        Assert.Contains("already supervising", line, StringComparison.Ordinal);
        var events = await s.EventsAsync();
        Check(SupervisorProcess.IsAlive(pid), "the first supervisor's workload was stopped by the second", events, s);
        Check(OfType(events, "process.started").Count == 1 && OfType(events, "supervisor.started").Count == 1,
            "the refused supervisor started something or journaled a start", events, s);
        Check(!s.HasExited, "the first supervisor exited", events, s);
    }
}
