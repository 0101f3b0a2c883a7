using Polly;
using Polly.Retry;

namespace Kintsugi.Backup.Storage;

/// <summary>How a remote store classifies a failure: retry it (after the delay the service asked for, if any), or fail at once.</summary>
public readonly record struct FailureClass(bool Transient, TimeSpan? RetryAfter = null)
{
    public static readonly FailureClass Permanent = new(false);

    public static readonly FailureClass Retry = new(true);
}

/// <summary>
/// What every request of a remote store goes through: at most <see cref="StoreOptions.Connections"/>
/// at once, retried on transient failures with exponential backoff and jitter (Polly), honouring a
/// Retry-After the service sent, until <see cref="StoreOptions.RetryBudget"/> has passed since the
/// first attempt; then the last failure is thrown as it was. Each attempt is counted.
/// </summary>
public sealed class RemoteRequests : IDisposable
{
    private static readonly ResiliencePropertyKey<long> StartedKey = new("kintsugi.started");
    private readonly SemaphoreSlim _connections;
    private readonly ResiliencePipeline _pipeline;
    private readonly StoreOptions _options;
    private readonly Func<Exception, CancellationToken, FailureClass> _classify;

    /// <param name="classify">Transient or permanent, given the failure and the caller's token (a cancellation the caller asked for is never retried).</param>
    public RemoteRequests(StoreOptions options, StoreStatistics statistics, Func<Exception, CancellationToken, FailureClass> classify)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _classify = classify;
        Statistics = statistics;
        _connections = new SemaphoreSlim(options.Connections, options.Connections);
        var time = options.Time;
        _pipeline = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryBaseDelay,
                MaxDelay = options.RetryMaxDelay,
                ShouldHandle = args =>
                {
                    if (args.Outcome.Exception is not { } e)
                    {
                        return ValueTask.FromResult(false);
                    }
                    var c = _classify(e, args.Context.CancellationToken);
                    if (!c.Transient || args.Context.CancellationToken.IsCancellationRequested)
                    {
                        return ValueTask.FromResult(false);
                    }
                    long started = args.Context.Properties.GetValue(StartedKey, time.GetTimestamp());
                    return ValueTask.FromResult(time.GetElapsedTime(started) < _options.RetryBudget);
                },
                DelayGenerator = args =>
                {
                    var c = args.Outcome.Exception is { } e ? _classify(e, args.Context.CancellationToken) : default;
                    return ValueTask.FromResult(c.RetryAfter);
                },
                OnRetry = _ =>
                {
                    Statistics.CountRetry();
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    public StoreStatistics Statistics { get; }

    /// <summary>Runs <paramref name="operation"/> (one request, counted as <paramref name="kind"/>) with retries.</summary>
    public async Task<T> RunAsync<T>(RequestKind kind, Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(StartedKey, _options.Time.GetTimestamp());
        try
        {
            return await _pipeline.ExecuteAsync(async ctx =>
            {
                await _connections.WaitAsync(ctx.CancellationToken).ConfigureAwait(false);
                try
                {
                    Statistics.CountRequest(kind);
                    return await operation(ctx.CancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    _connections.Release();
                }
            }, context).ConfigureAwait(false);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>Runs an operation that returns nothing.</summary>
    public Task RunAsync(RequestKind kind, Func<CancellationToken, Task> operation, CancellationToken cancellationToken) =>
        RunAsync(kind, async ct =>
        {
            await operation(ct).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    public void Dispose() => _connections.Dispose();

    /// <summary>
    /// Whether the failure is a host name that does not resolve (a mistyped endpoint or storage
    /// account): permanent, not worth the retry budget.
    /// </summary>
    public static bool IsUnknownHost(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.HostNotFound })
            {
                return true;
            }
        }
        return false;
    }
}
