using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;

namespace Kintsugi.Cli.Commands;

internal static class DiffCommand
{
    public static Command Create()
    {
        var first = new Argument<string>("snapshot1") { Description = "The older snapshot: id, id prefix, or latest" };
        var second = new Argument<string>("snapshot2") { Description = "The newer snapshot: id, id prefix, or latest" };
        var command = new Command("diff", "Show what changed between two snapshots: + added, - removed, M content changed, T type changed, U metadata only.") { first, second };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var filter = filters.Read(ctx);
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var a = await repo.FindSnapshotAsync(ctx.Parse.GetValue(first)!, filter, ct).ConfigureAwait(false);
            var b = await repo.FindSnapshotAsync(ctx.Parse.GetValue(second)!, filter, ct).ConfigureAwait(false);
            var index = await repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
            var left = await LoadAsync(repo, index, a, ct).ConfigureAwait(false);
            var right = await LoadAsync(repo, index, b, ct).ConfigureAwait(false);
            var changes = new List<(string Mark, string Path)>();
            foreach (var path in left.Keys.Union(right.Keys).Order(StringComparer.Ordinal))
            {
                bool inLeft = left.TryGetValue(path, out var l);
                bool inRight = right.TryGetValue(path, out var r);
                string? mark = (inLeft, inRight) switch
                {
                    (false, true) => "+",
                    (true, false) => "-",
                    _ when l!.Type != r!.Type => "T",
                    _ when l.Type == NodeType.File && !(l.Content ?? []).SequenceEqual(r.Content ?? [], StringComparer.Ordinal) => "M",
                    _ when l.Type == NodeType.Symlink && l.LinkTarget != r.LinkTarget => "M",
                    _ when l.Mode != r.Mode || l.Uid != r.Uid || l.Gid != r.Gid || (l.Type != NodeType.Directory && l.MtimeNs != r.MtimeNs) => "U",
                    _ => null,
                };
                if (mark is not null)
                {
                    changes.Add((mark, path + (r?.Type ?? l!.Type) switch { NodeType.Directory => "/", _ => "" }));
                }
            }
            long added = changes.Count(c => c.Mark == "+"), removed = changes.Count(c => c.Mark == "-"), modified = changes.Count(c => c.Mark is "M" or "T"), metadata = changes.Count(c => c.Mark == "U");
            if (ctx.Json)
            {
                ctx.WriteJson(new { from = a.Id.ToString(), to = b.Id.ToString(), changes = changes.Select(c => new { change = c.Mark, path = c.Path }), added, removed, modified, metadata });
            }
            else
            {
                foreach (var (mark, path) in changes)
                {
                    ctx.Say($"{mark}    {CliContext.Printable(path)}");
                }
                ctx.Say($"{added} added, {removed} removed, {modified} modified, {metadata} with metadata changes only");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static async Task<Dictionary<string, Node>> LoadAsync(Repository repo, MasterIndex index, SnapshotRef snap, CancellationToken ct)
    {
        var result = new Dictionary<string, Node>(StringComparer.Ordinal);
        await foreach (var w in TreeWalker.WalkAsync(repo, index, TreeWalker.RootOf(snap), ct).ConfigureAwait(false))
        {
            result[w.Path] = w.Node;
        }
        return result;
    }
}
