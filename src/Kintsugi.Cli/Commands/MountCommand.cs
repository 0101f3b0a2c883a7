using System.CommandLine;

namespace Kintsugi.Cli.Commands;

/// <summary>
/// restic's <c>mount</c> serves snapshots as a read-only FUSE file system. No maintained FUSE
/// binding for .NET is available to Kintsugi, so the command exists only to say so and to name
/// what does the same jobs: a restic user typing it gets that, not "unknown command".
/// </summary>
internal static class MountCommand
{
    public const string Name = "mount";

    public const string Unavailable =
        "mount is not available: Kintsugi has no FUSE file system (no maintained FUSE binding for .NET); " +
        "use `kintsugi dump SNAPSHOT PATH` for a file or a folder as tar, `kintsugi restore SNAPSHOT --include PATH --target DIR` to get files back, " +
        "and `kintsugi ls SNAPSHOT` or `kintsugi find PATTERN` to browse";

    public static Command Create()
    {
        var rest = new Argument<string[]>("mountpoint") { Description = "Ignored: mount is not available", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command(Name, "Not available (restic serves snapshots over FUSE; Kintsugi has no FUSE binding): exits 2 and names what to use instead, dump, restore --include, ls and find.")
        {
            rest,
        };
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetHandler((_, _) => throw new UsageException(Unavailable));
        return command;
    }
}
