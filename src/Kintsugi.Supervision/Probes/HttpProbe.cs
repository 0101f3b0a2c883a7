namespace Kintsugi.Supervision.Probes;

/// <summary>GET a URL; healthy on a 2xx or 3xx answer. Redirects are not followed: a 3xx is an answer.</summary>
internal sealed class HttpProbe(Uri url) : IProbe
{
    // One client for every probe: sockets are pooled per handler, and a probe per replica must not
    // hold its own pool. No proxy (probes reach the replica directly; a library reads no
    // environment) and a fresh connection per check, so a check also proves the replica accepts.
    private static readonly HttpClient Client = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public async Task<ProbeResult> CheckAsync(CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.ConnectionClose = true;
        try
        {
            using var response = await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            return status is >= 200 and < 400
                ? new ProbeResult(true, $"HTTP {status} from {url}")
                : new ProbeResult(false, $"HTTP {status} {response.ReasonPhrase} from {url}");
        }
        catch (HttpRequestException e)
        {
            return new ProbeResult(false, $"GET {url}: {e.Message}");
        }
    }
}
