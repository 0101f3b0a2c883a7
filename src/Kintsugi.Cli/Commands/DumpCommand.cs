using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;

namespace Kintsugi.Cli.Commands;

internal static class DumpCommand
{
    public static Command Create()
    {
        var snapshot = new Argument<string>("snapshot") { Description = "Snapshot id, id prefix, or latest" };
        var path = new Argument<string>("path")
        {
            Description = "The file or folder inside the snapshot: absolute, as `kintsugi ls` prints it (\"/\" for everything), or relative to a path the snapshot backed up (data/x, or proj/data/x), as ls takes it; it must name one entry",
        };
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
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var filter = filters.Read(ctx);
            string given = ctx.Parse.GetValue(path)!;
            var format = ctx.Parse.GetValue(archive) switch
            {
                "tar" => DumpArchive.Tar,
                "zip" => DumpArchive.Zip,
                var other => throw new UsageException($"--archive {other}: the formats are tar and zip"),
            };
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var snap = await repo.FindSnapshotAsync(ctx.Parse.GetValue(snapshot)!, filter, ct).ConfigureAwait(false);
            string inside = await ResolveAsync(repo, snap, given, ct).ConfigureAwait(false);
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
            string folder = Path.GetDirectoryName(full) ?? "/";
            if (!Directory.Exists(folder))
            {
                throw new KintsugiException(ErrorKind.NotFound, $"cannot write the dump target {file}: the folder {folder} does not exist; create it first (mkdir -p) or give a file in an existing folder");
            }
            // Written beside the target and renamed over it at the end: a failed dump leaves no half file, and what was there before stays.
            string partial = full + ".kintsugi-partial";
            string what = $"the dump target {file}";
            try
            {
                Stream created;
                try
                {
                    created = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
                }
                catch (UnauthorizedAccessException e)
                {
                    throw new KintsugiException(ErrorKind.Failed, $"cannot write {what}: permission denied in {folder}; give a file in a folder you can write ({e.Message})", e);
                }
                catch (IOException e)
                {
                    throw KintsugiException.FromIo(e, what);
                }
                var output = new TargetStream(created, what);
                await using (output.ConfigureAwait(false))
                {
                    await engine.DumpAsync(snap, inside, output, format, ct).ConfigureAwait(false);
                }
                try
                {
                    File.Move(partial, full, overwrite: true);
                }
                catch (IOException e)
                {
                    throw KintsugiException.FromIo(e, what);
                }
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

    /// <summary>
    /// The path to dump: an absolute one as given; a relative one (or a glob) resolved as ls resolves it,
    /// against the paths the snapshot backed up, which must come to exactly one entry.
    /// </summary>
    private static async Task<string> ResolveAsync(Repository repo, SnapshotRef snap, string given, CancellationToken ct)
    {
        if (given.StartsWith('/') && given.AsSpan().IndexOfAny("*?[") < 0)
        {
            return "/" + given.Trim('/');
        }
        var index = await repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
        var selection = await PathSelection.ResolveAsync(repo, index, snap, [given], [], ct).ConfigureAwait(false);
        if (selection.IncludesEverything)
        {
            return "/";
        }
        var matched = selection.Matched.Order(StringComparer.Ordinal).ToList();
        return matched.Count == 1 ? matched[0]
            : throw new KintsugiException(ErrorKind.InvalidInput,
                $"{given} names {matched.Count} entries in snapshot {snap.ShortId}: {string.Join(", ", matched.Select(CliContext.Printable))}; give the one to dump as its absolute path");
    }

    /// <summary>The file a dump writes: a failure to write it (a full disk above all) names it, not the repository.</summary>
    private sealed class TargetStream(Stream inner, string what) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => true;
        public override long Length => inner.Length;

        public override long Position
        {
            get => inner.Position;
            set => Guard(() => inner.Position = value);
        }

        public override void Flush() => Guard(inner.Flush);

        public override async Task FlushAsync(CancellationToken cancellationToken)
        {
            try
            {
                await inner.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw KintsugiException.FromIo(e, what);
            }
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin)
        {
            long at = 0;
            Guard(() => at = inner.Seek(offset, origin));
            return at;
        }

        public override void SetLength(long value) => Guard(() => inner.SetLength(value));

        public override void Write(byte[] buffer, int offset, int count) => Guard(() => inner.Write(buffer, offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            try
            {
                inner.Write(buffer);
            }
            catch (IOException e)
            {
                throw KintsugiException.FromIo(e, what);
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw KintsugiException.FromIo(e, what);
            }
        }

        public override async ValueTask DisposeAsync()
        {
            try
            {
                await inner.DisposeAsync().ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw KintsugiException.FromIo(e, what);
            }
            await base.DisposeAsync().ConfigureAwait(false);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Guard(inner.Dispose);
            }
            base.Dispose(disposing);
        }

        private void Guard(Action action)
        {
            try
            {
                action();
            }
            catch (IOException e)
            {
                throw KintsugiException.FromIo(e, what);
            }
        }
    }
}
