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
        var include = new Option<string[]>("--include", "-i")
        {
            Description = "Restore only this path of the snapshot and what is under it (repeatable): absolute (/home/u/proj/data), relative to a path the snapshot backed up (data, or proj/data), "
                + "or a glob ('*.pt' at any depth, '/home/**/weights*' from the root; * ? [...] and ** as in backup --exclude). One that matches nothing fails the restore before anything is written",
            HelpName = "PATH|GLOB",
        };
        var exclude = new Option<string[]>("--exclude", "-e") { Description = "Do not restore this path of the snapshot nor what is under it (repeatable; the syntax of --include)", HelpName = "PATH|GLOB" };
        var overwrite = new Option<string>("--overwrite")
        {
            Description = "What to do with an entry the target already holds where the snapshot has one. A folder where the snapshot has a folder is merged into. "
                + "same-type (the default): a file, symlink or FIFO where the snapshot has one of the same type is replaced; an entry of another type "
                + "(a folder where it has a file, a file where it has a folder, ...) is left as it is, named on stderr, nothing under it restored, and the restore exits 3. "
                + "always: as same-type, but an entry of another type is moved aside to NAME.kintsugi-old-YYYYMMDDTHHMMSSZ (never deleted) and the move is named. "
                + "if-changed: replace a file only if its size or mtime differs, a symlink only if its target does. "
                + "if-newer: replace only if the snapshot's mtime is newer. never: replace nothing that exists",
            DefaultValueFactory = _ => "same-type",
            HelpName = "same-type|always|if-changed|if-newer|never",
        };
        var command = new Command("restore", "Restore a snapshot, or part of it, into a folder. Content is verified against its id as it is read. Nothing the target holds is deleted unless the snapshot's entry of the same type replaces it (--overwrite).\n" + ExitCodes.Help) { snapshot, target, include, exclude, overwrite };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var policy = ParsePolicy(ctx.Parse.GetValue(overwrite) ?? "same-type");
            var filter = filters.Read(ctx);
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var snap = await repo.FindSnapshotAsync(ctx.Parse.GetValue(snapshot)!, filter, ct).ConfigureAwait(false);
            var request = new RestoreRequest
            {
                Target = ctx.Parse.GetValue(target)!,
                Includes = ctx.Parse.GetValue(include) ?? [],
                Excludes = ctx.Parse.GetValue(exclude) ?? [],
                Host = CliContext.Host,
                Overwrite = policy,
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
                ctx.WriteJson(new { snapshot = snap.Id.ToString(), target = Path.GetFullPath(request.Target), result.Files, result.Directories, result.Symlinks, result.Bytes, result.Skipped, moved_aside = result.MovedAside, duration_s = Math.Round(clock.Elapsed.TotalSeconds, 3), issues = result.Issues });
            }
            else
            {
                foreach (var moved in result.MovedAside)
                {
                    ctx.Say(CliContext.Printable($"moved aside: {moved.Path} -> {moved.MovedTo}"));
                }
                string skipped = result.Skipped > 0 ? $"; {result.Skipped} already there left as they were (--overwrite {ctx.Parse.GetValue(overwrite)})" : "";
                ctx.Say($"restored {result.Files} files, {result.Directories} folders, {result.Symlinks} symlinks ({Units.Bytes(result.Bytes)}) from snapshot {snap.ShortId} to {Path.GetFullPath(request.Target)} in {Units.Seconds(clock.Elapsed.TotalSeconds)} ({Units.Rate(result.Bytes, clock.Elapsed)}){skipped}");
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

    private static OverwritePolicy ParsePolicy(string value) => value switch
    {
        "same-type" => OverwritePolicy.SameType,
        "always" => OverwritePolicy.Always,
        "if-changed" => OverwritePolicy.IfChanged,
        "if-newer" => OverwritePolicy.IfNewer,
        "never" => OverwritePolicy.Never,
        _ => throw new UsageException($"--overwrite '{value}' is not a policy; give same-type (the default), always, if-changed, if-newer or never"),
    };
}
