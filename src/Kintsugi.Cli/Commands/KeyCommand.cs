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

        var kdfAdd = new KdfOptions();
        var add = new Command("add", "Add a password that opens the repository.") { newPasswordFile };
        kdfAdd.AddTo(add);
        add.SetHandler(async (ctx, ct) =>
        {
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
            var kdf = kdfAdd.Read(ctx);
            string password = ReadNewPassword(ctx, newPasswordFile);
            string id = await repo.AddKeyAsync(password, kdf, CliContext.Host, CliContext.User, ct).ConfigureAwait(false);
            if (ctx.Json)
            {
                ctx.WriteJson(new { id });
            }
            ctx.Say($"added key {id[..8]}");
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
                table.AddRow(k.Current ? "*" : " ", k.Id[..8], Units.Time(k.Created), Markup.Escape(k.Host ?? ""), Markup.Escape(k.User ?? ""), $"{k.Kdf} m={k.MemoryKib / 1024}MiB t={k.Iterations} p={k.Parallelism}");
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
        var passwd = new Command("passwd", "Change the password of the key in use (adds a new slot, then removes the old one).") { newPasswordFile };
        kdfPasswd.AddTo(passwd);
        passwd.SetHandler(async (ctx, ct) =>
        {
            var repo = await ctx.OpenRepositoryAsync(ct).ConfigureAwait(false);
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
