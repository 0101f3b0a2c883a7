using System.CommandLine;
using System.Globalization;
using System.Text.Json.Serialization;
using Kintsugi.Backup.Engine;
using Kintsugi.Cli.Rendering;
using Spectre.Console;

namespace Kintsugi.Cli.Commands;

internal static class StatsCommand
{
    public static Command Create()
    {
        var snapshot = new Argument<string>("snapshot") { Description = "Snapshot id, id prefix, or latest (the default)", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => "latest" };
        var command = new Command(
            "stats",
            "Show what a snapshot takes in the repository: per file and per codec, bytes in, bytes stored and the ratio. " +
            "A blob shared by several files counts for each of them; the totals count it once. " +
            "Delta blobs also need their bases, which older snapshots may have stored: they are shown apart.\n" + ExitCodes.Help)
        {
            snapshot,
        };
        var filters = SnapshotFilterOptions.AddTo(command);
        command.SetHandler(async (ctx, ct) =>
        {
            var filter = filters.Read(ctx);
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var snap = await repo.FindSnapshotAsync(ctx.Parse.GetValue(snapshot)!, filter, ct).ConfigureAwait(false);
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
                files.AddRow(Markup.Escape(CliContext.Printable(f.Path)), f.Layout ?? "-", f.Blobs.ToString(CultureInfo.InvariantCulture), Units.Bytes(f.BytesIn), Units.Bytes(f.BytesStored), Ratio(f.BytesStored, f.BytesIn));
            }
            ctx.OutConsole.Write(files);
            var codecs = new Table().Border(TableBorder.Simple);
            codecs.AddColumn("Codec").AddColumn(new TableColumn("Blobs").RightAligned()).AddColumn(new TableColumn("In").RightAligned()).AddColumn(new TableColumn("Stored").RightAligned()).AddColumn(new TableColumn("Ratio").RightAligned());
            foreach (var c in stats.Codecs)
            {
                codecs.AddRow(c.Codec, c.Blobs.ToString(CultureInfo.InvariantCulture), Units.Bytes(c.BytesIn), Units.Bytes(c.BytesStored), Ratio(c.BytesStored, c.BytesIn));
            }
            ctx.OutConsole.Write(codecs);
            ctx.Say($"snapshot {snap.ShortId}: {Units.Bytes(stats.BytesIn)} in {stats.Files.Count} files, {Units.Bytes(stats.BytesStored)} stored in {stats.Blobs} blobs ({Ratio(stats.BytesStored, stats.BytesIn)})"
                + (stats.BaseBlobs > 0 ? $"; its deltas also rest on {stats.BaseBlobs} older blobs ({Units.Bytes(stats.BaseBytesStored)})" : ""));
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>A file in --json: every key, <c>layout</c> null for a file stored as opaque bytes (JSON output otherwise leaves nulls out).</summary>
    private sealed record FileJson(
        string Path,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Layout,
        long BytesIn,
        long BytesStored,
        int Blobs);

    private static string Ratio(long stored, long input) =>
        input == 0 ? "-" : (stored / (double)input).ToString("0.000", CultureInfo.InvariantCulture);
}
