using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// What a start is: healthy only once the workload shows progress (without probes), a program that
/// cannot be executed is a start failure and not a crash loop, and a leader's exit takes its group along.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class SupervisorStartTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    [Fact]
    public async Task A_replica_is_healthy_at_its_first_progress_or_heartbeat_not_when_its_process_starts()
    {
        WriteConfig("""
            workloads:
              slow-start:
                command: [/bin/sh, -c, "sleep 2; echo 'KINTSUGI {\"step\": 1}'; sleep 60"]
                stop: { grace: 1s }
              daemon:
                command: [/bin/sh, -c, "sleep 60"]
                healthy: started
                stop: { grace: 1s }
              progressing:
                command: [/bin/sh, -c, "sleep 1; while true; do echo 'KINTSUGI {\"step\": 1}'; sleep 0.5; done"]
                stop: { grace: 1s }
                probes:
                  - progress: { metric: step, stalls-after: 4m }
              beating:
                command: [/bin/sh, -c, "sleep 2; while true; do touch \"$KINTSUGI_HEARTBEAT_FILE\"; sleep 0.2; done"]
                stop: { grace: 1s }
                probes:
                  - heartbeat: { file: beat, stale-after: 10s }
            """);
        var s = StartSupervisor();
        var events = await s.WaitForAsync(ev => new[] { "slow-start", "daemon", "beating", "progressing" }.All(w => ev.Any(e => e.Is("replica.healthy", w))), "all three workloads healthy");

        // A progress probe runs every 10 s here; its metric's first line makes the replica healthy at once.
        var progressing = events.First(e => e.Is("replica.healthy", "progressing"));
        Check(progressing.Double("after_s") is >= 0.9 and < 9, $"'progressing' counted healthy {progressing.Double("after_s")} s after its start; expected at its first metric line (1 s), not at the probe's first run (0 s) or second (10 s)", events, s);
        // A heartbeat not touched yet is within its grace, not a pass: healthy once the job touches it.
        var beating = events.First(e => e.Is("replica.healthy", "beating"));
        Check(beating.Double("after_s") >= 1.9, $"'beating' counted healthy {beating.Double("after_s")} s after its start, before its first heartbeat (2 s)", events, s);

        var slow = events.First(e => e.Is("replica.healthy", "slow-start"));
        Check(slow.Double("after_s") >= 1.9, $"slow-start counted healthy {slow.Double("after_s")} s after its start, before its first metric line (2 s)", events, s);
        var daemon = events.First(e => e.Is("replica.healthy", "daemon"));
        Check(daemon.Double("after_s") < 1.9, "with 'healthy: started' the daemon should be healthy as soon as it starts", events, s);
    }

    [Fact]
    public async Task A_program_that_cannot_be_executed_is_a_start_failure_given_up_at_once_not_a_crash_loop()
    {
        string script = Ws.PathOf("job.sh");
        File.WriteAllText(script, "#!/usr/bin/no-such-interpreter\necho never\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        WriteConfig($$"""
            workloads:
              job:
                command: {{YamlList(script)}}
                restart: { backoff: { initial: 100ms }, budget: { restarts: 50, within: 1h } }
            """);

        var run = await RunToEndAsync();

        var events = await ReadJournalAsync();
        Check(run.ExitCode == 1, $"expected exit 1 (workload failed), got {run.ExitCode}\n{run}", events);
        Check(OfType(events, "process.started", "job").Count == 1, "the unexecutable program was started again: a crash loop", events);
        var unhealthy = events.FirstOrDefault(e => e.Is("replica.unhealthy", "job"));
        Check(unhealthy?.Str("source") == "start" && unhealthy.Str("detail")!.Contains("interpreter", StringComparison.Ordinal),
            "expected replica.unhealthy with source 'start' naming the missing #! interpreter", events);
        Check(!events.Any(e => e.Is("replica.healthy", "job")), "a program that never ran was counted healthy", events);
        Check(events.Any(e => e.Is("workload.failed", "job")), "expected workload.failed", events);
    }

    [Fact]
    public async Task The_repository_exists_before_the_workload_starts_and_a_wrong_password_is_refused_before_anything_runs()
    {
        WriteConfig("""
            workloads:
              job:
                command: [/bin/sh, -c, "if test -f .kintsugi/repository/config; then echo yes > seen; else echo no > seen; fi"]
                checkpoints: { dir: ckpt }
            """);

        (await RunToEndAsync()).ShouldSucceed();
        Assert.Equal("yes", File.ReadAllText(Ws.PathOf("seen")).Trim());

        File.WriteAllText(Ws.PathOf("wrong-password"), "not the password\n");
        WriteConfig("""
            password-file: wrong-password
            workloads:
              job:
                command: [/bin/sh, -c, "echo ran > ran"]
                checkpoints: { dir: ckpt }
            """);
        var run = await RunToEndAsync();
        string line = run.ShouldFailCleanly(1);
        Assert.Contains("repository", line, StringComparison.Ordinal);
        Assert.False(File.Exists(Ws.PathOf("ran")), "the workload ran although the repository could not be opened");
    }

    [Fact]
    public async Task A_key_file_in_the_config_opens_the_repository_and_one_that_does_not_is_refused_before_anything_runs()
    {
        WriteConfig("""
            workloads:
              job:
                command: [/bin/true]
                checkpoints: { dir: ckpt }
            """);
        (await RunToEndAsync()).ShouldSucceed();
        (await Ws.RunAsync("--repo", Ws.PathOf(".kintsugi/repository"), "--password-file", Ws.PathOf(".kintsugi/password"), "key", "add", "--new-key-file", Ws.PathOf("ci.key"))).ShouldSucceed();
        File.Move(Ws.PathOf(".kintsugi/password"), Ws.PathOf("password.away"));

        WriteConfig("""
            key-file: ci.key
            workloads:
              job:
                command: [/bin/sh, -c, "echo ran > ran"]
                checkpoints: { dir: ckpt }
            """);
        (await RunToEndAsync()).ShouldSucceed();
        Assert.True(File.Exists(Ws.PathOf("ran")), "the workload did not run with the key file");

        File.Delete(Ws.PathOf("ran"));
        (await Ws.RunAsync("--repo", Ws.PathOf("other"), "--password-file", Ws.PathOf("password.away"), "init", "--kdf-memory", "8", "--kdf-iterations", "1")).ShouldSucceed();
        (await Ws.RunAsync("--repo", Ws.PathOf("other"), "--password-file", Ws.PathOf("password.away"), "key", "add", "--new-key-file", Ws.PathOf("other.key"))).ShouldSucceed();
        WriteConfig("""
            key-file: other.key
            workloads:
              job:
                command: [/bin/sh, -c, "echo ran > ran"]
                checkpoints: { dir: ckpt }
            """);
        string line = (await RunToEndAsync()).ShouldFailCleanly(1);
        Assert.Contains("does not open the repository", line, StringComparison.Ordinal);
        Assert.False(File.Exists(Ws.PathOf("ran")), "the workload ran although the key file does not open the repository");
    }

    [Fact]
    public async Task The_heartbeat_files_folder_exists_when_the_job_first_touches_it()
    {
        WriteConfig("""
            workloads:
              job:
                command: [/bin/sh, -c, "touch \"$KINTSUGI_HEARTBEAT_FILE\" && echo yes > touched"]
                probes:
                  - heartbeat: { file: state/deep/beat, stale-after: 30s }
            """);

        (await RunToEndAsync()).ShouldSucceed();

        Assert.True(File.Exists(Ws.PathOf("touched")), "touch $KINTSUGI_HEARTBEAT_FILE failed: its folder was not made");
        Assert.True(File.Exists(Ws.PathOf("state/deep/beat")));
    }

    [Fact]
    public async Task When_a_workloads_main_process_dies_what_it_started_dies_with_it()
    {
        WriteConfig("""
            workloads:
              launcher:
                command: [/bin/sh, -c, "sleep 600 & echo $! > child.pid; sleep 1; exit 3"]
                restart: { when: never }
            """);

        var run = await RunToEndAsync();

        var events = await ReadJournalAsync();
        int child = int.Parse(File.ReadAllText(Ws.PathOf("child.pid")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        bool alive = SupervisorProcess.IsAlive(child);
        if (alive)
        {
            SupervisorProcess.Kill(child, SupervisorProcess.SIGKILL);
        }
        Check(!alive, $"the launcher's child (pid {child}) outlived it: orphaned beside any next attempt\n{run}", events);
        Check(run.ExitCode == 1, $"expected exit 1 (gave up: restart never), got {run.ExitCode}", events);
    }
}
