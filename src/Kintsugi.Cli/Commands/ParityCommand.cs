using System.CommandLine;
using System.Globalization;
using Kintsugi.Backup;
using Kintsugi.Backup.Parity;
using Kintsugi.Backup.Storage;
using Kintsugi.Cli.Rendering;

namespace Kintsugi.Cli.Commands;

/// <summary>`kintsugi parity` (status, set, update, off) and `kintsugi repair`. Neither needs the password: parity works on the stored bytes.</summary>
internal static class ParityCommand
{
    private const string SchemeHelp = "DATA+PARITY, e.g. 8+2: groups of 8 data columns get 2 parity columns (25% more space once groups fill), and survive any 2 lost or damaged files per group, or damage in any 2 columns of every 64 KiB stripe row";

    public static Command Create()
    {
        var command = new Command("parity", "Erasure-coded redundancy inside the repository (Reed–Solomon over groups of files), so that `kintsugi repair` can rebuild bit-rotted and lost files. Without a subcommand: shows what is protected. Needs no password.");
        command.SetHandler(StatusAsync);

        var status = new Command("status", "Show the parity settings, how many files and bytes are protected, and the space parity takes.");
        status.SetHandler(StatusAsync);

        var scheme = new Argument<string>("scheme") { Description = SchemeHelp };
        var stripe = new Option<int?>("--stripe") { Description = $"Stripe size in bytes, a power of two from 4096 (default {ParitySettings.DefaultStripe}): damage is located and rebuilt per stripe" };
        var set = new Command("set", "Turn parity on (or change the scheme used for new groups) and protect every file not yet protected.") { scheme, stripe };
        set.SetHandler(async (ctx, ct) =>
        {
            var store = await RequireRepositoryAsync(ctx, ct).ConfigureAwait(false);
            var settings = ParseScheme(ctx.Parse.GetValue(scheme)!, ctx.Parse.GetValue(stripe));
            // Exclusive: a forget that started while parity was off would not know to keep groups in step.
            await using var repoLock = await RepositoryLock.AcquireAsync(store, exclusive: true, CliContext.Host, "parity set", ctx.Time, ct).ConfigureAwait(false);
            var engine = new ParityEngine(store);
            await engine.SaveSettingsAsync(settings, ct).ConfigureAwait(false);
            return Report(ctx, settings, await CoverAsync(ctx, engine, ct).ConfigureAwait(false));
        });

        var update = new Command("update", "Protect every file not yet protected (backups do this themselves; this catches up after an interrupted one).");
        update.SetHandler(async (ctx, ct) =>
        {
            var store = await RequireRepositoryAsync(ctx, ct).ConfigureAwait(false);
            await using var repoLock = await RepositoryLock.AcquireAsync(store, exclusive: false, CliContext.Host, "parity update", ctx.Time, ct).ConfigureAwait(false);
            var engine = new ParityEngine(store);
            var settings = await engine.LoadSettingsAsync(ct).ConfigureAwait(false)
                ?? throw new KintsugiException(ErrorKind.InvalidInput, $"parity is off in {store.Location}; turn it on with `kintsugi parity set 8+2`");
            return Report(ctx, settings, await CoverAsync(ctx, engine, ct).ConfigureAwait(false));
        });

        var off = new Command("off", "Turn parity off and delete every parity group (the data is untouched).");
        off.SetHandler(async (ctx, ct) =>
        {
            var store = await RequireRepositoryAsync(ctx, ct).ConfigureAwait(false);
            await using var repoLock = await RepositoryLock.AcquireAsync(store, exclusive: true, CliContext.Host, "parity off", ctx.Time, ct).ConfigureAwait(false);
            int deleted = await new ParityEngine(store).DisableAsync(ct).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { groups_deleted = deleted });
            }
            ctx.Say($"parity is off; deleted {deleted} parity groups");
            return ExitCodes.Ok;
        });

        command.Subcommands.Add(status);
        command.Subcommands.Add(set);
        command.Subcommands.Add(update);
        command.Subcommands.Add(off);
        return command;
    }

    public static Command CreateRepair()
    {
        var dryRun = new Option<bool>("--dry-run", "-n") { Description = "Only report what is damaged and what parity can rebuild; change nothing" };
        var command = new Command("repair", "Read every repository file and every parity group, rebuild damaged or missing files from parity (each checked against its recorded SHA-256 before it is written back), rewrite damaged parity, and protect what is not yet protected. Needs no password, so it also repairs damaged key slots and config. Exit 1 when some damage could not be repaired.") { dryRun };
        command.SetHandler(async (ctx, ct) =>
        {
            var store = ctx.OpenStore();
            if (!await store.ExistsAsync(FileKind.Config, "config", ct).ConfigureAwait(false) && (await store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false)).Count == 0)
            {
                throw new KintsugiException(ErrorKind.RepositoryNotFound, $"{store.Location} is neither a Kintsugi repository nor holds parity groups; check --repo / KINTSUGI_REPOSITORY");
            }
            bool dry = ctx.Parse.GetValue(dryRun);
            await using var repoLock = await RepositoryLock.AcquireAsync(store, exclusive: !dry, CliContext.Host, "repair", ctx.Time, ct).ConfigureAwait(false);
            var progress = new ParityProgress();
            var result = await ProgressDisplay.RunAsync(ctx, "repair", () => (progress.BytesDone, progress.TotalBytes), new ParityEngine(store).RepairAsync(dry, ctx.Time, progress, ct)).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new
                {
                    files_checked = result.FilesChecked,
                    bytes_checked = result.BytesChecked,
                    repaired = result.Repaired,
                    not_repaired = result.NotRepaired,
                    groups_rewritten = result.GroupsRewritten,
                    dry_run = result.DryRun,
                    seconds = Math.Round(result.Elapsed.TotalSeconds, 3),
                    files = result.Files.Select(f => new { kind = f.Kind.ToString().ToLowerInvariant(), name = f.Name, outcome = f.Outcome.ToString().ToLowerInvariant(), detail = f.Detail }),
                });
            }
            foreach (var f in result.Files)
            {
                if (f.Outcome == RepairOutcome.Repaired)
                {
                    ctx.Say(f.ToString());
                }
                else
                {
                    ctx.Warn($"kintsugi: not repaired: {f}");
                }
            }
            string rate = result.Elapsed > TimeSpan.Zero ? $" ({Units.Rate(result.BytesChecked, result.Elapsed)})" : "";
            ctx.Say($"checked {result.FilesChecked} files ({Units.Bytes(result.BytesChecked)}) in {Units.Seconds(result.Elapsed.TotalSeconds)}{rate}: "
                + (result.Files.Count == 0 ? "no damage found" : $"{result.Repaired} {(dry ? "repairable" : "repaired")}, {result.NotRepaired} not repairable")
                + (result.GroupsRewritten > 0 ? $"; wrote {result.GroupsRewritten} parity groups" : ""));
            if (result.NotRepaired > 0)
            {
                ctx.Warn($"kintsugi: {result.NotRepaired} damaged files could not be repaired; run `kintsugi check --read-data` to see which snapshots and files they affect");
                return ExitCodes.Failed;
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Parses --parity of init.</summary>
    public static ParitySettings? ParseOption(string? value) => value is null ? null : ParseScheme(value, null);

    /// <summary>A scheme (and stripe size) given on the command line; a bad one is a usage error.</summary>
    private static ParitySettings ParseScheme(string scheme, int? stripe)
    {
        try
        {
            var settings = ParitySettings.Parse(scheme);
            if (stripe is int s)
            {
                settings = settings with { StripeSize = s };
                settings.Validate();
            }
            return settings;
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.InvalidInput)
        {
            throw new UsageException(e.Message);
        }
    }

    private static async Task<IBlobStore> RequireRepositoryAsync(CliContext ctx, CancellationToken ct)
    {
        var store = ctx.OpenStore();
        if (!await store.ExistsAsync(FileKind.Config, "config", ct).ConfigureAwait(false))
        {
            throw new KintsugiException(ErrorKind.RepositoryNotFound, $"{store.Location} is not a Kintsugi repository; create one with `kintsugi init` or check --repo / KINTSUGI_REPOSITORY");
        }
        return store;
    }

    private static async Task<int> StatusAsync(CliContext ctx, CancellationToken ct)
    {
        var store = await RequireRepositoryAsync(ctx, ct).ConfigureAwait(false);
        var status = await new ParityEngine(store).StatusAsync(ct).ConfigureAwait(false);
        long data = status.CoveredBytes + status.UncoveredBytes;
        if (ctx.Json)
        {
            ctx.WriteJson(new
            {
                scheme = status.Settings?.Scheme,
                stripe = status.Settings?.StripeSize,
                groups = status.Groups,
                damaged_groups = status.DamagedGroups,
                protected_files = status.CoveredFiles,
                protected_bytes = status.CoveredBytes,
                unprotected_files = status.UncoveredFiles,
                unprotected_bytes = status.UncoveredBytes,
                parity_bytes = status.ParityBytes,
                overhead = data == 0 ? 0 : Math.Round((double)status.ParityBytes / data, 4),
            });
            return ExitCodes.Ok;
        }
        ctx.Say(status.Settings is { } s
            ? $"parity {s.Scheme}, stripes of {Units.Bytes(s.StripeSize)}: each group survives {s.ParityColumns} damaged or lost files (or damaged stripes per row)"
            : "parity is off" + (status.Groups > 0 ? $" (but {status.Groups} parity groups remain; `kintsugi parity off` deletes them)" : "; turn it on with `kintsugi parity set 8+2`"));
        ctx.Say($"protected: {status.CoveredFiles} files ({Units.Bytes(status.CoveredBytes)}) in {status.Groups} groups; not protected: {status.UncoveredFiles} files ({Units.Bytes(status.UncoveredBytes)})");
        ctx.Say($"parity takes {Units.Bytes(status.ParityBytes)}" + (data > 0 ? $", {((double)status.ParityBytes / data * 100).ToString("0.0", CultureInfo.InvariantCulture)}% of the repository's other files" : ""));
        foreach (var d in status.DamagedGroups)
        {
            ctx.Warn($"kintsugi: parity group {d} is damaged; `kintsugi repair` rewrites it");
        }
        return ExitCodes.Ok;
    }

    /// <summary>Protects every file not yet protected, with a progress bar on a terminal.</summary>
    private static Task<ParityCoverResult> CoverAsync(CliContext ctx, ParityEngine engine, CancellationToken ct)
    {
        var progress = new ParityProgress();
        return ProgressDisplay.RunAsync(ctx, "parity", () => (progress.BytesDone, progress.TotalBytes), engine.CoverAsync(progress: progress, ct: ct));
    }

    private static int Report(CliContext ctx, ParitySettings settings, ParityCoverResult cover)
    {
        if (ctx.Json)
        {
            ctx.WriteJson(new { scheme = settings.Scheme, files_added = cover.FilesAdded, bytes_added = cover.BytesAdded, groups_written = cover.GroupsWritten, skipped = cover.Skipped });
        }
        ctx.Say($"parity {settings.Scheme}: protected {cover.FilesAdded} more files ({Units.Bytes(cover.BytesAdded)}), wrote {cover.GroupsWritten} parity groups");
        foreach (var skipped in cover.Skipped)
        {
            ctx.Warn($"kintsugi: warning: not protected: {skipped}");
        }
        return cover.Skipped.Count > 0 ? ExitCodes.Partial : ExitCodes.Ok;
    }
}
