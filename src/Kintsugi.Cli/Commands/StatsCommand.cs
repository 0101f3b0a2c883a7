using System.CommandLine;
using System.Globalization;
using System.Text.Json.Serialization;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Cli.Rendering;
using Spectre.Console;

namespace Kintsugi.Cli.Commands;

internal static class StatsCommand
{
    public static Command Create()
    {
        var snapshots = new Argument<string[]>("snapshot")
        {
            Description = "Snapshot ids, id prefixes, or latest; none: every snapshot (with no --mode, the repository's totals)",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var mode = new Option<string?>("--mode")
        {
            Description = "What to count, as restic: files (per file and per codec, one snapshot; the default with a snapshot), " +
                "restore-size (what a restore writes: every file, duplicates each time), files-by-contents (files with distinct content, once), " +
                "raw-data (the distinct blobs the snapshots need, stored and uncompressed), blobs-per-file (distinct content blobs of the files)",
        };
        var command = new Command(
            "stats",
            "Show what snapshots take. With no snapshot and no --mode: the repository's totals (packs on disk, blobs, compression, deduplication, " +
            "what restoring every snapshot would write); with --host/--path/--tag, the blobs, compression and deduplication of the snapshots " +
            "they pass (filters that pass none fail). With a snapshot: per file and per codec, bytes in, bytes stored and the compression ratio (in / stored, as the totals give it) " +
            "(a blob shared by several files counts for each of them, the totals count it once; delta blobs also need their bases, which older " +
            "snapshots may have stored: they are shown apart). --mode counts as restic does, over the snapshots given or every snapshot.")
        {
            snapshots, mode,
        };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var filter = filters.Read(ctx);
            StatsMode? chosen = ctx.Parse.GetValue(mode) is not { } m ? null
                : Modes.TryGetValue(m, out var known) ? known
                : throw new UsageException($"--mode {m}: the modes are {string.Join(", ", Modes.Keys)}");
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var ids = ctx.Parse.GetValue(snapshots) ?? [];
            var all = await repo.LoadSnapshotsAsync(onError: (_, e) => ctx.Warn($"kintsugi: warning: {e.Message}"), ct: ct).ConfigureAwait(false);
            if (ids.Length == 0 && !filter.IsEmpty && !all.Any(s => filter.Matches(s.Snapshot)))
            {
                // As `latest` with filters that pass nothing: zeros would read as an empty selection that worked.
                throw new KintsugiException(ErrorKind.NotFound, $"no snapshot of {filter}; `kintsugi snapshots` lists them with their hosts, paths and tags");
            }
            if (ids.Length == 0 && chosen is null)
            {
                // With filters, the blob figures are the chosen snapshots' own; the packs stay the repository's.
                var totals = await new StatsEngine(repo).RepositoryAsync(filter.Select(all, []), !filter.IsEmpty, ct).ConfigureAwait(false);
                WriteRepository(ctx, totals, filter.IsEmpty ? null : filter.ToString());
                return ExitCodes.Ok;
            }
            // No snapshot named: every snapshot the filters pass for a --mode, the newest of them for per-file statistics.
            var refs = filter.Select(all, ids.Length > 0 ? ids : chosen is StatsMode.Files ? ["latest"] : []);
            if (chosen is not (null or StatsMode.Files))
            {
                WriteMode(ctx, await new StatsEngine(repo).RunAsync(refs, chosen.Value, ct).ConfigureAwait(false));
                return ExitCodes.Ok;
            }
            if (refs.Count > 1)
            {
                throw new UsageException($"per-file statistics are for one snapshot, and {refs.Count} were given; name one, or pass --mode restore-size or --mode raw-data for totals over several");
            }
            var snap = refs[0];
            var stats = await new StatsEngine(repo).RunAsync(snap, ct).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new
                {
                    snapshot = stats.Snapshot,
                    bytes_in = stats.BytesIn,
                    bytes_stored = stats.BytesStored,
                    blobs = stats.Blobs,
                    base_blobs = stats.BaseBlobs,
                    base_bytes_stored = stats.BaseBytesStored,
                    files = stats.Files.Select(f => new FileJson(f.Path, f.Layout, f.BytesIn, f.BytesStored, f.Blobs)),
                    codecs = stats.Codecs.Select(c => new { codec = c.Codec, blobs = c.Blobs, bytes_in = c.BytesIn, bytes_stored = c.BytesStored }),
                });
                return ExitCodes.Ok;
            }
            var files = new Table().Border(TableBorder.Simple);
            files.AddColumn("File").AddColumn("Layout").AddColumn(new TableColumn("Blobs").RightAligned()).AddColumn(new TableColumn("In").RightAligned()).AddColumn(new TableColumn("Stored").RightAligned()).AddColumn(new TableColumn("Ratio").RightAligned());
            foreach (var f in stats.Files)
            {
                files.AddRow(Markup.Escape(CliContext.Printable(f.Path)), f.Layout ?? "-", f.Blobs.ToString(CultureInfo.InvariantCulture), Units.Bytes(f.BytesIn), Units.Bytes(f.BytesStored), Ratio(f.BytesIn, f.BytesStored));
            }
            ctx.OutConsole.Write(files);
            var codecs = new Table().Border(TableBorder.Simple);
            codecs.AddColumn("Codec").AddColumn(new TableColumn("Blobs").RightAligned()).AddColumn(new TableColumn("In").RightAligned()).AddColumn(new TableColumn("Stored").RightAligned()).AddColumn(new TableColumn("Ratio").RightAligned());
            foreach (var c in stats.Codecs)
            {
                codecs.AddRow(c.Codec, c.Blobs.ToString(CultureInfo.InvariantCulture), Units.Bytes(c.BytesIn), Units.Bytes(c.BytesStored), Ratio(c.BytesIn, c.BytesStored));
            }
            ctx.OutConsole.Write(codecs);
            ctx.Say($"snapshot {snap.ShortId}: {Units.Bytes(stats.BytesIn)} in {stats.Files.Count} files, {Units.Bytes(stats.BytesStored)} stored in {stats.Blobs} blobs (compression ratio {Ratio(stats.BytesIn, stats.BytesStored)})"
                + (stats.BaseBlobs > 0 ? $"; its deltas also rest on {stats.BaseBlobs} older blobs ({Units.Bytes(stats.BaseBytesStored)})" : ""));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static readonly Dictionary<string, StatsMode> Modes = new(StringComparer.Ordinal)
    {
        ["files"] = StatsMode.Files,
        ["restore-size"] = StatsMode.RestoreSize,
        ["files-by-contents"] = StatsMode.FilesByContents,
        ["raw-data"] = StatsMode.RawData,
        ["blobs-per-file"] = StatsMode.BlobsPerFile,
    };

    private static void WriteMode(CliContext ctx, ModeStats stats)
    {
        string name = Modes.First(m => m.Value == stats.Mode).Key;
        bool raw = stats.Mode == StatsMode.RawData;
        bool blobs = stats.Mode is StatsMode.RawData or StatsMode.BlobsPerFile;
        if (ctx.Json)
        {
            // restic's keys, so scripts written for `restic stats --json` read these.
            ctx.WriteJson(new ModeJson(name, stats.TotalSize, stats.TotalFileCount, stats.Snapshots,
                blobs ? stats.TotalBlobCount : null, raw ? stats.TotalUncompressedSize : null,
                raw && stats.TotalSize > 0 ? Math.Round(stats.TotalUncompressedSize / (double)stats.TotalSize, 3) : null));
            return;
        }
        ctx.Say($"Stats in {name} mode:");
        ctx.Say($"     Snapshots processed:  {stats.Snapshots.ToString(CultureInfo.InvariantCulture)}");
        ctx.Say($"        Total File Count:  {stats.TotalFileCount.ToString(CultureInfo.InvariantCulture)}");
        if (blobs)
        {
            ctx.Say($"        Total Blob Count:  {stats.TotalBlobCount.ToString(CultureInfo.InvariantCulture)}");
        }
        if (raw)
        {
            ctx.Say($" Total Uncompressed Size:  {Units.Bytes(stats.TotalUncompressedSize)}");
        }
        ctx.Say($"              Total Size:  {Units.Bytes(stats.TotalSize)}{(raw ? " (as stored, compressed and encrypted)" : "")}");
        if (raw && stats.TotalSize > 0)
        {
            ctx.Say($"       Compression Ratio:  {(stats.TotalUncompressedSize / (double)stats.TotalSize).ToString("0.00", CultureInfo.InvariantCulture)}x");
        }
    }

    /// <summary>
    /// The totals; with <paramref name="filter"/> (the filters in words), the blob figures and ratios are
    /// those of the snapshots it passes, and the packs are labelled as the whole repository's.
    /// </summary>
    private static void WriteRepository(CliContext ctx, RepositoryStats r, string? filter)
    {
        double? compression = r.StoredBytes > 0 ? r.UncompressedBytes / (double)r.StoredBytes : null;
        double? dedup = r.ContentUncompressedBytes > 0 ? r.RestoreSize / (double)r.ContentUncompressedBytes : null;
        if (ctx.Json)
        {
            ctx.WriteJson(new RepositoryJson(filter, r.Snapshots, r.Packs, r.PackBytes, r.Blobs, r.UncompressedBytes, r.StoredBytes,
                compression is { } c ? Math.Round(c, 3) : null, r.RestoreFiles, r.RestoreSize, dedup is { } d ? Math.Round(d, 3) : null));
            return;
        }
        ctx.Say(filter is null ? "Repository:" : $"Snapshots of {filter} (blobs: those these snapshots need):");
        ctx.Say($"               Snapshots:  {r.Snapshots.ToString(CultureInfo.InvariantCulture)}");
        ctx.Say($"           Packs on disk:  {r.Packs.ToString(CultureInfo.InvariantCulture)}, {Units.Bytes(r.PackBytes)}{(filter is null ? "" : " (the whole repository)")}");
        ctx.Say($"        Total Blob Count:  {r.Blobs.ToString(CultureInfo.InvariantCulture)}");
        ctx.Say($" Total Uncompressed Size:  {Units.Bytes(r.UncompressedBytes)}");
        ctx.Say($"       Total Stored Size:  {Units.Bytes(r.StoredBytes)}");
        ctx.Say($"       Compression Ratio:  {(compression is { } c2 ? c2.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "-")} (uncompressed / stored)");
        ctx.Say($"            Restore Size:  {Units.Bytes(r.RestoreSize)} in {r.RestoreFiles.ToString(CultureInfo.InvariantCulture)} files (a restore of every {(filter is null ? "" : "chosen ")}snapshot)");
        ctx.Say($"     Deduplication Ratio:  {(dedup is { } d2 ? d2.ToString("0.00", CultureInfo.InvariantCulture) + "x" : "-")} (restore size / distinct content)");
    }

    /// <summary>A --mode result in --json, with restic's keys; blob counts only where the mode counts blobs.</summary>
    private sealed record ModeJson(
        string Mode, long TotalSize, long TotalFileCount, int SnapshotsCount,
        long? TotalBlobCount, long? TotalUncompressedSize, double? CompressionRatio);

    /// <summary>The repository's totals in --json; with filters, <c>filter</c> names them and the blob figures are the chosen snapshots'.</summary>
    private sealed record RepositoryJson(
        string? Filter, int SnapshotsCount, int Packs, long PackBytes, long TotalBlobCount, long TotalUncompressedSize, long TotalSize,
        double? CompressionRatio, long RestoreFileCount, long RestoreSize, double? DeduplicationRatio);

    /// <summary>A file in --json: every key, <c>layout</c> null for a file stored as opaque bytes (JSON output otherwise leaves nulls out).</summary>
    private sealed record FileJson(
        string Path,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Layout,
        long BytesIn,
        long BytesStored,
        int Blobs);

    /// <summary>Compression ratio as restic and the repository totals give it: bytes in / bytes stored, "2.50x".</summary>
    private static string Ratio(long input, long stored) =>
        stored == 0 ? "-" : (input / (double)stored).ToString("0.00", CultureInfo.InvariantCulture) + "x";
}
