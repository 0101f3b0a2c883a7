using System.Numerics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kintsugi.Backup.Format;

/// <summary>The repository's settings, sealed in the <c>config</c> file. Fixed at init.</summary>
public sealed record RepositoryConfig : IJsonOnDeserialized
{
    public const int CurrentVersion = 1;
    public const int ChunkerSeedSize = 32;
    public const int MinChunkMin = 64;
    /// <summary>Far below the 256 MiB blob limit, and the bound on the memory of each chunk in flight.</summary>
    public const int MaxChunkMax = 64 * 1024 * 1024;
    public const int MinPackSize = 1024;
    public const int MaxPackSize = 1024 * 1024 * 1024;

    [JsonPropertyName("version")] public int Version { get; init; } = CurrentVersion;
    [JsonPropertyName("id")] public required string Id { get; init; }
    /// <summary>32 random bytes (base64) from which the chunker's gear table is derived, so boundaries do not leak content.</summary>
    [JsonPropertyName("chunker_seed")] public required string ChunkerSeed { get; init; }
    [JsonPropertyName("chunk_min")] public int ChunkMin { get; init; }
    [JsonPropertyName("chunk_avg")] public int ChunkAverage { get; init; }
    [JsonPropertyName("chunk_max")] public int ChunkMax { get; init; }
    [JsonPropertyName("pack_size")] public int PackSize { get; init; }

    /// <summary>
    /// A config read from a repository is checked whole before anything is chunked or packed with it.
    /// One of another version is left to the version check, which names the kintsugi needed.
    /// </summary>
    void IJsonOnDeserialized.OnDeserialized()
    {
        if (Version != CurrentVersion)
        {
            return;
        }
        Span<byte> seed = stackalloc byte[ChunkerSeedSize + 3];
        if (!Convert.TryFromBase64String(ChunkerSeed, seed, out int seedLength) || seedLength != ChunkerSeedSize)
        {
            throw new JsonException($"chunker_seed is not {ChunkerSeedSize} bytes in base64");
        }
        if (ChunkMin < MinChunkMin || ChunkAverage <= ChunkMin || ChunkMax <= ChunkAverage || ChunkMax > MaxChunkMax || !BitOperations.IsPow2(ChunkAverage))
        {
            throw new JsonException($"chunk sizes {ChunkMin}/{ChunkAverage}/{ChunkMax} break {MinChunkMin} <= chunk_min < chunk_avg < chunk_max <= {MaxChunkMax} with chunk_avg a power of two");
        }
        if (PackSize is < MinPackSize or > MaxPackSize)
        {
            throw new JsonException($"pack_size {PackSize} is outside {MinPackSize} to {MaxPackSize}");
        }
    }
}

/// <summary>A key slot: the master key wrapped under a key derived from a password with Argon2id.</summary>
public sealed record KeySlot
{
    [JsonPropertyName("version")] public int Version { get; init; } = 1;
    [JsonPropertyName("created")] public required DateTimeOffset Created { get; init; }
    [JsonPropertyName("host")] public string? Host { get; init; }
    [JsonPropertyName("user")] public string? User { get; init; }
    [JsonPropertyName("kdf")] public string Kdf { get; init; } = "argon2id";
    /// <summary>Argon2id memory in KiB.</summary>
    [JsonPropertyName("memory_kib")] public required int MemoryKib { get; init; }
    [JsonPropertyName("iterations")] public required int Iterations { get; init; }
    [JsonPropertyName("parallelism")] public required int Parallelism { get; init; }
    [JsonPropertyName("salt")] public required string Salt { get; init; }
    /// <summary>AES-256-GCM of the 64-byte master key: nonce ‖ ciphertext ‖ tag, base64; associated data "kintsugi key v1".</summary>
    [JsonPropertyName("wrapped")] public required string Wrapped { get; init; }
}

/// <summary>A lock file, plain JSON so it can be inspected without a password.</summary>
public sealed record LockRecord
{
    [JsonPropertyName("time")] public required DateTimeOffset Time { get; init; }
    [JsonPropertyName("exclusive")] public required bool Exclusive { get; init; }
    [JsonPropertyName("host")] public required string Host { get; init; }
    [JsonPropertyName("pid")] public required int Pid { get; init; }
    /// <summary>The process's start time in clock ticks since boot (from /proc), so a reused pid is not mistaken for the holder.</summary>
    [JsonPropertyName("process_start")] public long ProcessStart { get; init; }
    [JsonPropertyName("command")] public string? Command { get; init; }
    /// <summary>The holder's pid namespace: same host name and namespace means the pid can be checked here.</summary>
    [JsonPropertyName("pid_namespace")] public string? PidNamespace { get; init; }
}

/// <summary>
/// The JSON documents of the format. Nullable annotations are respected, so a document whose
/// required text field is null is refused when read, like one without it, instead of reaching its users.
/// </summary>
[JsonSourceGenerationOptions(WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.Never, RespectNullableAnnotations = true)]
[JsonSerializable(typeof(Tree))]
[JsonSerializable(typeof(Snapshot))]
[JsonSerializable(typeof(RepositoryConfig))]
[JsonSerializable(typeof(KeySlot))]
[JsonSerializable(typeof(LockRecord))]
internal sealed partial class FormatJson : JsonSerializerContext;
