using System.Threading.Channels;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Probes;
using Microsoft.Extensions.Time.Testing;

namespace Kintsugi.Supervision.Tests;

public sealed class ProbeRunnerTests
{
    private static readonly ProbeResult Ok = new(true, "ok");

    private static ProbeResult Fail(int n) => new(false, $"failure {n}");

    [Fact]
    public async Task Unhealthy_only_after_the_third_consecutive_failure_and_once()
    {
        await using var h = new Harness(new TcpProbeSpec("h", 1) { FailureThreshold = 3 }, Fail(1), Fail(2), Fail(3), Fail(4));
        h.Runner.Start();
        await h.NextAsync();
        await h.StepAsync();
        Assert.Empty(h.Transitions);
        await h.StepAsync();
        Assert.Equal(["unhealthy: failure 3"], h.Transitions);
        await h.StepAsync();
        Assert.Equal(["unhealthy: failure 3"], h.Transitions);
    }

    [Fact]
    public async Task A_pending_result_is_neither_a_success_nor_a_failure()
    {
        var waiting = ProbeResult.Waiting("not touched since the start");
        await using var h = new Harness(new TcpProbeSpec("h", 1) { FailureThreshold = 1, SuccessThreshold = 1 }, waiting, waiting, Ok, waiting, Fail(1));
        h.Runner.Start();
        await h.NextAsync();
        await h.StepAsync();
        Assert.Empty(h.Transitions);
        await h.StepAsync();
        Assert.Equal(["healthy"], h.Transitions);
        await h.StepAsync();
        Assert.Equal(["healthy"], h.Transitions);
        await h.StepAsync();
        Assert.Equal(["healthy", "unhealthy: failure 1"], h.Transitions);
    }

    [Fact]
    public async Task A_success_between_failures_starts_the_count_again()
    {
        await using var h = new Harness(new TcpProbeSpec("h", 1) { FailureThreshold = 2 }, Fail(1), Ok, Fail(2), Fail(3));
        h.Runner.Start();
        await h.NextAsync();
        await h.StepAsync();
        await h.StepAsync();
        Assert.DoesNotContain(h.Transitions, t => t.StartsWith("unhealthy", StringComparison.Ordinal));
        await h.StepAsync();
        Assert.Equal(["healthy", "unhealthy: failure 3"], h.Transitions);
    }

    [Fact]
    public async Task Healthy_after_success_threshold_after_start_and_after_being_unhealthy()
    {
        await using var h = new Harness(new TcpProbeSpec("h", 1) { FailureThreshold = 1, SuccessThreshold = 2 }, Ok, Ok, Ok, Fail(1), Ok, Ok);
        h.Runner.Start();
        await h.NextAsync();
        Assert.Empty(h.Transitions);
        await h.StepAsync();
        Assert.Equal(["healthy"], h.Transitions);
        await h.StepAsync();
        Assert.Equal(["healthy"], h.Transitions);
        await h.StepAsync();
        Assert.Equal(["healthy", "unhealthy: failure 1"], h.Transitions);
        await h.StepAsync();
        Assert.Equal(["healthy", "unhealthy: failure 1"], h.Transitions);
        await h.StepAsync();
        Assert.Equal(["healthy", "unhealthy: failure 1", "healthy"], h.Transitions);
    }

    [Fact]
    public async Task First_run_waits_for_the_initial_delay_then_runs_every_period()
    {
        await using var h = new Harness(new TcpProbeSpec("h", 1) { InitialDelay = TimeSpan.FromSeconds(30), Every = TimeSpan.FromSeconds(10) }, Ok, Ok);
        var start = h.Time.GetUtcNow();
        var waiting = new TaskCompletionSource<DateTimeOffset>(TaskCreationOptions.RunContinuationsAsynchronously);
        h.Runner.Waiting += due => waiting.TrySetResult(due);
        h.Runner.Start();
        Assert.Equal(start.AddSeconds(30), await waiting.Task.Bounded());
        Assert.Empty(h.Probe.CalledAt);
        h.Time.Advance(TimeSpan.FromSeconds(29));
        h.Time.Advance(TimeSpan.FromSeconds(1));
        await h.NextAsync();
        await h.StepAsync();
        Assert.Equal([start.AddSeconds(30), start.AddSeconds(40)], h.Probe.CalledAt);
    }

    [Fact]
    public async Task Failures_within_the_startup_budget_do_not_count()
    {
        var spec = new TcpProbeSpec("h", 1) { Every = TimeSpan.FromSeconds(10), StartupBudget = TimeSpan.FromSeconds(60), FailureThreshold = 2 };
        await using var h = new Harness(spec, Enumerable.Range(1, 8).Select(Fail).ToArray());
        h.Runner.Start();
        await h.NextAsync(); // t = 0
        for (int t = 10; t <= 60; t += 10)
        {
            await h.StepAsync();
        }
        // Runs at 0…50 s are excused; the one at 60 s is the first that counts.
        Assert.Empty(h.Transitions);
        await h.StepAsync(); // t = 70
        Assert.Equal(["unhealthy: failure 8"], h.Transitions);
    }

    [Fact]
    public async Task The_startup_budget_ends_once_the_probe_reported_healthy()
    {
        var spec = new TcpProbeSpec("h", 1) { Every = TimeSpan.FromSeconds(10), StartupBudget = TimeSpan.FromMinutes(5), FailureThreshold = 2 };
        await using var h = new Harness(spec, Ok, Fail(1), Fail(2));
        h.Runner.Start();
        await h.NextAsync();
        await h.StepAsync();
        await h.StepAsync();
        Assert.Equal(["healthy", "unhealthy: failure 2"], h.Transitions);
    }

    [Fact]
    public async Task A_run_that_exceeds_the_timeout_is_a_failure_even_if_the_probe_ignores_cancellation()
    {
        var spec = new TcpProbeSpec("h", 1) { Timeout = TimeSpan.FromSeconds(1), FailureThreshold = 1 };
        await using var h = new Harness(spec, Harness.Hang);
        h.Runner.Start();
        await h.Probe.Called.Task.Bounded();
        h.Time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Empty(h.Transitions);
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        var result = await h.NextAsync();
        Assert.False(result.Healthy);
        Assert.Equal("timed out after 1s", result.Detail);
        Assert.Equal(["unhealthy: timed out after 1s"], h.Transitions);
    }

    [Fact]
    public async Task A_probe_that_throws_is_a_failure_with_the_message()
    {
        await using var h = new Harness(new TcpProbeSpec("h", 1) { FailureThreshold = 1 }, Harness.Throw);
        h.Runner.Start();
        var result = await h.NextAsync();
        Assert.False(result.Healthy);
        Assert.Contains("probe exploded", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_again_forgets_earlier_failures()
    {
        await using var h = new Harness(new TcpProbeSpec("h", 1) { FailureThreshold = 2 }, Fail(1), Fail(2), Fail(3));
        h.Runner.Start();
        await h.NextAsync();
        h.Runner.Start(); // restarted at the same instant: runs again at once, counting from zero
        await h.NextAsync();
        Assert.Empty(h.Transitions);
        await h.StepAsync();
        Assert.Equal(["unhealthy: failure 3"], h.Transitions);
    }

    [Fact]
    public async Task After_stop_no_more_runs()
    {
        await using var h = new Harness(new TcpProbeSpec("h", 1), Ok, Ok);
        h.Runner.Start();
        await h.NextAsync();
        await h.Runner.StopAsync().Bounded();
        h.Time.Advance(TimeSpan.FromMinutes(5));
        Assert.Single(h.Probe.CalledAt);
    }

    [Fact]
    public void Invalid_schedules_are_refused()
    {
        var probe = new ScriptedProbe(TimeProvider.System, []);
        Assert.Throws<ArgumentException>(() => new ProbeRunner(new TcpProbeSpec("h", 1) { Every = TimeSpan.Zero }, probe, TimeProvider.System));
        Assert.Throws<ArgumentException>(() => new ProbeRunner(new TcpProbeSpec("h", 1) { FailureThreshold = 0 }, probe, TimeProvider.System));
    }

    /// <summary>A runner on fake time with a scripted probe; records transitions and hands out evaluations in order.</summary>
    private sealed class Harness : IAsyncDisposable
    {
        public static readonly Func<CancellationToken, Task<ProbeResult>> Hang = _ => new TaskCompletionSource<ProbeResult>().Task;
        public static readonly Func<CancellationToken, Task<ProbeResult>> Throw = _ => throw new InvalidOperationException("probe exploded");

        private readonly Channel<ProbeResult> _evaluations = Channel.CreateUnbounded<ProbeResult>();
        private readonly List<string> _transitions = [];
        private readonly ProbeSpec _spec;

        public Harness(ProbeSpec spec, params ProbeResult[] results)
            : this(spec, results.Select(r => (Func<CancellationToken, Task<ProbeResult>>)(_ => Task.FromResult(r))).ToArray())
        {
        }

        public Harness(ProbeSpec spec, params Func<CancellationToken, Task<ProbeResult>>[] script)
        {
            _spec = spec;
            Probe = new ScriptedProbe(Time, script);
            Runner = new ProbeRunner(spec, Probe, Time);
            Runner.Unhealthy += detail => Record($"unhealthy: {detail}");
            Runner.Healthy += () => Record("healthy");
            Runner.Evaluated += r => _evaluations.Writer.TryWrite(r);
        }

        public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));

        public ScriptedProbe Probe { get; }

        public ProbeRunner Runner { get; }

        public IReadOnlyList<string> Transitions
        {
            get
            {
                lock (_transitions)
                {
                    return [.. _transitions];
                }
            }
        }

        public async Task<ProbeResult> NextAsync() => await _evaluations.Reader.ReadAsync().AsTask().Bounded();

        /// <summary>Advances one period and waits for the run it brings.</summary>
        public Task<ProbeResult> StepAsync()
        {
            Time.Advance(_spec.Every);
            return NextAsync();
        }

        public ValueTask DisposeAsync() => Runner.DisposeAsync();

        private void Record(string transition)
        {
            lock (_transitions)
            {
                _transitions.Add(transition);
            }
        }
    }

    /// <summary>Answers each check with the next step of its script (healthy when the script is over) and records when it was asked.</summary>
    internal sealed class ScriptedProbe(TimeProvider time, Func<CancellationToken, Task<ProbeResult>>[] script) : IProbe
    {
        private readonly List<DateTimeOffset> _calledAt = [];

        public TaskCompletionSource Called { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IReadOnlyList<DateTimeOffset> CalledAt
        {
            get
            {
                lock (_calledAt)
                {
                    return [.. _calledAt];
                }
            }
        }

        public Task<ProbeResult> CheckAsync(CancellationToken cancellationToken)
        {
            int n;
            lock (_calledAt)
            {
                n = _calledAt.Count;
                _calledAt.Add(time.GetUtcNow());
            }
            Called.TrySetResult();
            return n < script.Length ? script[n](cancellationToken) : Task.FromResult(new ProbeResult(true, "script over"));
        }
    }
}
