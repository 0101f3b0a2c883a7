using System.CommandLine;
using System.Globalization;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

internal static class FindCommand
{
    public static Command Create()
    {
        var patterns = new Argument<string[]>("pattern")
        {
            Description = "What to look for: a name glob (*.safetensors, step-00?.pt, [ab]*), or with '/' a path glob (/data/**/config.json from the root, ckpt/*.pt at the end of a path)",
            Arity = ArgumentArity.OneOrMore,
        };
        var snapshots = new Option<string[]>("--snapshot", "-s") { Description = "Search only this snapshot (id, id prefix or latest: the newest the filters pass; repeatable); default every snapshot the filters pass" };
        var ignoreCase = new Option<bool>("--ignore-case", "-i") { Description = "Match names without regard to case" };
        var oldest = new Option<string?>("--oldest", "-O") { Description = "Only entries modified at or after this time (2026-01-31 or 2026-01-31 14:05, local time)" };
        var newest = new Option<string?>("--newest", "-N") { Description = "Only entries modified at or before this time (2026-01-31 or 2026-01-31 14:05, local time)" };
        var command = new Command(
            "find",
            "Find files and folders by name or path in every snapshot (oldest first; --host, --path and --tag narrow which), as restic's find: for each snapshot with a match, " +
            "its matches with type, mode, owner, size, modification time and path. Each distinct folder is read once, however many snapshots share it.")
        {
            patterns, snapshots, ignoreCase, oldest, newest,
        };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var filter = filters.Read(ctx);
            bool fold = ctx.Parse.GetValue(ignoreCase);
            var compiled = new List<FindPattern>();
            foreach (var p in ctx.Parse.GetValue(patterns)!)
            {
                try
                {
                    compiled.Add(p.Length == 0 ? throw new UsageException("an empty pattern matches nothing; give a name or a glob such as '*.pt'") : new FindPattern(p, fold));
                }
                catch (KintsugiException e)
                {
                    throw new UsageException(e.Message);
                }
            }
            var from = ParseTime(ctx.Parse.GetValue(oldest), "--oldest");
            var to = ParseTime(ctx.Parse.GetValue(newest), "--newest");
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var ids = ctx.Parse.GetValue(snapshots) ?? [];
            var all = await repo.LoadSnapshotsAsync(onError: (_, e) => ctx.Warn($"kintsugi: warning: {e.Message}"), ct: ct).ConfigureAwait(false);
            var chosen = filter.Select(all, ids);
            var json = new List<object>();
            long hits = 0;
            await foreach (var found in new FindEngine(repo).FindAsync(chosen, compiled, from, to, ct).ConfigureAwait(false))
            {
                if (found.Matches.Count == 0)
                {
                    continue;
                }
                hits += found.Matches.Count;
                var s = found.Snapshot;
                if (ctx.Json)
                {
                    json.Add(new
                    {
                        snapshot = s.Id.ToString(),
                        short_id = s.ShortId,
                        time = s.Snapshot.Time,
                        hits = found.Matches.Count,
                        matches = found.Matches.Select(m => new
                        {
                            path = m.Path,
                            type = m.Node.Type,
                            mode = Convert.ToString(m.Node.Mode, 8),
                            size = m.Node.Size,
                            mtime = DateTimeOffset.FromUnixTimeMilliseconds(m.Node.MtimeNs / 1_000_000), // as ls --json writes it
                            uid = m.Node.Uid,
                            gid = m.Node.Gid,
                            link_target = m.Node.LinkTarget,
                        }),
                    });
                    continue;
                }
                ctx.Say($"Found matching entries in snapshot {s.ShortId} from {Units.Time(s.Snapshot.Time)}");
                foreach (var m in found.Matches)
                {
                    ctx.Say(LsCommand.LongLine(m.Path, m.Node));
                }
                ctx.Say("");
            }
            if (ctx.Json)
            {
                ctx.WriteJson(json);
            }
            else if (hits == 0)
            {
                ctx.Error.WriteLine($"kintsugi: no match for {string.Join(", ", compiled.Select(p => "'" + CliContext.Printable(p.Text) + "'"))} in {chosen.Count} snapshot{(chosen.Count == 1 ? "" : "s")}{(fold ? "" : " (-i ignores case)")}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static DateTimeOffset? ParseTime(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }
        string[] formats = ["yyyy-MM-dd", "yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd HH:mm:ssK"];
        return DateTimeOffset.TryParseExact(text, formats, CultureInfo.InvariantCulture, DateTimeStyles.AssumeLocal, out var time) ? time
            : throw new UsageException($"{option} '{text}' is not a time; write 2026-01-31, 2026-01-31 14:05 or 2026-01-31 14:05:00");
    }
}
