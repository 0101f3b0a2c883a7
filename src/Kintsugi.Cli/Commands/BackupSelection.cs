using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;

namespace Kintsugi.Cli.Commands;

/// <summary>The backup options that choose what goes into a snapshot, as restic names them.</summary>
internal sealed partial class BackupSelection
{
    private readonly Option<string[]> _exclude = new("--exclude", "-e") { HelpName = "PATTERN", Description = "Leave out paths matching PATTERN (repeatable): * ? [..] within a name, ** across folders, /… anchored at the root, a trailing / for folders only, !PATTERN includes again (the last match wins)", AllowMultipleArgumentsPerToken = false };
    private readonly Option<string[]> _iexclude = new("--iexclude") { HelpName = "PATTERN", Description = "As --exclude, ignoring the case of letters (repeatable)", AllowMultipleArgumentsPerToken = false };
    private readonly Option<string[]> _excludeFile = new("--exclude-file") { HelpName = "FILE", Description = "Read --exclude patterns from FILE, one a line; blank lines and lines starting with # are skipped, $VAR is replaced from the environment (repeatable)", AllowMultipleArgumentsPerToken = false };
    private readonly Option<string[]> _iexcludeFile = new("--iexclude-file") { HelpName = "FILE", Description = "As --exclude-file, ignoring the case of letters (repeatable)", AllowMultipleArgumentsPerToken = false };
    private readonly Option<string[]> _excludeIfPresent = new("--exclude-if-present") { HelpName = "NAME[:HEADER]", Description = "Leave out what is in a folder that holds a file named NAME, except that file; with NAME:HEADER the file must start with HEADER (repeatable)", AllowMultipleArgumentsPerToken = false };
    private readonly Option<bool> _excludeCaches = new("--exclude-caches") { Description = "Leave out what is in folders marked as caches by a CACHEDIR.TAG file (one starting with the standard signature), except that file" };
    private readonly Option<string?> _excludeLargerThan = new("--exclude-larger-than") { HelpName = "SIZE", Description = "Leave out files larger than SIZE: bytes, or a number with K, M, G or T (powers of 1024), e.g. 500M" };
    private readonly Option<bool> _oneFileSystem = new("--one-file-system", "-x") { Description = "Do not cross into other file systems below the given paths: a mount point is stored as an empty folder" };
    private readonly Option<string[]> _filesFrom = new("--files-from") { HelpName = "FILE", Description = "Also back up the paths listed in FILE ('-' is stdin), one a line; blank lines and lines starting with # are skipped (repeatable)", AllowMultipleArgumentsPerToken = false };
    private readonly Option<string[]> _filesFromVerbatim = new("--files-from-verbatim") { HelpName = "FILE", Description = "As --files-from, but every line is a path exactly as written (no comments, no trimming; empty lines skipped)", AllowMultipleArgumentsPerToken = false };
    private readonly Option<string[]> _filesFromRaw = new("--files-from-raw") { HelpName = "FILE", Description = "As --files-from, but paths are separated by NUL bytes (as `find -print0` writes them)", AllowMultipleArgumentsPerToken = false };

    public IEnumerable<Option> Options => [_exclude, _iexclude, _excludeFile, _iexcludeFile, _excludeIfPresent, _excludeCaches, _excludeLargerThan, _oneFileSystem, _filesFrom, _filesFromVerbatim, _filesFromRaw];

    /// <summary>
    /// The named paths and those of the --files-from options; none at all is a usage error. A listed
    /// path that does not exist is skipped with a warning, as restic skips it (a named one stays the
    /// backup's error); <paramref name="skipped"/> counts them, and if nothing is left that is an error.
    /// </summary>
    public IReadOnlyList<string> Paths(ParseResult parse, IEnumerable<string> named, Action<string> warn, out int skipped)
    {
        var paths = new List<string>(named);
        var listed = new List<(string Path, string Option)>();
        foreach (var file in parse.GetValue(_filesFrom) ?? [])
        {
            listed.AddRange(ReadList(file, "--files-from").Split('\n').Select(l => l.TrimEnd('\r').Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => (l, "--files-from")));
        }
        foreach (var file in parse.GetValue(_filesFromVerbatim) ?? [])
        {
            listed.AddRange(ReadList(file, "--files-from-verbatim").Split('\n').Where(l => l.Length > 0).Select(l => (l, "--files-from-verbatim")));
        }
        foreach (var file in parse.GetValue(_filesFromRaw) ?? [])
        {
            listed.AddRange(ReadList(file, "--files-from-raw").Split('\0').Where(l => l.Length > 0).Select(l => (l, "--files-from-raw")));
        }
        if (paths.Count == 0 && listed.Count == 0)
        {
            throw new UsageException("no paths to back up: name at least one file or folder, or list them with --files-from");
        }
        var missing = listed.Where(l => !Exists(l.Path)).ToList();
        paths.AddRange(listed.Except(missing).Select(l => l.Path));
        if (paths.Count == 0)
        {
            throw new KintsugiException(ErrorKind.NotFound,
                $"none of the paths listed by {string.Join(" and ", missing.Select(m => m.Option).Distinct())} exists ({string.Join(", ", missing.Take(3).Select(m => CliContext.Printable(m.Path)))}{(missing.Count > 3 ? $" and {missing.Count - 3} more" : "")}); nothing to back up: check the list and the current folder");
        }
        foreach (var (path, option) in missing)
        {
            warn($"kintsugi: warning: {CliContext.Printable(path)} from {option} does not exist; skipped");
        }
        skipped = missing.Count;
        return paths;
    }

    /// <summary>Whether the path is there: a dangling symlink is (it is backed up as a link); one that cannot be checked is left to the backup to report.</summary>
    private static bool Exists(string path)
    {
        try
        {
            return Path.Exists(path) || new FileInfo(path).LinkTarget is not null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return true;
        }
    }

    /// <summary>Fills the request's exclude settings; a malformed pattern, a missing file or a bad size is a usage error naming it.</summary>
    public BackupRequest Apply(ParseResult parse, BackupRequest request)
    {
        var patterns = new List<PathPattern>();
        AddPatterns(patterns, parse.GetValue(_exclude), parse.GetValue(_excludeFile), ignoreCase: false);
        AddPatterns(patterns, parse.GetValue(_iexclude), parse.GetValue(_iexcludeFile), ignoreCase: true);
        var markers = new List<ExcludeMarker>();
        foreach (var spec in parse.GetValue(_excludeIfPresent) ?? [])
        {
            try
            {
                markers.Add(ExcludeMarker.Parse(spec));
            }
            catch (KintsugiException e)
            {
                throw new UsageException($"--exclude-if-present: {e.Message}");
            }
        }
        if (parse.GetValue(_excludeCaches))
        {
            markers.Add(ExcludeMarker.CacheDirTag);
        }
        long? largerThan = parse.GetValue(_excludeLargerThan) is { } size ? ParseSize(size) : null;
        return request with
        {
            Exclude = new PathFilter(patterns),
            ExcludeIfPresent = markers,
            ExcludeLargerThan = largerThan,
            OneFileSystem = parse.GetValue(_oneFileSystem),
        };
    }

    private static void AddPatterns(List<PathPattern> patterns, string[]? given, string[]? files, bool ignoreCase)
    {
        string option = ignoreCase ? "--iexclude" : "--exclude";
        foreach (var text in given ?? [])
        {
            patterns.Add(ParsePattern(text, ignoreCase, option));
        }
        foreach (var file in files ?? [])
        {
            var lines = ReadList(file, option + "-file").Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                string line = lines[i].TrimEnd('\r').Trim();
                if (line.Length == 0 || line.StartsWith('#'))
                {
                    continue;
                }
                patterns.Add(ParsePattern(ExpandVariables(line), ignoreCase, $"{option}-file {file}, line {i + 1}"));
            }
        }
    }

    private static PathPattern ParsePattern(string text, bool ignoreCase, string where)
    {
        try
        {
            return PathPattern.Parse(text, ignoreCase);
        }
        catch (KintsugiException e)
        {
            throw new UsageException($"{where}: {e.Message}");
        }
    }

    /// <summary>$NAME and ${NAME} from the environment, as restic expands exclude-file lines; an unset one is empty.</summary>
    private static string ExpandVariables(string line) =>
        Variable().Replace(line, m => Environment.GetEnvironmentVariable(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value) ?? "");

    [GeneratedRegex(@"\$(?:\{(\w+)\}|(\w+))", RegexOptions.CultureInvariant)]
    private static partial Regex Variable();

    private static string ReadList(string file, string option)
    {
        try
        {
            if (file == "-")
            {
                using var stdin = Console.OpenStandardInput();
                using var reader = new StreamReader(stdin, new UTF8Encoding(false));
                return reader.ReadToEnd();
            }
            return File.ReadAllText(file);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new UsageException($"{option} {file}: no such file; check the path");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option} {file}: cannot read it ({e.Message})");
        }
    }

    /// <summary>Bytes, or a number with K, M, G or T (powers of 1024; a trailing B or iB is allowed), as restic's --exclude-larger-than.</summary>
    internal static long ParseSize(string text) =>
        Rendering.Units.TryParseSize(text, out double bytes) ? (long)Math.Floor(bytes)
            : throw new UsageException($"--exclude-larger-than {text}: a size is a number of bytes, or a number with K, M, G or T (powers of 1024), e.g. 500M");
}
