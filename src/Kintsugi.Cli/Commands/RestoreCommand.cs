using System.CommandLine;
using System.Diagnostics;
using Kintsugi.Backup.Engine;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

internal static class RestoreCommand
{
    public static Command Create()
    {
        var snapshot = new Argument<string>("snapshot") { Description = "Snapshot id, id prefix, or latest" };
        var target = new Option<string>("--target", "-t") { Description = "Folder to restore into (created if missing); files keep their full snapshot paths under it", Required = true };
        var include = new Option<string[]>("--include", "-i") { Description = "Restore only this path of the snapshot and what is under it (repeatable)" };
        var command = new Command("restore", "Restore a snapshot, or part of it, into a folder. Content is verified against its id as it is read.\n" + ExitCodes.Help) { snapshot, target, include };
        command.SetHandler(async (ctx, ct) =>
        {
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var snap = await repo.FindSnapshotAsync(ctx.Parse.GetValue(snapshot)!, ct).ConfigureAwait(false);
            var request = new RestoreRequest
            {
                Target = ctx.Parse.GetValue(target)!,
                Includes = ctx.Parse.GetValue(include) ?? [],
                Host = CliContext.Host,
            };
            var progress = new RestoreProgress();
            var clock = Stopwatch.StartNew();
            var result = await ProgressDisplay.RunAsync(ctx, "restore", () => (progress.BytesDone, progress.TotalBytes), new RestoreEngine(repo).RunAsync(snap, request, progress, ct)).ConfigureAwait(false);
            clock.Stop();
            if (result.WithoutLock)
            {
                ctx.Warn($"kintsugi: warning: the repository at {repo.Store.Location} cannot be written (a read-only mount, or a full disk?); restored without a lock");
            }
            int errors = 0;
            foreach (var issue in result.Issues)
            {
                bool warning = issue.Message.StartsWith("warning:", StringComparison.Ordinal);
                errors += warning ? 0 : 1;
                ctx.Warn(CliContext.Printable($"{(warning ? "" : "error: ")}{issue.Path}: {issue.Message}"));
            }
            if (ctx.Json)
            {
                ctx.WriteJson(new { snapshot = snap.Id.ToString(), target = Path.GetFullPath(request.Target), result.Files, result.Directories, result.Symlinks, result.Bytes, duration_s = Math.Round(clock.Elapsed.TotalSeconds, 3), issues = result.Issues });
            }
            else
            {
                ctx.Say($"restored {result.Files} files, {result.Directories} folders, {result.Symlinks} symlinks ({Units.Bytes(result.Bytes)}) from snapshot {snap.ShortId} to {Path.GetFullPath(request.Target)} in {Units.Seconds(clock.Elapsed.TotalSeconds)} ({Units.Rate(result.Bytes, clock.Elapsed)})");
            }
            if (errors > 0)
            {
                ctx.Warn($"kintsugi: {errors} files could not be restored; everything else was");
                return ExitCodes.Partial;
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
