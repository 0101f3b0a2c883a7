using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;

namespace Kintsugi.Cli.Commands;

internal static class DumpCommand
{
    public static Command Create()
    {
        var snapshot = new Argument<string>("snapshot") { Description = "Snapshot id, id prefix, or latest" };
        var path = new Argument<string>("path") { Description = "The file or folder inside the snapshot, as `kintsugi ls` prints it (\"/\" for everything)" };
        var archive = new Option<string>("--archive", "-a")
        {
            Description = "Format for a folder: tar (default; PAX, with modes, owners, mtimes, symlinks and hard links) or zip",
            DefaultValueFactory = _ => "tar",
        };
        var target = new Option<string?>("--target", "-t") { Description = "Write to this file instead of stdout (replaced only once the dump is complete)" };
        var command = new Command(
            "dump",
            "Write a file of a snapshot to stdout, or a folder as a tar (or zip) archive, without restoring it: " +
            "`kintsugi dump latest /data/model.safetensors > model.safetensors`, `kintsugi dump latest /data | tar -x`. " +
            "Every blob is checked as it is read: a damaged one stops the dump with an error (exit 1), never wrong bytes.")
        {
            snapshot, path, archive, target,
        };
        command.SetHandler(async (ctx, ct) =>
        {
            string inside = "/" + ctx.Parse.GetValue(path)!.Trim('/');
            var format = ctx.Parse.GetValue(archive) switch
            {
                "tar" => DumpArchive.Tar,
                "zip" => DumpArchive.Zip,
                var other => throw new UsageException($"--archive {other}: the formats are tar and zip"),
            };
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var snap = await repo.FindSnapshotAsync(ctx.Parse.GetValue(snapshot)!, ct).ConfigureAwait(false);
            var engine = new DumpEngine(repo);
            if (ctx.Parse.GetValue(target) is not { } file)
            {
                var stdout = Console.OpenStandardOutput();
                await using (stdout.ConfigureAwait(false))
                {
                    await engine.DumpAsync(snap, inside, stdout, format, ct).ConfigureAwait(false);
                }
                return ExitCodes.Ok;
            }
            string full = Path.GetFullPath(file);
            if (Directory.Exists(full))
            {
                throw new UsageException($"--target {file} is a folder; give a file name (the dump of {inside} is written to it)");
            }
            // Written beside the target and renamed over it at the end: a failed dump leaves no half file, and what was there before stays.
            string partial = full + ".kintsugi-partial";
            try
            {
                var output = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
                await using (output.ConfigureAwait(false))
                {
                    await engine.DumpAsync(snap, inside, output, format, ct).ConfigureAwait(false);
                }
                File.Move(partial, full, overwrite: true);
            }
            catch
            {
                File.Delete(partial);
                throw;
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
