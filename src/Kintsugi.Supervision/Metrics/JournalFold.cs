using Kintsugi.Supervision.Journal;

namespace Kintsugi.Supervision.Metrics;

/// <summary>
/// One pass over the journal in order: each event moves the state of the supervisor run, a replica or
/// a workload, and counts towards the window [from, to] when it falls in it. Events after
/// <c>to</c> are ignored, so the states are those at <c>to</c>.
/// </summary>
internal sealed class JournalFold(DateTimeOffset from, DateTimeOffset to)
{
    private readonly Dictionary<string, WorkloadTimeline> _workloads = new(StringComparer.Ordinal);
    private readonly List<Interval> _runs = [];
    private DateTimeOffset? _runStart;
    private DateTimeOffset? _lastTime;
    private long _seq;
    private long _sharedEvaluations;

    /// <summary>The workloads in the order they first appear.</summary>
    public List<WorkloadTimeline> Workloads { get; } = [];

    public void Apply(JournalEvent e)
    {
        if (e.Time > to)
        {
            return;
        }
        _seq++;
        bool inWindow = e.Time >= from;
        switch (e.Type)
        {
            case EventTypes.SupervisorStarted:
                if (_runStart is not null)
                {
                    // The previous supervisor died without supervisor.stopped: its run ended at its last
                    // event. The new one carries on from it, and a workload it had failed stays failed.
                    EndRun(_lastTime ?? e.Time);
                }
                else
                {
                    // After a clean stop every workload starts afresh.
                    foreach (var workload in Workloads)
                    {
                        workload.Failed = false;
                    }
                }
                _runStart = e.Time;
                break;
            case EventTypes.SupervisorStopped:
                _runStart ??= e.Time;
                EndRun(e.Time);
                break;
            default:
                // A journal without supervisor.started (an import, a test) is one run from its first event.
                _runStart ??= e.Time;
                break;
        }
        _lastTime = _lastTime is { } last && last > e.Time ? last : e.Time;

        if (e.Workload is null)
        {
            // Evaluations counted for the whole supervisor belong to every workload's N.
            if (e.Type == EventTypes.Evaluations && inWindow)
            {
                _sharedEvaluations += (long)(e.GetDouble("count") ?? 0);
            }
            return;
        }
        var w = Timeline(e.Workload, e.Time);
        w.LastEvent = e;
        switch (e.Type)
        {
            case EventTypes.ProcessStarted:
            {
                var r = w.ReplicaOf(e.Replica ?? 0);
                w.Move(r, ReplicaState.Running, e.Time);
                r.Pid = (int?)e.GetInt64("pid");
                r.Attempt = (int?)e.GetInt64("attempt") ?? r.Attempt;
                r.StartedAt = e.Time;
                // What this process resumed from settles what the failures before it lost.
                bool knows = e.Has("resume_from");
                string? resumeFrom = e.GetString("resume_from");
                foreach (int i in r.AwaitingRestart)
                {
                    w.FailureLog[i] = w.FailureLog[i] with
                    {
                        Next = !knows ? WorkloadTimeline.Restart.Unknown : resumeFrom is null ? WorkloadTimeline.Restart.Fresh : WorkloadTimeline.Restart.Resumed,
                        NextSeq = _seq,
                        ResumedFrom = resumeFrom,
                    };
                }
                r.AwaitingRestart.Clear();
                if (resumeFrom is null)
                {
                    r.FreshSince = e.Time;
                }
                w.Failed = false;
                break;
            }
            case EventTypes.ProcessExited:
            {
                var r = w.ReplicaOf(e.Replica ?? 0);
                if (r.Pid is int current && e.GetInt64("pid") is long pid && pid != current)
                {
                    // An older process of this replica, replaced already (rollback, failover).
                    break;
                }
                bool expected = e.GetBool("expected") == true;
                bool clean = e.GetDouble("code") == 0 && e.GetDouble("signal") is null;
                // Stopped by the supervisor or finished cleanly; a process killed because it was unhealthy stays unhealthy until restarted.
                var next = r.State != ReplicaState.Unhealthy && (expected || clean) ? ReplicaState.Stopped : ReplicaState.Unhealthy;
                w.Move(r, next, e.Time);
                r.Pid = null;
                break;
            }
            case EventTypes.ReplicaHealthy:
            {
                var r = w.ReplicaOf(e.Replica ?? 0);
                w.Move(r, ReplicaState.Healthy, e.Time);
                if (r.IncidentSince is { } since)
                {
                    w.Recoveries.Add((e.Time, Math.Max(0, (e.Time - since).TotalSeconds)));
                    r.IncidentSince = null;
                }
                break;
            }
            case EventTypes.ReplicaUnhealthy:
            {
                var r = w.ReplicaOf(e.Replica ?? 0);
                w.Move(r, ReplicaState.Unhealthy, e.Time);
                r.IncidentSince ??= e.Time;
                r.AwaitingRestart.Add(w.FailureLog.Count);
                w.FailureLog.Add(new WorkloadTimeline.Failure(_seq, e.Time, r.StartedAt, r.FreshSince));
                if (inWindow)
                {
                    w.Failures++;
                }
                break;
            }
            case EventTypes.WorkloadFailed:
                foreach (var r in w.Replicas.Values)
                {
                    // Its incidents end unrecovered; a replica still healthy is being stopped with the workload.
                    if (r.State != ReplicaState.Unhealthy)
                    {
                        w.Move(r, ReplicaState.Stopped, e.Time);
                    }
                    r.IncidentSince = null;
                }
                w.Failed = true;
                break;
            case EventTypes.CheckpointWritten:
                w.Checkpoints = true;
                if (e.GetString("path") is { } written)
                {
                    w.Written.Add(new WorkloadTimeline.WrittenCheckpoint(_seq, e.GetTime("checkpoint_time") ?? e.Time, written));
                }
                if (inWindow)
                {
                    w.WrittenBytes += (long)(e.GetDouble("bytes") ?? 0);
                }
                break;
            case EventTypes.CheckpointProtected:
                w.Checkpoints = true;
                w.Protected.Add(new WorkloadTimeline.ProtectedCheckpoint(_seq, e.GetTime("checkpoint_time") ?? e.Time, e.GetString("path")));
                w.HeldIn.Add((w.Protected[^1], e.GetString("repository") ?? "repository", false));
                if (inWindow)
                {
                    w.ProtectedBytes += (long)(e.GetDouble("bytes") ?? 0);
                }
                break;
            case EventTypes.CheckpointCopied:
                w.HeldIn.Add((new WorkloadTimeline.ProtectedCheckpoint(_seq, e.GetTime("checkpoint_time") ?? e.Time, e.GetString("path")), e.GetString("repository") ?? "copy", true));
                break;
            case EventTypes.CheckpointBad:
                if (e.GetString("path") is { } bad)
                {
                    w.Bad.Add((_seq, bad));
                }
                break;
            case EventTypes.Evaluations when inWindow:
                w.Evaluations += (long)(e.GetDouble("count") ?? 0);
                break;
            case EventTypes.Decision when inWindow && e.GetBool("adjusts") == true:
                w.Adjustments++;
                break;
            case EventTypes.Restart when inWindow:
                w.Restarts++;
                break;
            case EventTypes.Rollback when inWindow:
                w.Rollbacks++;
                break;
            case EventTypes.Failover when inWindow:
                w.Failovers++;
                break;
            default:
                break;
        }
    }

    /// <summary>
    /// The figures at <c>to</c>. When <paramref name="supervisorAlive"/> is false, a run without
    /// supervisor.stopped ended at its last event; otherwise it is still going at <c>to</c>.
    /// </summary>
    public List<WorkloadFigures> Finish(bool supervisorAlive)
    {
        bool runOpen = _runStart is not null && supervisorAlive;
        var end = supervisorAlive ? to : _lastTime ?? to;
        var runs = new List<Interval>(_runs);
        if (_runStart is { } start)
        {
            runs.Add(new Interval(start, end));
        }
        return Workloads.Select(w => Figures(w, runs, end, runOpen)).ToList();
    }

    private WorkloadFigures Figures(WorkloadTimeline w, List<Interval> runs, DateTimeOffset end, bool runOpen)
    {
        var observed = Interval.Intersect(Interval.Merge(runs), [new Interval(w.FirstSeen, DateTimeOffset.MaxValue)]);
        double observedSeconds = Interval.Seconds(observed, from, to);
        var (upList, replicaHealthy) = w.HealthyUntil(end);
        var up = Interval.Merge(upList);
        double healthy = Interval.Seconds(up, from, to);
        double replicaSeconds = Interval.Seconds(replicaHealthy, from, to);

        var recoveries = w.Recoveries.Where(r => r.RecoveredAt >= from).Select(r => r.Seconds).ToList();

        var good = w.Protected.Where(p => !w.Bad.Any(b => b.Seq > p.Seq && b.Path == p.Path)).ToList();
        DateTimeOffset? newest = good.Count == 0 ? null : good.Max(p => p.CheckpointTime);
        // Per repository, the newest good checkpoint it holds: the main one first, then the copies as they first appear.
        var repositories = w.HeldIn.Where(h => !w.Bad.Any(b => b.Seq > h.Checkpoint.Seq && b.Path == h.Checkpoint.Path))
            .GroupBy(h => (h.Repository, h.Copy))
            .OrderBy(g => g.Key.Copy)
            .Select(g => (g.Key, Newest: g.Max(h => h.Checkpoint.CheckpointTime)))
            .Select(x => new RepositoryRpo(x.Key.Repository, x.Key.Copy ? "copy" : "primary", Math.Max(0, (to - x.Newest).TotalSeconds), x.Newest))
            .ToList();

        var lost = Interval.Merge(w.FailureLog.Select(f => LostWork(w, good, f)));
        double lostSeconds = Interval.Seconds(Interval.Intersect(up, lost), from, to);
        double productive = Math.Max(0, healthy - lostSeconds);
        long evaluations = w.Evaluations + _sharedEvaluations;

        return new WorkloadFigures
        {
            Workload = w.Name,
            State = w.State(runOpen),
            Replicas = w.Replicas.Values.Select(r => r.ToStatus()).ToList(),
            From = from,
            To = to,
            ObservedSeconds = observedSeconds,
            HealthySeconds = healthy,
            ReplicaHealthySeconds = replicaSeconds,
            Availability = observedSeconds > 0 ? Math.Min(1, healthy / observedSeconds) : null,
            Failures = w.Failures,
            MtbfSeconds = w.Failures > 0 ? replicaSeconds / w.Failures : null,
            Recoveries = recoveries.Count,
            MttrSeconds = recoveries.Count > 0 ? recoveries.Average() : null,
            RtoLastSeconds = recoveries.Count > 0 ? recoveries[^1] : null,
            RtoMaxSeconds = recoveries.Count > 0 ? recoveries.Max() : null,
            RpoSeconds = newest is { } n ? Math.Max(0, (to - n).TotalSeconds) : null,
            LastProtectedCheckpoint = newest,
            Repositories = repositories,
            LostSeconds = lostSeconds,
            ProductiveSeconds = productive,
            Ettr = w.Checkpoints && observedSeconds > 0 ? Math.Min(1, productive / observedSeconds) : null,
            ProtectedBytes = w.ProtectedBytes,
            WrittenBytes = w.WrittenBytes,
            RecoveryRate = w.WrittenBytes > 0 ? (double)w.ProtectedBytes / w.WrittenBytes : null,
            Evaluations = evaluations,
            Adjustments = w.Adjustments,
            AdaptationRate = evaluations > 0 ? (double)w.Adjustments / evaluations : null,
            Restarts = w.Restarts,
            Rollbacks = w.Rollbacks,
            Failovers = w.Failovers,
            LastEvent = w.LastEvent,
        };
    }

    /// <summary>
    /// The work a failure threw away, up to the failure. When the replica's next process resumed from
    /// a checkpoint written (and not marked bad since) before it, from that checkpoint; when it started
    /// from nothing, from the fresh start the failed process built on; otherwise (no process since, the
    /// checkpoint unknown) from the newest good checkpoint protected before the failure. Never from
    /// before the failed process started when a checkpoint bounds it (work before that was saved or
    /// already counted lost), and from W's first event when nothing bounds it. Only its healthy part counts.
    /// </summary>
    private static Interval LostWork(WorkloadTimeline w, List<WorkloadTimeline.ProtectedCheckpoint> good, WorkloadTimeline.Failure failure)
    {
        if (failure.Next == WorkloadTimeline.Restart.Fresh)
        {
            return new Interval(failure.FreshSince ?? failure.ProcessStarted ?? w.FirstSeen, failure.Time);
        }
        DateTimeOffset? checkpoint = null;
        if (failure.Next == WorkloadTimeline.Restart.Resumed)
        {
            foreach (var c in w.Written)
            {
                if (c.Path == failure.ResumedFrom && c.Seq < failure.NextSeq && c.CheckpointTime <= failure.Time
                    && (checkpoint is null || c.CheckpointTime > checkpoint)
                    && !w.Bad.Any(b => b.Seq > c.Seq && b.Path == c.Path))
                {
                    checkpoint = c.CheckpointTime;
                }
            }
        }
        if (checkpoint is null)
        {
            foreach (var p in good)
            {
                if (p.Seq < failure.Seq && p.CheckpointTime <= failure.Time && (checkpoint is null || p.CheckpointTime > checkpoint))
                {
                    checkpoint = p.CheckpointTime;
                }
            }
        }
        var start = (checkpoint, failure.ProcessStarted) switch
        {
            ({ } c, { } s) => c > s ? c : s,
            ({ } c, null) => c,
            (null, { } s) => s,
            _ => w.FirstSeen,
        };
        return new Interval(start, failure.Time);
    }

    private WorkloadTimeline Timeline(string name, DateTimeOffset time)
    {
        if (!_workloads.TryGetValue(name, out var w))
        {
            w = new WorkloadTimeline(name, time);
            _workloads.Add(name, w);
            Workloads.Add(w);
        }
        return w;
    }

    /// <summary>The supervisor run ended (stopped, or died before a new one started): every replica stops with it.</summary>
    private void EndRun(DateTimeOffset end)
    {
        _runs.Add(new Interval(_runStart!.Value, end));
        _runStart = null;
        foreach (var w in Workloads)
        {
            w.StopAll(end);
        }
    }
}
