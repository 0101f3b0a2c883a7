using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kintsugi.Backup.Format;

/// <summary>What a backup did, recorded in its snapshot.</summary>
public sealed record BackupSummary
{
    [JsonPropertyName("files_new")] public long FilesNew { get; init; }
    [JsonPropertyName("files_changed")] public long FilesChanged { get; init; }
    [JsonPropertyName("files_unchanged")] public long FilesUnchanged { get; init; }
    [JsonPropertyName("dirs")] public long Directories { get; init; }
    [JsonPropertyName("errors")] public long Errors { get; init; }
    [JsonPropertyName("bytes_total")] public long BytesTotal { get; init; }
    [JsonPropertyName("bytes_read")] public long BytesRead { get; init; }
    [JsonPropertyName("bytes_added")] public long BytesAdded { get; init; }
    [JsonPropertyName("bytes_added_stored")] public long BytesAddedStored { get; init; }
    [JsonPropertyName("blobs_added")] public long BlobsAdded { get; init; }
    [JsonPropertyName("duration_s")] public double DurationSeconds { get; init; }
}

/// <summary>A snapshot: the single commit point of a backup. Stored as JSON in a sealed file of type Snapshot.</summary>
public sealed record Snapshot : IJsonOnDeserialized
{
    [JsonPropertyName("version")] public int Version { get; init; } = 1;
    [JsonPropertyName("time")] public required DateTimeOffset Time { get; init; }
    [JsonPropertyName("host")] public required string Host { get; init; }
    [JsonPropertyName("user")] public string? User { get; init; }
    [JsonPropertyName("paths")] public required IReadOnlyList<string> Paths { get; init; }
    [JsonPropertyName("tags"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public IReadOnlyList<string>? Tags { get; init; }
    [JsonPropertyName("tree")] public required string Tree { get; init; }
    [JsonPropertyName("kind")] public required string Kind { get; init; }
    [JsonPropertyName("parent"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Parent { get; init; }
    [JsonPropertyName("summary")] public BackupSummary? Summary { get; init; }
    [JsonPropertyName("program")] public string? Program { get; init; }
    /// <summary>Set when `kintsugi tag` rewrote the snapshot: the id of the snapshot as the backup wrote it, kept through every rewrite.</summary>
    [JsonPropertyName("original"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Original { get; init; }

    public bool HasTag(string tag) => Tags?.Contains(tag, StringComparer.Ordinal) == true;

    /// <summary>A snapshot read from a repository names its root tree by id and lists no null path or tag.</summary>
    void IJsonOnDeserialized.OnDeserialized()
    {
        if (!BlobId.TryParse(Tree, out _))
        {
            throw new JsonException("its tree is not a 64-digit id");
        }
        if (Paths.Contains(null) || Tags?.Contains(null) == true)
        {
            throw new JsonException("a path or tag is null");
        }
    }
}

/// <summary>A snapshot with the id (file name) it is stored under.</summary>
public sealed record SnapshotRef(BlobId Id, Snapshot Snapshot)
{
    public string ShortId => Id.Short;
}
