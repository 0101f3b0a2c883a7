using System.Globalization;
using System.Security.Cryptography;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Harness;

/// <summary>Creating, listing and comparing file trees.</summary>
public static class FileTree
{
    public static byte[] WriteRandom(string path, int size)
    {
        var data = RandomNumberGenerator.GetBytes(size);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, data);
        return data;
    }

    /// <summary>Every file under <paramref name="root"/> (recursively, links not followed) with its size and hash.</summary>
    public static SortedDictionary<string, string> Listing(string root)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var path in Walk(root))
        {
            string rel = Path.GetRelativePath(root, path);
            result[rel] = KindOf(path) switch
            {
                EntryKind.File => string.Create(CultureInfo.InvariantCulture, $"{new FileInfo(path).Length} bytes, sha256 {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)))}"),
                EntryKind.Symlink => "-> " + new FileInfo(path).LinkTarget,
                var kind => kind.ToString(),
            };
        }
        return result;
    }

    /// <summary>Fails the test unless both listings are the same, naming what differs.</summary>
    public static void AssertSameListing(SortedDictionary<string, string> before, SortedDictionary<string, string> after, string what)
    {
        var problems = new List<string>();
        foreach (var (path, desc) in before)
        {
            if (!after.TryGetValue(path, out var now))
            {
                problems.Add($"removed: {path}");
            }
            else if (now != desc)
            {
                problems.Add($"changed: {path}: {desc} -> {now}");
            }
        }
        problems.AddRange(after.Keys.Where(p => !before.ContainsKey(p)).Select(p => $"added: {p}"));
        if (problems.Count > 0)
        {
            throw new XunitException($"{what} changed:\n  " + string.Join("\n  ", problems));
        }
    }

    public static long TotalFileBytes(string root) =>
        Walk(root).Where(p => KindOf(p) == EntryKind.File).Sum(p => new FileInfo(p).Length);

    public enum EntryKind
    {
        Missing,
        File,
        Directory,
        Symlink,
        Other,
    }

    public static EntryKind KindOf(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists && !Directory.Exists(path))
        {
            // FileInfo.Exists is false for a dangling link; LinkTarget still reads it.
            try
            {
                return info.LinkTarget is not null ? EntryKind.Symlink : EntryKind.Missing;
            }
            catch (IOException)
            {
                return EntryKind.Missing;
            }
        }
        if (info.LinkTarget is not null)
        {
            return EntryKind.Symlink;
        }
        if (Directory.Exists(path))
        {
            return EntryKind.Directory;
        }
        return (info.Attributes & (FileAttributes.Device | FileAttributes.ReparsePoint)) != 0 ? EntryKind.Other : EntryKind.File;
    }

    /// <summary>Every entry under <paramref name="root"/>, parents before children; symlinked folders are not entered.</summary>
    public static IEnumerable<string> Walk(string root)
    {
        var stack = new Stack<string>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            string dir = stack.Pop();
            foreach (var entry in Directory.EnumerateFileSystemEntries(dir).Order(StringComparer.Ordinal))
            {
                yield return entry;
                if (KindOf(entry) == EntryKind.Directory)
                {
                    stack.Push(entry);
                }
            }
        }
    }

    /// <summary>
    /// Fails the test unless <paramref name="actual"/> holds exactly what <paramref name="expected"/> holds:
    /// the same names, types, bytes, symlink targets, permissions, and modification times of files and folders.
    /// </summary>
    public static void AssertSameTree(string expected, string actual)
    {
        var problems = new List<string>();
        Compare(expected, actual, ".", problems);
        if (problems.Count > 0)
        {
            throw new XunitException($"{actual} differs from {expected}:\n  " + string.Join("\n  ", problems.Take(40)));
        }
    }

    private static void Compare(string expected, string actual, string rel, List<string> problems)
    {
        var kind = KindOf(expected);
        var actualKind = KindOf(actual);
        if (kind != actualKind)
        {
            problems.Add($"{rel}: expected {kind}, found {actualKind}");
            return;
        }
        switch (kind)
        {
            case EntryKind.Symlink:
                string? target = new FileInfo(expected).LinkTarget, actualTarget = new FileInfo(actual).LinkTarget;
                if (target != actualTarget)
                {
                    problems.Add($"{rel}: symlink to '{target}' expected, found one to '{actualTarget}'");
                }
                return;
            case EntryKind.File:
                if (!File.ReadAllBytes(expected).AsSpan().SequenceEqual(File.ReadAllBytes(actual)))
                {
                    problems.Add($"{rel}: content differs ({new FileInfo(expected).Length} bytes expected, {new FileInfo(actual).Length} found)");
                }
                break;
            case EntryKind.Directory:
                var names = Directory.EnumerateFileSystemEntries(expected).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
                var actualNames = Directory.EnumerateFileSystemEntries(actual).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
                foreach (var extra in actualNames.Except(names, StringComparer.Ordinal))
                {
                    problems.Add($"{rel}/{extra}: not expected");
                }
                foreach (var name in names)
                {
                    Compare(Path.Combine(expected, name!), Path.Combine(actual, name!), rel + "/" + name, problems);
                }
                break;
            default:
                return;
        }
        var mode = File.GetUnixFileMode(expected);
        var actualMode = File.GetUnixFileMode(actual);
        if (mode != actualMode)
        {
            problems.Add($"{rel}: mode {mode} expected, found {actualMode}");
        }
        var mtime = File.GetLastWriteTimeUtc(expected);
        var actualMtime = File.GetLastWriteTimeUtc(actual);
        if (mtime != actualMtime)
        {
            problems.Add($"{rel}: modified {mtime:O} expected, found {actualMtime:O}");
        }
    }

    /// <summary>Gives the owner full access to every folder under <paramref name="root"/>, so it can be deleted.</summary>
    public static void MakeWritable(string root)
    {
        if (KindOf(root) != EntryKind.Directory)
        {
            return;
        }
        File.SetUnixFileMode(root, File.GetUnixFileMode(root) | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            MakeWritable(dir);
        }
    }
}
