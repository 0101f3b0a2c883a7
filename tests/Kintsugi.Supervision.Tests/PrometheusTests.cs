using System.Net;
using System.Net.Sockets;
using System.Text;
using Kintsugi.Supervision.Metrics;

namespace Kintsugi.Supervision.Tests;

/// <summary>The figures as a Prometheus page, and the loopback endpoint that serves it.</summary>
public sealed class PrometheusTests
{
    private static readonly DateTimeOffset T0 = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private static WorkloadFigures Train => new()
    {
        Workload = "train",
        State = WorkloadState.Healthy,
        Replicas = [new ReplicaStatus(0, ReplicaState.Healthy, 4242, 2, T0)],
        From = T0,
        To = T0.AddHours(1),
        Availability = 5.0 / 6,
        Failures = 2,
        MtbfSeconds = 1500,
        MttrSeconds = 210,
        RtoLastSeconds = 300,
        RpoSeconds = 42.5,
        Ettr = 0.8,
        RecoveryRate = 0.75,
        AdaptationRate = 0.005,
        Restarts = 2,
        Rollbacks = 1,
    };

    private static WorkloadFigures Serve => new()
    {
        Workload = "serve \"blue\"",
        State = WorkloadState.Unhealthy,
        Replicas = [],
        From = T0,
        To = T0.AddHours(1),
        Availability = 1,
    };

    [Fact]
    public async Task The_page_has_HELP_TYPE_and_one_labelled_sample_per_workload_counters_typed_counter()
    {
        string page = await Page(new PrometheusMetrics(() => [Train, Serve], () => true));

        Assert.EndsWith("\n", page, StringComparison.Ordinal);
        var lines = page.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        foreach (var (name, type) in new[]
        {
            ("kintsugi_availability_ratio", "gauge"), ("kintsugi_mtbf_seconds", "gauge"), ("kintsugi_mttr_seconds", "gauge"), ("kintsugi_rto_seconds", "gauge"),
            ("kintsugi_rpo_seconds", "gauge"), ("kintsugi_ettr_ratio", "gauge"), ("kintsugi_recovery_rate_ratio", "gauge"), ("kintsugi_adaptation_rate_ratio", "gauge"),
            ("kintsugi_failures_total", "counter"), ("kintsugi_restarts_total", "counter"), ("kintsugi_rollbacks_total", "counter"),
            ("kintsugi_workload_state", "gauge"), ("kintsugi_supervisor_running", "gauge"),
        })
        {
            Assert.Single(lines, l => l.StartsWith($"# HELP {name} ", StringComparison.Ordinal));
            Assert.Single(lines, l => l == $"# TYPE {name} {type}");
        }
        // Only counters end in _total (the Prometheus naming rule promtool checks).
        foreach (string line in lines.Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)))
        {
            Assert.Equal(line.EndsWith(" counter", StringComparison.Ordinal), line.Split(' ')[2].EndsWith("_total", StringComparison.Ordinal));
        }
        Assert.Contains("kintsugi_availability_ratio{workload=\"train\"} 0.8333333333333334", lines);
        Assert.Contains("kintsugi_availability_ratio{workload=\"serve \\\"blue\\\"\"} 1", lines);
        Assert.Contains("kintsugi_rpo_seconds{workload=\"train\"} 42.5", lines);
        Assert.Contains("kintsugi_failures_total{workload=\"train\"} 2", lines);
        Assert.Contains("kintsugi_adaptation_rate_ratio{workload=\"train\"} 0.005", lines);
        Assert.Contains("kintsugi_workload_state{workload=\"train\",state=\"healthy\"} 1", lines);
        Assert.Contains("kintsugi_workload_state{workload=\"train\",state=\"failed\"} 0", lines);
        Assert.Contains("kintsugi_supervisor_running 1", lines);
    }

    [Fact]
    public async Task Null_figures_have_no_sample()
    {
        string page = await Page(new PrometheusMetrics(() => [Serve], () => false));

        Assert.DoesNotContain("kintsugi_mttr_seconds{", page, StringComparison.Ordinal);
        Assert.DoesNotContain("kintsugi_ettr_ratio{", page, StringComparison.Ordinal);
        Assert.Contains("kintsugi_failures_total{workload=\"serve \\\"blue\\\"\"} 0\n", page, StringComparison.Ordinal);
        Assert.Contains("kintsugi_supervisor_running 0\n", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Counters_never_go_down_between_scrapes()
    {
        var figures = Train;
        var metrics = new PrometheusMetrics(() => [figures], () => true);

        string first = await Page(metrics);
        figures = Train with { Restarts = 5 };
        string second = await Page(metrics);
        figures = Train with { Restarts = 3 };
        string third = await Page(metrics);

        Assert.Contains("kintsugi_restarts_total{workload=\"train\"} 2\n", first, StringComparison.Ordinal);
        Assert.Contains("kintsugi_restarts_total{workload=\"train\"} 5\n", second, StringComparison.Ordinal);
        Assert.Contains("kintsugi_restarts_total{workload=\"train\"} 5\n", third, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_page_passes_promtool_check_metrics()
    {
        string page = await Page(new PrometheusMetrics(() => [Train, Serve], () => true));

        var (exit, report) = Promtool.CheckMetrics(page);

        Assert.True(exit == 0 && report.Length == 0, $"promtool check metrics exited {exit}:\n{report}\n{page}");
    }

    [Fact]
    public async Task The_endpoint_on_loopback_answers_GET_metrics_with_the_rendered_page()
    {
        int port = FreePort();
        int renders = 0;
        await using var endpoint = PrometheusEndpoint.Start($"127.0.0.1:{port}", Text(() => $"kintsugi_up {Interlocked.Increment(ref renders)}\n"));
        using var http = new HttpClient();

        using var first = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/metrics"));
        string body = await first.Content.ReadAsStringAsync();
        using var second = await http.GetAsync(endpoint.Url);
        using var elsewhere = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/"));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("text/plain", first.Content.Headers.ContentType!.MediaType);
        Assert.Contains(first.Content.Headers.ContentType.Parameters, p => p.Name == "version" && p.Value == "0.0.4");
        Assert.Equal("kintsugi_up 1\n", body);
        Assert.Equal("kintsugi_up 2\n", await second.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, elsewhere.StatusCode);
    }

    [Fact]
    public async Task A_render_that_fails_answers_500_and_the_endpoint_keeps_serving()
    {
        int port = FreePort();
        bool fail = true;
        await using var endpoint = PrometheusEndpoint.Start($"localhost:{port}", Text(() => fail ? throw new InvalidOperationException("journal locked") : "ok 1\n"));
        using var http = new HttpClient();

        using var failed = await http.GetAsync(endpoint.Url);
        fail = false;
        using var ok = await http.GetAsync(endpoint.Url);

        Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        Assert.Contains("journal locked", await failed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task After_dispose_the_port_no_longer_answers()
    {
        int port = FreePort();
        var endpoint = PrometheusEndpoint.Start($"127.0.0.1:{port}", Text(() => "x 1\n"));
        await endpoint.DisposeAsync();
        using var http = new HttpClient();

        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(new Uri($"http://127.0.0.1:{port}/metrics")));
    }

    [Theory]
    [InlineData("0.0.0.0:9464")]
    [InlineData("*:9464")]
    [InlineData("10.1.2.3:9464")]
    [InlineData("metrics.example.com:9464")]
    public void A_host_that_is_not_loopback_is_refused_unless_remote_is_allowed(string hostPort)
    {
        var e = Assert.Throws<ArgumentException>(() => PrometheusEndpoint.Start(hostPort, Text(() => "")));

        Assert.Contains("loopback", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("9464")]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:0")]
    [InlineData("127.0.0.1:http")]
    [InlineData("::1:9464")]
    [InlineData("[::1]:9464")]
    public void A_malformed_or_IPv6_address_is_refused_with_an_example(string hostPort)
    {
        var e = Assert.Throws<ArgumentException>(() => PrometheusEndpoint.Start(hostPort, Text(() => "")));

        Assert.Contains("127.0.0.1:", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("127.0.0.1")]
    public async Task A_loopback_endpoint_answers_scrapers_that_name_it_localhost_or_127_0_0_1(string host)
    {
        int port = FreePort();
        await using var endpoint = PrometheusEndpoint.Start($"{host}:{port}", Text(() => "x 1\n"));
        using var http = new HttpClient();

        using var byName = await http.GetAsync(new Uri($"http://localhost:{port}/metrics"));
        using var byAddress = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/metrics"));

        Assert.Equal(HttpStatusCode.OK, byName.StatusCode);
        Assert.Equal(HttpStatusCode.OK, byAddress.StatusCode);
    }

    private static async Task<string> Page(PrometheusMetrics metrics)
    {
        using var page = new MemoryStream();
        await metrics.WriteAsync(page, CancellationToken.None);
        return Encoding.UTF8.GetString(page.ToArray());
    }

    private static Func<Stream, CancellationToken, Task> Text(Func<string> render) =>
        (stream, ct) => stream.WriteAsync(Encoding.UTF8.GetBytes(render()), ct).AsTask();

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
