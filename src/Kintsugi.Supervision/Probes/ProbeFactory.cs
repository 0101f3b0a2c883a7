using System.Globalization;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Probes;

/// <summary>Builds the probe a <see cref="ProbeSpec"/> describes, bound to one replica.</summary>
public static class ProbeFactory
{
    /// <summary>
    /// http: GET, healthy on 2xx/3xx. tcp: connect. exec: the command exits 0 (its process tree is
    /// killed when the check is cancelled). heartbeat: the file was touched within StaleAfter.
    /// progress: the metric changed within StallsAfter. Throws <see cref="ArgumentException"/> when
    /// the probe needs the replica's port and <see cref="ProbeContext.Port"/> is null.
    /// </summary>
    public static IProbe Create(ProbeSpec spec, ProbeContext context)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(context);
        return spec switch
        {
            HttpProbeSpec http => new HttpProbe(HttpUrl(http.Url, context.Port)),
            TcpProbeSpec tcp => new TcpProbe(tcp.Host, TcpPort(tcp.Port, context.Port)),
            ExecProbeSpec exec => new ExecProbe(exec.Command, context.WorkingDirectory),
            HeartbeatProbeSpec heartbeat => new HeartbeatProbe(
                Path.GetFullPath(heartbeat.File, context.WorkingDirectory), heartbeat.StaleAfter, context.Time, context.StartedAt),
            ProgressProbeSpec progress => new ProgressProbe(
                progress.Metric, progress.StallsAfter, context.Time, context.StartedAt, context.LastMetric),
            _ => throw new ArgumentException($"no probe of kind '{spec.Kind}'", nameof(spec)),
        };
    }

    private static Uri HttpUrl(string url, int? port)
    {
        if (url.Contains("{port}", StringComparison.Ordinal))
        {
            if (port is not int p)
            {
                throw new ArgumentException($"the http probe URL '{url}' uses {{port}} but the replica has no port", nameof(port));
            }
            url = url.Replace("{port}", p.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        }
        return Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? uri
            : throw new ArgumentException($"'{url}' is not an http:// or https:// URL", nameof(url));
    }

    private static int TcpPort(int port, int? replicaPort)
    {
        if (port != 0)
        {
            return port;
        }
        return replicaPort ?? throw new ArgumentException("the tcp probe has port 0 (the replica's port) but the replica has no port", nameof(replicaPort));
    }
}
