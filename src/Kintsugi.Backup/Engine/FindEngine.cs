using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>
/// A pattern of <c>kintsugi find</c>, as restic's: one without '/' matches an entry's name; one
/// that starts with '/' matches its whole path in the snapshot; another with '/' matches the end of
/// the path, whole names. The glob syntax is <see cref="PathPattern"/>'s (<c>*</c>, <c>?</c>,
/// <c>[a-z]</c>, <c>[!a]</c>, <c>**</c> for any number of folders), but a match names the entry itself,
/// not what lies under a matching folder, and a leading '!' is a character of the name.
/// </summary>
public sealed class FindPattern
{
    private readonly PathPattern _pattern;

    public FindPattern(string pattern, bool ignoreCase = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        Text = pattern;
        string body = pattern.Length > 1 ? pattern.TrimEnd('/') : pattern;
        _pattern = PathPattern.Parse(body.StartsWith('!') ? "\\" + body : body, ignoreCase);
    }

    public string Text { get; }

    /// <summary>Whether the entry at <paramref name="path"/> ("/a/b/name") matches.</summary>
    public bool Matches(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return _pattern.MatchesWhole(path);
    }
}

/// <summary>The entries of one snapshot that matched.</summary>
public sealed record FoundInSnapshot(SnapshotRef Snapshot, IReadOnlyList<WalkedNode> Matches);

/// <summary>
/// Searches snapshots for entries whose path matches any of the patterns. Snapshots share most of
/// their folders, so the trees read are kept by id across snapshots: each distinct tree is read
/// and decrypted once, however many snapshots hold it.
/// </summary>
public sealed class FindEngine
{
    private readonly Repository _repo;

    public FindEngine(Repository repository) => _repo = repository;

    /// <summary>Trees read (distinct) by the searches so far: each is read once.</summary>
    public int TreesRead => _trees.Count;

    private readonly TreeCache _trees = new();

    /// <summary>
    /// The matches in each of <paramref name="snapshots"/>, in the order given, pre-order by path;
    /// with <paramref name="newest"/> or <paramref name="oldest"/>, only entries modified in that range.
    /// </summary>
    public async IAsyncEnumerable<FoundInSnapshot> FindAsync(
        IEnumerable<SnapshotRef> snapshots, IReadOnlyList<FindPattern> patterns, DateTimeOffset? oldest = null, DateTimeOffset? newest = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshots);
        ArgumentNullException.ThrowIfNull(patterns);
        var index = await _repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
        long? from = oldest?.ToUnixTimeMilliseconds() * 1_000_000;
        long? to = newest?.ToUnixTimeMilliseconds() * 1_000_000;
        foreach (var snapshot in snapshots)
        {
            var matches = new List<WalkedNode>();
            await foreach (var w in TreeWalker.WalkPreOrderAsync(_repo, index, TreeWalker.RootOf(snapshot), trees: _trees, ct: ct).ConfigureAwait(false))
            {
                if ((from is null || w.Node.MtimeNs >= from) && (to is null || w.Node.MtimeNs <= to) && patterns.Any(p => p.Matches(w.Path)))
                {
                    matches.Add(w);
                }
            }
            yield return new FoundInSnapshot(snapshot, matches);
        }
    }
}
