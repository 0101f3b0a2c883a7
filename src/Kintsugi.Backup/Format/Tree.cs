using System.Text.Json.Serialization;

namespace Kintsugi.Backup.Format;

/// <summary>The type of a tree node. Serialized as lowercase strings.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<NodeType>))]
public enum NodeType
{
    [JsonStringEnumMemberName("file")] File,
    [JsonStringEnumMemberName("dir")] Directory,
    [JsonStringEnumMemberName("symlink")] Symlink,
    [JsonStringEnumMemberName("fifo")] Fifo,
    [JsonStringEnumMemberName("socket")] Socket,
    [JsonStringEnumMemberName("chardev")] CharDevice,
    [JsonStringEnumMemberName("blockdev")] BlockDevice,
}

/// <summary>One entry of a directory, with everything a restore needs.</summary>
public sealed record Node
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("type")] public required NodeType Type { get; init; }
    /// <summary>Permission bits and set-id/sticky bits (the low 12 bits of st_mode).</summary>
    [JsonPropertyName("mode")] public uint Mode { get; init; }
    [JsonPropertyName("uid")] public uint Uid { get; init; }
    [JsonPropertyName("gid")] public uint Gid { get; init; }
    /// <summary>Modification time, nanoseconds since the Unix epoch.</summary>
    [JsonPropertyName("mtime_ns")] public long MtimeNs { get; init; }
    /// <summary>Status change time, nanoseconds since the Unix epoch (used only to detect change).</summary>
    [JsonPropertyName("ctime_ns")] public long CtimeNs { get; init; }
    [JsonPropertyName("inode")] public ulong Inode { get; init; }
    [JsonPropertyName("device")] public ulong Device { get; init; }
    [JsonPropertyName("links")] public uint Links { get; init; }
    [JsonPropertyName("size")] public long Size { get; init; }
    /// <summary>The file occupies fewer blocks than its size: restore leaves holes where content is zero.</summary>
    [JsonPropertyName("sparse"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool Sparse { get; init; }
    [JsonPropertyName("content"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public IReadOnlyList<string>? Content { get; init; }
    [JsonPropertyName("subtree"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Subtree { get; init; }
    [JsonPropertyName("target"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? LinkTarget { get; init; }
    /// <summary>The container format a file was split by ("safetensors", "pytorch-zip", …); null for opaque bytes.</summary>
    [JsonPropertyName("layout"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Layout { get; init; }
    /// <summary>The tensors split into pieces: where their pieces sit in <see cref="Content"/>, so the next backup finds the bases of its deltas.</summary>
    [JsonPropertyName("tensors"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public IReadOnlyList<TensorRef>? Tensors { get; init; }
    /// <summary>Device number for character and block devices.</summary>
    [JsonPropertyName("rdev"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public ulong RDevice { get; init; }
}

/// <summary>
/// A tensor of a file split at tensor boundaries: its identity (name, dtype, shape) and the run of
/// <see cref="Node.Content"/> entries, from <see cref="First"/>, that holds its <see cref="Pieces"/> pieces.
/// </summary>
public sealed record TensorRef
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("dtype")] public required string DType { get; init; }
    [JsonPropertyName("shape")] public required IReadOnlyList<long> Shape { get; init; }
    [JsonPropertyName("first")] public int First { get; init; }
    [JsonPropertyName("pieces")] public int Pieces { get; init; }

    /// <summary>Same name, dtype and shape: the pieces line up.</summary>
    public bool SameTensorAs(TensorRef other) =>
        other is not null && Name == other.Name && DType == other.DType && Shape.SequenceEqual(other.Shape) && Pieces == other.Pieces;
}

/// <summary>A directory listing, nodes sorted by name (ordinal). Stored as a JSON blob of kind Tree.</summary>
public sealed record Tree
{
    [JsonPropertyName("nodes")] public required IReadOnlyList<Node> Nodes { get; init; }
}
