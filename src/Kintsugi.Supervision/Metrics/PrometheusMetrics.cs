using Prometheus;

namespace Kintsugi.Supervision.Metrics;

/// <summary>
/// The figures as Prometheus metrics, kept in a registry of their own (prometheus-net) that is
/// refreshed from the journal just before each scrape, so nothing is counted twice.
/// Failures, restarts and rollbacks are counters: they count since the supervisor started and never go
/// down while it runs. The other figures are gauges over that same span. docs/METRICS.md names them all.
/// </summary>
public sealed class PrometheusMetrics
{
    private static readonly (string Name, string Help, Func<WorkloadFigures, double?> Value)[] GaugeFigures =
    [
        ("kintsugi_availability_ratio", "Fraction of the time since the supervisor started during which at least one replica was healthy.", f => f.Availability),
        ("kintsugi_mtbf_seconds", "Mean time between failures: replica healthy time divided by failures, since the supervisor started.", f => f.MtbfSeconds),
        ("kintsugi_mttr_seconds", "Mean time from a replica becoming unhealthy to it being healthy again, over incidents that ended since the supervisor started.", f => f.MttrSeconds),
        ("kintsugi_rto_seconds", "Recovery time of the newest incident that ended since the supervisor started.", f => f.RtoLastSeconds),
        ("kintsugi_rpo_seconds", "Age of the newest good protected checkpoint: the work a loss now would cost.", f => f.RpoSeconds),
        ("kintsugi_ettr_ratio", "Effective training time ratio: healthy time minus work lost to failures, divided by the time since the supervisor started.", f => f.Ettr),
        ("kintsugi_recovery_rate_ratio", "Recovery rate R = B/D: checkpoint bytes protected divided by checkpoint bytes written since the supervisor started.", f => f.RecoveryRate),
        ("kintsugi_adaptation_rate_ratio", "Adaptation rate A = S/N: decisions that adjusted the workload divided by monitoring evaluations since the supervisor started.", f => f.AdaptationRate),
    ];

    private static readonly (string Name, string Help, Func<WorkloadFigures, int> Value)[] CounterFigures =
    [
        ("kintsugi_failures_total", "Replica failures (replica.unhealthy events, unexpected exits included) since the supervisor started.", f => f.Failures),
        ("kintsugi_restarts_total", "Restarts (action.restart events) since the supervisor started.", f => f.Restarts),
        ("kintsugi_rollbacks_total", "Rollbacks (action.rollback events) since the supervisor started.", f => f.Rollbacks),
    ];

    private static readonly string[] WorkloadLabel = ["workload"];

    private readonly CollectorRegistry _registry = Prometheus.Metrics.NewCustomRegistry();
    private readonly Gauge[] _gauges;
    private readonly Counter[] _counters;
    private readonly Gauge _state;
    private readonly Gauge _repositoryRpo;
    private readonly HashSet<(string Workload, string Repository, string Role)> _repositoryLabels = [];
    private readonly Gauge _running;
    private readonly Func<IReadOnlyList<WorkloadFigures>> _figures;
    private readonly Func<bool> _supervisorRunning;

    /// <param name="figures">Called before each scrape: the figures of each workload since the supervisor started.</param>
    /// <param name="supervisorRunning">Called before each scrape: whether the supervisor still supervises its workloads.</param>
    public PrometheusMetrics(Func<IReadOnlyList<WorkloadFigures>> figures, Func<bool> supervisorRunning)
    {
        ArgumentNullException.ThrowIfNull(figures);
        ArgumentNullException.ThrowIfNull(supervisorRunning);
        _figures = figures;
        _supervisorRunning = supervisorRunning;
        var factory = Prometheus.Metrics.WithCustomRegistry(_registry);
        _running = factory.CreateGauge("kintsugi_supervisor_running", "1 while the supervisor supervises its workloads; 0 once they have stopped (the final figures, served during --metrics-linger).");
        _gauges = [.. GaugeFigures.Select(g => factory.CreateGauge(g.Name, g.Help, WorkloadLabel))];
        _counters = [.. CounterFigures.Select(c => factory.CreateCounter(c.Name, c.Help, WorkloadLabel))];
        _state = factory.CreateGauge("kintsugi_workload_state", "Current state of the workload: 1 for the state it is in, 0 for the others.", "workload", "state");
        _repositoryRpo = factory.CreateGauge("kintsugi_repository_rpo_seconds", "Age of the newest good checkpoint a repository holds (role primary: the main repository; copy: one of the config's copies).", "workload", "repository", "role");
        _registry.AddBeforeCollectCallback(Refresh);
    }

    /// <summary>Writes the metrics in the Prometheus text format (version 0.0.4), refreshed from the figures first.</summary>
    public Task WriteAsync(Stream destination, CancellationToken ct) =>
        _registry.CollectAndExportAsTextAsync(destination, ExpositionFormat.PrometheusText, ct);

    private void Refresh()
    {
        var figures = _figures();
        _running.Set(_supervisorRunning() ? 1 : 0);
        for (int i = 0; i < GaugeFigures.Length; i++)
        {
            foreach (var f in figures)
            {
                if (GaugeFigures[i].Value(f) is { } value)
                {
                    _gauges[i].WithLabels(f.Workload).Set(value);
                }
                else
                {
                    _gauges[i].RemoveLabelled(f.Workload);
                }
            }
        }
        for (int i = 0; i < CounterFigures.Length; i++)
        {
            foreach (var f in figures)
            {
                // A counter only goes up: the count since the supervisor started, which never shrinks.
                _counters[i].WithLabels(f.Workload).IncTo(CounterFigures[i].Value(f));
            }
        }
        var seen = new HashSet<(string Workload, string Repository, string Role)>();
        foreach (var f in figures)
        {
            foreach (var r in f.Repositories)
            {
                _repositoryRpo.WithLabels(f.Workload, r.Repository, r.Role).Set(r.RpoSeconds);
                seen.Add((f.Workload, r.Repository, r.Role));
            }
        }
        lock (_repositoryLabels)
        {
            // A repository no longer in the figures (its checkpoints all marked bad) loses its series.
            foreach (var gone in _repositoryLabels.Except(seen).ToList())
            {
                _repositoryRpo.RemoveLabelled(gone.Workload, gone.Repository, gone.Role);
            }
            _repositoryLabels.Clear();
            _repositoryLabels.UnionWith(seen);
        }
        foreach (var f in figures)
        {
            foreach (var state in Enum.GetValues<WorkloadState>())
            {
                _state.WithLabels(f.Workload, state.ToString().ToLowerInvariant()).Set(f.State == state ? 1 : 0);
            }
        }
    }
}
