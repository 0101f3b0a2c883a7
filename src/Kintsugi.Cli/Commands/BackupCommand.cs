using System.CommandLine;
using Kintsugi.Backup.Engine;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

internal static class BackupCommand
{
    public static Command Create()
    {
        var paths = new Argument<string[]>("paths") { Description = "Files and folders to back up (one that starts with '-' goes after `--`)", Arity = ArgumentArity.OneOrMore };
        var tags = new Option<string[]>("--tag") { Description = "Tag the snapshot: --tag a,b gives it the two tags a and b (repeatable)", AllowMultipleArgumentsPerToken = false, HelpName = "TAG[,TAG...]" };
        var full = new Option<bool>("--full") { Description = "Re-read and re-hash every file instead of skipping files unchanged since the parent snapshot" };
        var parent = new Option<string?>("--parent") { Description = "Use this snapshot as the parent (default: the newest of this host and these paths)" };
        var host = new Option<string?>("--host") { Description = "Host name to record (default: this machine's)" };
        var noTensors = new Option<bool>("--no-tensors") { Description = "Treat tensor files (safetensors, PyTorch, NumPy, GGUF, ONNX) as opaque bytes: content-defined chunks and zstd only" };
        var deltaChain = new Option<int>("--delta-chain")
        {
            Description = "Store a tensor piece whole at least every N versions (a restore reads at most N blobs for it); 1 turns deltas off",
            DefaultValueFactory = _ => BackupRequest.DefaultDeltaChain,
        };
        var command = new Command("backup", "Back up files and folders into a new snapshot. Incremental by default: files whose size, mtime, ctime and inode are unchanged since the parent snapshot are not read again.\n" + ExitCodes.Help)
        {
            paths, tags, full, parent, host, noTensors, deltaChain,
        };
        command.SetHandler(async (ctx, ct) =>
        {
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var tagList = ParseTags(ctx.Parse.GetValue(tags) ?? []);
            int chain = ctx.Parse.GetValue(deltaChain);
            if (chain is < 1 or > 32)
            {
                throw new UsageException($"--delta-chain must be between 1 and 32 (got {chain})");
            }
            var request = new BackupRequest
            {
                Paths = ctx.Parse.GetValue(paths)!,
                Tags = tagList,
                Full = ctx.Parse.GetValue(full),
                Parent = ctx.Parse.GetValue(parent),
                Host = ctx.Parse.GetValue(host) ?? CliContext.Host,
                User = CliContext.User,
                Program = "kintsugi " + typeof(BackupCommand).Assembly.GetName().Version?.ToString(3),
                TensorAware = !ctx.Parse.GetValue(noTensors),
                DeltaChain = chain,
            };
            var progress = new BackupProgress();
            var result = await ProgressDisplay.RunAsync(ctx, "backup", () => (progress.BytesDone, progress.TotalBytes), new BackupEngine(repo).RunAsync(request, progress, ct)).ConfigureAwait(false);
            var snap = result.Snapshot;
            var s = snap.Snapshot.Summary!;
            int errors = result.Issues.Count(i => !i.Message.StartsWith("warning:", StringComparison.Ordinal));
            foreach (var issue in result.Issues)
            {
                ctx.Warn($"{(issue.Message.StartsWith("warning:", StringComparison.Ordinal) ? "" : "error: ")}{issue.Path}: {issue.Message}");
            }
            if (ctx.Json)
            {
                ctx.WriteJson(new { snapshot = snap.Id.ToString(), snap.Snapshot.Kind, snap.Snapshot.Parent, summary = s, issues = result.Issues });
            }
            else if (!ctx.Quiet)
            {
                ctx.Say($"files: {s.FilesNew} new, {s.FilesChanged} changed, {s.FilesUnchanged} unchanged; {s.Directories} folders");
                ctx.Say($"read {Units.Bytes(s.BytesRead)} of {Units.Bytes(s.BytesTotal)}; added {Units.Bytes(s.BytesAdded)} to the repository ({Units.Bytes(s.BytesAddedStored)} stored)");
                ctx.Say($"{snap.Snapshot.Kind} snapshot {snap.ShortId} saved in {Units.Seconds(s.DurationSeconds)} ({Units.Rate(s.BytesTotal, TimeSpan.FromSeconds(s.DurationSeconds))})" + (snap.Snapshot.Parent is { } p ? $", parent {p[..8]}" : ""));
            }
            if (errors > 0)
            {
                ctx.Warn($"kintsugi: {errors} files or folders could not be read; the snapshot holds everything else");
                return ExitCodes.Partial;
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Each --tag value split on commas, as restic does; an empty tag is a usage error.</summary>
    private static List<string> ParseTags(string[] values)
    {
        try
        {
            return values.SelectMany(v => Backup.Engine.SnapshotFilter.SplitTags(v, "--tag")).Distinct(StringComparer.Ordinal).ToList();
        }
        catch (Backup.KintsugiException e)
        {
            throw new UsageException(e.Message);
        }
    }
}
