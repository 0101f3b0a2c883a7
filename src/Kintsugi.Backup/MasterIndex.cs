using System.Collections.Concurrent;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup;

/// <summary>
/// All index entries of a repository in memory: blob id → where it is. Safe for concurrent use.
/// What was loaded from index files stays in their compact tables, found through one open-addressing
/// table of slot numbers (no object per entry, built once, read without locks); what is added
/// afterwards (a backup's new blobs) goes to a concurrent dictionary.
/// </summary>
public sealed class MasterIndex
{
    private readonly IndexEntryTable[] _tables;
    /// <summary>Open addressing, linear probing: (table number &lt;&lt; 32 | slot number) + 1; 0 is empty.</summary>
    private readonly long[] _buckets;
    private readonly int _mask;
    private readonly int _shift = 63;
    private readonly int _loadedCount;
    private readonly bool _loadedHasCopies;
    private readonly ConcurrentDictionary<BlobId, IndexEntry> _added = new();

    public MasterIndex()
    {
        _tables = [];
        _buckets = new long[2];
        _mask = 1;
    }

    /// <summary>An index of the entries of <paramref name="tables"/>; where a blob is listed more than once, the first location (in table order) stays.</summary>
    internal MasterIndex(IReadOnlyList<IndexEntryTable> tables)
    {
        _tables = [.. tables];
        long total = _tables.Sum(t => (long)t.Count);
        if (total > 1 << 29)
        {
            throw new KintsugiException(ErrorKind.Failed, $"the index lists {total} entries, more than this kintsugi holds in memory (2^29)");
        }
        // At most half full, so that a search ends after a probe or two.
        int size = 2;
        while (size < total * 2)
        {
            size <<= 1;
        }
        _buckets = new long[size];
        _mask = size - 1;
        _shift = 64 - System.Numerics.BitOperations.Log2((uint)size);
        for (int t = 0; t < _tables.Length; t++)
        {
            var table = _tables[t];
            for (int i = 0; i < table.Count; i++)
            {
                ref readonly var slot = ref table.SlotAt(i);
                int b = BucketOf(slot.Id);
                while (true)
                {
                    long at = _buckets[b];
                    if (at == 0)
                    {
                        _buckets[b] = ((long)t << 32 | (uint)i) + 1;
                        _loadedCount++;
                        break;
                    }
                    if (SlotOf(at).Id == slot.Id)
                    {
                        _loadedHasCopies = true;
                        break;
                    }
                    b = (b + 1) & _mask;
                }
            }
        }
    }

    /// <summary>The index files this was loaded from.</summary>
    public IReadOnlyList<string> Files { get; init; } = [];

    public int Count => _loadedCount + _added.Count;

    public IEnumerable<IndexEntry> Entries
    {
        get
        {
            for (int t = 0; t < _tables.Length; t++)
            {
                var table = _tables[t];
                for (int i = 0; i < table.Count; i++)
                {
                    // A later copy of a blob is not an entry of its own: the first location is the one found.
                    if (!_loadedHasCopies || Find(table.SlotAt(i).Id) == ((long)t << 32 | (uint)i) + 1)
                    {
                        yield return table[i];
                    }
                }
            }
            foreach (var entry in _added.Values)
            {
                yield return entry;
            }
        }
    }

    public bool TryGet(BlobId id, out IndexEntry entry)
    {
        long at = Find(id);
        if (at != 0)
        {
            at--;
            entry = _tables[(int)(at >> 32)][(int)at];
            return true;
        }
        return _added.TryGetValue(id, out entry);
    }

    public bool Contains(BlobId id) => Find(id) != 0 || _added.ContainsKey(id);

    /// <summary>Adds an entry; where the blob is already known, the first location stays.</summary>
    public void Add(IndexEntry entry)
    {
        if (Find(entry.Id) == 0)
        {
            _added.TryAdd(entry.Id, entry);
        }
    }

    public IndexEntry Get(BlobId id) =>
        TryGet(id, out var e) ? e
        : throw new KintsugiException(ErrorKind.Corrupt, $"blob {id.Short} is not in the index; run `kintsugi check` to see what is affected");

    /// <summary>The bucket value of a loaded entry, or 0.</summary>
    private long Find(BlobId id)
    {
        if (_loadedCount == 0)
        {
            return 0;
        }
        int b = BucketOf(id);
        while (true)
        {
            long at = _buckets[b];
            if (at == 0 || SlotOf(at).Id == id)
            {
                return at;
            }
            b = (b + 1) & _mask;
        }
    }

    private ref readonly IndexEntryTable.Slot SlotOf(long at)
    {
        at--;
        return ref _tables[(int)(at >> 32)].SlotAt((int)at);
    }

    // Fibonacci hashing: the top bits of the product depend on every bit of the id's hash code.
    private int BucketOf(BlobId id) => (int)(((ulong)(uint)id.GetHashCode() * 0x9E3779B97F4A7C15ul) >> _shift);
}
