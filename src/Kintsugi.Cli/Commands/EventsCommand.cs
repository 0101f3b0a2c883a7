using System.CommandLine;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Kintsugi.Backup;
using Kintsugi.Cli.Rendering;
using Kintsugi.Supervision.Journal;

namespace Kintsugi.Cli.Commands;

internal static class EventsCommand
{
    private const int DefaultLimit = 100;

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>With --follow, how many polls a journal file that exists may fail to open (10 s) before that is an error.</summary>
    private const int FailedOpensBeforeGivingUp = 20;

    private static readonly JsonSerializerOptions JsonLines = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static Command Create()
    {
        var journal = StatusCommand.JournalOption();
        var workload = new Option<string?>("--workload", "-w") { Description = "Only events of this workload" };
        var type = new Option<string?>("--type", "-t") { Description = "Only events of this type (replica.unhealthy), or of a family (action.*)" };
        var since = new Option<string?>("--since") { Description = "Only events of the last span: 10m, 2h, 7d" };
        var limit = new Option<int>("--limit", "-n") { Description = "Show the newest N events that match; 0 shows all", DefaultValueFactory = _ => DefaultLimit };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new events as they are written, until Ctrl-C (with --json: one JSON object per line)" };
        var command = new Command("events", "Show the journal's events, oldest first: time, type, workload/replica and data. --json prints a JSON array.") { journal, workload, type, since, limit, follow };
        command.SetHandler(async (ctx, ct) =>
        {
            int count = ctx.Parse.GetValue(limit);
            if (count < 0)
            {
                throw new UsageException($"--limit {count} is negative; give a count, or 0 for all");
            }
            string? sinceText = ctx.Parse.GetValue(since);
            DateTimeOffset? sinceTime = sinceText is null ? null : ctx.Time.GetUtcNow() - Units.ParseDuration(sinceText);
            string? workloadName = ctx.Parse.GetValue(workload);
            string? typeName = ctx.Parse.GetValue(type);
            bool following = ctx.Parse.GetValue(follow);

            using var events = following
                ? await WaitForJournalAsync(ctx, ctx.Parse.GetValue(journal), ct).ConfigureAwait(false)
                : StatusCommand.OpenJournal(ctx.Parse.GetValue(journal));
            if (events is null)
            {
                return ExitCodes.Ok; // Ctrl-C before the journal appeared.
            }
            // The newest id before the first read: following goes on from there, so nothing is printed twice or skipped.
            long seen = events.Tail(1).FirstOrDefault()?.Id ?? 0;
            var shown = (count == 0
                    ? events.Read(since: sinceTime, workload: workloadName, type: typeName)
                    : events.Tail(count, since: sinceTime, workload: workloadName, type: typeName))
                .Where(e => e.Id <= seen)
                .ToList();

            if (ctx.Json && !following)
            {
                ctx.WriteJson(shown);
                return ExitCodes.Ok;
            }
            Print(ctx, shown);
            if (count > 0 && shown.Count == count && !following && !ctx.Json && !ctx.Quiet)
            {
                ctx.Warn($"kintsugi: showing the newest {count} {(count == 1 ? "event" : "events")}; --limit 0 shows them all");
            }
            if (!following)
            {
                return ExitCodes.Ok;
            }
            try
            {
                while (true)
                {
                    await Task.Delay(PollInterval, ctx.Time, ct).ConfigureAwait(false);
                    var next = events.Read(afterId: seen, workload: workloadName, type: typeName);
                    if (next.Count > 0)
                    {
                        Print(ctx, next);
                        seen = next[^1].Id;
                    }
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // Ctrl-C is how --follow ends.
                return ExitCodes.Ok;
            }
        });
        return command;
    }

    /// <summary>
    /// For --follow: the journal, waiting for it to appear as <c>tail -F</c> does when it is not there yet
    /// (a supervisor about to start); null when Ctrl-C comes first. A file that appears but cannot be
    /// read as a journal is retried for a few seconds (its writer may be creating it), then reported.
    /// </summary>
    private static async Task<EventJournal?> WaitForJournalAsync(CliContext ctx, string? path, CancellationToken ct)
    {
        string full = StatusCommand.JournalPath(path);
        bool told = false;
        int failures = 0;
        try
        {
            while (true)
            {
                if (File.Exists(full))
                {
                    try
                    {
                        return EventJournal.OpenReadOnly(full);
                    }
                    catch (KintsugiException) when (++failures < FailedOpensBeforeGivingUp)
                    {
                        // Being created: try again at the next poll.
                    }
                }
                else if (!told && !ctx.Quiet)
                {
                    ctx.Warn($"kintsugi: there is no journal at {full} yet; waiting for it (Ctrl-C stops)");
                    told = true;
                }
                await Task.Delay(PollInterval, ctx.Time, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return null;
        }
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Kintsugi's own types, in assemblies the trimmer keeps whole (TrimMode partial); the .NET types they hold are written by System.Text.Json's built-in converters, which reflection mode keeps.")]
    private static void Print(CliContext ctx, IReadOnlyList<JournalEvent> events)
    {
        foreach (var e in events)
        {
            ctx.Out.WriteLine(ctx.Json ? JsonSerializer.Serialize(e, JsonLines) : Line(e));
        }
    }

    /// <summary>One event on one line: local time, type, workload/replica, data.</summary>
    private static string Line(JournalEvent e)
    {
        string who = e.Workload is null ? "-" : e.Replica is { } r ? $"{e.Workload}/{r.ToString(CultureInfo.InvariantCulture)}" : e.Workload;
        string data = e.Data.ValueKind == JsonValueKind.Object && e.Data.EnumerateObject().Any() ? e.Data.GetRawText() : "";
        string time = e.Time.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture);
        return $"{time}  {e.Type,-20}  {who,-12}  {data}".TrimEnd();
    }
}
