using System.Globalization;
using System.Net;
using System.Text;
using Kintsugi.Backup;

namespace Kintsugi.Supervision.Metrics;

/// <summary>
/// Serves the figures at <c>GET /metrics</c> in the Prometheus text format (version 0.0.4).
/// The page is rendered afresh from the journal on every scrape, so nothing is counted twice.
/// </summary>
public sealed class PrometheusEndpoint : IAsyncDisposable
{
    /// <summary>The content type of the Prometheus text exposition format.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private static readonly (string Name, string Help, Func<WorkloadFigures, double?> Value)[] Gauges =
    [
        ("kintsugi_availability_ratio", "Fraction of the observed window during which at least one replica was healthy.", f => f.Availability),
        ("kintsugi_mtbf_seconds", "Mean time between failures: replica healthy time divided by failures in the window.", f => f.MtbfSeconds),
        ("kintsugi_mttr_seconds", "Mean time from a replica becoming unhealthy to it being healthy again, over incidents that ended in the window.", f => f.MttrSeconds),
        ("kintsugi_rto_seconds", "Recovery time of the newest incident that ended in the window.", f => f.RtoLastSeconds),
        ("kintsugi_rpo_seconds", "Age of the newest good protected checkpoint: the work a loss now would cost.", f => f.RpoSeconds),
        ("kintsugi_ettr_ratio", "Effective training time ratio: healthy time minus work lost to failures, divided by the observed window.", f => f.Ettr),
        ("kintsugi_recovery_rate_ratio", "Recovery rate R = B/D: checkpoint bytes protected divided by checkpoint bytes written in the window.", f => f.RecoveryRate),
        ("kintsugi_adaptation_rate_ratio", "Adaptation rate A = S/N: decisions that adjusted the workload divided by monitoring evaluations in the window.", f => f.AdaptationRate),
        ("kintsugi_failures_total", "Replica failures (replica.unhealthy events, unexpected exits included) in the window.", f => f.Failures),
        ("kintsugi_restarts_total", "Restarts (action.restart events) in the window.", f => f.Restarts),
        ("kintsugi_rollbacks_total", "Rollbacks (action.rollback events) in the window.", f => f.Rollbacks),
    ];

    private readonly HttpListener _listener;
    private readonly Func<string> _render;
    private readonly Task _serving;

    private PrometheusEndpoint(HttpListener listener, Func<string> render, Uri url)
    {
        _listener = listener;
        _render = render;
        Url = url;
        _serving = Task.Run(ServeAsync);
    }

    /// <summary>The address of the metrics page.</summary>
    public Uri Url { get; }

    /// <summary>
    /// Starts serving on <paramref name="hostPort"/> ("127.0.0.1:9464" or "localhost:9464"; IPv6 addresses are not supported).
    /// A host other than a loopback address is refused unless <paramref name="allowRemote"/> is set,
    /// because the page tells anyone who can reach it what runs here; "0.0.0.0", "::" and "*" then mean every interface.
    /// </summary>
    /// <param name="render">Called on each scrape for the page; an exception becomes a 500 with its message.</param>
    public static PrometheusEndpoint Start(string hostPort, Func<string> render, bool allowRemote = false)
    {
        ArgumentNullException.ThrowIfNull(render);
        var (host, port) = ParseHostPort(hostPort);
        host = host.ToLowerInvariant();
        bool loopback = host == "localhost"
            || (IPAddress.TryParse(host, out var address) && IPAddress.IsLoopback(address));
        if (!loopback && !allowRemote)
        {
            throw new ArgumentException($"the metrics endpoint {hostPort} is not on a loopback address; listen on 127.0.0.1:{port}, or allow remote scrapes explicitly", nameof(hostPort));
        }
        string prefixHost = host is "0.0.0.0" or "::" or "*" or "+" ? "+" : host;
        if (prefixHost.Contains(':', StringComparison.Ordinal))
        {
            // The HttpListener of .NET on Linux cannot parse an IPv6 literal in a prefix.
            throw new ArgumentException($"the metrics endpoint cannot listen on the IPv6 address in {hostPort}; use 127.0.0.1:{port}", nameof(hostPort));
        }
        var listener = new HttpListener();
        string portText = port.ToString(CultureInfo.InvariantCulture);
        listener.Prefixes.Add($"http://{prefixHost}:{portText}/");
        if (prefixHost is "localhost" or "127.0.0.1")
        {
            // The listener matches the Host header against its prefixes: answer a scraper that names either.
            listener.Prefixes.Add($"http://{(prefixHost == "localhost" ? "127.0.0.1" : "localhost")}:{portText}/");
        }
        try
        {
            listener.Start();
        }
        catch (HttpListenerException e)
        {
            listener.Close();
            throw new KintsugiException(ErrorKind.Failed, $"cannot serve metrics on {hostPort}: {e.Message}", e);
        }
        string urlHost = prefixHost == "+" ? "localhost" : prefixHost;
        return new PrometheusEndpoint(listener, render, new Uri($"http://{urlHost}:{portText}/metrics"));
    }

    /// <summary>
    /// The figures as a Prometheus text page: one gauge family per figure, one sample per workload
    /// (label <c>workload</c>); a figure that is null for a workload has no sample.
    /// </summary>
    public static string Render(IReadOnlyList<WorkloadFigures> figures)
    {
        ArgumentNullException.ThrowIfNull(figures);
        var page = new StringBuilder();
        foreach (var (name, help, value) in Gauges)
        {
            var samples = figures.Select(f => (f.Workload, Value: value(f))).Where(s => s.Value is not null).ToList();
            if (samples.Count == 0)
            {
                continue;
            }
            page.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            page.Append("# TYPE ").Append(name).Append(" gauge\n");
            foreach (var (workload, v) in samples)
            {
                page.Append(name).Append("{workload=\"").Append(EscapeLabel(workload)).Append("\"} ").Append(Number(v!.Value)).Append('\n');
            }
        }
        if (figures.Count > 0)
        {
            page.Append("# HELP kintsugi_workload_state Current state of the workload: 1 for the state it is in, 0 for the others.\n");
            page.Append("# TYPE kintsugi_workload_state gauge\n");
            foreach (var f in figures)
            {
                foreach (var state in Enum.GetValues<WorkloadState>())
                {
                    page.Append("kintsugi_workload_state{workload=\"").Append(EscapeLabel(f.Workload)).Append("\",state=\"")
                        .Append(state.ToString().ToLowerInvariant()).Append("\"} ").Append(f.State == state ? '1' : '0').Append('\n');
                }
            }
        }
        return page.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Close();
        try
        {
            await _serving.ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
        {
            // Closing the listener ends the pending GetContextAsync this way.
        }
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            // One scrape at a time: scrapes are seconds apart, and render then never runs concurrently with itself.
            await AnswerAsync(context).ConfigureAwait(false);
        }
    }

    private async Task AnswerAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            var (status, type, body) = context.Request switch
            {
                { Url.AbsolutePath: not "/metrics" } => (404, "text/plain; charset=utf-8", "not found; the metrics are at /metrics\n"),
                { HttpMethod: not ("GET" or "HEAD") } => (405, "text/plain; charset=utf-8", "only GET\n"),
                _ => RenderPage(),
            };
            byte[] bytes = Encoding.UTF8.GetBytes(body);
            response.StatusCode = status;
            response.ContentType = type;
            response.ContentLength64 = bytes.Length;
            if (context.Request.HttpMethod != "HEAD")
            {
                await response.OutputStream.WriteAsync(bytes).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
        {
            // The scraper went away; the next scrape is answered afresh.
        }
        finally
        {
            response.Close();
        }
    }

    private (int Status, string Type, string Body) RenderPage()
    {
        try
        {
            return (200, ContentType, _render());
        }
#pragma warning disable CA1031 // A failing render must answer the scrape with an error, not end the endpoint.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return (500, "text/plain; charset=utf-8", $"kintsugi: cannot render the metrics: {e.Message}\n");
        }
    }

    private static (string Host, int Port) ParseHostPort(string hostPort)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(hostPort);
        string host;
        string portText;
        if (hostPort.StartsWith('['))
        {
            int close = hostPort.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 >= hostPort.Length || hostPort[close + 1] != ':')
            {
                throw new ArgumentException($"'{hostPort}' is not HOST:PORT, like 127.0.0.1:9464", nameof(hostPort));
            }
            host = hostPort[1..close];
            portText = hostPort[(close + 2)..];
        }
        else
        {
            int colon = hostPort.LastIndexOf(':');
            if (colon <= 0 || hostPort.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                throw new ArgumentException($"'{hostPort}' is not HOST:PORT, like 127.0.0.1:9464", nameof(hostPort));
            }
            host = hostPort[..colon];
            portText = hostPort[(colon + 1)..];
        }
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            throw new ArgumentException($"'{hostPort}' has no valid port; give one from 1 to 65535, like 127.0.0.1:9464", nameof(hostPort));
        }
        return (host, port);
    }

    private static string EscapeLabel(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string Number(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        double.NaN => "NaN",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };
}
