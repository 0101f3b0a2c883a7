using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>
/// Which snapshots a command considers, with restic's meaning of <c>--host</c>, <c>--path</c> and
/// <c>--tag</c>: a snapshot passes when its host is any of <see cref="Hosts"/>, its paths contain all
/// of <see cref="Paths"/>, and it carries every tag of any one of <see cref="TagSets"/>. An empty
/// list does not filter. "latest" means the newest snapshot that passes.
/// </summary>
public sealed record SnapshotFilter
{
    public static readonly SnapshotFilter None = new();

    /// <summary>Any of these hosts.</summary>
    public IReadOnlyList<string> Hosts { get; init; } = [];

    /// <summary>All of these paths, absolute and without a trailing '/' (as snapshots store them).</summary>
    public IReadOnlyList<string> Paths { get; init; } = [];

    /// <summary>Any of these sets; within a set, every tag. An empty set passes a snapshot without tags.</summary>
    public IReadOnlyList<IReadOnlyList<string>> TagSets { get; init; } = [];

    public bool IsEmpty => Hosts.Count == 0 && Paths.Count == 0 && TagSets.Count == 0;

    /// <summary>
    /// A filter from option values as typed: paths are made absolute (against the current folder) and
    /// lose a trailing '/'; each tag value is a comma-separated list of tags that must all be present
    /// ("" alone means: no tags at all). An empty host or path, or an empty piece in a tag list, is
    /// refused (<see cref="ErrorKind.InvalidInput"/>).
    /// </summary>
    public static SnapshotFilter Create(IEnumerable<string> hosts, IEnumerable<string> paths, IEnumerable<string> tags)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentNullException.ThrowIfNull(tags);
        var hostList = hosts.ToList();
        if (hostList.Any(string.IsNullOrWhiteSpace))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "--host needs a non-empty host name");
        }
        var pathList = new List<string>();
        foreach (string p in paths)
        {
            if (string.IsNullOrWhiteSpace(p))
            {
                throw new KintsugiException(ErrorKind.InvalidInput, "--path needs a non-empty path");
            }
            pathList.Add(NormalizePath(p));
        }
        var tagSets = tags.Select(t => t.Length == 0 ? [] : SplitTags(t, "--tag")).ToList();
        return new SnapshotFilter { Hosts = hostList, Paths = pathList, TagSets = tagSets };
    }

    /// <summary>An absolute path as a snapshot stores it: made absolute, without a trailing '/'.</summary>
    public static string NormalizePath(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    /// <summary>
    /// "a,b" → [a, b], as restic reads a tag option. An empty piece ("a,,b", "a,", " ") is refused,
    /// naming <paramref name="option"/>: it is almost always a typo.
    /// </summary>
    public static IReadOnlyList<string> SplitTags(string value, string option)
    {
        ArgumentNullException.ThrowIfNull(value);
        var pieces = value.Split(',');
        if (pieces.Any(string.IsNullOrWhiteSpace))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"{option} '{value}' holds an empty tag; tags are separated by commas (give {option} a,b for the two tags a and b)");
        }
        return pieces;
    }

    public bool Matches(Snapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (Hosts.Count > 0 && !Hosts.Contains(snapshot.Host, StringComparer.Ordinal))
        {
            return false;
        }
        if (Paths.Any(p => !snapshot.Paths.Contains(p, StringComparer.Ordinal)))
        {
            return false;
        }
        return TagSets.Count == 0 || TagSets.Any(set => set.Count == 0 ? (snapshot.Tags ?? []).Count == 0 : set.All(snapshot.HasTag));
    }

    /// <summary>
    /// The snapshots a command that takes SNAPSHOT… arguments works on, oldest first: with no
    /// <paramref name="ids"/>, every snapshot of <paramref name="all"/> the filter passes; otherwise
    /// each one named, by id, unique id prefix, or "latest" (the newest the filter passes), once.
    /// </summary>
    public IReadOnlyList<SnapshotRef> Select(IReadOnlyList<SnapshotRef> all, IReadOnlyList<string> ids)
    {
        ArgumentNullException.ThrowIfNull(all);
        ArgumentNullException.ThrowIfNull(ids);
        var passing = all.Where(s => Matches(s.Snapshot)).ToList();
        if (ids.Count == 0)
        {
            return passing;
        }
        var chosen = new List<SnapshotRef>();
        foreach (string id in ids)
        {
            var snap = id == "latest"
                ? passing.LastOrDefault() ?? throw new KintsugiException(ErrorKind.NotFound, IsEmpty
                    ? "the repository has no snapshots yet"
                    : $"no snapshot of {this} to take as latest; `kintsugi snapshots` lists them with their hosts, paths and tags")
                : Repository.FindById(all, id);
            if (!chosen.Contains(snap))
            {
                chosen.Add(snap);
            }
        }
        return chosen.OrderBy(s => s.Snapshot.Time).ToList();
    }

    /// <summary>The filter in words, for messages: "host a or b, paths /x and /y, tags t1,t2 or t3".</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        if (Hosts.Count > 0)
        {
            parts.Add($"host {string.Join(" or ", Hosts)}");
        }
        if (Paths.Count > 0)
        {
            parts.Add($"{(Paths.Count == 1 ? "path" : "paths")} {string.Join(" and ", Paths)}");
        }
        if (TagSets.Count > 0)
        {
            parts.Add($"tags {string.Join(" or ", TagSets.Select(s => s.Count == 0 ? "(none)" : string.Join(',', s)))}");
        }
        return parts.Count == 0 ? "no filter" : string.Join(", ", parts);
    }
}
