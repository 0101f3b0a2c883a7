using System.Net.Sockets;

namespace Kintsugi.Supervision.Probes;

/// <summary>Healthy when a TCP connection to host:port is accepted.</summary>
internal sealed class TcpProbe(string host, int port) : IProbe
{
    public async Task<ProbeResult> CheckAsync(CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
            return new ProbeResult(true, $"connected to {host}:{port}");
        }
        catch (SocketException e)
        {
            return new ProbeResult(false, $"connect to {host}:{port}: {e.Message}");
        }
    }
}
