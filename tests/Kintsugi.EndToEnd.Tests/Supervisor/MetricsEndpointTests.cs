using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary><c>kintsugi run --metrics HOST:PORT</c> serves the journal's figures to Prometheus.</summary>
[Collection(SupervisorCollection.Name)]
public sealed class MetricsEndpointTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    [Fact]
    public async Task The_metrics_endpoint_serves_the_figures_of_a_running_workload()
    {
        WriteConfig("""
            workloads:
              steady:
                command: [/bin/sh, -c, "sleep 60"]
                healthy: started
                stop: { grace: 1s }
            """);
        int port = FreePort();
        var s = SupervisorProcess.Start(Ws.Root, ConfigPath, JournalPath, subreaper: false, "-q", "--metrics", $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        await using var withMetrics = s;
        await s.WaitForAsync(events => events.Any(e => e.Is("replica.healthy", "steady")), "the workload to become healthy");

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        string body = "";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                body = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/metrics"));
                if (body.Contains("kintsugi_availability_ratio{workload=\"steady\"}", StringComparison.Ordinal))
                {
                    break;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            await Task.Delay(200);
        }

        Output.WriteLine(body);
        Assert.Contains("# TYPE kintsugi_availability_ratio gauge", body, StringComparison.Ordinal);
        var line = body.Split('\n').FirstOrDefault(l => l.StartsWith("kintsugi_availability_ratio{workload=\"steady\"}", StringComparison.Ordinal))
            ?? throw new XunitException($"no availability of 'steady' in\n{body}");
        double availability = double.Parse(line.Split(' ')[^1], CultureInfo.InvariantCulture);
        Assert.InRange(availability, 0.5, 1.0);
        Assert.Contains("kintsugi_restarts_total{workload=\"steady\"} 0", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_a_failure_and_a_restart_the_lingering_endpoint_serves_final_counters_that_pass_promtool_then_exits()
    {
        WriteConfig("""
            workloads:
              flaky:
                command: [/bin/sh, -c, "if [ \"$KINTSUGI_ATTEMPT\" = 1 ]; then exit 1; fi; sleep 1"]
                restart: { backoff: { initial: 100ms, jitter: 0 } }
                stop: { grace: 1s }
            """);
        int port = FreePort();
        string portText = port.ToString(CultureInfo.InvariantCulture);
        var s = SupervisorProcess.Start(Ws.Root, ConfigPath, JournalPath, subreaper: false, "-q", "--metrics", $"127.0.0.1:{portText}", "--metrics-linger", "6s");
        await using var withMetrics = s;
        await s.WaitForAsync(events => events.Any(e => e.Is("supervisor.stopped")), "the workload to fail once, restart and finish");
        Assert.False(s.HasExited, "kintsugi run exited without lingering\n" + s.OutputTail());

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        // supervisor.stopped is journaled a moment before `kintsugi run` learns that the supervisor has returned.
        string page = "";
        for (var until = DateTime.UtcNow.AddSeconds(4); ;)
        {
            page = await http.GetStringAsync(new Uri($"http://127.0.0.1:{portText}/metrics"));
            if (page.Split('\n').Contains("kintsugi_supervisor_running 0") || DateTime.UtcNow > until)
            {
                break;
            }
            await Task.Delay(100);
        }
        Output.WriteLine(page);
        var lines = page.Split('\n');
        Assert.Contains("kintsugi_supervisor_running 0", lines);
        Assert.Contains("# TYPE kintsugi_restarts_total counter", lines);
        Assert.Contains("# TYPE kintsugi_failures_total counter", lines);
        Assert.Contains("kintsugi_restarts_total{workload=\"flaky\"} 1", lines);
        Assert.Contains("kintsugi_failures_total{workload=\"flaky\"} 1", lines);
        Assert.Contains("kintsugi_workload_state{workload=\"flaky\",state=\"stopped\"} 1", lines);
        var (exit, report) = Promtool.CheckMetrics(page);
        Assert.True(exit == 0 && report.Length == 0, $"promtool check metrics exited {exit}:\n{report}");

        Assert.Equal(0, await s.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync(new Uri($"http://127.0.0.1:{portText}/metrics")));
    }

    [Fact]
    public async Task SIGTERM_ends_the_linger_at_once()
    {
        WriteConfig("""
            workloads:
              quick:
                command: [/bin/true]
            """);
        int port = FreePort();
        var s = SupervisorProcess.Start(Ws.Root, ConfigPath, JournalPath, subreaper: false, "-q", "--metrics", $"127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}", "--metrics-linger", "10m");
        await using var withMetrics = s;
        await s.WaitForAsync(events => events.Any(e => e.Is("supervisor.stopped")), "the workload to finish");
        await Task.Delay(500);
        Assert.False(s.HasExited, "kintsugi run exited without lingering\n" + s.OutputTail());

        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        s.Signal(SupervisorProcess.SIGTERM);
        int exit = await s.WaitForExitAsync(TimeSpan.FromSeconds(30));

        Assert.True(exit is 0 or 130, $"exit {exit}\n{s.OutputTail()}");
        Assert.InRange(stopwatch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("--metrics-linger", "soon", "--metrics", "127.0.0.1:9464")]
    [InlineData("--metrics-linger", "2d", "--metrics", "127.0.0.1:9464")]
    [InlineData("--metrics-linger", "30s")]
    public async Task A_bad_linger_or_one_without_metrics_is_a_usage_error(params string[] args)
    {
        WriteConfig("""
            workloads:
              quick:
                command: [/bin/true]
            """);

        string line = (await Ws.RunAsync(["run", "-q", "--config", ConfigPath, .. args])).ShouldFailCleanly(2);

        Assert.Contains("--metrics", line, StringComparison.Ordinal);
        Assert.False(File.Exists(JournalPath), "nothing ran");
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
