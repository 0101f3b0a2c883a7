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

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
