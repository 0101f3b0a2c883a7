using Kintsugi.Supervision.Journal;

namespace Kintsugi.Supervision.Metrics;

/// <summary>
/// Every figure Kintsugi reports, computed from journal events and nothing else. The definitions
/// are in docs/METRICS.md; this is their one implementation.
/// </summary>
public static class Figures
{
    /// <summary>
    /// The figures of each workload (in the order they first appear) over the window [<paramref name="from"/>, <paramref name="to"/>].
    /// </summary>
    /// <param name="events">The journal up to <paramref name="to"/>, in id order, from its start: events before the window set the state the window begins in.</param>
    /// <param name="supervisorAlive">
    /// False when the newest supervisor.started has no supervisor.stopped but its process is gone:
    /// its run then ends at its last event instead of going on to <paramref name="to"/>.
    /// </param>
    public static IReadOnlyList<WorkloadFigures> Compute(IReadOnlyList<JournalEvent> events, DateTimeOffset from, DateTimeOffset to, bool supervisorAlive = true)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (to < from)
        {
            throw new ArgumentException($"the window ends ({to:O}) before it begins ({from:O})", nameof(to));
        }
        var fold = new JournalFold(from, to);
        foreach (var e in InJournalOrder(events))
        {
            fold.Apply(e);
        }
        return fold.Finish(supervisorAlive);
    }

    /// <summary>The newest supervisor run as the journal tells it.</summary>
    public static SupervisorStatus Supervisor(IReadOnlyList<JournalEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        var status = new SupervisorStatus();
        foreach (var e in InJournalOrder(events))
        {
            status = e.Type switch
            {
                EventTypes.SupervisorStarted => new SupervisorStatus
                {
                    Running = true,
                    Pid = (int?)e.GetInt64("pid"),
                    Config = e.GetString("config"),
                    Started = e.Time,
                    Resumed = e.GetBool("resumed") == true,
                    Runs = status.Runs + 1,
                },
                EventTypes.SupervisorStopped => status with { Running = false, Stopped = e.Time, StopReason = e.GetString("reason") },
                _ => status,
            };
            status = status with { LastEvent = status.LastEvent is { } last && last > e.Time ? last : e.Time };
        }
        return status;
    }

    // Read returns id order already; a list built by hand (tests, imports) is put in it, keeping the given order among equal ids.
    private static IEnumerable<JournalEvent> InJournalOrder(IReadOnlyList<JournalEvent> events)
    {
        for (int i = 1; i < events.Count; i++)
        {
            if (events[i].Id < events[i - 1].Id)
            {
                return events.OrderBy(e => e.Id);
            }
        }
        return events;
    }
}
