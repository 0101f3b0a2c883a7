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
        var delete = new DeleteOptions();
        var command = new Command("restore", "Restore a snapshot, or part of it, into a folder. Content is verified against its id as it is read. Nothing the target holds is deleted unless the snapshot's entry of the same type replaces it (--overwrite), or --delete is given.") { snapshot, target, include, exclude, overwrite };
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
                Delete = ctx.Parse.GetValue(delete.Option),
                DryRun = ctx.Parse.GetValue(delete.DryRun),
                ListEntries = ctx.Parse.GetValue(delete.Verbose),
                // The program's own folder is never --delete's to remove (the repository in use never is either).
                Protected = [Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)],
            };
            DeleteOptions.RefuseWholeSystem(request);
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
                ctx.WriteJson(new
                {
                    snapshot = snap.Id.ToString(),
                    target = Path.GetFullPath(request.Target),
                    result.Files,
                    result.Directories,
                    result.Symlinks,
                    result.Bytes,
                    result.Failed,
                    result.Skipped,
                    deleted = result.Deleted.Count,
                    dry_run = result.DryRun,
                    moved_aside = result.MovedAside,
                    restored_paths = request.ListEntries ? result.Restored : null,
                    deleted_paths = request.ListEntries ? result.Deleted : null,
                    duration_s = Math.Round(clock.Elapsed.TotalSeconds, 3),
                    issues = result.Issues,
                });
            }
            else
            {
                // Where the user's entries went is printed even with -q: it is where to find them.
                foreach (var moved in result.MovedAside)
                {
                    ctx.Say(CliContext.Printable($"{(result.DryRun ? "would move aside" : "moved aside")}: {moved.Path} -> {moved.MovedTo}"));
                }
                if (request.ListEntries)
                {
                    foreach (var path in result.Deleted)
                    {
                        ctx.Say(CliContext.Printable($"{(result.DryRun ? "would delete" : "deleted")}: {path}"));
                    }
                    foreach (var path in result.Restored)
                    {
                        ctx.Say(CliContext.Printable($"{(result.DryRun ? "would restore" : "restored")}: {path}"));
                    }
                }
                string failed = result.Failed > 0 ? $"; {result.Failed} {(result.Failed == 1 ? "file" : "files")} {(result.DryRun ? "would fail" : "failed")}" : "";
                string deleted = request.Delete ? $"; {(result.DryRun ? "would delete" : "deleted")} {result.Deleted.Count} {(result.Deleted.Count == 1 ? "entry" : "entries")} the snapshot does not have" : "";
                string skipped = result.Skipped > 0 ? $"; {result.Skipped} already there left as they were (--overwrite {ctx.Parse.GetValue(overwrite)})" : "";
                if (!ctx.Quiet)
                {
                    ctx.Say(result.DryRun
                    ? $"dry run, nothing changed: would restore {result.Files} files, {result.Directories} folders, {result.Symlinks} symlinks ({Units.Bytes(result.Bytes)}) from snapshot {snap.ShortId} to {Path.GetFullPath(request.Target)}{failed}{deleted}{skipped}"
                    : $"restored {result.Files} files, {result.Directories} folders, {result.Symlinks} symlinks ({Units.Bytes(result.Bytes)}) from snapshot {snap.ShortId} to {Path.GetFullPath(request.Target)} in {Units.Seconds(clock.Elapsed.TotalSeconds)} ({Units.Rate(result.Bytes, clock.Elapsed)}){failed}{deleted}{skipped}");
                }
            }
            if (errors > 0 || result.Failed > 0)
            {
                string files = $"{result.Failed} {(result.Failed == 1 ? "file" : "files")}";
                string problems = $"{errors} {(errors == 1 ? "problem" : "problems")}";
                ctx.Warn(result.DryRun ? $"kintsugi: {(result.Failed > 0 ? files + " would not be restored" : problems + " reported above")} (dry run; nothing was changed)"
                    : result.Failed > 0 ? $"kintsugi: {files} could not be restored; everything else was"
                    : $"kintsugi: {problems} reported above; everything else was restored");
                return ExitCodes.Partial;
            }
            return ExitCodes.Ok;
        });
        delete.AddTo(command);
        return command;
    }

    /// <summary>
    /// restore --delete, --dry-run and --verbose: deleting what the snapshot does not have (as
    /// restic's), seeing first what a run would do, and the refusal of a delete that would clear the
    /// whole system or a home folder.
    /// </summary>
    private sealed class DeleteOptions
    {
        public Option<bool> Option { get; } = new("--delete")
        {
            Description = "Also delete what the target holds that the snapshot does not have, inside the folders restored "
                + "(with --include: only at or under the included paths); a symlink is removed as a link, never followed; "
                + "an entry the snapshot has, of any type, is left to --overwrite; what --exclude leaves out, what an earlier --overwrite moved aside (NAME.kintsugi-old-…) "
                + "and the repository in use are never deleted. Refused for --target / or your home folder (or one above it) unless every --include names a path "
                + "at least two folders deep, without globs. "
                + "See first what it would delete with --dry-run -v",
        };

        public Option<bool> DryRun { get; } = new("--dry-run", "-n")
        {
            Description = "Change nothing: count (and with -v list) what would be restored, moved aside and deleted",
        };

        public Option<bool> Verbose { get; } = new("--verbose", "-v")
        {
            Description = "List every entry restored and deleted (with --dry-run: that would be); in --json, restored_paths and deleted_paths",
        };

        public void AddTo(Command command)
        {
            command.Options.Add(Option);
            command.Options.Add(DryRun);
            command.Options.Add(Verbose);
        }

        /// <summary>
        /// Files keep their full snapshot paths under the target, so --delete into / (or a home folder,
        /// or a folder that holds one) without --include would delete everything there the snapshot
        /// lacks: the system, or the home.
        /// </summary>
        public static void RefuseWholeSystem(RestoreRequest request)
        {
            // Only includes that each name one path at least two folders deep (no glob, not '*' or 'tmp', which cover
            // whole top-level folders) narrow the delete enough.
            if (!request.Delete || (request.Includes.Count > 0 && request.Includes.All(Narrow)))
            {
                return;
            }
            string target = Path.GetFullPath(request.Target);
            string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            string? what = RestoreEngine.IsOrHolds(target, "/") ? "the whole system"
                : home.Length == 0 || !RestoreEngine.IsOrHolds(target, home) ? null
                : RestoreEngine.IsOrHolds(home, target) ? "your home folder"
                : $"{target}, which holds your home folder";
            if (what is not null)
            {
                throw new UsageException($"restore --delete --target {target} would delete everything in {what} that the snapshot does not have; narrow it with --include PATH (a path at least two folders deep, no glob: only what is under it is cleared), or restore into another folder");
            }
        }

        private static bool Narrow(string include)
        {
            string path = include.Trim('/');
            return path.Contains('/', StringComparison.Ordinal) && path.AsSpan().IndexOfAny("*?[") < 0
                && !path.Split('/').Any(part => part is "." or "..");
        }
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
