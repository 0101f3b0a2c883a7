using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Parity;
using Kintsugi.Backup.Storage;
using Kintsugi.Cli.Rendering;
using Spectre.Console;

namespace Kintsugi.Cli.Commands;

internal static class ForgetCommand
{
    public static Command Create()
    {
        var last = new Option<int>("--keep-last") { Description = "Keep the N newest snapshots" };
        var hourly = new Option<int>("--keep-hourly") { Description = "Keep the newest snapshot of each of the last N hours that have one" };
        var daily = new Option<int>("--keep-daily") { Description = "… of each of the last N days" };
        var weekly = new Option<int>("--keep-weekly") { Description = "… of each of the last N ISO weeks" };
        var monthly = new Option<int>("--keep-monthly") { Description = "… of each of the last N months" };
        var yearly = new Option<int>("--keep-yearly") { Description = "… of each of the last N years" };
        var tag = new Option<string[]>("--keep-tag") { Description = "Keep every snapshot with this tag (repeatable)" };
        var within = new Option<string?>("--keep-within") { Description = "Keep every snapshot taken within this span before the newest one (e.g. 7d, 12h, 2w, 3mo, 1y)" };
        var prune = new Option<bool>("--prune") { Description = "Then delete the data no snapshot needs (takes an exclusive lock)" };
        var dryRun = new Option<bool>("--dry-run", "-n") { Description = "Show what would be removed; change nothing" };
        var named = new Argument<string[]>("snapshot")
        {
            Description = "Snapshots to remove, by id, id prefix, or latest (the newest the filters pass); instead of --keep-* options",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var groupBy = new Option<string>("--group-by", "-g")
        {
            Description = "Apply the --keep-* policy to each group of snapshots that share these: host, paths, tags, or a comma-separated mix; '' makes one group of all",
            DefaultValueFactory = _ => "host,paths",
            HelpName = "host,paths,tags",
        };
        var command = new Command(
            "forget",
            "Remove the snapshots named, or those a retention policy (--keep-*) does not keep, per group of host and paths (--group-by); only snapshots the filters pass are considered. "
            + "With --prune, also delete the data they alone used.")
        {
            named, last, hourly, daily, weekly, monthly, yearly, tag, within, groupBy, prune, dryRun,
        };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var p = ctx.Parse;
            string[] ids = p.GetValue(named) ?? [];
            foreach (var option in new[] { last, hourly, daily, weekly, monthly, yearly })
            {
                if (p.GetValue(option) < 0)
                {
                    throw new UsageException($"{option.Name} must not be negative");
                }
            }
            var policy = new RetentionPolicy
            {
                Last = p.GetValue(last),
                Hourly = p.GetValue(hourly),
                Daily = p.GetValue(daily),
                Weekly = p.GetValue(weekly),
                Monthly = p.GetValue(monthly),
                Yearly = p.GetValue(yearly),
                Tags = p.GetValue(tag) ?? [],
                Within = p.GetValue(within) is { } w ? Units.ParseDuration(w) : null,
            };
            if (ids.Length > 0 && !policy.IsEmpty)
            {
                throw new UsageException("give snapshot ids to remove, or --keep-* options to remove what a policy does not keep, not both");
            }
            if (ids.Length == 0 && policy.IsEmpty)
            {
                throw new UsageException("no retention rule given, so every snapshot would be removed; give at least one --keep-* option, or the ids of the snapshots to remove");
            }
            if (!SnapshotGroupings.TryParse(p.GetValue(groupBy) ?? "", out var grouping))
            {
                throw new UsageException($"--group-by '{p.GetValue(groupBy)}' is not a grouping; give host, paths, tags, a comma-separated mix of them, or '' for one group");
            }
            var filter = filters.Read(ctx);
            bool dry = p.GetValue(dryRun);
            bool doPrune = p.GetValue(prune);
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var parity = new ParityEngine(repo.Store);
            // With parity, forgetting changes parity groups, which a backup's parity pass must not do at the same time.
            bool exclusive = !dry && (doPrune || await repo.Store.ExistsAsync(FileKind.ParitySettings, "settings", ct).ConfigureAwait(false) || (await repo.Store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false)).Count > 0);
            string lockName = doPrune ? "forget --prune" : "forget";
            // A dry run only reads: where the repository cannot be written (a read-only mount, a full disk) it goes on without a lock, as restore and check do.
            await using var repoLock = dry
                ? await RepositoryLock.AcquireForReadingAsync(repo.Store, CliContext.Host, lockName, repo.Time, ct).ConfigureAwait(false)
                : await repo.LockAsync(exclusive, CliContext.Host, lockName, ct).ConfigureAwait(false);
            if (repoLock is null)
            {
                ctx.Warn($"kintsugi: warning: the repository at {repo.Store.Location} cannot be written (a read-only mount, or a full disk?); previewed without a lock");
            }
            var snapshots = await repo.LoadSnapshotsAsync(onError: (name, e) => ctx.Warn($"kintsugi: warning: {e.Message}; it is left as it is"), ct: ct).ConfigureAwait(false);
            var considered = snapshots.Where(s => filter.Matches(s.Snapshot)).ToList();
            IReadOnlyList<RetentionGroup> groups = [];
            var removed = new List<SnapshotRef>();
            if (ids.Length > 0)
            {
                removed.AddRange(filter.Select(snapshots, ids));
            }
            else
            {
                groups = Retention.Apply(considered, policy, ctx.Time.LocalTimeZone, grouping);
                removed.AddRange(groups.SelectMany(g => g.Decisions).Where(d => !d.Keep).Select(d => d.Snapshot));
            }
            if (!dry)
            {
                await parity.DeleteAsync([.. removed.Select(r => (FileKind.Snapshot, r.Id.ToString()))], ct).ConfigureAwait(false);
            }
            PruneResult? pruned = null;
            if (doPrune)
            {
                pruned = await new PruneEngine(repo).RunAsync(new PruneRequest { DryRun = dry, Host = CliContext.Host, Forgotten = removed.Select(r => r.Id).ToHashSet() }, repoLock, ct).ConfigureAwait(false);
            }
            if (ctx.Json)
            {
                ctx.WriteJson(new
                {
                    dry_run = dry,
                    removed = removed.Select(r => r.Id.ToString()),
                    groups = groups.Select(g => new
                    {
                        g.Host,
                        g.Paths,
                        g.Tags,
                        keep = g.Decisions.Where(d => d.Keep).Select(d => new { id = d.Snapshot.Id.ToString(), time = d.Snapshot.Snapshot.Time, reasons = d.Reasons }),
                        remove = g.Decisions.Where(d => !d.Keep).Select(d => new { id = d.Snapshot.Id.ToString(), time = d.Snapshot.Snapshot.Time }),
                    }),
                    prune = pruned,
                });
            }
            else
            {
                foreach (var r in ids.Length > 0 ? removed : [])
                {
                    ctx.Say(CliContext.Printable($"{(dry ? "would remove" : "removed")} snapshot {r.ShortId} of {Units.Time(r.Snapshot.Time)}, host {r.Snapshot.Host}, paths {string.Join(", ", r.Snapshot.Paths)}"));
                }
                foreach (var g in groups)
                {
                    ctx.Say(CliContext.Printable(Heading(g)));
                    var table = new Table().Border(TableBorder.Simple).AddColumns("ID", "Time", "Decision", "Reasons");
                    foreach (var d in g.Decisions)
                    {
                        table.AddRow(d.Snapshot.ShortId, Units.Time(d.Snapshot.Snapshot.Time), d.Keep ? "keep" : (dry ? "would remove" : "removed"), string.Join(", ", d.Reasons));
                    }
                    ctx.OutConsole.Write(table);
                }
                int others = snapshots.Count - considered.Count;
                ctx.Say($"{(dry ? "would remove" : "removed")} {removed.Count} snapshots, kept {snapshots.Count - removed.Count}"
                    + (ids.Length == 0 && others > 0 ? $" ({others} of them not considered: the filters ({filter}) do not pass them)" : ""));
                if (pruned is not null)
                {
                    SayPrune(ctx, pruned);
                }
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command CreatePrune()
    {
        var dryRun = new Option<bool>("--dry-run", "-n") { Description = "Show what would be deleted; change nothing" };
        var threshold = new Option<int>("--repack-unused")
        {
            Description = "Repack a pack when at least this percentage of it is unused",
            DefaultValueFactory = _ => 50,
        };
        var command = new Command("prune", "Delete data that no snapshot needs and repack mostly-unused packs (takes an exclusive lock).") { dryRun, threshold };
        command.SetHandler(async (ctx, ct) =>
        {
            int pct = ctx.Parse.GetValue(threshold);
            if (pct is < 1 or > 100)
            {
                throw new UsageException("--repack-unused must be between 1 and 100");
            }
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var request = new PruneRequest { DryRun = ctx.Parse.GetValue(dryRun), RepackThreshold = pct / 100.0, Host = CliContext.Host };
            PruneResult result;
            if (request.DryRun)
            {
                // A preview only reads: as forget --dry-run, it takes a shared lock, or none where the repository cannot be written.
                await using var readLock = await RepositoryLock.AcquireForReadingAsync(repo.Store, CliContext.Host, "prune --dry-run", repo.Time, ct).ConfigureAwait(false);
                if (readLock is null)
                {
                    ctx.Warn($"kintsugi: warning: the repository at {repo.Store.Location} cannot be written (a read-only mount, or a full disk?); previewed without a lock");
                }
                result = await new PruneEngine(repo).RunAsync(request, readLock, ct).ConfigureAwait(false);
            }
            else
            {
                result = await new PruneEngine(repo).RunAsync(request, ct).ConfigureAwait(false);
            }
            if (ctx.Json)
            {
                ctx.WriteJson(result);
            }
            else
            {
                SayPrune(ctx, result);
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>"host h, paths /a, /b, tags x:" — what the group's snapshots share; "all snapshots:" for one group.</summary>
    private static string Heading(RetentionGroup g)
    {
        var parts = new List<string>();
        if (g.Host is not null)
        {
            parts.Add($"host {g.Host}");
        }
        if (g.Paths is not null)
        {
            parts.Add($"paths {string.Join(", ", g.Paths)}");
        }
        if (g.Tags is not null)
        {
            parts.Add(g.Tags.Count == 0 ? "no tags" : $"tags {string.Join(",", g.Tags)}");
        }
        return (parts.Count == 0 ? "all snapshots" : string.Join(", ", parts)) + ":";
    }

    private static void SayPrune(CliContext ctx, PruneResult r)
    {
        string verb = r.DryRun ? "would delete" : "deleted";
        ctx.Say($"prune: {verb} {r.PacksDeleted} packs, {(r.DryRun ? "would repack" : "repacked")} {r.PacksRepacked} into {r.PacksWritten}; {r.BlobsRemoved} blobs unused, {r.BlobsKept} kept; {Units.Bytes(r.BytesFreed)} {(r.DryRun ? "would be" : "")} freed".Replace("  ", " ", StringComparison.Ordinal));
    }
}
