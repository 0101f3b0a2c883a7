using System.Text.Json.Serialization;

namespace Kintsugi.Backup.Format;

/// <summary>The repository's settings, sealed in the <c>config</c> file. Fixed at init.</summary>
public sealed record RepositoryConfig
{
    public const int CurrentVersion = 1;

    [JsonPropertyName("version")] public int Version { get; init; } = CurrentVersion;
    [JsonPropertyName("id")] public required string Id { get; init; }
    /// <summary>32 random bytes (base64) from which the chunker's gear table is derived, so boundaries do not leak content.</summary>
    [JsonPropertyName("chunker_seed")] public required string ChunkerSeed { get; init; }
    [JsonPropertyName("chunk_min")] public int ChunkMin { get; init; }
    [JsonPropertyName("chunk_avg")] public int ChunkAverage { get; init; }
    [JsonPropertyName("chunk_max")] public int ChunkMax { get; init; }
    [JsonPropertyName("pack_size")] public int PackSize { get; init; }
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

[JsonSourceGenerationOptions(WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(Tree))]
[JsonSerializable(typeof(Snapshot))]
[JsonSerializable(typeof(RepositoryConfig))]
[JsonSerializable(typeof(KeySlot))]
[JsonSerializable(typeof(LockRecord))]
internal sealed partial class FormatJson : JsonSerializerContext;
