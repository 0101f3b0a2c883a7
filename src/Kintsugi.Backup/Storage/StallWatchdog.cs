namespace Kintsugi.Backup.Storage;

/// <summary>
/// The stall timeout of one attempt of a remote request (<see cref="StoreOptions.StallTimeout"/>):
/// <see cref="Token"/> is cancelled when no byte moved for the timeout (the body streams call
/// <see cref="Progress"/> as bytes move) or when the caller cancels. <see cref="Fired"/> tells a
/// stall (retried) from the caller's cancellation (not retried).
/// </summary>
internal sealed class StallWatchdog : IDisposable
{
    private readonly CancellationTokenSource _stall;
    private readonly CancellationTokenSource _linked;
    private readonly TimeSpan _timeout;

    public StallWatchdog(TimeSpan timeout, TimeProvider time, CancellationToken caller)
    {
        _timeout = timeout;
        _stall = new CancellationTokenSource(timeout, time);
        _linked = CancellationTokenSource.CreateLinkedTokenSource(caller, _stall.Token);
    }

    public CancellationToken Token => _linked.Token;

    /// <summary>Whether the stall timeout (not the caller) cancelled the attempt.</summary>
    public bool Fired => _stall.IsCancellationRequested;

    /// <summary>Bytes moved: the timeout starts again.</summary>
    public void Progress()
    {
        try
        {
            _stall.CancelAfter(_timeout);
        }
        catch (ObjectDisposedException)
        {
            // The attempt is over.
        }
    }

    public void Dispose()
    {
        _linked.Dispose();
        _stall.Dispose();
    }
}
