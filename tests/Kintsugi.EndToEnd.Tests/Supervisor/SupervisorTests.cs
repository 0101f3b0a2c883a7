using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// <c>kintsugi run</c> with small shell and Python workloads: policies that must not restart, crash
/// loops, gangs, replicas behind HTTP probes, and configurations it must refuse.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class SupervisorTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    /// <summary>A tiny HTTP server on KINTSUGI_PORT: /health answers 200.</summary>
    private const string HealthServer = """
        import http.server, os
        port = int(os.environ["KINTSUGI_PORT"])
        replica = os.environ.get("KINTSUGI_REPLICA", "?")

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = f"replica {replica} pid {os.getpid()}\n".encode()
                self.send_response(200 if self.path == "/health" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """;

    /// <summary>
    /// A job that checkpoints, then evaluates (a common order): every 10 steps it writes
    /// step-NNNNNN.pt (as .tmp, then renamed), spends a second evaluating, and prints val_loss. On
    /// attempt 1 the evaluation of step 30 is NaN, so the checkpoint of step 30, written before, is
    /// bad. It resumes from KINTSUGI_RESUME_FROM and goes to step 50.
    /// </summary>
    private const string EvalTrainer = """
        import json, os, time
        attempt = int(os.environ["KINTSUGI_ATTEMPT"])
        ckpt = os.environ["KINTSUGI_CHECKPOINT_DIR"]
        resume = os.environ.get("KINTSUGI_RESUME_FROM") or ""
        start = int(os.path.basename(resume)[5:11]) if resume else 0
        print(f"attempt {attempt}: resumed from {resume or '-'} at step {start}", flush=True)
        for step in range(start + 10, 51, 10):
            path = os.path.join(ckpt, f"step-{step:06d}.pt")
            with open(path + ".tmp", "w") as f:
                f.write(f"step {step}, attempt {attempt}\n")
            os.replace(path + ".tmp", path)
            time.sleep(1.0)
            bad = attempt == 1 and step == 30
            print("KINTSUGI " + json.dumps({"step": step, "val_loss": float("nan") if bad else 1.0 / step}), flush=True)
            if bad:
                time.sleep(60)
        print("done", flush=True)
        """;

    [Fact]
    public async Task After_a_rollback_the_new_attempt_shows_as_running_and_its_checkpoints_at_the_paths_of_bad_ones_are_protected()
    {
        File.WriteAllText(Ws.PathOf("evaltrainer.py"), EvalTrainer);
        WriteConfig($$"""
            workloads:
              trainer:
                command: {{YamlList(Python, Ws.PathOf("evaltrainer.py"))}}
                checkpoints: { dir: ckpt, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 2s }
                monitors:
                  - metric: { name: val_loss, is: nan-or-inf }
                    then: rollback
            """);
        string Ckpt(int step) => Path.Combine(CheckpointDir, $"step-{step:D6}.pt");
        var problems = new List<string>();
        var s = StartSupervisor();
        await s.WaitForAsync(ev =>
        {
            var first = ev.FirstOrDefault(e => e.Is("process.started", "trainer", 0));
            return ev.Any(e => e.Is("process.started", "trainer", 0) && e.Long("attempt") == 2)
                && ev.Any(e => e.Is("process.exited", "trainer", 0) && e.Long("pid") == first?.Long("pid"));
        }, "attempt 2 started and attempt 1 exited");
        // Attempt 2 runs for 3 s: kintsugi status must show it (docs/METRICS.md 3: the fold of the journal).
        var status = (await Ws.RunAsync("status", "--journal", JournalPath, "--json")).ShouldSucceed().Json();
        var replica = status.GetProperty("workloads").EnumerateArray().Single(w => w.GetProperty("workload").GetString() == "trainer").GetProperty("replicas")[0];
        string? state = replica.GetProperty("state").GetString();
        long attempt = replica.TryGetProperty("attempt", out var a) ? a.GetInt64() : 0;
        if (state is not ("healthy" or "running") || attempt != 2)
        {
            problems.Add($"while attempt 2 runs, `kintsugi status --json` shows replica 0 as {state} (attempt {attempt}), expected healthy, attempt 2: {JsonSerializer.Serialize(replica)}");
        }

        // `kintsugi events --json`: a JSON array of the journal's events.
        var listed = (await Ws.RunAsync("events", "--journal", JournalPath, "--json", "--limit", "0")).ShouldSucceed().Json();
        var types = listed.EnumerateArray().Select(e => e.GetProperty("type").GetString()).ToList();
        if (!types.Contains("process.started"))
        {
            problems.Add($"`kintsugi events --json` lists no process.started event: {string.Join(", ", types)}");
        }

        int code = await s.WaitForExitAsync();
        var events = await s.EventsAsync();
        Check(code == 0, $"expected exit code 0, got {code}", events, s);
        var rollback = OfType(events, "action.rollback", "trainer", 0).Single();
        Check(rollback.Str("checkpoint") == Ckpt(20), $"expected the rollback to restore {Ckpt(20)}", events, s);
        Check(OfType(events, "checkpoint.bad", "trainer").Select(e => e.Str("path")).SequenceEqual([Ckpt(30)]), $"expected {Ckpt(30)} (evaluated NaN) marked bad, and only it", events, s);
        var second = OfType(events, "process.started", "trainer", 0).Single(e => e.Long("attempt") == 2);
        Check(second.Str("resume_from") == Ckpt(20), $"expected attempt 2 to resume from {Ckpt(20)}", events, s);

        // Attempt 2 writes good checkpoints of steps 30, 40, 50: each is a new checkpoint, journaled and protected.
        foreach (int step in new[] { 30, 40, 50 })
        {
            if (!events.Any(e => e.Is("checkpoint.written", "trainer") && e.Id > second.Id && e.Str("path") == Ckpt(step)))
            {
                problems.Add($"no checkpoint.written for {Ckpt(step)}, written again by attempt 2 after the rollback");
            }
            if (!events.Any(e => e.Is("checkpoint.protected", "trainer") && e.Id > second.Id && e.Str("path") == Ckpt(step)))
            {
                problems.Add($"no checkpoint.protected for {Ckpt(step)}, written again by attempt 2 after the rollback");
            }
        }
        Check(problems.Count == 0, string.Join("\n", problems), events, s);
    }

    [Fact]
    public async Task A_checkpoint_written_just_before_the_job_exits_is_recorded_and_protected()
    {
        // The job writes its last checkpoint and exits at once, well inside the 1 s settle time: the
        // checkpoint can only settle after the job is gone, while the supervisor stops.
        File.WriteAllText(Ws.PathOf("final.py"), """
            import os
            path = os.path.join(os.environ["KINTSUGI_CHECKPOINT_DIR"], "step-000010.pt")
            with open(path + ".tmp", "w") as f:
                f.write("final\n")
            os.replace(path + ".tmp", path)
            """);
        WriteConfig($$"""
            workloads:
              job:
                command: {{YamlList(Python, Ws.PathOf("final.py"))}}
                checkpoints: { dir: ckpt, settle: 1s }
            """);
        var run = await RunToEndAsync();
        var events = await ReadJournalAsync();
        Check(run.ExitCode == 0, $"expected exit code 0\n{run}", events);
        string final = Path.Combine(CheckpointDir, "step-000010.pt");
        Check(OfType(events, "checkpoint.written", "job").Any(e => e.Str("path") == final), $"expected a checkpoint.written for {final}", events);
        Check(OfType(events, "checkpoint.protected", "job").Any(e => e.Str("path") == final), $"expected {final} protected", events);
        Check(OfType(events, "supervisor.stopped").SingleOrDefault()?.Str("reason") == "completed", "expected supervisor.stopped with reason completed", events);
    }

    [Fact]
    public async Task An_exit_code_named_non_retriable_gives_up_at_once_without_a_restart()
    {
        WriteConfig("""
            workloads:
              job:
                command: [/bin/sh, -c, "exit 2"]
                restart:
                  backoff: { initial: 100ms }
                monitors:
                  - exit: { codes: [2] }
                    then: give-up
            """);
        var run = await RunToEndAsync();
        var events = await ReadJournalAsync();
        Check(run.ExitCode == 1, $"expected exit code 1\n{run}", events);
        Check(OfType(events, "process.started", "job").Count == 1, "expected exactly one process.started", events);
        Check(OfType(events, "process.exited", "job").Single().Long("code") == 2, "expected the process to exit with 2", events);
        Check(OfType(events, "action.give_up", "job").Count == 1, "expected one action.give_up", events);
        Check(OfType(events, "workload.failed", "job").Count == 1, "expected one workload.failed", events);
        Check(OfType(events, "action.restart").Count == 0, "expected no action.restart", events);
        Check(OfType(events, "supervisor.stopped").SingleOrDefault()?.Str("reason") == "failed", "expected supervisor.stopped with reason failed", events);
    }

    [Fact]
    public async Task An_adjustment_that_cannot_apply_at_a_restart_is_one_error_and_the_others_still_apply()
    {
        // Attempt 1 makes MODE a word; at the restart after attempt 2, halving MODE cannot work, but
        // BATCH_SIZE and --lr still change (before, the first failure dropped them all), and so does
        // WORKERS, which the workload inherits from kintsugi's environment (before: "not set").
        Ws.Environment["WORKERS"] = "10";
        WriteConfig("""
            workloads:
              job:
                command: [/bin/sh, -c, "echo attempt $KINTSUGI_ATTEMPT; case $KINTSUGI_ATTEMPT in 1) echo first; exec sleep 30;; 2) echo second; exec sleep 30;; esac", sh, --lr, "0.1"]
                env: { MODE: "8", BATCH_SIZE: "64" }
                restart:
                  backoff: { initial: 50ms }
                stop: { grace: 5s }
                monitors:
                  - log: "^first$"
                    then: { restart: { adjust: { env: { MODE: auto } } } }
                  - log: "^second$"
                    then: { restart: { adjust: { env: { MODE: halve, BATCH_SIZE: halve, WORKERS: halve }, args: { --lr: x0.5 } } } }
            """);
        var run = await RunToEndAsync();
        var events = await ReadJournalAsync();
        Check(run.ExitCode == 0, $"expected exit code 0\n{run}", events);
        var starts = OfType(events, "process.started", "job");
        Check(starts.Count == 3, $"expected 3 process.started, got {starts.Count}", events);
        var restarts = OfType(events, "action.restart", "job");
        Check(restarts.Count == 2 && restarts[1].Strings("adjustments").SequenceEqual(["env BATCH_SIZE 64 -> 32", "env WORKERS 10 -> 5", "arg --lr 0.1 -> 0.05"]),
            "expected the second action.restart to list the BATCH_SIZE, WORKERS and --lr changes", events);
        var errors = OfType(events, "error", "job");
        Check(errors.Count == 1 && errors[0].Str("message") == "adjustment not applied: env MODE is 'auto', not a number, so it cannot halve",
            "expected one error event for MODE", events);
        Check(starts[2].Strings("command")[^1] == "0.05", "expected attempt 3 to run with --lr 0.05", events);
        Check(starts[2].Property("env") is { } env && env.GetProperty("BATCH_SIZE").GetString() == "32" && env.GetProperty("MODE").GetString() == "auto"
            && env.GetProperty("WORKERS").GetString() == "5",
            "expected attempt 3 to run with BATCH_SIZE 32, MODE auto and WORKERS 5", events);
    }

    [Fact]
    public async Task A_crash_loop_stops_when_the_restart_budget_is_spent()
    {
        WriteConfig("""
            workloads:
              job:
                command: [/bin/sh, -c, "exit 1"]
                restart:
                  backoff: { initial: 50ms, max: 200ms }
                  budget: { restarts: 3, within: 1h }
            """);
        var run = await RunToEndAsync();
        var events = await ReadJournalAsync();
        Check(run.ExitCode == 1, $"expected exit code 1\n{run}", events);
        var starts = OfType(events, "process.started", "job");
        Check(starts.Count == 4, $"expected 4 process.started (1 + 3 restarts), got {starts.Count}", events);
        Check(starts.Select(e => e.Long("attempt")).SequenceEqual([1L, 2L, 3L, 4L]), "expected attempts 1 to 4", events);
        Check(OfType(events, "action.restart", "job").Count == 3, "expected 3 action.restart", events);
        var giveUp = OfType(events, "decision", "job").Where(e => e.Str("action") == "give-up").ToList();
        Check(giveUp.Count == 1 && giveUp[0].Str("reason")!.Contains("budget exhausted", StringComparison.Ordinal) && giveUp[0].Id > starts[^1].Id,
            "expected one decision give-up, 'budget exhausted', after the 4th start", events);
        Check(OfType(events, "workload.failed", "job").Count == 1, "expected one workload.failed", events);
        Check(giveUp[0].Str("reason")!.Contains("3 within 1h", StringComparison.Ordinal), "durations in messages are written as in the config ('1h', not '01:00:00')", events);
    }

    [Fact]
    public async Task One_for_all_restarts_the_whole_gang_when_one_member_crashes_and_SIGINT_stops_cleanly()
    {
        WriteConfig("""
            strategy: one-for-all
            workloads:
              a:
                command: [/bin/sh, -c, "sleep 30"]
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 5s }
              b:
                command: [/bin/sh, -c, "if [ \"$KINTSUGI_ATTEMPT\" = 1 ]; then exit 1; fi; sleep 30"]
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 5s }
            """);
        var s = StartSupervisor();
        var seen = await s.WaitForAsync(ev => ev.Any(e => e.Is("process.started", "a") && e.Long("attempt") == 2) && ev.Any(e => e.Is("process.started", "b") && e.Long("attempt") == 2),
            "attempt 2 of both a and b");

        var a1 = OfType(seen, "process.started", "a", 0).First(e => e.Long("attempt") == 1);
        var b1 = OfType(seen, "process.started", "b", 0).First(e => e.Long("attempt") == 1);
        var bExit = OfType(seen, "process.exited", "b", 0).Single(e => e.Long("pid") == b1.Long("pid"));
        Check(bExit.Long("code") == 1 && bExit.Bool("expected") == false, "expected b's first attempt to exit 1, unexpectedly", seen, s);
        var aExit = OfType(seen, "process.exited", "a", 0).SingleOrDefault(e => e.Long("pid") == a1.Long("pid"));
        Check(aExit is not null && aExit.Bool("expected") == true && aExit.Id > bExit.Id, "expected a's first process stopped by the supervisor (expected=true) after b crashed", seen, s);
        var a2 = OfType(seen, "process.started", "a", 0).Single(e => e.Long("attempt") == 2);
        var b2 = OfType(seen, "process.started", "b", 0).Single(e => e.Long("attempt") == 2);
        Check(a2.Id > aExit!.Id && b2.Id > aExit.Id, "expected both restarts after a was stopped", seen, s);

        s.Signal(SupervisorProcess.SIGINT);
        int code = await s.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var events = await s.EventsAsync();
        Assert.True(code == 0, $"kintsugi run exited with {code} after SIGINT, expected 0\n{s.Describe(events)}");
        Check(OfType(events, "supervisor.stopped").Count == 1, "expected supervisor.stopped", events, s);
        foreach (var started in new[] { a2, b2 })
        {
            Check(!SupervisorProcess.IsAlive((int)started.Long("pid")!.Value), $"{started.Workload}'s process {started.Long("pid")} still runs after the supervisor stopped", events, s);
        }
        Check(OfType(events, "process.started").Count == 4, "expected no start after the SIGINT", events, s);
        // Every process.started has its process.exited (docs/METRICS.md 1.1): the journal tells how each process ended.
        foreach (var started in new[] { a2, b2 })
        {
            Check(events.Any(e => e.Is("process.exited", started.Workload) && e.Long("pid") == started.Long("pid") && e.Bool("expected") == true && e.Id < OfType(events, "supervisor.stopped")[0].Id),
                $"expected a process.exited (expected=true) for {started.Workload}'s attempt 2 (pid {started.Long("pid")}), which the supervisor stopped on SIGINT, before supervisor.stopped", events, s);
        }
    }

    [Fact]
    public async Task A_killed_server_replica_is_replaced_while_the_other_two_keep_answering()
    {
        string script = Ws.PathOf("server.py");
        File.WriteAllText(script, HealthServer);
        int port = ThreeFreePorts();
        WriteConfig($$"""
            workloads:
              web:
                command: {{YamlList(Python, script)}}
                replicas: 3
                port: {{port}}
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 2s }
                probes:
                  - http: { url: "http://127.0.0.1:{port}/health" }
                    every: 200ms
                    timeout: 200ms
                    # A loaded machine can take seconds to start Python: failures before a replica's
                    # first healthy answer do not count for this long.
                    startup: 20s
                    failures: 2
                    then: failover
            """);
        var s = StartSupervisor();
        var seen = await s.WaitForAsync(ev => Enumerable.Range(0, 3).All(r => ev.Any(e => e.Is("replica.healthy", "web", r))), "all 3 replicas healthy");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        for (int r = 0; r < 3; r++)
        {
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(Url(port + r))).StatusCode);
        }
        var victim = OfType(seen, "process.started", "web", 1).Single();
        int pid = (int)victim.Long("pid")!.Value;

        var killedAt = DateTimeOffset.UtcNow;
        Assert.True(SupervisorProcess.Kill(pid, SupervisorProcess.SIGKILL));
        var failures = new List<string>();
        int checks = 0;
        var sw = Stopwatch.StartNew();
        bool back = false;
        while (!back && sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            foreach (int r in new[] { 0, 2 })
            {
                checks++;
                try
                {
                    var response = await http.GetAsync(Url(port + r));
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        failures.Add($"{sw.Elapsed.TotalSeconds:F2} s: replica {r}: HTTP {(int)response.StatusCode}");
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    failures.Add($"{sw.Elapsed.TotalSeconds:F2} s: replica {r}: {e.Message}");
                }
            }
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
                back = (await http.GetAsync(Url(port + 1), cts.Token)).StatusCode == HttpStatusCode.OK && (DateTimeOffset.UtcNow - killedAt) > TimeSpan.FromMilliseconds(50);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                back = false;
            }
            await Task.Delay(50);
        }
        var backAfter = sw.Elapsed;
        var events = await s.WaitForAsync(ev => ev.Any(e => e.Is("process.started", "web", 1) && e.Long("attempt") == 2), "a replacement of replica 1");
        Check(back, "replica 1 did not answer again within 60 s", events, s);
        Check(failures.Count == 0, $"the other replicas failed {failures.Count} of {checks} checks during the recovery:\n  {string.Join("\n  ", failures.Take(20))}", events, s);

        CheckOneProcessAtATime(events, "web", 1, s);
        var replacement = OfType(events, "process.started", "web", 1).Single(e => e.Long("attempt") == 2);
        Check(events.Any(e => e.Is("process.exited", "web", 1) && e.Long("pid") == pid && e.Long("signal") == 9), "expected the killed replica's process.exited with signal 9", events, s);
        Check(OfType(events, "process.started", "web", 0).Count == 1 && OfType(events, "process.started", "web", 2).Count == 1, "expected replicas 0 and 2 untouched", events, s);
        Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"kill -9 of replica 1 (pid {pid}) to the replacement's process.started: {(replacement.Time - killedAt).TotalSeconds:F3} s; answering again after {backAfter.TotalSeconds:F3} s; {checks} checks of replicas 0 and 2, none failed"));
        Output.WriteLine(JournalReader.Dump(events.Where(e => e.Workload == "web" && e.Replica == 1 && e.Time >= killedAt)));

        s.Signal(SupervisorProcess.SIGTERM);
        int code = await s.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(code == 0, $"kintsugi run exited with {code} after SIGTERM, expected 0\n{s.Describe(await s.EventsAsync())}");
    }

    [Fact]
    public async Task An_unknown_field_is_refused_with_its_line_exit_2_and_an_error_event()
    {
        WriteConfig("""
            workloads:
              job:
                command: [/bin/true]
                restart:
                  backof: { initial: 100ms }
            """);
        var run = await RunToEndAsync();
        string line = run.ShouldFailCleanly(2);
        Assert.Contains("kintsugi.yaml:5", line, StringComparison.Ordinal);
        Assert.Contains("backof", line, StringComparison.Ordinal);
        var events = await ReadJournalAsync();
        var errors = OfType(events, "error");
        Check(errors.Count == 1 && errors[0].Str("message")!.Contains("backof", StringComparison.Ordinal), "expected one error event naming the field", events);
        Check(OfType(events, "process.started").Count == 0 && OfType(events, "supervisor.started").Count == 0, "expected nothing started", events);
    }

    [Fact]
    public async Task A_checkpoint_folder_that_cannot_be_made_is_refused_with_exit_2_naming_it_and_an_error_event()
    {
        // Root ignores permissions; a folder below a regular file cannot be created by anyone.
        File.WriteAllText(Ws.PathOf("blocker"), "a file, not a folder\n");
        string dir = Path.Combine(Ws.Root, "blocker", "ckpt");
        WriteConfig("""
            workloads:
              job:
                command: [/bin/true]
                checkpoints: { dir: blocker/ckpt }
            """);
        var run = await RunToEndAsync();
        string line = run.ShouldFailCleanly(2);
        Assert.Contains($"kintsugi.yaml:4:25: workloads.job.checkpoints.dir: folder {dir} cannot be written", line, StringComparison.Ordinal);
        var events = await ReadJournalAsync();
        var errors = OfType(events, "error");
        Check(errors.Count == 1 && errors[0].Str("message")!.Contains(dir, StringComparison.Ordinal), $"expected one error event naming {dir}", events);
        Check(OfType(events, "process.started").Count == 0, "expected nothing started", events);
    }

    private static Uri Url(int port) => new($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/health");

    /// <summary>A port P such that P, P+1 and P+2 are free on the loopback address now.</summary>
    private static int ThreeFreePorts()
    {
        for (int tries = 0; tries < 50; tries++)
        {
            var listeners = new List<TcpListener>();
            try
            {
                var first = new TcpListener(IPAddress.Loopback, 0);
                first.Start();
                listeners.Add(first);
                int port = ((IPEndPoint)first.LocalEndpoint).Port;
                if (port > 65533)
                {
                    continue;
                }
                for (int i = 1; i < 3; i++)
                {
                    var next = new TcpListener(IPAddress.Loopback, port + i);
                    next.Start();
                    listeners.Add(next);
                }
                return port;
            }
            catch (SocketException)
            {
                // One of the next two is taken: another try.
            }
            finally
            {
                foreach (var l in listeners)
                {
                    l.Stop();
                }
            }
        }
        throw new InvalidOperationException("found no three consecutive free ports");
    }
}
