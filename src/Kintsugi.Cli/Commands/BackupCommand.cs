using System.CommandLine;
using Kintsugi.Backup.Engine;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

internal static class BackupCommand
{
    public static Command Create()
    {
        var paths = new Argument<string[]>("paths") { Description = "Files and folders to back up (one that starts with '-' goes after `--`); optional with --files-from", Arity = ArgumentArity.ZeroOrMore };
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
        var dryRun = new Option<bool>("--dry-run", "-n") { Description = "Read everything a backup would and report what it would add; store nothing (no snapshot, no data, no lock)" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "List each file stored (or, with --dry-run, that would be) as new, modified or unchanged" };
        var selection = new BackupSelection();
        var command = new Command("backup", "Back up files and folders into a new snapshot. Incremental by default: files whose size, mtime, ctime and inode are unchanged since the parent snapshot are not read again.")
        {
            paths, tags, full, parent, host, noTensors, deltaChain, dryRun, verbose,
        };
        foreach (var option in selection.Options)
        {
            command.Options.Add(option);
        }
        command.SetHandler(async (ctx, ct) =>
        {
            var backupPaths = selection.Paths(ctx.Parse, ctx.Parse.GetValue(paths) ?? [], ctx.Warn, out int skipped);
            bool dry = ctx.Parse.GetValue(dryRun);
            var listing = ctx.Parse.GetValue(verbose) ? new FileListing(ctx) : null;
            // The excludes are checked before the repository is opened: a typo costs no password prompt.
            var selected = selection.Apply(ctx.Parse, new BackupRequest { Paths = backupPaths, Host = CliContext.Host });
            var tagList = ParseTags(ctx.Parse.GetValue(tags) ?? []);
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            int chain = ctx.Parse.GetValue(deltaChain);
            if (chain is < 1 or > 32)
            {
                throw new UsageException($"--delta-chain must be between 1 and 32 (got {chain})");
            }
            var request = selected with
            {
                Paths = backupPaths,
                Tags = tagList,
                Full = ctx.Parse.GetValue(full),
                Parent = ctx.Parse.GetValue(parent),
                Host = ctx.Parse.GetValue(host) ?? CliContext.Host,
                User = CliContext.User,
                Program = "kintsugi " + typeof(BackupCommand).Assembly.GetName().Version?.ToString(3),
                TensorAware = !ctx.Parse.GetValue(noTensors),
                DeltaChain = chain,
                DryRun = dry,
                OnFile = listing is null ? null : listing.Add,
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
                ctx.WriteJson(new { snapshot = result.DryRun ? null : snap.Id.ToString(), dry_run = result.DryRun, snap.Snapshot.Kind, snap.Snapshot.Parent, summary = s, issues = result.Issues, files = listing?.Files });
            }
            else if (result.DryRun)
            {
                if (!ctx.Quiet)
                {
                    ctx.Say($"would add files: {s.FilesNew} new, {s.FilesChanged} changed, {s.FilesUnchanged} unchanged; {s.Directories} folders");
                    ctx.Say($"would read {Units.Bytes(s.BytesRead)} of {Units.Bytes(s.BytesTotal)}; would add {Units.Bytes(s.BytesAdded)} to the repository ({Units.Bytes(s.BytesAddedStored)} stored)");
                    ctx.Say("dry run: nothing was stored");
                }
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
            }
            if (skipped > 0)
            {
                ctx.Warn($"kintsugi: {skipped} paths listed by --files-from do not exist; the snapshot holds everything else");
            }
            return errors > 0 || skipped > 0 ? ExitCodes.Partial : ExitCodes.Ok;
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

/// <summary>The files a backup stored, for --verbose: printed as they come ("new /path"), or gathered for --json.</summary>
internal sealed class FileListing(CliContext ctx)
{
    private readonly Lock _lock = new();
    private readonly List<FileEntry> _files = [];

    public sealed record FileEntry(string Path, string Change);

    public IReadOnlyList<FileEntry>? Files => ctx.Json ? _files.OrderBy(f => f.Path, StringComparer.Ordinal).ToList() : null;

    public void Add(string path, FileChange change)
    {
        string word = change switch { FileChange.New => "new", FileChange.Modified => "modified", _ => "unchanged" };
        lock (_lock)
        {
            if (ctx.Json)
            {
                _files.Add(new FileEntry(path, word));
            }
            else
            {
                ctx.Out.WriteLine($"{word} {CliContext.Printable(path)}");
            }
        }
    }
}
