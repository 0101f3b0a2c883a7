using System.Globalization;
using System.Text.RegularExpressions;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Monitors;

/// <summary>
/// All monitors of one replica, evaluated on events. Each rule applied to an event is one
/// evaluation: every exit monitor on an exit, every log monitor whose source the line comes from,
/// every metric monitor whose metric a metric line reports, every checkpoint monitor on a
/// checkpoint. Safe to call from several threads (stdout and stderr readers).
/// </summary>
public sealed class MonitorSet
{
    private const int MaxLineInDetail = 200;
    private static readonly TimeSpan RegexTimeout = TimeSpan.FromSeconds(1);

    private readonly List<ExitMonitorSpec> _exits = [];
    private readonly List<(LogMonitorSpec Spec, Regex Regex, string? File)> _logs = [];
    private readonly List<MetricMonitorSpec> _metrics = [];
    private readonly List<CheckpointMonitorSpec> _checkpoints = [];
    private readonly HashSet<string> _runningMaxMetrics = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double> _runningMax = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private long _evaluations;
    private long _hits;

    /// <summary>Throws <see cref="ArgumentException"/> for a log pattern that is not a valid regular expression.</summary>
    public MonitorSet(IReadOnlyList<MonitorSpec> monitors, string workingDirectory)
    {
        ArgumentNullException.ThrowIfNull(monitors);
        ArgumentNullException.ThrowIfNull(workingDirectory);
        foreach (var monitor in monitors)
        {
            switch (monitor)
            {
                case ExitMonitorSpec exit:
                    _exits.Add(exit);
                    break;
                case LogMonitorSpec log:
                    string? file = log.Source == LogSource.File
                        ? Path.GetFullPath(log.File ?? throw new ArgumentException($"log monitor '{log.Pattern}' reads a file but names none", nameof(monitors)), workingDirectory)
                        : null;
                    _logs.Add((log, new Regex(log.Pattern, RegexOptions.CultureInvariant, RegexTimeout), file));
                    break;
                case MetricMonitorSpec metric:
                    _metrics.Add(metric);
                    if (metric.Rule == MetricRuleKind.AboveRunningMax)
                    {
                        _runningMaxMetrics.Add(metric.Name);
                    }
                    break;
                case CheckpointMonitorSpec checkpoint:
                    _checkpoints.Add(checkpoint);
                    break;
                default:
                    throw new ArgumentException($"no monitor of kind '{monitor.Kind}'", nameof(monitors));
            }
        }
    }

    /// <summary>Rules applied to events since construction.</summary>
    public long Evaluations => Interlocked.Read(ref _evaluations);

    /// <summary>Evaluations that fired.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>Exit monitors whose codes hold <paramref name="code"/> or whose signals hold <paramref name="signal"/>.</summary>
    public IReadOnlyList<MonitorHit> OnExit(int? code, int? signal)
    {
        if (_exits.Count == 0)
        {
            return [];
        }
        string detail = signal is int s ? $"killed by signal {s}" : $"exit code {code?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}";
        List<MonitorHit>? hits = null;
        foreach (var exit in _exits)
        {
            if ((code is int c && exit.Codes.Contains(c)) || (signal is int sig && exit.Signals.Contains(sig)))
            {
                (hits ??= []).Add(new MonitorHit(exit, detail));
            }
        }
        return Count(_exits.Count, hits);
    }

    /// <summary>Log monitors of this stream (or of both), then metric monitors when the line is a metric line.</summary>
    public IReadOnlyList<MonitorHit> OnOutputLine(string line, bool stderr)
    {
        ArgumentNullException.ThrowIfNull(line);
        var stream = stderr ? LogSource.StdErr : LogSource.StdOut;
        string source = stderr ? "stderr" : "stdout";
        List<MonitorHit>? hits = null;
        int evaluations = 0;
        foreach (var (spec, regex, _) in _logs)
        {
            if (spec.Source == LogSource.Output || spec.Source == stream)
            {
                evaluations++;
                Match(spec, regex, source, line, ref hits);
            }
        }
        if (_metrics.Count > 0 && MetricLine.TryParse(line, out var values))
        {
            lock (_gate)
            {
                evaluations += EvaluateMetrics(values, ref hits);
            }
        }
        return Count(evaluations, hits);
    }

    /// <summary>Log monitors that follow the file at <paramref name="path"/> (compared as a full path).</summary>
    public IReadOnlyList<MonitorHit> OnLogFileLine(string path, string line)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(line);
        string full = Path.GetFullPath(path);
        List<MonitorHit>? hits = null;
        int evaluations = 0;
        foreach (var (spec, regex, file) in _logs)
        {
            if (spec.Source == LogSource.File && string.Equals(file, full, StringComparison.Ordinal))
            {
                evaluations++;
                Match(spec, regex, full, line, ref hits);
            }
        }
        return Count(evaluations, hits);
    }

    /// <summary>Every checkpoint monitor fires on a new complete checkpoint.</summary>
    public IReadOnlyList<MonitorHit> OnCheckpoint(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var hits = _checkpoints.Count == 0 ? null : _checkpoints.Select(c => new MonitorHit(c, $"checkpoint {path}")).ToList();
        return Count(_checkpoints.Count, hits);
    }

    /// <summary>Called when the process restarts: running maxima start over.</summary>
    public void ResetRunningState()
    {
        lock (_gate)
        {
            _runningMax.Clear();
        }
    }

    private static void Match(LogMonitorSpec spec, Regex regex, string source, string line, ref List<MonitorHit>? hits)
    {
        bool matched;
        try
        {
            matched = regex.IsMatch(line);
        }
        catch (RegexMatchTimeoutException)
        {
            // A pathological line for this pattern: treat as no match rather than stall the reader.
            matched = false;
        }
        if (matched)
        {
            string shown = line.Length > MaxLineInDetail ? line[..MaxLineInDetail] + "…" : line;
            (hits ??= []).Add(new MonitorHit(spec, $"{source} line matched /{spec.Pattern}/: {shown}"));
        }
    }

    private int EvaluateMetrics(IReadOnlyDictionary<string, double> values, ref List<MonitorHit>? hits)
    {
        int evaluations = 0;
        foreach (var metric in _metrics)
        {
            if (!values.TryGetValue(metric.Name, out double v))
            {
                continue;
            }
            evaluations++;
            string? detail = metric.Rule switch
            {
                MetricRuleKind.NanOrInf when !double.IsFinite(v) => $"{metric.Name} = {Show(v)}",
                MetricRuleKind.Above when v > metric.Value => $"{metric.Name} = {Show(v)} > {Show(metric.Value)}",
                MetricRuleKind.Below when v < metric.Value => $"{metric.Name} = {Show(v)} < {Show(metric.Value)}",
                MetricRuleKind.AboveRunningMax when _runningMax.TryGetValue(metric.Name, out double max) && AboveRunningMax(v, metric.Value, max) is { } threshold
                    => max > 0
                        ? $"{metric.Name} = {Show(v)} > {Show(metric.Value)}x running max {Show(max)}"
                        : $"{metric.Name} = {Show(v)} > {Show(threshold)} (running max {Show(max)} + {Show(metric.Value - 1)} × |{Show(max)}|, {Show(metric.Value)}x-running-max)",
                _ => null,
            };
            if (detail is not null)
            {
                (hits ??= []).Add(new MonitorHit(metric, detail));
            }
        }
        // The maxima move after every rule has seen the line, so a rule compares with earlier values only.
        foreach (string name in _runningMaxMetrics)
        {
            if (values.TryGetValue(name, out double v) && double.IsFinite(v) && (!_runningMax.TryGetValue(name, out double max) || v > max))
            {
                _runningMax[name] = v;
            }
        }
        return evaluations;
    }

    /// <summary>
    /// The threshold <paramref name="value"/> exceeds under "above k× the running max", or null when it
    /// does not: the value must rise above <paramref name="max"/> by more than (k−1)·|max|, that is
    /// v &gt; max + (k−1)·|max|. For a positive max this is v &gt; k·max (computed so, exactly as
    /// written); for a negative one it is a rise of more than k−1 times its magnitude (k = 10, max −5:
    /// above 40), so a metric that climbs towards zero (−5, −4, −3…) never fires. A running max of 0
    /// gives no scale: nothing fires until the max is non-zero.
    /// </summary>
    internal static double? AboveRunningMax(double value, double k, double max)
    {
        if (max == 0)
        {
            return null;
        }
        double threshold = max > 0 ? k * max : max + ((k - 1) * Math.Abs(max));
        return value > threshold ? threshold : null;
    }

    private IReadOnlyList<MonitorHit> Count(int evaluations, List<MonitorHit>? hits)
    {
        if (evaluations > 0)
        {
            Interlocked.Add(ref _evaluations, evaluations);
        }
        if (hits is null)
        {
            return [];
        }
        Interlocked.Add(ref _hits, hits.Count);
        return hits;
    }

    private static string Show(double value) => value.ToString(CultureInfo.InvariantCulture);
}
