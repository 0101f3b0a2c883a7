using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Probes;
using Microsoft.Extensions.Time.Testing;

namespace Kintsugi.Supervision.Tests;

public sealed class ProbeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kintsugi-probe-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ProbeContext Context(DateTimeOffset startedAt, int? port = null, Func<string, (double, DateTimeOffset)?>? lastMetric = null) => new()
    {
        Port = port,
        WorkingDirectory = _dir,
        Time = _time,
        StartedAt = () => startedAt,
        LastMetric = lastMetric ?? (_ => null),
    };

    [Fact]
    public async Task Heartbeat_is_healthy_while_the_file_is_younger_than_stale_after()
    {
        string file = Path.Combine(_dir, "heartbeat");
        await File.WriteAllTextAsync(file, "");
        var now = _time.GetUtcNow();
        var probe = ProbeFactory.Create(new HeartbeatProbeSpec("heartbeat", TimeSpan.FromSeconds(5)), Context(now.AddMinutes(-10)));

        File.SetLastWriteTimeUtc(file, now.AddSeconds(-3).UtcDateTime);
        Assert.True((await probe.CheckAsync(default)).Healthy);

        File.SetLastWriteTimeUtc(file, now.AddSeconds(-5).UtcDateTime);
        Assert.True((await probe.CheckAsync(default)).Healthy);

        File.SetLastWriteTimeUtc(file, now.AddSeconds(-10).UtcDateTime);
        var stale = await probe.CheckAsync(default);
        Assert.False(stale.Healthy);
        Assert.Contains("not touched for 10s", stale.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Heartbeat_file_missing_is_stale_only_after_stale_after_since_start()
    {
        var probe = ProbeFactory.Create(new HeartbeatProbeSpec("never-written", TimeSpan.FromSeconds(5)), Context(_time.GetUtcNow()));
        // Not failing within its grace, but not passing either: nothing has shown the job is alive.
        Assert.True((await probe.CheckAsync(default)) is { Healthy: true, Pending: true });
        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.True((await probe.CheckAsync(default)) is { Healthy: true, Pending: true });
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var missing = await probe.CheckAsync(default);
        Assert.False(missing.Healthy);
        Assert.Contains("missing", missing.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Heartbeat_file_left_by_the_previous_process_is_measured_from_the_new_start()
    {
        string file = Path.Combine(_dir, "heartbeat");
        await File.WriteAllTextAsync(file, "");
        var now = _time.GetUtcNow();
        File.SetLastWriteTimeUtc(file, now.AddHours(-1).UtcDateTime);
        var probe = ProbeFactory.Create(new HeartbeatProbeSpec(file, TimeSpan.FromSeconds(5)), Context(now.AddSeconds(-2)));
        Assert.True((await probe.CheckAsync(default)) is { Healthy: true, Pending: true });
        _time.Advance(TimeSpan.FromSeconds(4));
        Assert.False((await probe.CheckAsync(default)).Healthy);
        File.SetLastWriteTimeUtc(file, _time.GetUtcNow().UtcDateTime);
        Assert.True((await probe.CheckAsync(default)) is { Healthy: true, Pending: false });
    }

    [Fact]
    public async Task Progress_is_healthy_while_the_metric_changes_within_stalls_after()
    {
        var now = _time.GetUtcNow();
        (double, DateTimeOffset)? step = (120, now.AddSeconds(-20));
        var probe = ProbeFactory.Create(new ProgressProbeSpec("step", TimeSpan.FromSeconds(30)), Context(now.AddMinutes(-10), lastMetric: m => m == "step" ? step : null));
        Assert.True((await probe.CheckAsync(default)).Healthy);

        _time.Advance(TimeSpan.FromSeconds(11));
        var stalled = await probe.CheckAsync(default);
        Assert.False(stalled.Healthy);
        Assert.Equal("step 120 unchanged for 31s (stalls after 30s)", stalled.Detail);

        step = (121, _time.GetUtcNow());
        Assert.True((await probe.CheckAsync(default)).Healthy);
    }

    [Fact]
    public async Task Progress_before_the_first_report_is_measured_from_the_start()
    {
        var started = _time.GetUtcNow();
        var probe = ProbeFactory.Create(new ProgressProbeSpec("step", TimeSpan.FromSeconds(30)), Context(started));
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.True((await probe.CheckAsync(default)) is { Healthy: true, Pending: true });
        _time.Advance(TimeSpan.FromSeconds(1));
        var result = await probe.CheckAsync(default);
        Assert.False(result.Healthy);
        Assert.Contains("no 'step' reported", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Progress_reported_only_by_the_previous_process_is_measured_from_the_new_start()
    {
        var started = _time.GetUtcNow();
        var probe = ProbeFactory.Create(new ProgressProbeSpec("step", TimeSpan.FromSeconds(30)), Context(started, lastMetric: _ => (500, started.AddHours(-1))));
        Assert.True((await probe.CheckAsync(default)).Healthy);
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.False((await probe.CheckAsync(default)).Healthy);
    }

    [Fact]
    public async Task Http_is_healthy_on_200_and_unhealthy_on_500()
    {
        int port = FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var server = Task.Run(async () =>
        {
            foreach (int status in new[] { 200, 500 })
            {
                var context = await listener.GetContextAsync();
                Assert.Equal("/health", context.Request.Url!.AbsolutePath);
                context.Response.StatusCode = status;
                context.Response.Close();
            }
        });
        var probe = ProbeFactory.Create(new HttpProbeSpec("http://127.0.0.1:{port}/health"), Context(_time.GetUtcNow(), port));

        var ok = await probe.CheckAsync(default).Bounded();
        Assert.True(ok.Healthy, ok.Detail);
        var bad = await probe.CheckAsync(default).Bounded();
        Assert.False(bad.Healthy);
        Assert.Contains("HTTP 500", bad.Detail, StringComparison.Ordinal);
        await server.Bounded();
    }

    [Fact]
    public async Task Http_to_a_closed_port_is_unhealthy()
    {
        var probe = ProbeFactory.Create(new HttpProbeSpec($"http://127.0.0.1:{ClosedPort()}/"), Context(_time.GetUtcNow()));
        Assert.False((await probe.CheckAsync(default).Bounded()).Healthy);
    }

    [Fact]
    public void Http_url_with_port_placeholder_needs_a_replica_port()
    {
        Assert.Throws<ArgumentException>(() => ProbeFactory.Create(new HttpProbeSpec("http://127.0.0.1:{port}/"), Context(_time.GetUtcNow())));
    }

    [Fact]
    public async Task Tcp_is_healthy_when_a_listener_accepts_and_port_0_means_the_replica_port()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var probe = ProbeFactory.Create(new TcpProbeSpec("127.0.0.1", 0), Context(_time.GetUtcNow(), port));
            var result = await probe.CheckAsync(default).Bounded();
            Assert.True(result.Healthy, result.Detail);
        }
        finally
        {
            listener.Stop();
        }
    }

    [Fact]
    public async Task Tcp_to_a_closed_port_is_unhealthy()
    {
        int port = ClosedPort();
        var probe = ProbeFactory.Create(new TcpProbeSpec("127.0.0.1", port), Context(_time.GetUtcNow()));
        var result = await probe.CheckAsync(default).Bounded();
        Assert.False(result.Healthy);
        Assert.Contains($"127.0.0.1:{port}", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exec_exit_0_is_healthy_and_runs_in_the_working_directory()
    {
        await File.WriteAllTextAsync(Path.Combine(_dir, "marker"), "here");
        var probe = ProbeFactory.Create(new ExecProbeSpec(["/bin/sh", "-c", "test -f marker && exit 0"]), Context(_time.GetUtcNow()));
        var result = await probe.CheckAsync(default).Bounded();
        Assert.True(result.Healthy, result.Detail);
    }

    [Fact]
    public async Task Exec_nonzero_exit_is_unhealthy_with_the_code_and_output()
    {
        var probe = ProbeFactory.Create(new ExecProbeSpec(["/bin/sh", "-c", "echo disk full >&2; exit 3"]), Context(_time.GetUtcNow()));
        var result = await probe.CheckAsync(default).Bounded();
        Assert.False(result.Healthy);
        Assert.Equal("exit code 3: disk full", result.Detail);
    }

    [Fact]
    public async Task Exec_missing_program_is_unhealthy()
    {
        var probe = ProbeFactory.Create(new ExecProbeSpec(["./no-such-program"]), Context(_time.GetUtcNow()));
        var result = await probe.CheckAsync(default).Bounded();
        Assert.False(result.Healthy);
        Assert.Contains("no-such-program", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exec_cancelled_kills_the_command_and_its_children()
    {
        var probe = ProbeFactory.Create(new ExecProbeSpec(["/bin/sh", "-c", "sleep 10 & echo $! > child.pid; wait"]), Context(_time.GetUtcNow()));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => probe.CheckAsync(cts.Token).Bounded());

        int child = int.Parse((await File.ReadAllTextAsync(Path.Combine(_dir, "child.pid"))).Trim(), CultureInfo.InvariantCulture);
        using var limit = new CancellationTokenSource(TestWait.Limit);
        while (IsRunning(child))
        {
            await Task.Delay(20, limit.Token);
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            // A zombie (state Z) is dead, only not yet reaped by whoever inherited it.
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static int ClosedPort() => FreePort();
}
