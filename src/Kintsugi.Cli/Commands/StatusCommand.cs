using System.CommandLine;
using System.Globalization;
using Kintsugi.Backup;
using Kintsugi.Cli.Rendering;
using Kintsugi.Supervision.Journal;
using Kintsugi.Supervision.Metrics;
using Spectre.Console;

namespace Kintsugi.Cli.Commands;

internal static class StatusCommand
{
    /// <summary>Where `kintsugi run` keeps its journal when the configuration names none.</summary>
    public const string DefaultJournal = ".kintsugi/journal.db";

    public static Command Create()
    {
        var journal = JournalOption();
        var window = new Option<string>("--window") { Description = "The span the figures cover, ending now: 30m, 1h, 7d, or all", DefaultValueFactory = _ => "1h" };
        var command = new Command("status", "Show the supervisor and each workload it supervises: state, replicas, availability, MTBF, MTTR, RTO, RPO, ETTR, recovery rate R and adaptation rate A over a window, all computed from the journal (docs/METRICS.md). Exit 4 when a workload is failed: the newest run of it ended in workload.failed (given up, or restart budget exhausted) and it has not been started since.") { journal, window };
        command.SetHandler((ctx, ct) =>
        {
            string windowText = (ctx.Parse.GetValue(window) ?? "1h").Trim();
            bool everything = windowText.Equals("all", StringComparison.OrdinalIgnoreCase);
            TimeSpan? span = everything ? null : ParseWindow(windowText);
            using var events = OpenJournal(ctx.Parse.GetValue(journal));
            var to = ctx.Time.GetUtcNow();
            var all = events.Read(until: to);
            var from = span is { } s ? to - s : all.Count > 0 ? all[0].Time : to;

            var supervisor = Figures.Supervisor(all);
            bool alive = supervisor.Running && (supervisor.Pid is not { } pid || SupervisorProcessIsAlive(pid));
            var figures = Figures.Compute(all, from, to, supervisorAlive: alive);
            // The state comes from every event up to now, whatever the window: a failure before it still counts.
            int exit = figures.Any(f => f.State == WorkloadState.Failed) ? ExitCodes.WorkloadFailed : ExitCodes.Ok;

            if (ctx.Json)
            {
                ctx.WriteJson(new
                {
                    journal = events.Path,
                    supervisor = new
                    {
                        running = alive,
                        died = supervisor.Running && !alive,
                        supervisor.Pid,
                        supervisor.Config,
                        supervisor.Started,
                        supervisor.Resumed,
                        supervisor.Stopped,
                        supervisor.StopReason,
                        supervisor.Runs,
                        supervisor.LastEvent,
                    },
                    window = new { from, to, seconds = (to - from).TotalSeconds },
                    workloads = figures,
                });
                return Task.FromResult(exit);
            }

            ctx.Say("supervisor: " + Describe(supervisor, alive));
            ctx.Say($"window: {(everything ? "all" : "last " + windowText)} ({Units.Time(from)} to {Units.Time(to)})");
            if (figures.Count == 0)
            {
                ctx.Say("no workloads in the journal yet");
            }
            foreach (var f in figures)
            {
                ctx.OutConsole.Write(Table(f));
            }
            return Task.FromResult(exit);
        });
        return command;
    }

    /// <summary>The --journal option both `status` and `events` take.</summary>
    internal static Option<string?> JournalOption() => new("--journal") { Description = $"The supervisor's journal [default: the journal of ./kintsugi.yaml, else {DefaultJournal}]" };

    /// <summary>Opens the journal for reading; a missing one is an error that says how to make it.</summary>
    internal static EventJournal OpenJournal(string? path)
    {
        string full = JournalPath(path);
        if (!File.Exists(full))
        {
            throw new KintsugiException(ErrorKind.NotFound, $"there is no journal at {full}; start the supervisor with `kintsugi run` first, or pass --journal PATH");
        }
        return EventJournal.OpenReadOnly(full);
    }

    /// <summary>Where the journal is: --journal, else the journal of ./kintsugi.yaml, else <see cref="DefaultJournal"/>.</summary>
    internal static string JournalPath(string? path) =>
        !string.IsNullOrWhiteSpace(path) ? Path.GetFullPath(path) : JournalOfConfigHere() ?? Path.GetFullPath(DefaultJournal);

    /// <summary>The journal that `kintsugi run` would use with the kintsugi.yaml of this folder, if there is one.</summary>
    private static string? JournalOfConfigHere()
    {
        if (!File.Exists("kintsugi.yaml"))
        {
            return null;
        }
        try
        {
            return Kintsugi.Supervision.Config.ConfigLoader.Load("kintsugi.yaml").Journal;
        }
        catch (Kintsugi.Supervision.Config.ConfigException)
        {
            return null;
        }
    }

    private static TimeSpan ParseWindow(string text)
    {
        var span = Units.ParseDuration(text);
        if (span <= TimeSpan.Zero)
        {
            throw new UsageException($"the window '{text}' is empty; give a span like 30m, 1h or 7d");
        }
        return span;
    }

    /// <summary>
    /// Whether the supervisor that wrote supervisor.started is still there: a supervisor that died
    /// wrote no supervisor.stopped. The command line is checked too, since its pid may be reused.
    /// </summary>
    private static bool SupervisorProcessIsAlive(int pid)
    {
        if (!Directory.Exists("/proc/self"))
        {
            return true; // No /proc to ask: trust the journal.
        }
        try
        {
            string cmdline = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/cmdline");
            return cmdline.Contains("kintsugi", StringComparison.OrdinalIgnoreCase);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string Describe(SupervisorStatus s, bool alive)
    {
        if (s.Runs == 0)
        {
            return "never started on this journal";
        }
        string pid = s.Pid is { } p ? $"pid {p}" : "no pid";
        if (alive)
        {
            return $"running ({pid}, since {Units.Time(s.Started!.Value)}{(s.Config is null ? "" : ", config " + s.Config)})";
        }
        if (s.Running)
        {
            return $"not running: {pid}, started {Units.Time(s.Started!.Value)}, is gone without stopping; the figures end at its last event ({(s.LastEvent is { } l ? Units.Time(l) : "-")})";
        }
        return $"stopped at {Units.Time(s.Stopped!.Value)}{(s.StopReason is null ? "" : $" ({s.StopReason})")}";
    }

    private static Table Table(WorkloadFigures f)
    {
        var table = new Table().Border(TableBorder.Simple).HideHeaders()
            .Title(Markup.Escape($"{f.Workload}: {f.State.ToString().ToLowerInvariant()}"));
        table.AddColumn("figure");
        table.AddColumn("value");
        void Row(string name, string value) => table.AddRow(Markup.Escape(name), Markup.Escape(value));

        Row("replicas", f.Replicas.Count == 0 ? "-" : string.Join("\n", f.Replicas.Select(Replica)));
        Row("availability", f.Availability is { } a ? $"{Percent(a)} (healthy {Duration(f.HealthySeconds)} of {Duration(f.ObservedSeconds)})" : "-");
        Row("failures", f.Failures.ToString(CultureInfo.InvariantCulture));
        Row("MTBF", Duration(f.MtbfSeconds));
        Row("MTTR", f.MttrSeconds is null ? "-" : $"{Duration(f.MttrSeconds)} ({Count(f.Recoveries, "recovery", "recoveries")})");
        Row("RTO", f.RtoLastSeconds is null ? "-" : $"{Duration(f.RtoLastSeconds)} last, {Duration(f.RtoMaxSeconds)} max");
        Row("RPO", f.RpoSeconds is null ? "- (no protected checkpoint)" : $"{Duration(f.RpoSeconds)} (newest protected checkpoint {Units.Time(f.LastProtectedCheckpoint!.Value)})");
        if (f.Repositories.Any(r => r.Role == "copy"))
        {
            // With copies, the RPO of each repository: a disaster that takes the local one loses back to the copy's.
            Row("RPO per repository", string.Join("\n", f.Repositories.Select(r => $"{r.Role} {r.Repository}: {Duration(r.RpoSeconds)} (newest {Units.Time(r.LastCheckpoint)})")));
        }
        Row("ETTR", f.Ettr is { } e ? $"{Percent(e)} (lost {Duration(f.LostSeconds)})" : "-");
        Row("recovery rate R", f.RecoveryRate is { } r ? $"{Ratio(r)} ({Units.Bytes(f.ProtectedBytes)} protected of {Units.Bytes(f.WrittenBytes)} written)" : "-");
        Row("adaptation rate A", f.AdaptationRate is { } ad ? $"{Ratio(ad)} ({Count(f.Adjustments, "adjusting decision", "adjusting decisions")} in {Count(f.Evaluations, "evaluation", "evaluations")})" : "-");
        Row("restarts", f.Restarts.ToString(CultureInfo.InvariantCulture));
        Row("rollbacks", f.Rollbacks.ToString(CultureInfo.InvariantCulture));
        if (f.Failovers > 0)
        {
            Row("failovers", f.Failovers.ToString(CultureInfo.InvariantCulture));
        }
        Row("last event", f.LastEvent is { } last ? $"{Units.Time(last.Time)} {last.Type}{(last.Replica is { } i ? $" replica {i}" : "")}" : "-");
        return table;
    }

    private static string Replica(ReplicaStatus r) =>
        $"{r.Replica}: {r.State.ToString().ToLowerInvariant()}"
        + (r.Pid is { } pid ? $", pid {pid}" : "")
        + (r.Attempt is { } attempt ? $", attempt {attempt}" : "")
        + (r.Since is { } since ? $", since {Units.Time(since)}" : "");

    private static string Count(long n, string one, string many) => $"{n.ToString(CultureInfo.InvariantCulture)} {(n == 1 ? one : many)}";

    private static string Percent(double fraction) => (fraction * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%";

    private static string Ratio(double value) => value.ToString("0.####", CultureInfo.InvariantCulture);

    /// <summary>A span for people: 42.0 s, 5m 03s, 2h 05m, 3d 04h.</summary>
    private static string Duration(double? seconds)
    {
        if (seconds is not { } s)
        {
            return "-";
        }
        var t = TimeSpan.FromSeconds(s);
        return s switch
        {
            < 60 => s.ToString("0.0", CultureInfo.InvariantCulture) + " s",
            < 3600 => $"{(int)t.TotalMinutes}m {t.Seconds:00}s",
            < 86400 => $"{(int)t.TotalHours}h {t.Minutes:00}m",
            _ => $"{(int)t.TotalDays}d {t.Hours:00}h",
        };
    }
}
