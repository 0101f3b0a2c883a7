using System.Collections.Concurrent;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup;

/// <summary>All index entries of a repository in memory: blob id → where it is. Safe for concurrent use.</summary>
public sealed class MasterIndex
{
    private readonly ConcurrentDictionary<BlobId, IndexEntry> _entries = new();

    /// <summary>The index files this was loaded from.</summary>
    public IReadOnlyList<string> Files { get; init; } = [];

    public int Count => _entries.Count;

    public IEnumerable<IndexEntry> Entries => _entries.Values;

    public bool TryGet(BlobId id, out IndexEntry entry) => _entries.TryGetValue(id, out entry);

    public bool Contains(BlobId id) => _entries.ContainsKey(id);

    /// <summary>Adds an entry; where the blob is already known, the first location stays.</summary>
    public void Add(IndexEntry entry) => _entries.TryAdd(entry.Id, entry);

    public IndexEntry Get(BlobId id) =>
        _entries.TryGetValue(id, out var e) ? e
        : throw new KintsugiException(ErrorKind.Corrupt, $"blob {id.Short} is not in the index; run `kintsugi check` to see what is affected");
}
