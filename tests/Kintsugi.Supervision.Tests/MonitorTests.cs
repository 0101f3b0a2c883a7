using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Monitors;

namespace Kintsugi.Supervision.Tests;

public sealed class MonitorTests
{
    private const string Dir = "/work/replica0";
    private static readonly ActionSpec Restart = new RestartActionSpec();

    [Fact]
    public void Exit_monitor_fires_on_its_codes_and_signals()
    {
        var exit = new ExitMonitorSpec([1, 137], [9]) { Then = Restart };
        var set = new MonitorSet([exit], Dir);

        Assert.Equal([new MonitorHit(exit, "exit code 137")], set.OnExit(137, null));
        Assert.Empty(set.OnExit(0, null));
        Assert.Equal([new MonitorHit(exit, "killed by signal 9")], set.OnExit(null, 9));
        Assert.Empty(set.OnExit(null, 15));
        Assert.Equal(4, set.Evaluations);
        Assert.Equal(2, set.Hits);
    }

    [Fact]
    public void Log_monitors_see_the_streams_they_name()
    {
        var any = new LogMonitorSpec("Traceback", LogSource.Output, null) { Then = Restart };
        var stdout = new LogMonitorSpec("^ready$", LogSource.StdOut, null) { Then = Restart };
        var stderr = new LogMonitorSpec("CUDA error", LogSource.StdErr, null) { Then = Restart };
        var set = new MonitorSet([any, stdout, stderr], Dir);

        Assert.Equal([stdout], set.OnOutputLine("ready", stderr: false).Select(h => h.Monitor));
        Assert.Empty(set.OnOutputLine("ready", stderr: true));
        Assert.Equal([stderr], set.OnOutputLine("RuntimeError: CUDA error: out of memory", stderr: true).Select(h => h.Monitor));
        Assert.Empty(set.OnOutputLine("CUDA error on stdout is only printed", stderr: false));
        Assert.Equal([any], set.OnOutputLine("Traceback (most recent call last):", stderr: false).Select(h => h.Monitor));
        Assert.Equal([any], set.OnOutputLine("Traceback (most recent call last):", stderr: true).Select(h => h.Monitor));

        // Each line meets the Output rule and its own stream's rule.
        Assert.Equal(12, set.Evaluations);
        Assert.Equal(4, set.Hits);
        var hit = set.OnOutputLine("CUDA error", stderr: true).Single();
        Assert.Equal("stderr line matched /CUDA error/: CUDA error", hit.Detail);
    }

    [Fact]
    public void File_log_monitors_see_only_lines_of_their_file()
    {
        var file = new LogMonitorSpec("panic", LogSource.File, "logs/app.log") { Then = Restart };
        var set = new MonitorSet([file], Dir);

        Assert.Empty(set.OnOutputLine("panic on stdout", stderr: false));
        Assert.Empty(set.OnLogFileLine("/work/replica0/logs/other.log", "panic"));
        Assert.Equal(0, set.Evaluations);
        Assert.Single(set.OnLogFileLine("/work/replica0/logs/app.log", "kernel panic"));
        Assert.Empty(set.OnLogFileLine("/work/replica0/logs/app.log", "all fine"));
        Assert.Equal(2, set.Evaluations);
        Assert.Equal(1, set.Hits);
    }

    [Fact]
    public void Metric_rules_nan_above_and_below()
    {
        var nan = new MetricMonitorSpec("loss", MetricRuleKind.NanOrInf, 0) { Then = Restart };
        var above = new MetricMonitorSpec("grad_norm", MetricRuleKind.Above, 10) { Then = Restart };
        var below = new MetricMonitorSpec("lr", MetricRuleKind.Below, 1e-6) { Then = Restart };
        var set = new MonitorSet([nan, above, below], Dir);

        Assert.Empty(set.OnOutputLine("KINTSUGI {\"loss\": 0.5, \"grad_norm\": 10, \"lr\": 1e-6}", stderr: false));
        Assert.Equal(3, set.Evaluations);
        Assert.Equal([new MonitorHit(nan, "loss = NaN")], set.OnOutputLine("KINTSUGI {\"loss\": NaN}", stderr: false));
        Assert.Equal([new MonitorHit(nan, "loss = -Infinity")], set.OnOutputLine("KINTSUGI {\"loss\": -Infinity}", stderr: true));
        Assert.Equal([new MonitorHit(above, "grad_norm = 10.5 > 10")], set.OnOutputLine("KINTSUGI {\"grad_norm\": 10.5}", stderr: false));
        Assert.Equal([below], set.OnOutputLine("KINTSUGI {\"lr\": 0}", stderr: false).Select(h => h.Monitor));
        // A metric the line does not report is not evaluated, nor is a line that is not a metric line.
        Assert.Empty(set.OnOutputLine("KINTSUGI {\"step\": 5}", stderr: false));
        Assert.Empty(set.OnOutputLine("loss: NaN", stderr: false));
        Assert.Equal(7, set.Evaluations);
        Assert.Equal(4, set.Hits);
    }

    [Fact]
    public void Above_running_max_compares_with_earlier_finite_values_and_starts_over_on_reset()
    {
        var spike = new MetricMonitorSpec("loss", MetricRuleKind.AboveRunningMax, 2) { Then = Restart };
        var set = new MonitorSet([spike], Dir);
        IReadOnlyList<MonitorHit> Report(string value) => set.OnOutputLine($"KINTSUGI {{\"loss\": {value}}}", stderr: false);

        Assert.Empty(Report("1.0"));   // the first value never fires
        Assert.Empty(Report("1.8"));   // 1.8 <= 2 × 1.0
        Assert.Equal([new MonitorHit(spike, "loss = 4 > 2x running max 1.8")], Report("4.0"));
        Assert.Empty(Report("NaN"));   // not above anything, and not counted into the max
        Assert.Empty(Report("8.0"));   // 8 <= 2 × 4
        Assert.Single(Report("16.5")); // > 2 × 8

        set.ResetRunningState();
        Assert.Empty(Report("100"));   // first value after the restart
        Assert.Empty(Report("150"));
        Assert.Single(Report("301"));
        Assert.Equal(9, set.Evaluations);
        Assert.Equal(3, set.Hits);
    }

    [Fact]
    public void Above_running_max_never_fires_on_a_negative_metric_that_improves_but_does_on_a_spike()
    {
        var spike = new MetricMonitorSpec("reward", MetricRuleKind.AboveRunningMax, 10) { Then = Restart };
        var set = new MonitorSet([spike], Dir);
        IReadOnlyList<MonitorHit> Report(string value) => set.OnOutputLine($"KINTSUGI {{\"reward\": {value}}}", stderr: false);

        // Before, "-4 > 10x running max -5" fired on every step of a climb towards zero.
        foreach (string v in new[] { "-8", "-5", "-4", "-3", "-2", "-1", "-0.5", "-0.5" })
        {
            Assert.Empty(Report(v));
        }
        // A rise above the max -0.5 by more than 9 × 0.5 = 4.5 is a spike.
        Assert.Empty(Report("3.5"));
        set.ResetRunningState();
        Assert.Empty(Report("-0.5"));
        Assert.Equal([new MonitorHit(spike, "reward = 8 > 4 (running max -0.5 + 9 × |-0.5|, 10x-running-max)")], Report("8"));
        Assert.Empty(Report("-100"));  // below the max: never
        Assert.Equal(12, set.Evaluations);
        Assert.Equal(1, set.Hits);
    }

    [Fact]
    public void Above_running_max_never_fires_on_a_falling_loss_and_waits_for_a_non_zero_max()
    {
        var spike = new MetricMonitorSpec("loss", MetricRuleKind.AboveRunningMax, 1) { Then = Restart };
        var set = new MonitorSet([spike], Dir);
        IReadOnlyList<MonitorHit> Report(string value) => set.OnOutputLine($"KINTSUGI {{\"loss\": {value}}}", stderr: false);

        foreach (string v in new[] { "5", "4", "3", "2.5", "1", "0.1", "0" })
        {
            Assert.Empty(Report(v));
        }
        set.ResetRunningState();
        Assert.Empty(Report("0"));
        Assert.Empty(Report("3"));    // a running max of 0 gives no scale to compare with
        Assert.Equal([new MonitorHit(spike, "loss = 3.5 > 1x running max 3")], Report("3.5"));
        Assert.Empty(Report("3.5"));  // equal to the max is not above it
        Assert.Equal([new MonitorHit(spike, "loss = Infinity > 1x running max 3.5")], Report("Infinity"));
    }

    [Theory]
    [InlineData(2.0, 1.0, 2.0, false)]
    [InlineData(2.0, 1.0, 2.0001, true)]
    [InlineData(10.0, -5.0, -4.0, false)]
    [InlineData(10.0, -5.0, 40.0, false)]
    [InlineData(10.0, -5.0, 40.5, true)]
    [InlineData(2.0, -1.0, -0.5, false)]
    [InlineData(2.0, -1.0, 0.01, true)]
    [InlineData(10.0, 0.0, 1e9, false)]
    [InlineData(10.0, -1.0, double.NaN, false)]
    public void Above_running_max_threshold(double k, double max, double value, bool fires)
    {
        Assert.Equal(fires, MonitorSet.AboveRunningMax(value, k, max) is not null);
    }

    [Fact]
    public void A_metric_line_is_also_a_log_line()
    {
        var log = new LogMonitorSpec("KINTSUGI", LogSource.Output, null) { Then = Restart };
        var nan = new MetricMonitorSpec("loss", MetricRuleKind.NanOrInf, 0) { Then = Restart };
        var set = new MonitorSet([log, nan], Dir);
        Assert.Equal([log, nan], set.OnOutputLine("KINTSUGI {\"loss\": NaN}", stderr: false).Select(h => h.Monitor));
        Assert.Equal(2, set.Evaluations);
    }

    [Fact]
    public void Checkpoint_monitors_fire_on_every_checkpoint()
    {
        var record = new CheckpointMonitorSpec { Then = new RecordActionSpec() };
        var exit = new ExitMonitorSpec([1], []) { Then = Restart };
        var set = new MonitorSet([record, exit], Dir);
        Assert.Equal([new MonitorHit(record, "checkpoint /ckpt/step-100")], set.OnCheckpoint("/ckpt/step-100"));
        Assert.Equal(1, set.Evaluations);
        Assert.Equal(1, set.Hits);
    }

    [Fact]
    public void Counts_are_exact_under_concurrent_streams()
    {
        var log = new LogMonitorSpec("x", LogSource.Output, null) { Then = Restart };
        var max = new MetricMonitorSpec("loss", MetricRuleKind.AboveRunningMax, 1e9) { Then = Restart };
        var set = new MonitorSet([log, max], Dir);
        Parallel.For(0, 4000, i => set.OnOutputLine(i % 2 == 0 ? "x" : $"KINTSUGI {{\"loss\": {i}}}", stderr: i % 4 < 2));
        // Every line meets the log rule; the 2000 metric lines also meet the metric rule.
        Assert.Equal(6000, set.Evaluations);
        Assert.Equal(2000, set.Hits);
    }

    [Fact]
    public void An_invalid_pattern_is_refused()
    {
        Assert.ThrowsAny<ArgumentException>(() => new MonitorSet([new LogMonitorSpec("(unclosed", LogSource.Output, null) { Then = Restart }], Dir));
    }
}
