using System.Globalization;
using System.Threading.Channels;
using Kintsugi.Supervision.Checkpoints;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Journal;
using Kintsugi.Supervision.Monitors;
using Kintsugi.Supervision.Policies;
using Kintsugi.Supervision.Probes;
using Kintsugi.Supervision.Processes;

namespace Kintsugi.Supervision;

/// <summary>
/// Runs the workloads of a configuration and keeps them running. Probes, monitors and process exits
/// become signals; the policy (the workload's restart spec and the action a probe or monitor names)
/// turns each into an action; every signal, decision and action goes into the journal. All state
/// changes happen on one logical thread: callbacks post work into an inbox processed in order, so
/// no two decisions race.
/// </summary>
public sealed class Supervisor
{
    private readonly SupervisorConfig _config;
    private readonly EventJournal _journal;
    private readonly SupervisorOptions _options;
    private readonly TimeProvider _time;
    private readonly Channel<Func<Task>> _inbox = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<WorkloadState> _workloads = [];
    private readonly Lock _countLock = new();
    private CancellationToken _stopping;
    private CancellationToken _hurry;
    private bool _gangRestartPending;

    public Supervisor(SupervisorConfig config, EventJournal journal, SupervisorOptions options, TimeProvider time)
    {
        _config = config;
        _journal = journal;
        _options = options;
        _time = time;
    }

    /// <summary>The config's copies, copied by the options' copier (by default: a backup of the checkpoint into each); null when there are none.</summary>
    private CheckpointCopies? Copies()
    {
        if (_config.Copies.Count == 0)
        {
            return null;
        }
        var open = _options.OpenCopy ?? throw new InvalidOperationException("the config has copies but the options cannot open them (SupervisorOptions.OpenCopy)");
        var copier = _options.Copier
            ?? (_options.CheckpointBackup is { } runner ? new BackupCheckpointCopier(runner, _options.Host) : new BackupCheckpointCopier(open, _options.Host));
        return new CheckpointCopies(_config.Copies, copier, open);
    }

    private sealed class WorkloadState(WorkloadSpec spec, Random random)
    {
        public WorkloadSpec Spec { get; } = spec;
        public Backoff Backoff { get; } = new(spec.Restart.Backoff, random);
        public RestartBudget Budget { get; } = new(spec.Restart.Budget);
        public IReadOnlyList<string> Command { get; set; } = spec.Command;
        public IReadOnlyDictionary<string, string> Environment { get; set; } = spec.Environment;
        public CheckpointGuard? Guard { get; set; }
        public List<ReplicaState> Replicas { get; } = [];
        public bool Failed { get; set; }
        public bool Done => Failed || Replicas.All(r => r.Completed);

        /// <summary>Evaluations and hits of probes, and of monitor sets of processes that have ended (live sets count their own).</summary>
        public long Evaluations, Hits, ReportedEvaluations, ReportedHits;
    }

    private sealed class ReplicaState(WorkloadState workload, int index)
    {
        public WorkloadState Workload { get; } = workload;
        public int Index { get; } = index;
        public int Attempt { get; set; }
        public WorkloadProcess? Process { get; set; }
        public DateTimeOffset StartedAt { get; set; }
        public List<ProbeRunner> Probes { get; } = [];
        public HashSet<ProbeRunner> FailingProbes { get; } = [];
        /// <summary>Probes whose newest transition was to healthy: the replica is healthy once all of them are.</summary>
        public HashSet<ProbeRunner> PassingProbes { get; } = [];
        public List<LogFileFollower> Followers { get; } = [];
        public MonitorSet? Monitors { get; set; }
        public Dictionary<string, (double Value, DateTimeOffset ChangedAt)> Metrics { get; } = new(StringComparer.Ordinal);
        public bool Healthy { get; set; }
        /// <summary>An action is under way (stopping, waiting out a backoff, restoring): further signals are only recorded.</summary>
        public bool Busy { get; set; }
        public bool Completed { get; set; }
        public bool ExpectExit { get; set; }
        /// <summary>The step at which the newest bad metric was seen, for rollback.</summary>
        public long? FaultStep { get; set; }
        public int? Port => Workload.Spec.Port is int p ? p + Index : null;
        public string Name => $"{Workload.Spec.Name}/{Index}";
    }

    private void Post(Func<Task> work) => _inbox.Writer.TryWrite(work);

    private void Post(Action work) => Post(() =>
    {
        work();
        return Task.CompletedTask;
    });

    private void After(TimeSpan delay, Func<Task> work)
    {
        _ = Task.Run(async () =>
        {
            try
            {
                await Task.Delay(delay, _time, _stopping).ConfigureAwait(false);
                Post(work);
            }
            catch (OperationCanceledException)
            {
            }
        });
    }

    /// <summary>
    /// Runs until every workload has finished or failed, or <paramref name="ct"/> is cancelled. Stopping
    /// always completes: each process gets its stop signal and grace, then SIGKILL, and the journal
    /// records every exit and the supervisor's stop; cancelling <paramref name="hurry"/> (a second
    /// Ctrl-C) cuts the graces short to SIGKILL, but still waits for the processes to be gone.
    /// </summary>
    public async Task<SupervisorOutcome> RunAsync(CancellationToken ct, CancellationToken hurry = default)
    {
        _stopping = ct;
        _hurry = hurry;
        var previous = FindUnfinishedRun();
        _journal.Append(EventTypes.SupervisorStarted, null, null, new { pid = Environment.ProcessId, config = _config.SourcePath, resumed = previous is not null });
        foreach (var spec in _config.Workloads)
        {
            var w = new WorkloadState(spec, _options.Random);
            for (int i = 0; i < spec.Replicas; i++)
            {
                w.Replicas.Add(new ReplicaState(w, i));
            }
            _workloads.Add(w);
            if (spec.Checkpoints is not null)
            {
                w.Guard = new CheckpointGuard(spec, _journal, _options.OpenRepository, _time, _options.Host, info => Post(() => OnCheckpoint(w, info)), _config.Repository, Copies(), _options.CheckpointBackup);
                w.Guard.Start();
            }
        }
        if (previous is long since)
        {
            await CarryOnAsync(since).ConfigureAwait(false);
        }
        foreach (var w in _workloads.Where(w => !w.Failed))
        {
            foreach (var r in w.Replicas.Where(r => !r.Completed))
            {
                Post(() => StartAsync(r, previous is null ? null : "supervisor restarted"));
            }
        }
        using var evaluations = _time.CreateTimer(_ => Post(FlushEvaluations), null, _options.EvaluationsEvery, _options.EvaluationsEvery);
        using var registration = ct.Register(() => _inbox.Writer.TryWrite(() => Task.CompletedTask));
        SupervisorOutcome outcome;
        try
        {
            while (true)
            {
                if (ct.IsCancellationRequested)
                {
                    outcome = SupervisorOutcome.Stopped;
                    break;
                }
                if (_workloads.All(w => w.Done))
                {
                    outcome = _workloads.Any(w => w.Failed) ? SupervisorOutcome.Failed : SupervisorOutcome.Completed;
                    break;
                }
                var work = await _inbox.Reader.ReadAsync(CancellationToken.None).ConfigureAwait(false);
                try
                {
                    await work().ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    // Stopping: the check at the top of the loop ends it, and shutdown follows.
                }
                catch (Exception e)
                {
                    _journal.Append(EventTypes.Error, null, null, new { message = e.Message });
                }
            }
        }
        finally
        {
            await ShutdownAsync().ConfigureAwait(false);
        }
        _journal.Append(EventTypes.SupervisorStopped, null, null, new { reason = outcome.ToString().ToLowerInvariant() });
        return outcome;
    }

    private async Task ShutdownAsync()
    {
        var stops = _workloads.SelectMany(w => w.Replicas).Where(r => r.Process is { HasExited: false }).Select(r => StopReplicaAsync(r)).ToList();
        await Task.WhenAll(stops).ConfigureAwait(false);
        FlushEvaluations();
        foreach (var w in _workloads)
        {
            if (w.Guard is not null)
            {
                await w.Guard.SettleRemainingAsync(CancellationToken.None).ConfigureAwait(false);
                await w.Guard.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The id of the last supervisor.started that has no supervisor.stopped after it: a run that died.</summary>
    private long? FindUnfinishedRun()
    {
        var started = _journal.Last(EventTypes.SupervisorStarted);
        if (started is null)
        {
            return null;
        }
        var stopped = _journal.Last(EventTypes.SupervisorStopped);
        return stopped is null || stopped.Id < started.Id ? started.Id : null;
    }

    /// <summary>
    /// The previous supervisor died. Read what it was doing: attempts and restarts (so the budget does
    /// not count them twice), failed workloads, finished replicas, and processes it left running
    /// (stopped here, since their output can no longer be read, and resumed from their checkpoint).
    /// </summary>
    private async Task CarryOnAsync(long since)
    {
        var events = _journal.Read(afterId: since - 1);
        foreach (var w in _workloads)
        {
            string name = w.Spec.Name;
            var mine = events.Where(e => e.Workload == name).ToList();
            w.Budget.Seed(mine.Where(e => e.Type == EventTypes.Restart).Select(e => e.Time));
            if (mine.Any(e => e.Type == EventTypes.WorkloadFailed))
            {
                w.Failed = true;
            }
            foreach (var r in w.Replicas)
            {
                var starts = mine.Where(e => e.Type == EventTypes.ProcessStarted && e.Replica == r.Index).ToList();
                r.Attempt = (int)(starts.Select(e => e.GetInt64("attempt") ?? 0).DefaultIfEmpty(0).Max());
                var lastStart = starts.LastOrDefault();
                var lastExit = mine.LastOrDefault(e => e.Type == EventTypes.ProcessExited && e.Replica == r.Index);
                if (lastExit is not null && (lastStart is null || lastExit.Id > lastStart.Id) && lastExit.GetInt64("code") == 0 && w.Spec.Restart.When != RestartWhen.Always)
                {
                    r.Completed = true;
                }
                if (lastStart?.GetInt64("pid") is long pid && (lastExit is null || lastExit.Id < lastStart.Id))
                {
                    await StopOrphanAsync((int)pid, lastStart.GetInt64("start_ticks"), w.Spec).ConfigureAwait(false);
                    _journal.Append(EventTypes.ProcessExited, name, r.Index, new { pid, code = (int?)null, signal = w.Spec.Stop.Signal, uptime_s = (_time.GetUtcNow() - lastStart.Time).TotalSeconds, expected = true });
                }
            }
        }
    }

    /// <summary>Stops a process an earlier supervisor left running, if that pid still is that process (not one that reused the pid).</summary>
    private async Task StopOrphanAsync(int pid, long? startTicks, WorkloadSpec spec)
    {
        if (!ProcessGroup.IsSame(pid, startTicks))
        {
            return;
        }
        ProcessGroup.Signal(pid, spec.Stop.Signal);
        var deadline = _time.GetUtcNow() + spec.Stop.Grace;
        while (ProcessGroup.IsSame(pid, startTicks) && _time.GetUtcNow() < deadline)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(50), _time).ConfigureAwait(false);
        }
        if (ProcessGroup.IsSame(pid, startTicks))
        {
            ProcessGroup.Signal(pid, ProcessGroup.SIGKILL);
        }
    }

    // ----- starting and stopping -----

    private async Task StartAsync(ReplicaState r, string? reason, string? resumeFrom = null, long skipSteps = 0, bool resumeFromNewest = true)
    {
        var w = r.Workload;
        if (w.Failed || _stopping.IsCancellationRequested || r.Process is { HasExited: false })
        {
            return;
        }
        r.Attempt++;
        r.Busy = false;
        r.Healthy = false;
        r.ExpectExit = false;
        r.FaultStep = null;
        lock (r.Metrics)
        {
            r.Metrics.Clear();
        }
        r.FailingProbes.Clear();
        r.PassingProbes.Clear();
        if (resumeFrom is null && resumeFromNewest && w.Guard is not null && r.Attempt > 1)
        {
            try
            {
                resumeFrom = (await w.Guard.ResumePointAsync(_stopping).ConfigureAwait(false))?.Path;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Better a fresh start than a replica that never starts again.
                _journal.Append(EventTypes.Error, w.Spec.Name, r.Index, new { message = $"no checkpoint to resume from: {e.Message}; starting from the beginning" });
            }
        }
        var env = new Dictionary<string, string>(_options.BaseEnvironment, StringComparer.Ordinal);
        foreach (var (k, v) in w.Environment)
        {
            env[k] = v;
        }
        env["KINTSUGI_WORKLOAD"] = w.Spec.Name;
        env["KINTSUGI_REPLICA"] = r.Index.ToString(CultureInfo.InvariantCulture);
        env["KINTSUGI_ATTEMPT"] = r.Attempt.ToString(CultureInfo.InvariantCulture);
        env["KINTSUGI_SKIP_STEPS"] = skipSteps.ToString(CultureInfo.InvariantCulture);
        env["KINTSUGI_RESUME_FROM"] = resumeFrom ?? "";
        if (r.Port is int port)
        {
            env["KINTSUGI_PORT"] = port.ToString(CultureInfo.InvariantCulture);
        }
        if (w.Spec.Checkpoints is { } c)
        {
            env["KINTSUGI_CHECKPOINT_DIR"] = c.Directory;
        }
        if (w.Spec.Probes.OfType<HeartbeatProbeSpec>().FirstOrDefault() is { } hb)
        {
            env["KINTSUGI_HEARTBEAT_FILE"] = hb.File;
            // A job's `touch $KINTSUGI_HEARTBEAT_FILE` must not fail on a folder nobody made.
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(hb.File)!);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _journal.Append(EventTypes.Error, w.Spec.Name, r.Index, new { message = $"cannot create the heartbeat file's folder: {e.Message}" });
            }
        }
        RetireMonitors(r);
        var monitorSet = new MonitorSet(w.Spec.Monitors, w.Spec.WorkingDirectory);
        lock (_countLock)
        {
            r.Monitors = monitorSet;
        }
        // Log files are followed from before the start, so no line the new process writes is missed.
        foreach (var log in w.Spec.Monitors.OfType<LogMonitorSpec>().Where(m => m.Source == LogSource.File && m.File is not null).Select(m => m.File!).Distinct(StringComparer.Ordinal))
        {
            var follower = new LogFileFollower(log, TimeSpan.FromMilliseconds(200), _time, line => Post(() =>
            {
                if (r.Monitors is { } monitors)
                {
                    OnHits(r, r.Process, monitors.OnLogFileLine(log, line));
                }
            }));
            r.Followers.Add(follower);
            follower.Start();
        }
        WorkloadProcess process;
        try
        {
            process = WorkloadProcess.Start(w.Command, w.Spec.WorkingDirectory, env, (p, line, stderr) => OnLine(r, p, line, stderr), _time);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
        {
            _journal.Append(EventTypes.Error, w.Spec.Name, r.Index, new { message = $"cannot start {w.Command[0]}: {e.Message}" });
            _journal.Append(EventTypes.ReplicaUnhealthy, w.Spec.Name, r.Index, new { source = "start", detail = e.Message });
            r.StartedAt = _time.GetUtcNow();
            Decide(r, new GiveUpActionSpec(), $"cannot start {w.Command[0]}: {e.Message}");
            return;
        }
        r.Process = process;
        r.StartedAt = process.StartedAt;
        _journal.Append(EventTypes.ProcessStarted, w.Spec.Name, r.Index, new
        {
            pid = process.Pid,
            start_ticks = process.StartTicks,
            attempt = r.Attempt,
            command = w.Command,
            resume_from = resumeFrom,
            skip_steps = skipSteps,
            env = w.Environment.Where(kv => !w.Spec.Environment.TryGetValue(kv.Key, out var orig) || orig != kv.Value).ToDictionary(kv => kv.Key, kv => kv.Value),
            reason,
        });
        _ = process.Exited.ContinueWith(t => Post(() => OnExitAsync(r, process, t.Result)), TaskScheduler.Default);
        foreach (var spec in w.Spec.Probes)
        {
            var context = new ProbeContext
            {
                Port = r.Port,
                WorkingDirectory = w.Spec.WorkingDirectory,
                Time = _time,
                LastMetric = name => LastMetric(r, name),
                StartedAt = () => process.StartedAt,
            };
            var runner = new ProbeRunner(spec, ProbeFactory.Create(spec, context), _time);
            runner.Evaluated += result => CountProbe(w, result);
            runner.Unhealthy += detail => Post(() => OnProbeUnhealthy(r, process, runner, spec, detail));
            runner.Healthy += () => Post(() => OnProbeHealthy(r, process, runner));
            r.Probes.Add(runner);
            runner.Start();
        }
        if (w.Spec.Probes.Count == 0 && w.Spec.Healthy == HealthyWhen.Started)
        {
            MarkHealthy(r);
        }
    }

    /// <summary>Progress (a metric line, a new checkpoint) makes a replica without probes healthy: it is training or serving.</summary>
    private void OnProgress(ReplicaState r, WorkloadProcess process, IReadOnlyDictionary<string, double>? metrics = null)
    {
        if (process != r.Process || process.HasExited || r.Busy)
        {
            return;
        }
        if (r.Workload.Spec.Probes.Count == 0)
        {
            MarkHealthy(r);
            return;
        }
        // Progress and heartbeat probes run every quarter of their limit (up to 10 s), but the metric
        // line that shows the job training is here now: a replica training again is healthy from that
        // line, not from the probes' next runs (a job killed 8 s into its attempt would otherwise never
        // count as up). They still fail as soon as their own check does.
        if (metrics is not null)
        {
            foreach (var runner in r.Probes.Where(p => (p.Spec is HeartbeatProbeSpec || (p.Spec is ProgressProbeSpec progress && metrics.ContainsKey(progress.Metric))) && !r.FailingProbes.Contains(p)))
            {
                r.PassingProbes.Add(runner);
            }
            if (r.FailingProbes.Count == 0 && r.PassingProbes.Count == r.Probes.Count)
            {
                MarkHealthy(r);
            }
        }
    }

    private (double Value, DateTimeOffset ChangedAt)? LastMetric(ReplicaState r, string name)
    {
        lock (r.Metrics)
        {
            return r.Metrics.TryGetValue(name, out var v) ? v : null;
        }
    }

    private void CountProbe(WorkloadState w, ProbeResult result)
    {
        lock (_countLock)
        {
            w.Evaluations++;
            if (!result.Healthy)
            {
                w.Hits++;
            }
        }
    }

    /// <summary>Journals, per workload, how many monitoring evaluations were made since the last time (for the adaptation rate).</summary>
    private void FlushEvaluations()
    {
        foreach (var w in _workloads)
        {
            long evaluations, hits;
            lock (_countLock)
            {
                evaluations = w.Evaluations + w.Replicas.Sum(r => r.Monitors?.Evaluations ?? 0);
                hits = w.Hits + w.Replicas.Sum(r => r.Monitors?.Hits ?? 0);
            }
            long count = evaluations - w.ReportedEvaluations, triggered = hits - w.ReportedHits;
            if (count > 0)
            {
                _journal.Append(EventTypes.Evaluations, w.Spec.Name, null, new { count, triggered });
                w.ReportedEvaluations = evaluations;
                w.ReportedHits = hits;
            }
        }
    }

    /// <summary>Folds a finished process's monitor counts into its workload's, so none is lost from the journal.</summary>
    private void RetireMonitors(ReplicaState r)
    {
        if (r.Monitors is { } m)
        {
            lock (_countLock)
            {
                r.Workload.Evaluations += m.Evaluations;
                r.Workload.Hits += m.Hits;
                r.Monitors = null;
            }
        }
    }

    private async Task StopWatchingAsync(ReplicaState r)
    {
        foreach (var p in r.Probes)
        {
            await p.StopAsync().ConfigureAwait(false);
        }
        r.Probes.Clear();
        foreach (var f in r.Followers)
        {
            await f.StopAsync().ConfigureAwait(false);
        }
        r.Followers.Clear();
    }

    /// <summary>
    /// Stops a replica's process gracefully (its exit is then expected, not a failure) and journals
    /// the exit before anything else happens, so the journal never shows a replacement starting
    /// before the process it replaces has ended.
    /// </summary>
    private async Task StopReplicaAsync(ReplicaState r)
    {
        await StopWatchingAsync(r).ConfigureAwait(false);
        if (r.Process is { } p)
        {
            if (!p.HasExited)
            {
                r.ExpectExit = true;
            }
            var status = await p.StopAsync(r.Workload.Spec.Stop.Signal, r.Workload.Spec.Stop.Grace, _time, _hurry).ConfigureAwait(false);
            RecordExit(r, p, status, expected: true);
            RetireMonitors(r);
            r.Healthy = false;
        }
    }

    private void RecordExit(ReplicaState r, WorkloadProcess process, ExitStatus status, bool expected)
    {
        if (process.ExitRecorded)
        {
            return;
        }
        process.ExitRecorded = true;
        _journal.Append(EventTypes.ProcessExited, r.Workload.Spec.Name, r.Index, new { pid = process.Pid, code = status.Code, signal = status.Signal, uptime_s = Math.Round((_time.GetUtcNow() - process.StartedAt).TotalSeconds, 3), expected });
    }

    // ----- signals -----

    private void OnLine(ReplicaState r, WorkloadProcess process, string line, bool stderr)
    {
        _options.OnOutput?.Invoke(r.Workload.Spec.Name, r.Index, line, stderr);
        if (stderr && process.StderrLines++ == 0 && line.StartsWith(WorkloadProcess.LaunchFailurePrefix, StringComparison.Ordinal))
        {
            // Only as the first line: a job that runs setsid itself may print the same later.
            process.LaunchError = line[WorkloadProcess.LaunchFailurePrefix.Length..];
        }
        bool progress = MetricLine.TryParse(line, out var values);
        if (progress)
        {
            var now = _time.GetUtcNow();
            lock (r.Metrics)
            {
                foreach (var (name, value) in values)
                {
                    if (!r.Metrics.TryGetValue(name, out var old) || !old.Value.Equals(value))
                    {
                        r.Metrics[name] = (value, now);
                    }
                }
            }
        }
        Post(() =>
        {
            if (r.Monitors is { } monitors && process == r.Process)
            {
                var hits = monitors.OnOutputLine(line, stderr);
                if (hits.Count > 0 && values is not null && values.TryGetValue("step", out double step) && hits.Any(h => h.Monitor is MetricMonitorSpec))
                {
                    r.FaultStep ??= (long)step;
                }
                OnHits(r, process, hits);
            }
            if (progress)
            {
                OnProgress(r, process, values);
            }
        });
    }

    private void OnHits(ReplicaState r, WorkloadProcess? process, IReadOnlyList<MonitorHit> hits)
    {
        if (process != r.Process)
        {
            return;
        }
        foreach (var hit in hits)
        {
            _journal.Append(EventTypes.Signal, r.Workload.Spec.Name, r.Index, new { source = "monitor", kind = hit.Monitor.Kind, detail = hit.Detail });
            if (hit.Monitor.Then is not RecordActionSpec && r.Healthy && !r.Busy)
            {
                // A monitor that asks for a recovery has found a failure (a NaN loss, an OOM): the
                // replica is unhealthy until its next attempt is, so MTTR and availability see it.
                r.Healthy = false;
                _journal.Append(EventTypes.ReplicaUnhealthy, r.Workload.Spec.Name, r.Index, new { source = hit.Monitor.Kind, detail = hit.Detail });
            }
            Decide(r, hit.Monitor.Then, $"{hit.Monitor.Kind} monitor: {hit.Detail}");
        }
    }

    private void OnCheckpoint(WorkloadState w, CheckpointInfo info)
    {
        foreach (var r in w.Replicas.Where(r => r.Monitors is not null && r.Process is { HasExited: false }))
        {
            OnHits(r, r.Process, r.Monitors!.OnCheckpoint(info.Path));
            if (w.Replicas.Count == 1)
            {
                // Which replica wrote a checkpoint is not known: it is progress only for a lone one.
                OnProgress(r, r.Process!);
            }
        }
    }

    private void OnProbeUnhealthy(ReplicaState r, WorkloadProcess process, ProbeRunner runner, ProbeSpec spec, string detail)
    {
        if (process != r.Process || process.HasExited)
        {
            return;
        }
        r.FailingProbes.Add(runner);
        r.PassingProbes.Remove(runner);
        _journal.Append(EventTypes.Signal, r.Workload.Spec.Name, r.Index, new { source = "probe", kind = spec.Kind, detail });
        if (r.Healthy || !r.Busy)
        {
            r.Healthy = false;
            _journal.Append(EventTypes.ReplicaUnhealthy, r.Workload.Spec.Name, r.Index, new { source = spec.Kind, detail });
        }
        Decide(r, spec.Then, $"{spec.Kind} probe: {detail}");
    }

    private void OnProbeHealthy(ReplicaState r, WorkloadProcess process, ProbeRunner runner)
    {
        if (process != r.Process || process.HasExited)
        {
            return;
        }
        r.FailingProbes.Remove(runner);
        r.PassingProbes.Add(runner);
        // Healthy when every probe passes, not when the first one does while another still waits.
        if (r.FailingProbes.Count == 0 && r.PassingProbes.Count == r.Probes.Count && !r.Busy)
        {
            MarkHealthy(r);
        }
    }

    private void MarkHealthy(ReplicaState r)
    {
        if (!r.Healthy)
        {
            r.Healthy = true;
            _journal.Append(EventTypes.ReplicaHealthy, r.Workload.Spec.Name, r.Index, new { after_s = Math.Round((_time.GetUtcNow() - r.StartedAt).TotalSeconds, 3) });
        }
    }

    private async Task OnExitAsync(ReplicaState r, WorkloadProcess process, ExitStatus status)
    {
        var w = r.Workload;
        bool current = process == r.Process;
        // A process replaced already, or stopped on purpose, or one whose replica is already being
        // recovered (a monitor saw its failure first): its exit is part of an action under way.
        bool expected = !current || r.ExpectExit || r.Busy;
        RecordExit(r, process, status, expected);
        process.Dispose();
        if (!current)
        {
            return;
        }
        if (current)
        {
            // The group's leader is gone, but what it started may live on (torchrun's ranks after
            // torchrun was OOM-killed, also while a recovery was already under way), training
            // beside the next attempt into the same folder.
            ProcessGroup.KillGroup(process.Pid);
        }
        await StopWatchingAsync(r).ConfigureAwait(false);
        bool acting = !expected && !w.Failed && !_stopping.IsCancellationRequested;
        // The exit rules run before the monitor set is retired, so their evaluations are counted with the rest.
        var hits = acting ? r.Monitors?.OnExit(status.Code, status.Signal) ?? [] : [];
        RetireMonitors(r);
        r.Healthy = false;
        if (!acting)
        {
            return;
        }
        if (process.LaunchError is { } launch && status.Code is 126 or 127)
        {
            // The program could not be executed at all (no execute bit, a bad #! line): no restart
            // will change that, so it is a start failure (systemd's 203/EXEC), not a crash to retry.
            string program = Path.GetFullPath(w.Command[0], w.Spec.WorkingDirectory);
            string detail = $"cannot execute {launch}" + (launch.EndsWith("No such file or directory", StringComparison.Ordinal) && File.Exists(program)
                ? " (the file is there: is the interpreter on its #! line missing?)"
                : "");
            _journal.Append(EventTypes.ReplicaUnhealthy, w.Spec.Name, r.Index, new { source = "start", detail });
            Decide(r, new GiveUpActionSpec(), detail);
            return;
        }
        if (status.Code == 0 && hits.Count == 0)
        {
            if (w.Spec.Restart.When == RestartWhen.Always)
            {
                Decide(r, new RestartActionSpec(), "exited with code 0 (restart: always)");
            }
            else
            {
                r.Completed = true;
            }
            return;
        }
        _journal.Append(EventTypes.ReplicaUnhealthy, w.Spec.Name, r.Index, new { source = "exit", detail = status.ToString() });
        if (hits.Count > 0)
        {
            var hit = hits[0];
            _journal.Append(EventTypes.Signal, w.Spec.Name, r.Index, new { source = "monitor", kind = hit.Monitor.Kind, detail = hit.Detail });
            Decide(r, hit.Monitor.Then, $"exit monitor: {hit.Detail}");
            return;
        }
        if (w.Spec.Restart.When == RestartWhen.Never)
        {
            Decide(r, new GiveUpActionSpec(), $"{status} and restart is 'never'");
            return;
        }
        Decide(r, new RestartActionSpec(), status.ToString());
    }

    // ----- the policy -----

    private void Decide(ReplicaState r, ActionSpec action, string reason)
    {
        var w = r.Workload;
        if (w.Failed || r.Completed || _stopping.IsCancellationRequested || r.Busy || (_gangRestartPending && action is not GiveUpActionSpec))
        {
            _journal.Append(EventTypes.Decision, w.Spec.Name, r.Index, new { action = "none", reason = $"{reason} (already recovering)", delay_s = 0.0, adjusts = false });
            return;
        }
        var now = _time.GetUtcNow();
        switch (action)
        {
            case RecordActionSpec:
                _journal.Append(EventTypes.Decision, w.Spec.Name, r.Index, new { action = "record", reason, delay_s = 0.0, adjusts = false });
                return;
            case GiveUpActionSpec:
                _journal.Append(EventTypes.Decision, w.Spec.Name, r.Index, new { action = "give-up", reason, delay_s = 0.0, adjusts = false });
                _journal.Append(EventTypes.GiveUp, w.Spec.Name, r.Index, new { reason });
                Post(() => FailAsync(w, $"gave up: {reason}"));
                return;
        }
        if (!w.Budget.TryConsume(now))
        {
            _journal.Append(EventTypes.Decision, w.Spec.Name, r.Index, new { action = "give-up", reason = $"{reason}; restart budget exhausted ({w.Spec.Restart.Budget.Restarts} within {DurationSyntax.Format(w.Spec.Restart.Budget.Within)})", delay_s = 0.0, adjusts = false });
            Post(() => FailAsync(w, $"restart budget exhausted: {w.Spec.Restart.Budget.Restarts} restarts within {DurationSyntax.Format(w.Spec.Restart.Budget.Within)}"));
            return;
        }
        r.Busy = true;
        switch (action)
        {
            case RollbackActionSpec rollback:
                _journal.Append(EventTypes.Decision, w.Spec.Name, r.Index, new { action = "rollback", reason, delay_s = 0.0, adjusts = true });
                Post(() => RollbackAsync(r, rollback, now));
                return;
            case FailoverActionSpec:
                _journal.Append(EventTypes.Decision, w.Spec.Name, r.Index, new { action = "failover", reason, delay_s = 0.0, adjusts = true });
                Post(() => FailoverAsync(r));
                return;
            case RestartActionSpec restart:
                var delay = w.Backoff.NextDelay(r.StartedAt, now);
                _journal.Append(EventTypes.Decision, w.Spec.Name, r.Index, new { action = restart.Kind, reason, delay_s = Math.Round(delay.TotalSeconds, 3), adjusts = true });
                IReadOnlyList<string> changes = [];
                if (restart.Adjustments.Count > 0)
                {
                    // Each adjustment that can be applied is; each that cannot is one error, not the end of the others.
                    var adjusted = Adjuster.Apply(w.Command, w.Environment, restart.Adjustments, _options.BaseEnvironment);
                    w.Command = adjusted.Command;
                    w.Environment = adjusted.Environment;
                    changes = adjusted.Changes;
                    foreach (var failure in adjusted.Failures)
                    {
                        _journal.Append(EventTypes.Error, w.Spec.Name, r.Index, new { message = $"adjustment not applied: {failure.Reason}" });
                    }
                }
                if (_config.Strategy == Strategy.OneForAll)
                {
                    // Set now, not when the restart runs: a second failure already queued must not start a second one.
                    _gangRestartPending = true;
                    Post(() => GangRestartAsync(delay, changes, reason));
                }
                else
                {
                    Post(() => RestartAsync(r, delay, changes));
                }
                return;
        }
    }

    private async Task RestartAsync(ReplicaState r, TimeSpan delay, IReadOnlyList<string> changes)
    {
        await StopReplicaAsync(r).ConfigureAwait(false);
        After(delay, async () =>
        {
            _journal.Append(EventTypes.Restart, r.Workload.Spec.Name, r.Index, new { attempt = r.Attempt + 1, delay_s = Math.Round(delay.TotalSeconds, 3), adjustments = changes });
            await StartAsync(r, "restart").ConfigureAwait(false);
        });
    }

    /// <summary>One-for-all: every replica of every workload is stopped and started again together.</summary>
    private async Task GangRestartAsync(TimeSpan delay, IReadOnlyList<string> changes, string reason)
    {
        var all = _workloads.Where(w => !w.Failed).SelectMany(w => w.Replicas).ToList();
        foreach (var r in all)
        {
            r.Busy = true;
        }
        await Task.WhenAll(all.Select(StopReplicaAsync)).ConfigureAwait(false);
        After(delay, async () =>
        {
            _gangRestartPending = false;
            foreach (var r in all.Where(r => !r.Workload.Failed))
            {
                r.Completed = false;
                _journal.Append(EventTypes.Restart, r.Workload.Spec.Name, r.Index, new { attempt = r.Attempt + 1, delay_s = Math.Round(delay.TotalSeconds, 3), adjustments = changes, gang = true, reason });
                await StartAsync(r, "gang restart").ConfigureAwait(false);
            }
        });
    }

    private async Task RollbackAsync(ReplicaState r, RollbackActionSpec spec, DateTimeOffset faultTime)
    {
        var w = r.Workload;
        long? faultStep = r.FaultStep;
        await StopReplicaAsync(r).ConfigureAwait(false);
        if (w.Guard is null)
        {
            Post(() => FailAsync(w, "rollback asked for, but the workload has no checkpoints"));
            return;
        }
        (CheckpointInfo Restored, IReadOnlyList<string> MarkedBad)? done;
        try
        {
            done = await w.Guard.RollbackAsync(faultStep, faultTime, _stopping).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Good checkpoints were known but none could be used (or the rollback broke): starting
            // over would silently throw their training away, so the workload fails, loudly.
            Post(() => FailAsync(w, e is RollbackException ? e.Message : $"rollback failed: {e.Message}"));
            return;
        }
        if (done is null)
        {
            // No checkpoint before the fault at all: start over from the beginning, which is still a recovery.
            string why = faultStep is long step ? $"no checkpoint before the fault (step {step})" : $"no checkpoint before the fault ({faultTime.ToString("O", CultureInfo.InvariantCulture)})";
            _journal.Append(EventTypes.Rollback, w.Spec.Name, r.Index, new { checkpoint = (string?)null, snapshot = (string?)null, skip_steps = (long)spec.SkipSteps, marked_bad = Array.Empty<string>(), fault_step = faultStep, reason = why });
            await StartAsync(r, $"rollback ({why}: from the start)", null, spec.SkipSteps, resumeFromNewest: false).ConfigureAwait(false);
            return;
        }
        var (restored, marked) = done.Value;
        long skip = spec.SkipSteps > 0 ? spec.SkipSteps : faultStep is long fs && restored.Step is long cs ? Math.Max(1, fs - cs) : 0;
        _journal.Append(EventTypes.Rollback, w.Spec.Name, r.Index, new { checkpoint = restored.Path, snapshot = restored.Snapshot, repository = restored.RestoredFrom, skip_steps = skip, marked_bad = marked, fault_step = faultStep });
        await StartAsync(r, "rollback", restored.Path, skip).ConfigureAwait(false);
    }

    private async Task FailoverAsync(ReplicaState r)
    {
        int? old = r.Process?.Pid;
        await StopReplicaAsync(r).ConfigureAwait(false);
        _journal.Append(EventTypes.Failover, r.Workload.Spec.Name, r.Index, new { old_pid = old });
        await StartAsync(r, "failover").ConfigureAwait(false);
    }

    private async Task FailAsync(WorkloadState w, string reason)
    {
        if (w.Failed)
        {
            return;
        }
        w.Failed = true;
        await Task.WhenAll(w.Replicas.Select(StopReplicaAsync)).ConfigureAwait(false);
        _journal.Append(EventTypes.WorkloadFailed, w.Spec.Name, null, new { reason });
        if (_config.Strategy == Strategy.OneForAll)
        {
            // The gang cannot go on without one of its members: the failure escalates to all.
            foreach (var other in _workloads.Where(o => !o.Failed))
            {
                other.Failed = true;
                await Task.WhenAll(other.Replicas.Select(StopReplicaAsync)).ConfigureAwait(false);
                _journal.Append(EventTypes.WorkloadFailed, other.Spec.Name, null, new { reason = $"escalated (one-for-all): {w.Spec.Name} failed" });
            }
        }
    }
}
