using System.CommandLine;
using Kintsugi.Backup.Engine;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

internal static class CheckCommand
{
    public static Command Create()
    {
        var readData = new Option<bool>("--read-data") { Description = "Read every pack and verify every blob against its id" };
        var subset = new Option<string?>("--read-data-subset") { Description = "Read and verify only part of the packs: N/M reads group N of M (the packs split by id, the same groups every run: 1/5 … 5/5 reads them all), 10% or 0.1 a share chosen at random, 500M packs chosen at random up to that size (K, M, G, T: powers of 1024)" };
        var command = new Command("check", "Check the repository: index, snapshots, trees and (with --read-data) the data itself. Damage is reported with the snapshot files it affects; exits 1 when anything is wrong.") { readData, subset };
        command.SetHandler(async (ctx, ct) =>
        {
            string? subsetText = ctx.Parse.GetValue(subset);
            Units.DataSubset? part = subsetText is null ? null : Units.ParseDataSubset(subsetText);
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var request = new CheckRequest
            {
                ReadData = ctx.Parse.GetValue(readData) || subsetText is not null,
                ReadDataFraction = part?.Fraction,
                ReadDataGroup = part?.Group,
                ReadDataBytes = part?.Bytes,
                Host = CliContext.Host,
            };
            var progress = new CheckProgress();
            var result = await ProgressDisplay.RunAsync(ctx, "check", () => (progress.BytesDone, progress.TotalBytes), new CheckEngine(repo).RunAsync(request, progress, ct)).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { ok = result.Ok, result.Snapshots, result.Packs, packs_read = result.PacksRead, blobs_verified = result.BlobsVerified, bytes_read = result.BytesRead, problems = result.Problems, affected_files = result.AffectedFiles });
            }
            else
            {
                foreach (var p in result.Problems)
                {
                    ctx.Say(CliContext.Printable($"{p.Severity}: {p.Subject}: {p.Message}"));
                }
                foreach (var group in result.AffectedFiles.GroupBy(f => f.Snapshot))
                {
                    ctx.Say($"snapshot {group.Key}: {group.Count()} files damaged:");
                    foreach (var f in group.Take(50))
                    {
                        ctx.Say($"    {CliContext.Printable(f.Path)}");
                    }
                    if (group.Count() > 50)
                    {
                        ctx.Say($"    … and {group.Count() - 50} more (--json lists all)");
                    }
                }
                ctx.Say($"checked {result.Snapshots} snapshots, {result.Packs} packs" + (request.ReadData ? $"; read {result.PacksRead} packs ({Units.Bytes(result.BytesRead)}), verified {result.BlobsVerified} blobs" : ""));
                ctx.Say(result.Ok ? "no errors found" : $"{result.Problems.Count(p => p.Severity == "error")} errors found");
            }
            return result.Ok ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return command;
    }
}
