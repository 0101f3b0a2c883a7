using System.CommandLine;
using Kintsugi.Cli.Rendering;
using Spectre.Console;

namespace Kintsugi.Cli.Commands;

internal static class SnapshotsCommand
{
    public static Command Create()
    {
        var ids = new Argument<string[]>("snapshot")
        {
            Description = "Only these snapshots: id, id prefix, or latest (the newest the filters pass); default every snapshot the filters pass",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var command = new Command("snapshots", "List snapshots, oldest first: all of them, those the filters pass, or those named (`kintsugi snapshots latest`).") { ids };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var filter = filters.Read(ctx);
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var all = await repo.LoadSnapshotsAsync(onError: (name, e) => ctx.Warn($"kintsugi: warning: {e.Message}"), ct: ct).ConfigureAwait(false);
            var list = filter.Select(all, ctx.Parse.GetValue(ids) ?? []);
            if (ctx.Json)
            {
                ctx.WriteJson(list.Select(s => new { id = s.Id.ToString(), short_id = s.ShortId, s.Snapshot.Time, s.Snapshot.Host, s.Snapshot.User, s.Snapshot.Paths, tags = s.Snapshot.Tags ?? [], s.Snapshot.Kind, s.Snapshot.Parent, s.Snapshot.Tree, s.Snapshot.Original, s.Snapshot.Summary }));
                return ExitCodes.Ok;
            }
            var table = new Table().Border(TableBorder.Simple);
            foreach (var column in new[] { "ID", "Time", "Host", "Kind", "Tags", "Paths", "Size" })
            {
                table.AddColumn(column);
            }
            foreach (var s in list)
            {
                table.AddRow(
                    s.ShortId,
                    Units.Time(s.Snapshot.Time),
                    Markup.Escape(s.Snapshot.Host),
                    s.Snapshot.Kind,
                    Markup.Escape(string.Join(",", s.Snapshot.Tags ?? [])),
                    Markup.Escape(string.Join("\n", s.Snapshot.Paths)),
                    Units.Bytes(s.Snapshot.Summary?.BytesTotal ?? 0));
            }
            ctx.OutConsole.Write(table);
            ctx.Say($"{list.Count} snapshots");
            return ExitCodes.Ok;
        });
        return command;
    }
}
