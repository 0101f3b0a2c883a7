using Kintsugi.Supervision.Journal;

namespace Kintsugi.Supervision.Metrics;

/// <summary>
/// What the journal says of one workload, gathered event by event by <see cref="JournalFold"/>:
/// replica states, healthy intervals, incidents, failures, checkpoints and the counts within the window.
/// </summary>
internal sealed class WorkloadTimeline(string name, DateTimeOffset firstSeen)
{
    public string Name { get; } = name;

    public DateTimeOffset FirstSeen { get; } = firstSeen;

    public SortedDictionary<int, Replica> Replicas { get; } = [];

    /// <summary>Closed intervals during which at least one replica was healthy.</summary>
    public List<Interval> Up { get; } = [];

    /// <summary>Start of the open "at least one replica healthy" interval.</summary>
    public DateTimeOffset? UpSince { get; private set; }

    /// <summary>Closed healthy intervals of single replicas (they overlap when several are healthy at once).</summary>
    public List<Interval> ReplicaHealthy { get; } = [];

    /// <summary>Finished incidents: when the replica became healthy again, and how long it took.</summary>
    public List<(DateTimeOffset RecoveredAt, double Seconds)> Recoveries { get; } = [];

    public List<Failure> FailureLog { get; } = [];

    public List<ProtectedCheckpoint> Protected { get; } = [];

    /// <summary>checkpoint.protected (role primary) and checkpoint.copied (role copy) events, with the repository of each.</summary>
    public List<(ProtectedCheckpoint Checkpoint, string Repository, bool Copy)> HeldIn { get; } = [];

    /// <summary>checkpoint.written events: the checkpoints a restart may resume from.</summary>
    public List<WrittenCheckpoint> Written { get; } = [];

    /// <summary>checkpoint.bad events: the path and the position in the journal.</summary>
    public List<(long Seq, string Path)> Bad { get; } = [];

    /// <summary>Whether the workload ever wrote or protected a checkpoint (else ETTR has no meaning).</summary>
    public bool Checkpoints { get; set; }

    public bool Failed { get; set; }

    public int Failures { get; set; }

    public long ProtectedBytes { get; set; }

    public long WrittenBytes { get; set; }

    public long Evaluations { get; set; }

    public int Adjustments { get; set; }

    public int Restarts { get; set; }

    public int Rollbacks { get; set; }

    public int Failovers { get; set; }

    public JournalEvent? LastEvent { get; set; }

    public Replica ReplicaOf(int index)
    {
        if (!Replicas.TryGetValue(index, out var replica))
        {
            replica = new Replica(index);
            Replicas.Add(index, replica);
        }
        return replica;
    }

    /// <summary>Moves a replica to a state, opening or closing the healthy intervals it crosses.</summary>
    public void Move(Replica replica, ReplicaState state, DateTimeOffset time)
    {
        if (replica.State == state)
        {
            return;
        }
        bool wasHealthy = replica.State == ReplicaState.Healthy;
        replica.State = state;
        replica.Since = time;
        if (wasHealthy)
        {
            ReplicaHealthy.Add(new Interval(replica.HealthySince!.Value, time));
            replica.HealthySince = null;
            if (Replicas.Values.All(r => r.State != ReplicaState.Healthy))
            {
                Up.Add(new Interval(UpSince!.Value, time));
                UpSince = null;
            }
        }
        else if (state == ReplicaState.Healthy)
        {
            replica.HealthySince = time;
            UpSince ??= time;
        }
    }

    /// <summary>Every replica stopped: the supervisor stopped, or a new one starts afresh.</summary>
    public void StopAll(DateTimeOffset time)
    {
        foreach (var replica in Replicas.Values)
        {
            Move(replica, ReplicaState.Stopped, time);
            replica.Pid = null;
            replica.IncidentSince = null;
        }
    }

    /// <summary>Healthy intervals, with the open ones closed at <paramref name="end"/>.</summary>
    public (List<Interval> Up, List<Interval> ReplicaHealthy) HealthyUntil(DateTimeOffset end)
    {
        var up = new List<Interval>(Up);
        if (UpSince is { } since)
        {
            up.Add(new Interval(since, end));
        }
        var replicas = new List<Interval>(ReplicaHealthy);
        replicas.AddRange(Replicas.Values.Where(r => r.HealthySince is not null).Select(r => new Interval(r.HealthySince!.Value, end)));
        return (up, replicas);
    }

    public WorkloadState State(bool runOpen)
    {
        if (Failed)
        {
            return WorkloadState.Failed;
        }
        var live = Replicas.Values.Where(r => r.State != ReplicaState.Stopped).ToList();
        if (live.Count == 0)
        {
            return runOpen && Replicas.Count == 0 ? WorkloadState.Running : WorkloadState.Stopped;
        }
        int healthy = live.Count(r => r.State == ReplicaState.Healthy);
        if (healthy == live.Count)
        {
            return WorkloadState.Healthy;
        }
        if (healthy > 0)
        {
            return WorkloadState.Degraded;
        }
        return live.Any(r => r.State == ReplicaState.Unhealthy) ? WorkloadState.Unhealthy : WorkloadState.Running;
    }

    internal sealed class Replica(int index)
    {
        public int Index { get; } = index;

        public ReplicaState State { get; set; } = ReplicaState.Stopped;

        public DateTimeOffset? Since { get; set; }

        public int? Pid { get; set; }

        public int? Attempt { get; set; }

        /// <summary>When its newest process started: work before that was saved or already counted lost.</summary>
        public DateTimeOffset? StartedAt { get; set; }

        public DateTimeOffset? HealthySince { get; set; }

        /// <summary>The first replica.unhealthy of an incident not yet recovered.</summary>
        public DateTimeOffset? IncidentSince { get; set; }

        /// <summary>
        /// When the newest process of the replica that started from nothing (resume_from null) started:
        /// the work of every later process that resumed builds on it.
        /// </summary>
        public DateTimeOffset? FreshSince { get; set; }

        /// <summary>Indexes in <see cref="FailureLog"/> of failures whose next process has not started yet.</summary>
        public List<int> AwaitingRestart { get; } = [];

        public ReplicaStatus ToStatus() => new(Index, State, Pid, Attempt, Since);
    }

    /// <summary>
    /// A replica.unhealthy: where it is in the journal, when, when the replica's process had started and
    /// when its fresh start was (<see cref="Replica.FreshSince"/>); once the replica's next process has
    /// started, where that is in the journal and what it resumed from.
    /// </summary>
    internal readonly record struct Failure(long Seq, DateTimeOffset Time, DateTimeOffset? ProcessStarted, DateTimeOffset? FreshSince)
    {
        public Restart Next { get; init; }

        /// <summary>The journal position of the next process.started, when <see cref="Next"/> is known.</summary>
        public long NextSeq { get; init; }

        /// <summary>The checkpoint path the next process resumed from, when <see cref="Next"/> is <see cref="Restart.Resumed"/>.</summary>
        public string? ResumedFrom { get; init; }
    }

    /// <summary>What the process that followed a failure started from.</summary>
    internal enum Restart
    {
        /// <summary>No process has started since, or its process.started has no resume_from field.</summary>
        Unknown,

        /// <summary>resume_from null: from the beginning.</summary>
        Fresh,

        /// <summary>resume_from a checkpoint path.</summary>
        Resumed,
    }

    /// <summary>A checkpoint.written: where it is in the journal, when the checkpoint was written, its path.</summary>
    internal readonly record struct WrittenCheckpoint(long Seq, DateTimeOffset CheckpointTime, string Path);

    /// <summary>A checkpoint.protected: where it is in the journal, when the checkpoint was written, its path.</summary>
    internal readonly record struct ProtectedCheckpoint(long Seq, DateTimeOffset CheckpointTime, string? Path);
}
