using System.Text;
using System.Text.RegularExpressions;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>
/// A pattern of <c>kintsugi find</c>, as restic's: one without '/' matches an entry's name; one
/// that starts with '/' matches its whole path in the snapshot; another with '/' matches the end of
/// the path, whole names. Globs: <c>*</c> and <c>?</c> within a name, <c>[abc]</c>, <c>[a-z]</c>,
/// <c>[!a]</c>, and <c>**</c> as a whole name for any number of folders.
/// </summary>
public sealed class FindPattern
{
    private readonly Regex _regex;
    private readonly bool _nameOnly;

    public FindPattern(string pattern, bool ignoreCase = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        Text = pattern;
        _nameOnly = !pattern.Contains('/', StringComparison.Ordinal);
        var sb = new StringBuilder(_nameOnly ? "^" : pattern.StartsWith('/') ? "^/" : "(?:^|/)");
        var parts = _nameOnly ? [pattern] : pattern.Trim('/').Split('/');
        for (int i = 0; i < parts.Length; i++)
        {
            bool separator = i > 0 && parts[i - 1] != "**";
            if (parts[i] == "**" && !_nameOnly && i == parts.Length - 1)
            {
                // "a/**": a and everything under it.
                sb.Append(i == 0 ? ".*" : "(?:/.*)?");
                continue;
            }
            if (separator)
            {
                sb.Append('/');
            }
            if (parts[i] == "**" && !_nameOnly)
            {
                // Any number of whole folders, none included: "a/**/b" matches a/b and a/x/y/b.
                sb.Append("(?:[^/]+/)*");
                continue;
            }
            AppendGlob(sb, parts[i], pattern);
        }
        sb.Append('$');
        _regex = new Regex(sb.ToString(), RegexOptions.CultureInvariant | RegexOptions.NonBacktracking | (ignoreCase ? RegexOptions.IgnoreCase : RegexOptions.None));
    }

    public string Text { get; }

    /// <summary>Whether the entry at <paramref name="path"/> ("/a/b/name") matches.</summary>
    public bool Matches(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return _regex.IsMatch(_nameOnly ? path[(path.LastIndexOf('/') + 1)..] : path);
    }

    private static void AppendGlob(StringBuilder sb, string glob, string pattern)
    {
        for (int i = 0; i < glob.Length; i++)
        {
            char c = glob[i];
            switch (c)
            {
                case '*':
                    sb.Append("[^/]*");
                    break;
                case '?':
                    sb.Append("[^/]");
                    break;
                case '\\' when i + 1 < glob.Length:
                    sb.Append(Regex.Escape(glob[++i].ToString()));
                    break;
                case '[':
                {
                    int close = glob.IndexOf(']', i + 2 <= glob.Length ? i + 2 : glob.Length);
                    if (close < 0)
                    {
                        throw new KintsugiException(ErrorKind.InvalidInput, $"pattern '{pattern}' has a '[' without its ']'; write \\[ for the character itself");
                    }
                    string set = glob[(i + 1)..close];
                    bool negate = set.Length > 0 && (set[0] == '!' || set[0] == '^');
                    if (negate)
                    {
                        set = set[1..];
                    }
                    sb.Append(negate ? "[^/" : "[");
                    foreach (char s in set)
                    {
                        sb.Append(s is '\\' or ']' or '[' or '^' ? "\\" + s : s.ToString());
                    }
                    sb.Append(']');
                    i = close;
                    break;
                }
                default:
                    sb.Append(Regex.Escape(c.ToString()));
                    break;
            }
        }
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
