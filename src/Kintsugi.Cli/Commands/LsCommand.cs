using System.CommandLine;
using System.Globalization;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

internal static class LsCommand
{
    public static Command Create()
    {
        var snapshot = new Argument<string>("snapshot") { Description = "Snapshot id, id prefix, or latest" };
        var path = new Argument<string?>("path")
        {
            Description = "Only what is at or under this path inside the snapshot: absolute, relative to a path the snapshot backed up (data, or proj/data), or a glob ('*.pt', '/home/**/weights*')",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var longFormat = new Option<bool>("--long", "-l") { Description = "Show type, mode, size and modification time" };
        var command = new Command("ls", "List the files of a snapshot, recursively, depth first in name order: each folder, then everything under it (as restic lists them).") { snapshot, path, longFormat };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var filter = filters.Read(ctx);
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var snap = await repo.FindSnapshotAsync(ctx.Parse.GetValue(snapshot)!, filter, ct).ConfigureAwait(false);
            var index = await repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
            var selection = await PathSelection.ResolveAsync(repo, index, snap, ctx.Parse.GetValue(path) is { } p ? [p] : [], [], ct).ConfigureAwait(false);
            var items = new List<object>();
            bool longMode = ctx.Parse.GetValue(longFormat);
            await foreach (var w in TreeWalker.WalkPreOrderAsync(repo, index, TreeWalker.RootOf(snap), ct: ct).ConfigureAwait(false))
            {
                if (!selection.Covers(w.Path, w.Node.Type == NodeType.Directory))
                {
                    continue;
                }
                var n = w.Node;
                if (ctx.Json)
                {
                    items.Add(new { path = w.Path, type = n.Type, mode = Convert.ToString(n.Mode, 8), n.Size, mtime = DateTimeOffset.FromUnixTimeMilliseconds(n.MtimeNs / 1_000_000), n.Uid, n.Gid, n.LinkTarget });
                }
                else if (longMode)
                {
                    ctx.Say(LongLine(w.Path, n));
                }
                else
                {
                    ctx.Say(CliContext.Printable(w.Path));
                }
            }
            if (ctx.Json)
            {
                ctx.WriteJson(items);
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>An entry as <c>ls -l</c> prints it: type and mode, owner, size, mtime, path (and a symlink's target).</summary>
    public static string LongLine(string path, Node n)
    {
        string type = n.Type switch { NodeType.Directory => "d", NodeType.Symlink => "l", NodeType.File => "-", NodeType.Fifo => "p", NodeType.Socket => "s", NodeType.CharDevice => "c", _ => "b" };
        string mtime = Units.Time(DateTimeOffset.FromUnixTimeMilliseconds(n.MtimeNs / 1_000_000));
        return string.Create(CultureInfo.InvariantCulture, $"{type}{Convert.ToString(n.Mode & 0x1FF, 8).PadLeft(4, '0')} {n.Uid,5} {n.Gid,5} {n.Size,14} {mtime} {CliContext.Printable(path)}{(n.LinkTarget is { } t ? " -> " + CliContext.Printable(t) : "")}");
    }
}
