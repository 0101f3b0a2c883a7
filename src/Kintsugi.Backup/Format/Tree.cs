using System.Text.Json;
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

/// <summary>
/// One entry of a directory, with everything a restore needs. Trees come from storage an attacker
/// holding the key may have written, so what no valid tree holds is refused as the JSON is read
/// (a <see cref="JsonException"/>, which readers report as a damaged tree): a missing name, an
/// unknown type, a negative size, a subtree or content entry that is not an id. Whether a name is
/// usable as a path component is checked by the walker, which knows it is reading.
/// </summary>
public sealed record Node
{
    private readonly string _name = "";
    private readonly NodeType _type;
    private readonly long _size;
    private readonly IReadOnlyList<string>? _content;
    private readonly string? _subtree;
    private readonly IReadOnlyList<TensorRef>? _tensors;

    [JsonPropertyName("name")]
    public required string Name
    {
        get => _name;
        init => _name = value ?? throw new JsonException("a node has no name");
    }

    [JsonPropertyName("type")]
    public required NodeType Type
    {
        get => _type;
        init => _type = Enum.IsDefined(value) ? value : throw new JsonException($"'{_name}' has an unknown type {(int)value}");
    }

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
    [JsonPropertyName("size")]
    public long Size
    {
        get => _size;
        init => _size = value >= 0 ? value : throw new JsonException($"'{_name}' has a negative size {value}");
    }

    /// <summary>The file occupies fewer blocks than its size: restore leaves holes where content is zero.</summary>
    [JsonPropertyName("sparse"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] public bool Sparse { get; init; }
    [JsonPropertyName("content"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Content
    {
        get => _content;
        init => _content = value is null || value.All(c => BlobId.TryParse(c, out _)) ? value
            : throw new JsonException($"'{_name}' has content that is not a list of blob ids");
    }

    [JsonPropertyName("subtree"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Subtree
    {
        get => _subtree;
        init => _subtree = value is null || BlobId.TryParse(value, out _) ? value
            : throw new JsonException($"'{_name}' has a subtree '{value}' that is not a blob id");
    }

    [JsonPropertyName("target"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? LinkTarget { get; init; }
    /// <summary>The container format a file was split by ("safetensors", "pytorch-zip", …); null for opaque bytes.</summary>
    [JsonPropertyName("layout"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Layout { get; init; }
    /// <summary>The tensors split into pieces: where their pieces sit in <see cref="Content"/>, so the next backup finds the bases of its deltas.</summary>
    [JsonPropertyName("tensors"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<TensorRef>? Tensors
    {
        get => _tensors;
        init => _tensors = value is null || !value.Contains(null) ? value
            : throw new JsonException($"'{_name}' lists a null tensor");
    }
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

/// <summary>
/// A directory listing, nodes sorted by name (ordinal). Stored as a JSON blob of kind Tree. A tree
/// without a node list or with a null node is refused as it is read; names the walker checks.
/// </summary>
public sealed record Tree
{
    private readonly IReadOnlyList<Node> _nodes = [];

    [JsonPropertyName("nodes")]
    public required IReadOnlyList<Node> Nodes
    {
        get => _nodes;
        init => _nodes = Checked(value);
    }

    private static IReadOnlyList<Node> Checked(IReadOnlyList<Node>? nodes)
    {
        if (nodes is null)
        {
            throw new JsonException("the tree has no node list");
        }
        if (nodes.Any(n => n is null))
        {
            throw new JsonException("the tree holds a null node");
        }
        return nodes;
    }
}
