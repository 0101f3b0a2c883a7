using System.CommandLine;
using Kintsugi.Cli.Rendering;
using Spectre.Console;

namespace Kintsugi.Cli.Commands;

internal static class KeyCommand
{
    public static Command Create()
    {
        var command = new Command("key", "Manage the passwords (key slots) that open the repository.");
        var newPasswordFile = new Option<string?>("--new-password-file") { Description = "File whose first line is the new password (default: prompt)" };

        var newKeyFile = new Option<string?>("--new-key-file")
        {
            Description = "Instead of a password, write a new key file FILE (mode 0600; never overwritten) that opens the repository " +
                "with no key derivation, for scripts and services (--key-file / KINTSUGI_KEY_FILE). Whoever reads the file reads the repository; " +
                "`kintsugi key remove` removes its slot (the master key stays the same)",
        };

        var kdfAdd = new KdfOptions();
        var add = new Command("add", "Add a password, or a key file, that opens the repository.") { newPasswordFile, newKeyFile };
        kdfAdd.AddTo(add);
        add.SetHandler(async (ctx, ct) =>
        {
            string? keyFile = ctx.Parse.GetValue(newKeyFile);
            if (keyFile is not null && ctx.Parse.GetValue(newPasswordFile) is not null)
            {
                throw new UsageException("--new-key-file and --new-password-file each add a key; pass one");
            }
            if (keyFile is { Length: 0 })
            {
                throw new UsageException("--new-key-file needs a file name");
            }
            if (keyFile is not null && (ctx.Parse.GetResult(kdfAdd.MemoryMib) is { Implicit: false } || ctx.Parse.GetResult(kdfAdd.Iterations) is { Implicit: false }))
            {
                throw new UsageException("--kdf-memory and --kdf-iterations set the cost of a password; a key file is not derived, so they do not apply to --new-key-file");
            }
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            string id;
            if (keyFile is not null)
            {
                id = await repo.AddKeyFileAsync(keyFile, CliContext.Host, CliContext.User, ct).ConfigureAwait(false);
            }
            else
            {
                var kdf = kdfAdd.Read(ctx);
                string password = ReadNewPassword(ctx, newPasswordFile);
                id = await repo.AddKeyAsync(password, kdf, CliContext.Host, CliContext.User, ct).ConfigureAwait(false);
            }
            if (ctx.Json)
            {
                ctx.WriteJson(keyFile is null ? new { id, key_file = (string?)null } : new { id, key_file = (string?)Path.GetFullPath(keyFile) });
            }
            ctx.Say(keyFile is null ? $"added key {id[..8]}" : $"added key {id[..8]}: the key file {keyFile} opens the repository (--key-file or KINTSUGI_KEY_FILE); keep it private");
            return ExitCodes.Ok;
        });

        var list = new Command("list", "List the key slots.");
        list.SetHandler(async (ctx, ct) =>
        {
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var keys = await repo.ListKeysAsync(ct).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(keys);
                return ExitCodes.Ok;
            }
            var table = new Table().Border(TableBorder.Simple).AddColumns(" ", "ID", "Created", "Host", "User", "KDF");
            foreach (var k in keys)
            {
                table.AddRow(k.Current ? "*" : " ", k.Id[..8], Units.Time(k.Created), Markup.Escape(k.Host ?? ""), Markup.Escape(k.User ?? ""), k.Kdf == "key-file" ? "key file" : $"{k.Kdf} m={k.MemoryKib / 1024}MiB t={k.Iterations} p={k.Parallelism}");
            }
            ctx.OutConsole.Write(table);
            return ExitCodes.Ok;
        });

        var keyId = new Argument<string>("id") { Description = "Key id or unique prefix (from `kintsugi key list`)" };
        var remove = new Command("remove", "Remove a key slot (not the one in use, not the last).") { keyId };
        remove.SetHandler(async (ctx, ct) =>
        {
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            string removed = await repo.RemoveKeyAsync(ctx.Parse.GetValue(keyId)!, ct: ct).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { removed });
            }
            ctx.Say($"removed key {removed[..8]}");
            return ExitCodes.Ok;
        });

        var kdfPasswd = new KdfOptions();
        var passwd = new Command("passwd", "Change the password of the key in use (adds a new slot with today's key derivation, then removes the old one; the same password again brings an old slot to the faster form).") { newPasswordFile };
        kdfPasswd.AddTo(passwd);
        passwd.SetHandler(async (ctx, ct) =>
        {
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            if ((await repo.ListKeysAsync(ct).ConfigureAwait(false)).Any(k => k.Current && k.Kdf == "key-file"))
            {
                throw new UsageException("the repository was opened with a key file, which has no password to change; open it with the password to change, or add one with `kintsugi key add`");
            }
            var kdf = kdfPasswd.Read(ctx);
            string password = ReadNewPassword(ctx, newPasswordFile);
            string id = await repo.AddKeyAsync(password, kdf, CliContext.Host, CliContext.User, ct).ConfigureAwait(false);
            await repo.RemoveKeyAsync(repo.KeyId, allowCurrent: true, ct).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { id, removed = repo.KeyId });
            }
            ctx.Say($"password changed: key {repo.KeyId[..8]} replaced by {id[..8]}");
            return ExitCodes.Ok;
        });

        command.Subcommands.Add(add);
        command.Subcommands.Add(list);
        command.Subcommands.Add(remove);
        command.Subcommands.Add(passwd);
        return command;
    }

    private static string ReadNewPassword(CliContext ctx, Option<string?> option)
    {
        string? file = ctx.Parse.GetValue(option);
        if (file is not null)
        {
            return CliContext.ReadPasswordFile(file);
        }
        return ctx.ReadPassword(confirm: true, prompt: "new password", fileOverride: "", fileOption: option.Name + " FILE");
    }
}
