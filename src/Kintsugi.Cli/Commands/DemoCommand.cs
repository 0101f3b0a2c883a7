using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Storage;
using Kintsugi.Cli.Rendering;
using Spectre.Console;

namespace Kintsugi.Cli.Commands;

/// <summary>
/// The main job on the embedded default: a local repository under .kintsugi/, a checkpoint series
/// written the way a training job writes it, backed up after each checkpoint, restored and verified.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var dir = new Option<string>("--dir") { Description = "Working folder for the demo (repository, password, checkpoints)", DefaultValueFactory = _ => ".kintsugi" };
        var checkpoints = new Option<int>("--checkpoints") { Description = "How many checkpoints to write and back up", DefaultValueFactory = _ => 4 };
        var sizeMib = new Option<int>("--size") { Description = "Size of each checkpoint in MiB", DefaultValueFactory = _ => 64 };
        var command = new Command("demo", "Run the main job on the embedded default: create a local repository in .kintsugi/ (password generated into .kintsugi/password), write a checkpoint series of which each checkpoint changes part of the model, back up after every checkpoint, restore the newest and verify it bit for bit, and check the repository.")
        {
            dir, checkpoints, sizeMib,
        };
        command.SetHandler(async (ctx, ct) =>
        {
            string root = Path.GetFullPath(ctx.Parse.GetValue(dir)!);
            int count = ctx.Parse.GetValue(checkpoints);
            int size = ctx.Parse.GetValue(sizeMib);
            if (count is < 1 or > 1000 || size is < 1 or > 65536)
            {
                throw new UsageException("--checkpoints must be 1..1000 and --size 1..65536 MiB");
            }
            string repoPath = Path.Combine(root, "repository");
            string passwordFile = Path.Combine(root, "password");
            string work = Path.Combine(root, "demo", "checkpoints");
            string restoreTarget = Path.Combine(root, "demo", "restored");
            Directory.CreateDirectory(root);
            var store = new LocalBlobStore(repoPath);
            Repository repo;
            if (!await store.ExistsAsync(FileKind.Config, "config", ct).ConfigureAwait(false))
            {
                if (!File.Exists(passwordFile))
                {
                    await File.WriteAllTextAsync(passwordFile, Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)) + "\n", ct).ConfigureAwait(false);
                    File.SetUnixFileMode(passwordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }
                repo = await Repository.InitAsync(store, CliContext.ReadPasswordFile(passwordFile), KdfParameters.Default, null, CliContext.Host, CliContext.User, ctx.Time, ct).ConfigureAwait(false);
                ctx.Say($"created repository {repoPath} (password in {passwordFile})");
            }
            else
            {
                try
                {
                    repo = await Repository.OpenAsync(store, CliContext.ReadPasswordFile(passwordFile), ctx.Time, ct).ConfigureAwait(false);
                }
                catch (KintsugiException e) when (e.Kind == ErrorKind.WrongPassword)
                {
                    throw CliContext.WrongPassword(e, $"the password file {passwordFile}");
                }
                ctx.Say($"using repository {repoPath}");
            }
            if (Directory.Exists(work))
            {
                Directory.Delete(work, recursive: true);
            }
            Directory.CreateDirectory(work);

            var rows = new List<object[]>();
            var model = new byte[size * 1024 * 1024];
            var rng = new Random(20261127);
            rng.NextBytes(model);
            var engine = new BackupEngine(repo);
            for (int step = 1; step <= count; step++)
            {
                if (step > 1)
                {
                    // Fine-tuning: a tenth of the model (the head) changes between checkpoints.
                    rng.NextBytes(model.AsSpan(model.Length - model.Length / 10));
                }
                string file = Path.Combine(work, $"step-{step * 1000:D6}.ckpt");
                await File.WriteAllBytesAsync(file, model, ct).ConfigureAwait(false);
                await File.WriteAllTextAsync(Path.Combine(work, "latest"), Path.GetFileName(file) + "\n", ct).ConfigureAwait(false);
                var progress = new BackupProgress();
                var result = await ProgressDisplay.RunAsync(ctx, $"backup {step}/{count}", () => (progress.BytesDone, progress.TotalBytes),
                    engine.RunAsync(new BackupRequest { Paths = [work], Host = CliContext.Host, User = CliContext.User, Tags = ["demo"] }, progress, ct)).ConfigureAwait(false);
                var s = result.Snapshot.Snapshot.Summary!;
                rows.Add([step, result.Snapshot.ShortId, Units.Bytes(s.BytesTotal), Units.Bytes(s.BytesRead), Units.Bytes(s.BytesAddedStored), Units.Seconds(s.DurationSeconds), Units.Bytes(RepositorySize(repoPath))]);
            }

            if (Directory.Exists(restoreTarget))
            {
                Directory.Delete(restoreTarget, recursive: true);
            }
            var latest = await repo.FindSnapshotAsync("latest", ct).ConfigureAwait(false);
            var clock = Stopwatch.StartNew();
            var restored = await new RestoreEngine(repo).RunAsync(latest, new RestoreRequest { Target = restoreTarget, Host = CliContext.Host }, null, ct).ConfigureAwait(false);
            clock.Stop();
            bool identical = Directory.EnumerateFiles(work).All(f => FilesEqual(f, restoreTarget + Path.GetFullPath(f)));
            var check = await new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = true, Host = CliContext.Host }, null, ct).ConfigureAwait(false);

            if (ctx.Json)
            {
                ctx.WriteJson(new { repository = repoPath, backups = rows, restore_s = clock.Elapsed.TotalSeconds, restored_bytes = restored.Bytes, identical, check_ok = check.Ok });
            }
            else
            {
                var table = new Table().Border(TableBorder.Simple).AddColumns("checkpoint", "snapshot", "data", "read", "added (stored)", "time", "repository");
                foreach (var row in rows)
                {
                    table.AddRow(row.Select(c => Markup.Escape(Convert.ToString(c, System.Globalization.CultureInfo.InvariantCulture) ?? "")).ToArray());
                }
                ctx.OutConsole.Write(table);
                ctx.Say($"restored {Units.Bytes(restored.Bytes)} in {Units.Seconds(clock.Elapsed.TotalSeconds)} to {restoreTarget}: {(identical ? "bit-identical" : "DIFFERENT")}");
                ctx.Say($"check --read-data: {(check.Ok ? "no errors" : "ERRORS")}; {check.BlobsVerified} blobs verified");
                ctx.Say($"try: kintsugi --repo {repoPath} --password-file {passwordFile} snapshots");
            }
            return identical && check.Ok ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return command;
    }

    private static long RepositorySize(string path) =>
        new DirectoryInfo(path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);

    private static bool FilesEqual(string a, string b)
    {
        if (!File.Exists(b))
        {
            return false;
        }
        return File.ReadAllBytes(a).AsSpan().SequenceEqual(File.ReadAllBytes(b));
    }
}
