namespace Kintsugi.Supervision.Probes;

/// <summary>
/// One check of a replica. A check that cannot reach its target returns an unhealthy result; it
/// throws <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is
/// cancelled (the <see cref="ProbeRunner"/> cancels it when the run exceeds its timeout).
/// </summary>
public interface IProbe
{
    Task<ProbeResult> CheckAsync(CancellationToken cancellationToken);
}
