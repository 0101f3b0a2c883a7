using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;

namespace Kintsugi.Cli.Commands;

/// <summary>
/// --host, --path and --tag, the snapshot filter every command that chooses snapshots takes, with
/// restic's meaning and one wording in every --help.
/// </summary>
internal sealed class SnapshotFilterOptions
{
    private readonly Option<string[]> _host = new("--host", "-H")
    {
        Description = "Only snapshots of this host; `latest` is the newest of those the filters pass (repeatable: any of the hosts)",
        AllowMultipleArgumentsPerToken = false,
        HelpName = "HOST",
    };

    private readonly Option<string[]> _path = new("--path")
    {
        Description = "Only snapshots whose backed-up paths include this path (absolute, or relative to the current folder; repeatable: all of them)",
        AllowMultipleArgumentsPerToken = false,
        HelpName = "PATH",
    };

    private readonly Option<string[]> _tag = new("--tag")
    {
        Description = "Only snapshots with these tags: --tag a,b means both a and b (repeatable: any of the lists; --tag '' means snapshots without tags)",
        AllowMultipleArgumentsPerToken = false,
        HelpName = "TAG[,TAG...]",
    };

    private SnapshotFilterOptions()
    {
    }

    /// <summary>Adds the three options to <paramref name="command"/>.</summary>
    public static SnapshotFilterOptions AddTo(Command command)
    {
        var options = new SnapshotFilterOptions();
        command.Options.Add(options._host);
        command.Options.Add(options._path);
        command.Options.Add(options._tag);
        return options;
    }

    /// <summary>The filter given; a malformed value (an empty host, path or tag) is a usage error.</summary>
    public SnapshotFilter Read(CliContext ctx)
    {
        try
        {
            return SnapshotFilter.Create(ctx.Parse.GetValue(_host) ?? [], ctx.Parse.GetValue(_path) ?? [], ctx.Parse.GetValue(_tag) ?? []);
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.InvalidInput)
        {
            throw new UsageException(e.Message);
        }
    }
}
