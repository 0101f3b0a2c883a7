using System.CommandLine;
using Kintsugi.Backup;

namespace Kintsugi.Cli.Commands;

internal static class InitCommand
{
    public static Command Create()
    {
        var kdf = new KdfOptions();
        var parity = new Option<string?>("--parity") { Description = "Protect the repository with erasure-coded parity from the start, e.g. 8+2 (see `kintsugi parity set --help`)" };
        var command = new Command("init", "Create a new repository (refuses a folder that already holds one or is not empty).") { parity };
        kdf.AddTo(command);
        var settingsFrom = SourceRepositoryOptions.AddTo(command, "--copy-settings-from", "Take this repository's chunker seed, chunk sizes, pack size and blob ids, so `kintsugi copy` from it moves blobs as they are and later backups deduplicate against them (its password: --from-password-file, --from-key-file, KINTSUGI_FROM_PASSWORD_FILE, KINTSUGI_FROM_KEY_FILE or KINTSUGI_FROM_PASSWORD)", variable: null);
        command.SetHandler(async (ctx, ct) =>
        {
            var store = ctx.OpenStore();
            var parameters = kdf.Read(ctx);
            var paritySettings = ParityCommand.ParseOption(ctx.Parse.GetValue(parity));
            if (await store.ExistsAsync(Backup.Storage.FileKind.Config, "config", ct).ConfigureAwait(false))
            {
                throw new KintsugiException(ErrorKind.RepositoryExists, $"a repository already exists at {store.Location}; use it as it is, or choose another path");
            }
            ctx.RefuseKeyFileOption("init");
            var source = settingsFrom.Location(ctx) is { } from ? await settingsFrom.OpenAsync(ctx, from, ct).ConfigureAwait(false) : null;
            string password = ctx.ReadPassword(confirm: true, prompt: "new password");
            var repo = await Repository.InitAsync(store, password, parameters, null, CliContext.Host, CliContext.User, ctx.Time, source, ct).ConfigureAwait(false);
            if (paritySettings is not null)
            {
                var engine = new Backup.Parity.ParityEngine(store);
                await engine.SaveSettingsAsync(paritySettings, ct).ConfigureAwait(false);
                await engine.CoverAsync(ct: ct).ConfigureAwait(false);
            }
            if (ctx.Json)
            {
                ctx.WriteJson(new { id = repo.Config.Id, repository = store.Location, key = repo.KeyId, parity = paritySettings?.Scheme, settings_from = source?.Store.Location });
            }
            else
            {
                ctx.Say($"created repository {repo.Config.Id[..8]} at {store.Location}" + (paritySettings is null ? "" : $" with parity {paritySettings.Scheme}")
                    + (source is null ? "" : $", with the chunking and blob ids of {source.Store.Location}"));
                ctx.Say("keep the password safe: without it the data cannot be read");
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
