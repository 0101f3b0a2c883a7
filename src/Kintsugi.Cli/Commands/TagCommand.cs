using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

internal static class TagCommand
{
    public static Command Create()
    {
        var named = new Argument<string[]>("snapshot")
        {
            Description = "Snapshots to change, by id, id prefix, or latest (the newest the filters pass); none: every snapshot the filters pass",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var add = new Option<string[]>("--add") { Description = "Add these tags (TAG[,TAG...]; repeatable)", AllowMultipleArgumentsPerToken = false, HelpName = "TAG[,TAG...]" };
        var remove = new Option<string[]>("--remove") { Description = "Remove these tags (TAG[,TAG...]; repeatable)", AllowMultipleArgumentsPerToken = false, HelpName = "TAG[,TAG...]" };
        var set = new Option<string[]>("--set") { Description = "Replace all tags by these (TAG[,TAG...]; repeatable; --set '' removes every tag); not with --add or --remove", AllowMultipleArgumentsPerToken = false, HelpName = "TAG[,TAG...]" };
        var command = new Command(
            "tag",
            "Change the tags of snapshots. A snapshot whose tags change is written anew (a new id; its field `original` keeps the id the backup gave it) and the old file is deleted; "
            + "its content is the same. With no snapshot and no filter, every snapshot is changed.")
        {
            named, add, remove, set,
        };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var p = ctx.Parse;
            var change = ReadChange(p.GetValue(add) ?? [], p.GetValue(remove) ?? [], p.GetValue(set));
            var filter = filters.Read(ctx);
            string[] ids = p.GetValue(named) ?? [];
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            // Exclusive, as restic's: two tag runs (or tag and forget) at once could each rewrite the same snapshot and leave a
            // duplicate, or bring back one that forget removed; and with parity, a snapshot file's group changes.
            await using var repoLock = await repo.LockAsync(exclusive: true, CliContext.Host, "tag", ct).ConfigureAwait(false);
            var all = await repo.LoadSnapshotsAsync(onError: (name, e) => ctx.Warn($"kintsugi: warning: {e.Message}; it is left as it is"), ct: ct).ConfigureAwait(false);
            var chosen = filter.Select(all, ids);
            var (rewritten, warnings) = await new TagEngine(repo).RunAsync(chosen, change, ct).ConfigureAwait(false);
            foreach (string warning in warnings)
            {
                ctx.Warn($"kintsugi: warning: {warning}");
            }
            bool everything = ids.Length == 0 && filter.IsEmpty;
            if (ctx.Json)
            {
                ctx.WriteJson(new
                {
                    changed = rewritten.Select(r => new
                    {
                        id = r.Before.Id.ToString(),
                        new_id = r.After.Id.ToString(),
                        original = r.After.Snapshot.Original,
                        tags_before = r.Before.Snapshot.Tags ?? [],
                        tags = r.After.Snapshot.Tags ?? [],
                    }),
                    considered = chosen.Count,
                    all_snapshots = everything,
                });
                return ExitCodes.Ok;
            }
            foreach (var r in rewritten)
            {
                ctx.Say(CliContext.Printable($"snapshot {r.Before.ShortId} is now {r.After.ShortId}: tags {Tags(r.After)} (were {Tags(r.Before)})"));
            }
            ctx.Say($"changed the tags of {rewritten.Count} of {chosen.Count} snapshots"
                + (everything ? " (every snapshot in the repository: no snapshot or filter was given)" : "")
                + (rewritten.Count < chosen.Count ? $"; {chosen.Count - rewritten.Count} {Unchanged(change)}" : ""));
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Why a snapshot was left as it was, in the words of the change asked for.</summary>
    private static string Unchanged(TagChange change) => change switch
    {
        { Set: not null } => "already had exactly those tags",
        { Add.Count: > 0, Remove.Count: 0 } => "already had them",
        { Add.Count: 0, Remove.Count: > 0 } => "had none of them to remove",
        _ => "already had the tags to add and none of those to remove",
    };

    private static string Tags(SnapshotRef s) => s.Snapshot.Tags is { Count: > 0 } t ? string.Join(",", t) : "(none)";

    /// <summary>The change asked for; none, or --set with --add/--remove, is a usage error (as in restic).</summary>
    private static TagChange ReadChange(string[] add, string[] remove, string[]? set)
    {
        if (set is { Length: > 0 } && (add.Length > 0 || remove.Length > 0))
        {
            throw new UsageException("--set replaces all tags, so it cannot go with --add or --remove; give --set alone, or --add/--remove");
        }
        if (add.Length == 0 && remove.Length == 0 && set is not { Length: > 0 })
        {
            throw new UsageException("nothing to change; give --add TAG, --remove TAG or --set TAG (see `kintsugi tag --help`)");
        }
        try
        {
            return new TagChange
            {
                Add = [.. add.SelectMany(t => SnapshotFilter.SplitTags(t, "--add"))],
                Remove = [.. remove.SelectMany(t => SnapshotFilter.SplitTags(t, "--remove"))],
                Set = set is { Length: > 0 } ? [.. set.Where(t => t.Length > 0).SelectMany(t => SnapshotFilter.SplitTags(t, "--set"))] : null,
            };
        }
        catch (KintsugiException e)
        {
            throw new UsageException(e.Message);
        }
    }
}
