namespace Kintsugi.Supervision.Journal;

/// <summary>
/// The vocabulary of the journal. Every event has a time, a type from this list, the workload and
/// replica it concerns (null for the supervisor itself) and a JSON object of data whose fields are
/// listed here. docs/METRICS.md defines every figure in terms of these events.
/// </summary>
public static class EventTypes
{
    /// <summary>The supervisor started. Data: pid (int), config (string path), resumed (bool: it found an earlier run in the journal).</summary>
    public const string SupervisorStarted = "supervisor.started";

    /// <summary>The supervisor stopped. Data: reason (string).</summary>
    public const string SupervisorStopped = "supervisor.stopped";

    /// <summary>A replica's process started. Data: pid (int), start_ticks (long|null: its start time in clock ticks since boot, to tell it from a later process with the same pid), attempt (int, 1-based, per replica), command (string[]), resume_from (string|null), skip_steps (int), env (object of adjusted variables).</summary>
    public const string ProcessStarted = "process.started";

    /// <summary>A replica's process ended. Data: pid (int), code (int|null), signal (int|null), uptime_s (double), expected (bool: the supervisor stopped it).</summary>
    public const string ProcessExited = "process.exited";

    /// <summary>A replica became healthy: its probes pass (without probes: its first metric line or new checkpoint, or its start with `healthy: started`). Data: after_s (double: seconds since its process started).</summary>
    public const string ReplicaHealthy = "replica.healthy";

    /// <summary>A replica became unhealthy: a probe crossed its failure threshold, a monitor asked for a recovery (NaN loss, OOM…), or it exited unexpectedly. Data: source (string: probe kind, monitor kind, "exit" or "start"), detail (string).</summary>
    public const string ReplicaUnhealthy = "replica.unhealthy";

    /// <summary>
    /// Monitoring evaluations of one workload since its previous such event (probe runs, monitor rules
    /// applied to exits, log lines and metric lines). Data: count (int), triggered (int: how many of them fired a rule).
    /// Written at most every few seconds, so the journal does not grow with every log line.
    /// </summary>
    public const string Evaluations = "monitor.evaluations";

    /// <summary>A probe or monitor fired. Data: source (string: "probe" | "monitor"), kind (string: http, heartbeat, log, metric, exit, …), detail (string).</summary>
    public const string Signal = "signal";

    /// <summary>
    /// What the policy decided about a signal. Data: action (string: restart | adjust | rollback |
    /// failover | give-up | record | none), reason (string), delay_s (double: backoff before acting),
    /// adjusts (bool: the action changes the workload — any restart, adjust, rollback or failover).
    /// </summary>
    public const string Decision = "decision";

    /// <summary>A restart (after the backoff). Data: attempt (int), delay_s (double), adjustments (string[]: e.g. "env BATCH_SIZE 64 -> 32").</summary>
    public const string Restart = "action.restart";

    /// <summary>A rollback. Data: checkpoint (string: path restored), snapshot (string: id, in the repository that served it), repository (string|null: the repository it was restored from, without secrets; null when resumed from the file on disk as it is), skip_steps (int), marked_bad (string[]).</summary>
    public const string Rollback = "action.rollback";

    /// <summary>A replica taken out and replaced. Data: old_pid (int|null).</summary>
    public const string Failover = "action.failover";

    /// <summary>The workload was given up on. Data: reason (string).</summary>
    public const string GiveUp = "action.give_up";

    /// <summary>The workload is failed: given up, or restart budget exhausted. Data: reason (string).</summary>
    public const string WorkloadFailed = "workload.failed";

    /// <summary>A complete checkpoint appeared. Data: path (string), bytes (long), step (long|null).</summary>
    public const string CheckpointWritten = "checkpoint.written";

    /// <summary>A checkpoint reached the repository. Data: path (string), bytes (long), snapshot (string), duration_s (double), checkpoint_time (string, ISO 8601: when the checkpoint was written), repository (string: the main repository, without secrets).</summary>
    public const string CheckpointProtected = "checkpoint.protected";

    /// <summary>
    /// A protected checkpoint was copied to one of the config's 'copies'. Data: path (string),
    /// repository (string: the copy, without secrets), snapshot (string: its id in the copy),
    /// source_snapshot (string: its id in the main repository), bytes (long: uploaded to the copy),
    /// duration_s (double), checkpoint_time (string, ISO 8601).
    /// </summary>
    public const string CheckpointCopied = "checkpoint.copied";

    /// <summary>A copy of a protected checkpoint failed; it is tried again after the next checkpoint is protected. Data: path (string), repository (string), source_snapshot (string), message (string), duration_s (double).</summary>
    public const string CheckpointCopyFailed = "checkpoint.copy-failed";

    /// <summary>A checkpoint was marked bad (newer than the fault a rollback recovers from). Data: path (string), snapshot (string|null: its snapshot, if it was protected).</summary>
    public const string CheckpointBad = "checkpoint.bad";

    /// <summary>
    /// The journal could not be written for a while (disk full, I/O error) or was deleted and made
    /// again; written once it works again. The events of that time were held in memory and are written
    /// with their own times (up to a bound; the oldest beyond it are dropped). Data: reason (string),
    /// since (string, ISO 8601: when the trouble began), held (int: events written late), dropped (int).
    /// </summary>
    public const string JournalRecovered = "journal.recovered";

    /// <summary>Something went wrong in the supervisor itself (a backup failed, a probe could not run). Data: message (string).</summary>
    public const string Error = "error";
}
