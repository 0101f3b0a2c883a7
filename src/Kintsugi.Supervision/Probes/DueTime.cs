namespace Kintsugi.Supervision.Probes;

/// <summary>Waiting until a point in time on a <see cref="TimeProvider"/>, for schedules that keep their phase.</summary>
internal static class DueTime
{
    /// <summary>
    /// Completes once the clock reads <paramref name="due"/> or later. Task.Delay takes a span that
    /// its timer measures from when it is created; if the clock moves between reading it and
    /// creating the timer (a fake clock advanced by another thread), the timer would run late, so
    /// the clock is read again once the timer exists.
    /// </summary>
    public static async Task WaitAsync(TimeProvider time, DateTimeOffset due, CancellationToken cancellationToken)
    {
        while (true)
        {
            var wait = due - time.GetUtcNow();
            if (wait <= TimeSpan.Zero)
            {
                return;
            }
            using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var delay = Task.Delay(wait, time, timer.Token);
            if (time.GetUtcNow() >= due)
            {
                await timer.CancelAsync().ConfigureAwait(false);
                await delay.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                cancellationToken.ThrowIfCancellationRequested();
                return;
            }
            await delay.ConfigureAwait(false);
        }
    }
}
