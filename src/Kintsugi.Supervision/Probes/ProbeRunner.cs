using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Probes;

/// <summary>
/// Runs one probe on its schedule and turns results into health transitions. Callbacks are invoked
/// sequentially (never concurrently), on the runner's own task; within one run the transition
/// (<see cref="Unhealthy"/> or <see cref="Healthy"/>) comes before <see cref="Evaluated"/>.
/// An exception thrown by a callback ends the schedule and is rethrown by <see cref="StopAsync"/>.
/// </summary>
public sealed class ProbeRunner : IAsyncDisposable
{
    // Set while this thread runs one of a runner's callbacks, so StopAsync called from a callback
    // does not wait for the loop that is waiting for the callback.
    [ThreadStatic]
    private static ProbeRunner? t_inCallbackOf;

    private readonly ProbeSpec _spec;
    private readonly IProbe _probe;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private Schedule? _schedule;
    private bool _disposed;

    /// <summary>What this runner runs.</summary>
    public ProbeSpec Spec => _spec;

    public ProbeRunner(ProbeSpec spec, IProbe probe, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(time);
        Validate(spec);
        _spec = spec;
        _probe = probe;
        _time = time;
    }

    /// <summary>After every run, with its result (also runs whose failure the startup budget excuses).</summary>
    public event Action<ProbeResult>? Evaluated;

    /// <summary>FailureThreshold consecutive counted failures (once per transition), with the detail of the last failure.</summary>
    public event Action<string>? Unhealthy;

    /// <summary>Before waiting for the next run, with the time it is due (tests wait on it instead of on wall-clock time).</summary>
    internal event Action<DateTimeOffset>? Waiting;

    /// <summary>SuccessThreshold consecutive successes after a start or after being unhealthy (once per transition).</summary>
    public event Action? Healthy;

    /// <summary>
    /// (Re)starts the schedule from now, forgetting earlier results: the first run after
    /// InitialDelay, then one every Every (a slot missed by a long run is skipped), each bounded by
    /// Timeout. Failures of runs that begin within StartupBudget of this call do not count, until
    /// the probe first reports healthy.
    /// </summary>
    public void Start()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var previous = _schedule;
            previous?.Cancellation.Cancel();
            var cancellation = new CancellationTokenSource();
            var startedAt = _time.GetUtcNow();
            _schedule = new Schedule(cancellation, RunAsync(previous, startedAt, cancellation.Token));
        }
    }

    /// <summary>Stops the schedule and waits for a run in progress to end (unless called from one of this runner's callbacks).</summary>
    public async Task StopAsync()
    {
        Schedule? schedule;
        lock (_gate)
        {
            schedule = _schedule;
            schedule?.Cancellation.Cancel();
        }
        if (schedule is null || t_inCallbackOf == this)
        {
            return;
        }
        await schedule.Loop.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        Schedule? schedule;
        lock (_gate)
        {
            _disposed = true;
            schedule = _schedule;
        }
        await StopAsync().ConfigureAwait(false);
        schedule?.Cancellation.Dispose();
    }

    private static void Validate(ProbeSpec spec)
    {
        if (spec.Every <= TimeSpan.Zero)
        {
            throw new ArgumentException($"probe '{spec.Kind}': Every must be longer than 0, got {spec.Every}", nameof(spec));
        }
        if (spec.Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"probe '{spec.Kind}': Timeout must be longer than 0, got {spec.Timeout}", nameof(spec));
        }
        if (spec.InitialDelay < TimeSpan.Zero || spec.StartupBudget < TimeSpan.Zero)
        {
            throw new ArgumentException($"probe '{spec.Kind}': InitialDelay and StartupBudget cannot be negative", nameof(spec));
        }
        if (spec.FailureThreshold < 1 || spec.SuccessThreshold < 1)
        {
            throw new ArgumentException($"probe '{spec.Kind}': FailureThreshold and SuccessThreshold must be at least 1", nameof(spec));
        }
    }

    private async Task RunAsync(Schedule? previous, DateTimeOffset startedAt, CancellationToken cancellationToken)
    {
        // Yield first, so Start returns at once; then let the previous schedule finish, so callbacks never overlap.
        await Task.Yield();
        if (previous is not null)
        {
            await previous.Loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            previous.Cancellation.Dispose();
        }
        var health = new HealthCount(_spec);
        var due = startedAt + _spec.InitialDelay;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (due > _time.GetUtcNow())
            {
                Waiting?.Invoke(due);
                try
                {
                    await DueTime.WaitAsync(_time, due, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            var ranAt = _time.GetUtcNow();
            var result = await CheckOnceAsync(cancellationToken).ConfigureAwait(false);
            if (result is not ProbeResult r)
            {
                return;
            }
            // The next slot is fixed before callbacks run, so time a callback's observer advances
            // meanwhile cannot make the schedule skip a slot.
            due += _spec.Every;
            var finished = _time.GetUtcNow();
            if (due < finished)
            {
                long missed = (finished - due).Ticks / _spec.Every.Ticks + 1;
                due += _spec.Every * missed;
            }
            bool counts = !r.Pending && (r.Healthy || !(health.NeverHealthy && ranAt - startedAt < _spec.StartupBudget));
            var transition = health.Add(r, counts);
            if (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            t_inCallbackOf = this;
            try
            {
                if (transition == Transition.Unhealthy)
                {
                    Unhealthy?.Invoke(r.Detail);
                }
                else if (transition == Transition.Healthy)
                {
                    Healthy?.Invoke();
                }
                Evaluated?.Invoke(r);
            }
            finally
            {
                t_inCallbackOf = null;
            }
        }
    }

    /// <summary>One run bounded by Timeout; null when the schedule was stopped meanwhile.</summary>
    private async Task<ProbeResult?> CheckOnceAsync(CancellationToken stopped)
    {
        using var timeout = new CancellationTokenSource(_spec.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopped, timeout.Token);
        Task<ProbeResult>? check = null;
        try
        {
            check = _probe.CheckAsync(linked.Token);
            // WaitAsync: a probe that ignores its token must not hold the schedule past the timeout.
            return await check.WaitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopped.IsCancellationRequested)
        {
            return null;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return new ProbeResult(false, $"timed out after {DurationText.Format(_spec.Timeout)}");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new ProbeResult(false, $"{_spec.Kind} probe failed: {e.Message}");
        }
        finally
        {
            if (check is { IsCompleted: false })
            {
                // An abandoned check may still fail later; observe it so it is not reported as unobserved.
                _ = check.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
    }

    private enum Transition
    {
        None,
        Healthy,
        Unhealthy,
    }

    /// <summary>Consecutive successes and counted failures since a start, and the state they led to.</summary>
    private sealed class HealthCount(ProbeSpec spec)
    {
        private int _successes;
        private int _failures;
        private bool? _healthy;

        public bool NeverHealthy { get; private set; } = true;

        public Transition Add(ProbeResult result, bool counts)
        {
            if (result.Pending)
            {
                // Nothing to judge yet: neither a success nor a failure.
                return Transition.None;
            }
            if (result.Healthy)
            {
                _failures = 0;
                _successes++;
                if (_healthy != true && _successes >= spec.SuccessThreshold)
                {
                    _healthy = true;
                    NeverHealthy = false;
                    return Transition.Healthy;
                }
                return Transition.None;
            }
            _successes = 0;
            if (!counts)
            {
                return Transition.None;
            }
            _failures++;
            if (_healthy != false && _failures >= spec.FailureThreshold)
            {
                _healthy = false;
                return Transition.Unhealthy;
            }
            return Transition.None;
        }
    }

    private sealed record Schedule(CancellationTokenSource Cancellation, Task Loop);
}
