using System.CommandLine;
using Kintsugi.Cli.Rendering;
using Spectre.Console;

namespace Kintsugi.Cli.Commands;

internal static class SnapshotsCommand
{
    public static Command Create()
    {
        var tag = new Option<string[]>("--tag") { Description = "Only snapshots with this tag (repeatable: any of them)" };
        var host = new Option<string?>("--host") { Description = "Only snapshots of this host" };
        var command = new Command("snapshots", "List snapshots, oldest first.\n" + ExitCodes.Help) { tag, host };
        command.SetHandler(async (ctx, ct) =>
        {
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var tags = ctx.Parse.GetValue(tag) ?? [];
            string? hostName = ctx.Parse.GetValue(host);
            var list = (await repo.LoadSnapshotsAsync(onError: (name, e) => ctx.Warn($"kintsugi: warning: {e.Message}"), ct: ct).ConfigureAwait(false))
                .Where(s => tags.Length == 0 || tags.Any(s.Snapshot.HasTag))
                .Where(s => hostName is null || s.Snapshot.Host == hostName)
                .ToList();
            if (ctx.Json)
            {
                ctx.WriteJson(list.Select(s => new { id = s.Id.ToString(), short_id = s.ShortId, s.Snapshot.Time, s.Snapshot.Host, s.Snapshot.User, s.Snapshot.Paths, tags = s.Snapshot.Tags ?? [], s.Snapshot.Kind, s.Snapshot.Parent, s.Snapshot.Tree, s.Snapshot.Summary }));
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
