namespace Kintsugi.Supervision.Tests;

/// <summary>
/// Work scheduled on a FakeTimeProvider runs on the thread pool; tests wait for it through tasks,
/// bounded by a real-time safety limit so a broken test fails instead of hanging.
/// </summary>
internal static class TestWait
{
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(5);

    public static Task<T> Bounded<T>(this Task<T> task) => task.WaitAsync(Limit);

    public static Task Bounded(this Task task) => task.WaitAsync(Limit);
}
