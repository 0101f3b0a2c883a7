namespace Kintsugi.Backup;

/// <summary>Argon2id cost for a key slot. The defaults (64 MiB, 3 passes, one lane) take about 0.1 s here through libsodium.</summary>
public sealed record KdfParameters(int MemoryKib, int Iterations, int Parallelism)
{
    public static KdfParameters Default { get; } = new(64 * 1024, 3, 1);

    public void Validate()
    {
        if (MemoryKib < 8 * Parallelism || MemoryKib > 4 * 1024 * 1024)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"Argon2id memory {MemoryKib} KiB is out of range (at least 8 KiB per lane, at most 4 GiB)");
        }
        if (Iterations is < 1 or > 100)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"Argon2id iterations {Iterations} is out of range (1 to 100)");
        }
        if (Parallelism is < 1 or > 64)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"Argon2id parallelism {Parallelism} is out of range (1 to 64)");
        }
    }
}
