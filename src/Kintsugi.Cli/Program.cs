using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Cli.Commands;

namespace Kintsugi.Cli;

internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        var root = new RootCommand(
            "Kintsugi: backup, monitoring and recovery for AI systems.\n" +
            "Snapshots of models, checkpoints and datasets in a deduplicated, compressed, encrypted repository;\n" +
            "a supervisor (`kintsugi run`) that keeps training jobs and servers running and rolls them back.\n\n" +
            "The repository (a folder, or an s3: or azure: URL) comes from --repo or KINTSUGI_REPOSITORY; the password from --password-file,\n" +
            "--password-command, KINTSUGI_PASSWORD_FILE, KINTSUGI_PASSWORD_COMMAND, KINTSUGI_PASSWORD, or a prompt;\n" +
            "or a key file (--key-file, KINTSUGI_KEY_FILE) opens it with no password and no key derivation.")
        {
            GlobalOptions.Repository,
            GlobalOptions.PasswordFile,
            GlobalOptions.PasswordCommand,
            GlobalOptions.KeyFile,
            GlobalOptions.Json,
            GlobalOptions.Quiet,
            GlobalOptions.Connections,
            GlobalOptions.LimitUpload,
            GlobalOptions.LimitDownload,
            GlobalOptions.NoCache,
        };
        root.Subcommands.Add(InitCommand.Create());
        root.Subcommands.Add(BackupCommand.Create());
        root.Subcommands.Add(SnapshotsCommand.Create());
        root.Subcommands.Add(LsCommand.Create());
        root.Subcommands.Add(FindCommand.Create());
        root.Subcommands.Add(DumpCommand.Create());
        root.Subcommands.Add(DiffCommand.Create());
        root.Subcommands.Add(RestoreCommand.Create());
        root.Subcommands.Add(CheckCommand.Create());
        root.Subcommands.Add(StatsCommand.Create());
        root.Subcommands.Add(MountCommand.Create());
        root.Subcommands.Add(ForgetCommand.Create());
        root.Subcommands.Add(ForgetCommand.CreatePrune());
        root.Subcommands.Add(TagCommand.Create());
        root.Subcommands.Add(CopyCommand.Create());
        root.Subcommands.Add(KeyCommand.Create());
        root.Subcommands.Add(UnlockCommand.Create());
        root.Subcommands.Add(ParityCommand.Create());
        root.Subcommands.Add(ParityCommand.CreateRepair());
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(StatusCommand.Create());
        root.Subcommands.Add(EventsCommand.Create());
        root.Subcommands.Add(ProtectWorkerCommand.Create());

        // Every --help ends with the exit codes, said once there rather than in each command's
        // description (where the root's list of commands would repeat them for every command).
        foreach (var help in root.Options.OfType<System.CommandLine.Help.HelpOption>())
        {
            if (help.Action is System.CommandLine.Invocation.SynchronousCommandLineAction inner)
            {
                help.Action = new HelpWithExitCodes(inner);
            }
        }

        var parse = root.Parse(args);
        // Whatever follows `mount` (restic's options included), the answer is the same line.
        if (parse.CommandResult.Command.Name == MountCommand.Name && parse.CommandResult.Parent?.Parent is null && parse.Action is not (HelpWithExitCodes or System.CommandLine.Help.HelpAction))
        {
            Console.Error.WriteLine($"kintsugi: {MountCommand.Unavailable}");
            return ExitCodes.Usage;
        }
        if (UsageErrors.Find(parse) is { } usage)
        {
            Console.Error.WriteLine($"kintsugi: {usage}");
            return ExitCodes.Usage;
        }
        if (parse.Errors.Count > 0)
        {
            Console.Error.WriteLine($"kintsugi: {parse.Errors[0].Message} (see `{UsageErrors.CommandPath(parse.CommandResult)} --help`)");
            return ExitCodes.Usage;
        }
        // `kintsugi run` handles its stop signals itself: System.CommandLine would end the process 2 s
        // after Ctrl-C, before the workloads' grace is over, and leave them orphaned.
        var invocation = new InvocationConfiguration { EnableDefaultExceptionHandler = false };
        if (parse.CommandResult.Command.Name == "run")
        {
            invocation.ProcessTerminationTimeout = null;
        }
        return await parse.InvokeAsync(invocation).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs a command body and turns what it throws into a one-line message and an exit code:
    /// user errors never show a stack trace.
    /// </summary>
    public static void SetHandler(this Command command, Func<CliContext, CancellationToken, Task<int>> body)
    {
        command.SetAction(async (parse, ct) =>
        {
            var ctx = new CliContext(parse);
            try
            {
                return await body(ctx, ct).ConfigureAwait(false);
            }
            catch (UsageException e)
            {
                ctx.Error.WriteLine($"kintsugi: {e.Message}");
                return ExitCodes.Usage;
            }
            catch (KintsugiException e)
            {
                ctx.Error.WriteLine($"kintsugi: error: {e.Message}");
                return ExitCodes.Failed;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                ctx.Error.WriteLine("kintsugi: interrupted; the repository is unchanged up to the last completed snapshot");
                return ExitCodes.Interrupted;
            }
            catch (IOException e) when (KintsugiException.FromIo(e, "the repository") is KintsugiException { Kind: ErrorKind.NoSpace } full)
            {
                ctx.Error.WriteLine($"kintsugi: error: {full.Message}");
                return ExitCodes.Failed;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                ctx.Error.WriteLine($"kintsugi: error: {e.Message}");
                return ExitCodes.Failed;
            }
            catch (Exception e) when (Environment.GetEnvironmentVariable("KINTSUGI_DEBUG") != "1")
            {
                ctx.Error.WriteLine($"kintsugi: internal error: {e.GetType().Name}: {e.Message} (this is a bug; KINTSUGI_DEBUG=1 shows the stack trace)");
                return ExitCodes.Failed;
            }
        });
    }
}

/// <summary>System.CommandLine's help, then the exit codes.</summary>
internal sealed class HelpWithExitCodes(System.CommandLine.Invocation.SynchronousCommandLineAction inner) : System.CommandLine.Invocation.SynchronousCommandLineAction
{
    public override bool ClearsParseErrors => true;

    public override int Invoke(ParseResult parseResult)
    {
        ArgumentNullException.ThrowIfNull(parseResult);
        int code = inner.Invoke(parseResult);
        var output = parseResult.InvocationConfiguration.Output;
        output.WriteLine(ExitCodes.Help);
        output.WriteLine();
        return code;
    }
}
