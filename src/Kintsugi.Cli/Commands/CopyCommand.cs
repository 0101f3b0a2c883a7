using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

internal static class CopyCommand
{
    public static Command Create()
    {
        var named = new Argument<string[]>("snapshot")
        {
            Description = "Snapshots of the source to copy: id, id prefix, or latest (the newest the filters pass)",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var all = new Option<bool>("--all") { Description = "Copy every snapshot of the source the filters pass" };
        var command = new Command(
            "copy",
            "Copy snapshots, with everything they need, from another repository (--from-repo) into this one (--repo), moving only what this one lacks. "
            + "A snapshot copied before is skipped, so a second run copies nothing, and an interrupted copy resumes where it stopped. "
            + "Any two repositories will do. One made with `kintsugi init --copy-settings-from SOURCE` shares the source's blob ids and chunking, so blobs move as stored; "
            + "otherwise every blob is read, re-identified with this repository's key and stored whole (tensor deltas too), which costs more reading and space.")
        {
            named, all,
        };
        var source = SourceRepositoryOptions.AddTo(command, "--from-repo", "The repository to copy from: a folder or URL [env: KINTSUGI_FROM_REPOSITORY]", "KINTSUGI_FROM_REPOSITORY");
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            string[] ids = ctx.Parse.GetValue(named) ?? [];
            bool everything = ctx.Parse.GetValue(all);
            if (ids.Length == 0 && !everything)
            {
                throw new UsageException("no snapshot to copy; name snapshots (id, id prefix or latest) or pass --all (see `kintsugi copy --help`)");
            }
            if (ids.Length > 0 && everything)
            {
                throw new UsageException("--all copies every snapshot, so name no snapshot with it; pass one or the other");
            }
            var filter = filters.Read(ctx);
            string from = source.Location(ctx) ?? throw new UsageException("no repository to copy from; pass --from-repo REPO or set KINTSUGI_FROM_REPOSITORY");
            if (from == ctx.RepositoryPath)
            {
                throw new UsageException($"--from-repo and --repo both name {from}; copy into another repository");
            }
            var src = await source.OpenAsync(ctx, from, ct).ConfigureAwait(false);
            var dst = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            if (src.Config.Id == dst.Config.Id)
            {
                throw new UsageException($"--from-repo {src.Store.Location} and --repo {dst.Store.Location} are the same repository (id {dst.Config.Id[..8]}); copy into another repository");
            }
            var snapshots = await src.LoadSnapshotsAsync(onError: (name, e) => ctx.Warn($"kintsugi: warning: source {e.Message}; it is not copied"), ct: ct).ConfigureAwait(false);
            var chosen = filter.Select(snapshots, ids);
            var result = await new CopyEngine(src, dst).RunAsync(new CopyRequest { Snapshots = chosen, Host = CliContext.Host }, ct: ct).ConfigureAwait(false);
            foreach (string warning in result.Warnings)
            {
                ctx.Warn($"kintsugi: warning: {warning}");
            }
            if (ctx.Json)
            {
                ctx.WriteJson(new
                {
                    source = src.Store.Location,
                    destination = dst.Store.Location,
                    snapshots = result.Snapshots.Select(s => new { id = s.Source.Id.ToString(), copy = s.Destination.ToString(), skipped = s.Skipped, time = s.Source.Snapshot.Time, host = s.Source.Snapshot.Host, paths = s.Source.Snapshot.Paths }),
                    snapshots_copied = result.SnapshotsCopied,
                    snapshots_skipped = result.SnapshotsSkipped,
                    blobs_copied = result.BlobsCopied,
                    bytes_copied = result.BytesCopied,
                    packs_written = result.PacksWritten,
                    ids_shared = result.IdsShared,
                    mode = result.IdsShared ? "moved-as-stored" : "re-identified",
                });
                return ExitCodes.Ok;
            }
            foreach (var s in result.Snapshots)
            {
                ctx.Say(CliContext.Printable(s.Skipped
                    ? $"snapshot {s.Source.ShortId} of {Units.Time(s.Source.Snapshot.Time)} is already there as {s.Destination.Short}"
                    : $"snapshot {s.Source.ShortId} of {Units.Time(s.Source.Snapshot.Time)} copied as {s.Destination.Short}"));
            }
            ctx.Say(result.SnapshotsCopied == 0
                ? $"nothing to copy: {(result.SnapshotsSkipped == 0 ? "no snapshot was selected" : $"{(result.SnapshotsSkipped == 1 ? "the snapshot is" : $"all {result.SnapshotsSkipped} snapshots are")} already in {dst.Store.Location}")}"
                : $"copied {Count(result.SnapshotsCopied, "snapshot")} ({result.SnapshotsSkipped} already there): {Count(result.BlobsCopied, "blob")}, {Units.Bytes(result.BytesCopied)} in {Count(result.PacksWritten, "pack")}");
            if (result.SnapshotsCopied > 0)
            {
                ctx.Say(result.IdsShared
                    ? "ids shared: blobs moved as stored"
                    : CliContext.Printable($"ids differ: blobs re-identified (read, hashed and stored whole); a repository made with `kintsugi init --copy-settings-from {src.Store.Location}` shares ids, and copies into it move blobs as stored"));
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string Count(long n, string noun) => n == 1 ? $"1 {noun}" : $"{n} {noun}s";
}
