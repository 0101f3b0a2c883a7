using System.CommandLine;
using Kintsugi.Backup;

namespace Kintsugi.Cli.Commands;

/// <summary>Argon2id cost options for commands that create key slots.</summary>
internal sealed class KdfOptions
{
    public Option<int> MemoryMib { get; } = new("--kdf-memory")
    {
        Description = "Argon2id memory in MiB for the new key",
        DefaultValueFactory = _ => KdfParameters.Default.MemoryKib / 1024,
    };

    public Option<int> Iterations { get; } = new("--kdf-iterations")
    {
        Description = "Argon2id iterations for the new key",
        DefaultValueFactory = _ => KdfParameters.Default.Iterations,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(MemoryMib);
        command.Options.Add(Iterations);
    }

    public KdfParameters Read(CliContext ctx)
    {
        int mib = ctx.Parse.GetValue(MemoryMib);
        if (mib is < 1 or > 4096)
        {
            throw new UsageException($"--kdf-memory {mib} is out of range; give 1 to 4096 MiB");
        }
        var kdf = new KdfParameters(mib * 1024, ctx.Parse.GetValue(Iterations), KdfParameters.Default.Parallelism);
        kdf.Validate();
        return kdf;
    }
}
