using System.CommandLine;
using Kintsugi.Backup;

namespace Kintsugi.Cli.Commands;

internal static class UnlockCommand
{
    public static Command Create()
    {
        var all = new Option<bool>("--remove-all") { Description = "Remove every lock, including live ones of other hosts (only when you know they are gone)" };
        var command = new Command("unlock", "Remove stale locks: those of processes gone from this host (also ignored automatically) and those of other hosts not refreshed for 30 minutes. Needs no password.") { all };
        command.SetHandler(async (ctx, ct) =>
        {
            var store = ctx.OpenStore();
            if (!await store.ExistsAsync(Backup.Storage.FileKind.Config, "config", ct).ConfigureAwait(false))
            {
                throw new KintsugiException(ErrorKind.RepositoryNotFound, $"{store.Location} is not a Kintsugi repository; check --repo / KINTSUGI_REPOSITORY");
            }
            var before = await RepositoryLock.ListAsync(store, CliContext.Host, ctx.Time, ct).ConfigureAwait(false);
            int removed = await RepositoryLock.RemoveAsync(store, CliContext.Host, ctx.Parse.GetValue(all), ctx.Time, ct).ConfigureAwait(false);
            int stale = before.Count(l => l.Stale && l.Record.Host == CliContext.Host);
            if (ctx.Json)
            {
                ctx.WriteJson(new { removed = removed + stale, remaining = before.Count - removed - stale });
            }
            ctx.Say($"removed {removed + stale} locks");
            foreach (var l in before.Where(l => !l.Stale && !ctx.Parse.GetValue(all)))
            {
                ctx.Say($"kept lock of {l.Record.Command} (pid {l.Record.Pid} on {l.Record.Host}): {l.Reason}"
                    + (l.Record.Host == CliContext.Host && l.Reason == "its process is running" ? "" : "; `kintsugi unlock --remove-all` removes it if you know that process is gone"));
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
