using System.Globalization;
using System.Net;
using System.Text;
using Kintsugi.Backup;

namespace Kintsugi.Supervision.Metrics;

/// <summary>
/// Serves the figures at <c>GET /metrics</c> in the Prometheus text format (version 0.0.4), as
/// <see cref="PrometheusMetrics"/> writes them afresh from the journal on every scrape.
/// </summary>
public sealed class PrometheusEndpoint : IAsyncDisposable
{
    /// <summary>The content type of the Prometheus text exposition format.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly HttpListener _listener;
    private readonly Func<Stream, CancellationToken, Task> _write;
    private readonly Task _serving;

    private PrometheusEndpoint(HttpListener listener, Func<Stream, CancellationToken, Task> write, Uri url)
    {
        _listener = listener;
        _write = write;
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
    /// <param name="write">Called on each scrape to write the page (<see cref="PrometheusMetrics.WriteAsync"/>); an exception becomes a 500 with its message.</param>
    public static PrometheusEndpoint Start(string hostPort, Func<Stream, CancellationToken, Task> write, bool allowRemote = false)
    {
        ArgumentNullException.ThrowIfNull(write);
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
        return new PrometheusEndpoint(listener, write, new Uri($"http://{urlHost}:{portText}/metrics"));
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
            var (status, type, bytes) = context.Request switch
            {
                { Url.AbsolutePath: not "/metrics" } => (404, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes("not found; the metrics are at /metrics\n")),
                { HttpMethod: not ("GET" or "HEAD") } => (405, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes("only GET\n")),
                _ => await RenderPageAsync().ConfigureAwait(false),
            };
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

    private async Task<(int Status, string Type, byte[] Body)> RenderPageAsync()
    {
        try
        {
            // Written whole before answering, so a failure half-way still becomes a 500.
            using var page = new MemoryStream();
            await _write(page, CancellationToken.None).ConfigureAwait(false);
            return (200, ContentType, page.ToArray());
        }
#pragma warning disable CA1031 // A failing render must answer the scrape with an error, not end the endpoint.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return (500, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes($"kintsugi: cannot render the metrics: {e.Message}\n"));
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
}
