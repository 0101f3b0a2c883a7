using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>
/// Which paths of one snapshot a restore (or an ls) takes, from include and exclude patterns as the
/// user types them. A pattern is
/// <list type="bullet">
/// <item>an absolute path: that path and what is under it;</item>
/// <item>a relative path: the same under each path the snapshot backed up (<c>data/x</c> with the
/// snapshot's path <c>/home/u/proj</c> is <c>/home/u/proj/data/x</c>), or beside it when it starts with
/// that path's name (<c>proj/data/x</c>), or from the root (<c>home/u/proj</c>, as before);</item>
/// <item>a glob (holding <c>*</c>, <c>?</c> or <c>[</c>) in the syntax of <see cref="PathPattern"/>:
/// <c>*.pt</c> at any depth, <c>/home/**/weights*</c> anchored at the root. A name that holds those
/// characters literally still matches as a path.</item>
/// </list>
/// Each include must match something (else <see cref="ErrorKind.NotFound"/>, naming it); the folders
/// above what is included are taken too, so the restored paths have their folders, but nothing else in
/// them. An exclude leaves out what it matches and everything under it, included or not; it is also
/// matched as <c>backup --exclude</c> matches (a name without '/' at any depth), so the two agree.
/// </summary>
public sealed class PathSelection
{
    private readonly List<Matcher> _excludes;
    private readonly HashSet<string> _roots;
    private readonly HashSet<string> _containers;
    private readonly bool _all;

    private PathSelection(List<Matcher> excludes, HashSet<string> roots, HashSet<string> containers, bool all)
    {
        _excludes = excludes;
        _roots = roots;
        _containers = containers;
        _all = all;
    }

    /// <summary>Selects everything.</summary>
    public static readonly PathSelection All = new([], [], [], all: true);

    /// <summary>
    /// Resolves the patterns against the snapshot, walking its trees once when there are includes.
    /// Throws <see cref="ErrorKind.NotFound"/> for the first include that matches nothing, before anything
    /// is restored; a malformed glob is taken as a literal path.
    /// </summary>
    public static async Task<PathSelection> ResolveAsync(Repository repo, MasterIndex index, SnapshotRef snapshot, IReadOnlyList<string> includes, IReadOnlyList<string> excludes, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(includes);
        ArgumentNullException.ThrowIfNull(excludes);
        var paths = snapshot.Snapshot.Paths;
        var excluded = excludes.Where(e => e.Length > 0).Select(e => Matcher.Of(e, paths, asPattern: true)).ToList();
        var included = includes.Where(i => i.Length > 0).Select(i => Matcher.Of(i, paths)).ToList();
        if (included.Count == 0 || included.Any(m => m.MatchesEverything))
        {
            return new PathSelection(excluded, [], [], all: true);
        }
        var roots = new HashSet<string>(StringComparer.Ordinal);
        var matched = new bool[included.Count];
        // Unreadable folders are the restore's to report; here they only hold no match.
        // Only folders that could hold a match are read: for literal includes, the folders on the way to them.
        bool Descend(string folder) => included.Any(m => m.CouldMatchBelow(folder));
        await foreach (var walked in TreeWalker.WalkAsync(repo, index, TreeWalker.RootOf(snapshot), (_, _) => { }, Descend, ct).ConfigureAwait(false))
        {
            bool isDirectory = walked.Node.Type == NodeType.Directory;
            for (int i = 0; i < included.Count; i++)
            {
                if (included[i].MatchesItself(walked.Path, isDirectory))
                {
                    matched[i] = true;
                    roots.Add(walked.Path);
                }
            }
        }
        for (int i = 0; i < included.Count; i++)
        {
            if (!matched[i])
            {
                throw new KintsugiException(ErrorKind.NotFound, $"{included[i].Text} is not in snapshot {snapshot.ShortId}{included[i].Looked}; `kintsugi ls {snapshot.ShortId}` lists what it holds");
            }
        }
        var containers = new HashSet<string>(StringComparer.Ordinal);
        foreach (string root in roots)
        {
            for (int slash = root.LastIndexOf('/'); slash > 0; slash = root.LastIndexOf('/', slash - 1))
            {
                if (!containers.Add(root[..slash]))
                {
                    break;
                }
            }
        }
        return new PathSelection(excluded, roots, containers, all: false);
    }

    /// <summary>
    /// No include narrows it (excludes may still leave things out): restore --delete then clears the
    /// target itself of what the snapshot lacks, not only folders at or under an include.
    /// </summary>
    public bool IncludesEverything => _all;

    /// <summary>The paths the includes named themselves (not what is under them); empty when there is no include.</summary>
    public IReadOnlyCollection<string> Matched => _roots;

    /// <summary>Whether the path is taken: included (itself or a folder above it) and not excluded.</summary>
    public bool Covers(string path, bool isDirectory) =>
        !Excluded(path, isDirectory) && (_all || UnderRoot(path));

    /// <summary>As <see cref="Covers"/>, and also a folder above what is covered, which a restore creates to hold it.</summary>
    public bool Selects(string path, bool isDirectory) =>
        !Excluded(path, isDirectory) && (_all || _containers.Contains(path) || UnderRoot(path));

    private bool Excluded(string path, bool isDirectory) => _excludes.Any(e => e.MatchesItself(path, isDirectory) || e.MatchesAbove(path));

    private bool UnderRoot(string path)
    {
        for (int end = path.Length; end > 0; end = path.LastIndexOf('/', end - 1))
        {
            if (_roots.Contains(path[..end]))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>One pattern: the literal absolute paths it may name, and its glob where it is one.</summary>
    private sealed class Matcher
    {
        private Matcher(string text, IReadOnlyList<string> literals, PathPattern? glob)
        {
            Text = text;
            Literals = literals;
            Glob = glob;
        }

        public string Text { get; }

        public IReadOnlyList<string> Literals { get; }

        public PathPattern? Glob { get; }

        public bool MatchesEverything => Literals.Contains("/");

        /// <summary>Where a plain relative path was looked for, for the error message.</summary>
        public string Looked => Text.StartsWith('/') || Glob is not null ? "" : $" (looked for {string.Join(", ", Literals)})";

        /// <param name="asPattern">
        /// Also take the text as a <see cref="PathPattern"/> even without glob characters, so that an
        /// exclude means what <c>backup --exclude</c> means: <c>node_modules</c> at any depth.
        /// </param>
        public static Matcher Of(string text, IReadOnlyList<string> snapshotPaths, bool asPattern = false)
        {
            string trimmed = text.Length > 1 ? text.TrimEnd('/') : text;
            var literals = new List<string>();
            if (trimmed.StartsWith('/'))
            {
                literals.Add(trimmed);
            }
            else
            {
                string relative = trimmed.StartsWith("./", StringComparison.Ordinal) ? trimmed[2..] : trimmed;
                foreach (string p in snapshotPaths)
                {
                    string name = p[(p.LastIndexOf('/') + 1)..];
                    literals.Add(p == "/" ? "/" + relative : p + "/" + relative);
                    if (name.Length > 0 && (relative == name || relative.StartsWith(name + "/", StringComparison.Ordinal)))
                    {
                        literals.Add(p[..(p.Length - name.Length)] + relative);
                    }
                }
                literals.Add("/" + relative);
            }
            PathPattern? glob = null;
            if (asPattern || text.AsSpan().IndexOfAny("*?[") >= 0)
            {
                try
                {
                    glob = PathPattern.Parse(text);
                }
                catch (KintsugiException e) when (e.Kind == ErrorKind.InvalidInput)
                {
                    // Not a well-formed glob: a name with those characters in it.
                }
            }
            return new Matcher(text, literals.Distinct(StringComparer.Ordinal).ToList(), glob);
        }

        /// <summary>Whether something under the folder <paramref name="folder"/> could be matched itself: always for a glob.</summary>
        public bool CouldMatchBelow(string folder) =>
            Glob is not null || Literals.Any(l => l.Length > folder.Length + 1 && l[folder.Length] == '/' && l.StartsWith(folder, StringComparison.Ordinal));

        /// <summary>The pattern names this very path (not only a folder above it).</summary>
        public bool MatchesItself(string path, bool isDirectory) =>
            Literals.Contains(path, StringComparer.Ordinal)
            || (Glob is not null && Glob.Matches(path, isDirectory) && !MatchesAbove(path));

        /// <summary>The pattern names a folder above the path.</summary>
        public bool MatchesAbove(string path)
        {
            int slash = path.LastIndexOf('/');
            if (slash <= 0)
            {
                return false;
            }
            string parent = path[..slash];
            return Literals.Any(l => l == "/" || parent == l || parent.StartsWith(l + "/", StringComparison.Ordinal))
                || (Glob is not null && Glob.Matches(parent, isDirectory: true));
        }
    }
}
