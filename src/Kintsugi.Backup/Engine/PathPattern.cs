namespace Kintsugi.Backup.Engine;

/// <summary>
/// One path pattern as restic's --exclude takes it, with gitignore-style <c>**</c>:
/// <c>*</c>, <c>?</c> and <c>[...]</c> match within one path component (a backslash escapes the next
/// character), <c>**</c> matches any number of components, a pattern starting with <c>/</c> is anchored
/// at the start of the absolute path and one without matches at any depth. A pattern that matches a
/// folder also matches everything under it. A trailing <c>/</c> makes the pattern match folders only;
/// a leading <c>!</c> makes it re-include what earlier patterns of a <see cref="PathFilter"/> excluded.
/// </summary>
public sealed class PathPattern
{
    private const string AnyComponents = "**";
    private readonly string[] _parts;

    private PathPattern(string text, bool negated, bool directoryOnly, bool ignoreCase, string[] parts)
    {
        Text = text;
        Negated = negated;
        DirectoryOnly = directoryOnly;
        IgnoreCase = ignoreCase;
        _parts = parts;
    }

    /// <summary>The pattern as written.</summary>
    public string Text { get; }

    /// <summary>Written with a leading <c>!</c>: a match re-includes.</summary>
    public bool Negated { get; }

    /// <summary>Written with a trailing <c>/</c>: matches folders (and so what is under them) only.</summary>
    public bool DirectoryOnly { get; }

    public bool IgnoreCase { get; }

    /// <summary>Parses a pattern; a malformed one (an unclosed <c>[</c>, a trailing backslash) is an <see cref="ErrorKind.InvalidInput"/> error naming it.</summary>
    public static PathPattern Parse(string pattern, bool ignoreCase = false)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        string body = pattern;
        bool negated = body.StartsWith('!');
        if (negated)
        {
            body = body[1..];
        }
        if (body.Length == 0)
        {
            throw Malformed(pattern, "it is empty");
        }
        bool anchored = body.StartsWith('/');
        bool directoryOnly = body.Length > 1 && body.EndsWith('/');
        var parts = new List<string>();
        if (!anchored)
        {
            parts.Add(AnyComponents);
        }
        foreach (var part in body.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".")
            {
                continue;
            }
            if (part == ".." && parts.Count > 0 && parts[^1] != AnyComponents)
            {
                // As path cleaning does: a/../b is b.
                parts.RemoveAt(parts.Count - 1);
                continue;
            }
            if (part == AnyComponents)
            {
                // Consecutive ** are the same as one.
                if (parts.Count == 0 || parts[^1] != AnyComponents)
                {
                    parts.Add(part);
                }
                continue;
            }
            if (CheckComponent(part) is { } problem)
            {
                throw Malformed(pattern, problem);
            }
            parts.Add(part);
        }
        return new PathPattern(pattern, negated, directoryOnly, ignoreCase, [.. parts]);
    }

    /// <summary>
    /// Whether the pattern (its negation aside) matches the absolute path, or a folder above it.
    /// <paramref name="isDirectory"/> says whether the path itself is a folder.
    /// </summary>
    public bool Matches(string absPath, bool isDirectory)
    {
        var path = Components(absPath);
        if (_parts.Length == 0)
        {
            return isDirectory || path.Length > 0 || !DirectoryOnly;
        }
        return MatchPrefix(path, 0, 0, isDirectory);
    }

    /// <summary>
    /// Whether the pattern (its negation and trailing '/' aside) names exactly this path, not only a
    /// folder above it: <c>kintsugi find</c>'s meaning.
    /// </summary>
    public bool MatchesWhole(string absPath)
    {
        var path = Components(absPath);
        return _parts.Length == 0 ? path.Length == 0 : MatchWhole(path, 0, 0);
    }

    /// <summary>
    /// Whether the pattern could match the folder at <paramref name="absDirectory"/> or anything under
    /// it: a folder a restore with this pattern as an include must enter.
    /// </summary>
    public bool CouldMatchUnder(string absDirectory) => CouldMatch(Components(absDirectory), 0, 0);

    public override string ToString() => Text;

    private static string[] Components(string absPath) => absPath.Split('/', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The pattern from part <paramref name="pi"/> matches path components from <paramref name="si"/> up to some end (the rest lies under the match).</summary>
    private bool MatchPrefix(string[] path, int pi, int si, bool isDirectory)
    {
        if (pi == _parts.Length)
        {
            // A match must name at least one component; a folder-only pattern needs the matched prefix to be a folder.
            return si > 0 && (!DirectoryOnly || si < path.Length || isDirectory);
        }
        if (_parts[pi] == AnyComponents)
        {
            for (int skip = si; skip <= path.Length; skip++)
            {
                if (MatchPrefix(path, pi + 1, skip, isDirectory))
                {
                    return true;
                }
            }
            return false;
        }
        return si < path.Length && MatchComponent(_parts[pi], path[si], IgnoreCase) && MatchPrefix(path, pi + 1, si + 1, isDirectory);
    }

    private bool MatchWhole(string[] path, int pi, int si)
    {
        if (pi == _parts.Length)
        {
            return si == path.Length;
        }
        if (_parts[pi] == AnyComponents)
        {
            for (int skip = si; skip <= path.Length; skip++)
            {
                if (MatchWhole(path, pi + 1, skip))
                {
                    return true;
                }
            }
            return false;
        }
        return si < path.Length && MatchComponent(_parts[pi], path[si], IgnoreCase) && MatchWhole(path, pi + 1, si + 1);
    }

    private bool CouldMatch(string[] path, int pi, int si)
    {
        if (si == path.Length || pi == _parts.Length)
        {
            // The folder is used up and the rest of the pattern may match below it, or the pattern matched the folder or one above it.
            return si > 0 || pi < _parts.Length || path.Length == 0;
        }
        if (_parts[pi] == AnyComponents)
        {
            return CouldMatch(path, pi + 1, si) || CouldMatch(path, pi, si + 1);
        }
        return MatchComponent(_parts[pi], path[si], IgnoreCase) && CouldMatch(path, pi + 1, si + 1);
    }

    private static KintsugiException Malformed(string pattern, string problem) =>
        new(ErrorKind.InvalidInput, $"pattern \"{pattern}\" is malformed: {problem}");

    /// <summary>Null when the component is a well-formed glob, else what is wrong with it.</summary>
    private static string? CheckComponent(string glob)
    {
        for (int i = 0; i < glob.Length; i++)
        {
            switch (glob[i])
            {
                case '\\':
                    if (i + 1 == glob.Length)
                    {
                        return "it ends in a backslash, which escapes nothing (write \\\\ for a backslash)";
                    }
                    i++;
                    break;
                case '[':
                    ParseClass(glob, i, '\0', false, out int end, out string? problem);
                    if (problem is not null)
                    {
                        return problem;
                    }
                    i = end;
                    break;
                default:
                    break;
            }
        }
        return null;
    }

    /// <summary>Glob match of one path component: * and ? never match a '/', which a component does not hold.</summary>
    private static bool MatchComponent(string glob, string name, bool ignoreCase)
    {
        // Iterative with one backtrack point for the last '*', as a component glob has no nesting.
        int g = 0, n = 0, starG = -1, starN = 0;
        while (n < name.Length)
        {
            if (g < glob.Length)
            {
                char c = glob[g];
                if (c == '*')
                {
                    starG = g++;
                    starN = n;
                    continue;
                }
                if (c == '?')
                {
                    g++;
                    n++;
                    continue;
                }
                if (c == '[')
                {
                    if (ParseClass(glob, g, name[n], ignoreCase, out int end, out _))
                    {
                        g = end + 1;
                        n++;
                        continue;
                    }
                }
                else
                {
                    int width = c == '\\' ? 2 : 1;
                    if (SameChar(glob[g + width - 1], name[n], ignoreCase))
                    {
                        g += width;
                        n++;
                        continue;
                    }
                }
            }
            if (starG < 0)
            {
                return false;
            }
            g = starG + 1;
            n = ++starN;
        }
        while (g < glob.Length && glob[g] == '*')
        {
            g++;
        }
        return g == glob.Length;
    }

    /// <summary>
    /// Reads the class starting at <paramref name="start"/> ('['): <paramref name="end"/> is its ']'.
    /// Returns whether <paramref name="c"/> is in it; <paramref name="problem"/> says why the class is malformed.
    /// A ']' right after '[' (or '[!', '[^') is a literal; '!' or '^' first negates; a-z is a range.
    /// </summary>
    private static bool ParseClass(string glob, int start, char c, bool ignoreCase, out int end, out string? problem)
    {
        problem = null;
        int i = start + 1;
        bool negate = i < glob.Length && glob[i] is '!' or '^';
        if (negate)
        {
            i++;
        }
        bool matched = false;
        bool first = true;
        while (true)
        {
            if (i >= glob.Length)
            {
                end = glob.Length;
                problem = "a '[' is not closed by ']'";
                return false;
            }
            if (glob[i] == ']' && !first)
            {
                end = i;
                return matched != negate;
            }
            first = false;
            if (!ReadClassChar(glob, ref i, out char lo))
            {
                end = glob.Length;
                problem = "a '[' is not closed by ']'";
                return false;
            }
            char hi = lo;
            if (i + 1 < glob.Length && glob[i] == '-' && glob[i + 1] != ']')
            {
                i++;
                if (!ReadClassChar(glob, ref i, out hi))
                {
                    end = glob.Length;
                    problem = "a '[' is not closed by ']'";
                    return false;
                }
                if (hi < lo)
                {
                    end = i;
                    problem = $"the range {lo}-{hi} in [...] runs backwards";
                    return false;
                }
            }
            matched |= InRange(c, lo, hi) || (ignoreCase && (InRange(char.ToLowerInvariant(c), lo, hi) || InRange(char.ToUpperInvariant(c), lo, hi)));
        }
    }

    private static bool ReadClassChar(string glob, ref int i, out char c)
    {
        if (glob[i] == '\\')
        {
            if (i + 1 >= glob.Length)
            {
                c = '\0';
                return false;
            }
            i++;
        }
        c = glob[i++];
        return true;
    }

    private static bool InRange(char c, char lo, char hi) => c >= lo && c <= hi;

    private static bool SameChar(char a, char b, bool ignoreCase) =>
        a == b || (ignoreCase && char.ToLowerInvariant(a) == char.ToLowerInvariant(b));
}

/// <summary>
/// An ordered list of patterns deciding what a backup leaves out: the last pattern that matches a
/// path decides, excluding it or, for a <c>!pattern</c>, including it again.
/// </summary>
public sealed class PathFilter
{
    public PathFilter(IEnumerable<PathPattern> patterns) => Patterns = [.. patterns];

    public IReadOnlyList<PathPattern> Patterns { get; }

    public bool IsEmpty => Patterns.Count == 0;

    /// <summary>Whether the path is left out; a folder that is left out is not entered.</summary>
    public bool IsExcluded(string absPath, bool isDirectory)
    {
        for (int i = Patterns.Count - 1; i >= 0; i--)
        {
            if (Patterns[i].Matches(absPath, isDirectory))
            {
                return !Patterns[i].Negated;
            }
        }
        return false;
    }
}
