using System.Globalization;
using System.Security.Cryptography;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Platform;
using Kintsugi.Backup.Storage;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

/// <summary>Seeds for randomised tests: KINTSUGI_TEST_SEED when set, else a fresh one; always printed.</summary>
internal static class TestSeed
{
    public static int Get(ITestOutputHelper output)
    {
        string? fromEnv = Environment.GetEnvironmentVariable("KINTSUGI_TEST_SEED");
        int seed = string.IsNullOrWhiteSpace(fromEnv) ? Random.Shared.Next() : int.Parse(fromEnv, CultureInfo.InvariantCulture);
        output.WriteLine($"seed {seed} (rerun with KINTSUGI_TEST_SEED={seed} to reproduce)");
        return seed;
    }
}

/// <summary>
/// A temporary folder for one test, with a repository folder, a source folder and restore targets.
/// Removed on dispose.
/// </summary>
internal sealed class Sandbox : IDisposable
{
    public const string Password = "correct horse battery staple";
    public const string Host = "test-host";

    /// <summary>Cheap Argon2id, so opening a repository costs milliseconds.</summary>
    public static KdfParameters Kdf { get; } = new(8 * 1024, 1, 1);

    /// <summary>Small chunks and packs, so a few MiB make many chunks and several packs.</summary>
    public static RepositoryOptions SmallChunks { get; } = new()
    {
        ChunkMin = 16 * 1024,
        ChunkAverage = 64 * 1024,
        ChunkMax = 256 * 1024,
        PackSize = 1 << 20,
    };

    public Sandbox()
    {
        Root = Path.Combine(Path.GetTempPath(), "kintsugi-tests-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        Directory.CreateDirectory(Root);
        Directory.CreateDirectory(Source);
    }

    public string Root { get; }

    public string RepoPath => Path.Combine(Root, "repo");

    public string Source => Path.Combine(Root, "src");

    public LocalBlobStore Store => new(RepoPath);

    /// <summary>A fresh, not yet existing restore target.</summary>
    public string NewTarget(string name) => Path.Combine(Root, "restore", name);

    /// <summary>Where a restore into <paramref name="target"/> puts the absolute path <paramref name="original"/>.</summary>
    public static string Restored(string target, string original) => target + original;

    public Task<Repository> InitAsync(RepositoryOptions? options = null) =>
        Repository.InitAsync(Store, Password, Kdf, options ?? SmallChunks, Host, "tester", TimeProvider.System);

    public Task<Repository> OpenAsync(string password = Password) =>
        Repository.OpenAsync(Store, password, TimeProvider.System);

    public static async Task<BackupResult> BackupAsync(Repository repo, string path, bool full = false, string host = Host) =>
        await new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [path], Host = host, Full = full });

    public async Task<(string Target, RestoreResult Result)> RestoreAsync(Repository repo, SnapshotRef snapshot, string name)
    {
        string target = NewTarget(name);
        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = Host });
        return (target, result);
    }

    public void Dispose()
    {
        // Give back any permission a test took away, so the folder can be removed.
        if (Directory.Exists(Root))
        {
            foreach (var entry in new DirectoryInfo(Root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = true }))
            {
                if (entry.LinkTarget is null && entry is DirectoryInfo)
                {
                    try
                    {
                        File.SetUnixFileMode(entry.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                    }
                    catch (IOException)
                    {
                    }
                }
            }
            Directory.Delete(Root, recursive: true);
        }
    }
}

/// <summary>Helpers to make and compare file trees.</summary>
internal static class Files
{
    public static byte[] RandomBytes(Random rng, int length)
    {
        var data = new byte[length];
        rng.NextBytes(data);
        return data;
    }

    /// <summary>Bytes that compress well (text with some variety).</summary>
    public static byte[] CompressibleBytes(Random rng, int length)
    {
        var data = new byte[length];
        var words = new[] { "tensor ", "weight ", "layer ", "bias ", "norm ", "attention ", "0.125 ", "\n" };
        int i = 0;
        while (i < length)
        {
            var w = words[rng.Next(words.Length)];
            for (int j = 0; j < w.Length && i < length; j++)
            {
                data[i++] = (byte)w[j];
            }
        }
        return data;
    }

    public static void Write(string path, byte[] content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content);
    }

    /// <summary>Every file, folder and link under <paramref name="root"/> with its size (-1 for folders and links), relative paths.</summary>
    public static SortedDictionary<string, long> Listing(string root, Func<string, bool>? exclude = null)
    {
        var result = new SortedDictionary<string, long>(StringComparer.Ordinal);
        if (!Directory.Exists(root))
        {
            return result;
        }
        foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            string rel = Path.GetRelativePath(root, entry.FullName);
            if (exclude?.Invoke(rel) == true)
            {
                continue;
            }
            result[rel] = entry is FileInfo { LinkTarget: null } f ? f.Length : -1;
        }
        return result;
    }

    /// <summary>Sum of the sizes of all files in a folder.</summary>
    public static long TotalSize(string root) => Listing(root).Values.Where(v => v > 0).Sum();

    /// <summary>Sets a path's mtime to the nanosecond.</summary>
    public static void SetMtime(string path, long mtimeNs) => Posix.SetTimes(path, mtimeNs);

    /// <summary>
    /// Asserts that <paramref name="restored"/> is <paramref name="original"/> again: same entries, types,
    /// content byte for byte, link targets, permission bits, owners and nanosecond mtimes, and hard
    /// links that share an inode in the original share one in the copy.
    /// </summary>
    public static void AssertSameTree(string original, string restored)
    {
        var left = Walk(original);
        var right = Walk(restored);
        Assert.Equal(left.Keys.ToList(), right.Keys.ToList());
        var inodeMap = new Dictionary<ulong, ulong>();
        foreach (var rel in left.Keys)
        {
            string a = Path.Combine(original, rel), b = Path.Combine(restored, rel);
            var sa = left[rel];
            var sb = right[rel];
            Assert.True((sa.Mode & 0xF000) == (sb.Mode & 0xF000), $"{rel}: type {sa.Mode:x} restored as {sb.Mode:x}");
            if (sa.IsSymlink)
            {
                Assert.Equal(new FileInfo(a).LinkTarget, new FileInfo(b).LinkTarget);
            }
            else
            {
                Assert.True(sa.Permissions == sb.Permissions, $"{rel}: mode {Convert.ToString(sa.Permissions, 8)} restored as {Convert.ToString(sb.Permissions, 8)}");
            }
            Assert.True(sa.MtimeNs == sb.MtimeNs, $"{rel}: mtime {sa.MtimeNs} restored as {sb.MtimeNs}");
            if (Posix.IsRoot)
            {
                Assert.True(sa.Uid == sb.Uid && sa.Gid == sb.Gid, $"{rel}: owner {sa.Uid}:{sa.Gid} restored as {sb.Uid}:{sb.Gid}");
            }
            if (sa.IsRegular)
            {
                Assert.True(sa.Size == sb.Size, $"{rel}: size {sa.Size} restored as {sb.Size}");
                Assert.True(SameContent(a, b), $"{rel}: content differs");
                if (sa.Links > 1)
                {
                    if (inodeMap.TryGetValue(sa.Inode, out var expected))
                    {
                        Assert.True(expected == sb.Inode, $"{rel}: hard link restored as a separate file");
                    }
                    else
                    {
                        inodeMap[sa.Inode] = sb.Inode;
                    }
                    Assert.True(sa.Links == sb.Links, $"{rel}: {sa.Links} links restored as {sb.Links}");
                }
            }
        }
    }

    private static SortedDictionary<string, FileStatus> Walk(string root)
    {
        var result = new SortedDictionary<string, FileStatus>(StringComparer.Ordinal) { [""] = Posix.LStat(root) };
        foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
        {
            result[Path.GetRelativePath(root, entry.FullName)] = Posix.LStat(entry.FullName);
        }
        return result;
    }

    public static bool SameContent(string a, string b)
    {
        using var fa = File.OpenRead(a);
        using var fb = File.OpenRead(b);
        if (fa.Length != fb.Length)
        {
            return false;
        }
        var ba = new byte[1 << 16];
        var bb = new byte[1 << 16];
        while (true)
        {
            int na = fa.ReadAtLeast(ba, ba.Length, throwOnEndOfStream: false);
            int nb = fb.ReadAtLeast(bb, bb.Length, throwOnEndOfStream: false);
            if (na != nb || !ba.AsSpan(0, na).SequenceEqual(bb.AsSpan(0, nb)))
            {
                return false;
            }
            if (na == 0)
            {
                return true;
            }
        }
    }
}

/// <summary>Repository-level helpers: what the index and snapshots hold.</summary>
internal static class RepoFacts
{
    /// <summary>Every file of a snapshot (path inside the snapshot → node).</summary>
    public static async Task<Dictionary<string, Node>> FilesOfAsync(Repository repo, SnapshotRef snapshot)
    {
        var index = await repo.LoadIndexAsync();
        var result = new Dictionary<string, Node>(StringComparer.Ordinal);
        await foreach (var walked in TreeWalker.WalkAsync(repo, index, BlobId.Parse(snapshot.Snapshot.Tree)))
        {
            if (walked.Node.Type == NodeType.File)
            {
                result[walked.Path] = walked.Node;
            }
        }
        return result;
    }

    /// <summary>Every blob (trees and data) a snapshot needs.</summary>
    public static async Task<HashSet<BlobId>> BlobsOfAsync(Repository repo, SnapshotRef snapshot)
    {
        var index = await repo.LoadIndexAsync();
        var root = BlobId.Parse(snapshot.Snapshot.Tree);
        var result = new HashSet<BlobId> { root };
        await foreach (var walked in TreeWalker.WalkAsync(repo, index, root))
        {
            if (walked.Node.Subtree is { } sub)
            {
                result.Add(BlobId.Parse(sub));
            }
            foreach (var c in walked.Node.Content ?? [])
            {
                result.Add(BlobId.Parse(c));
            }
        }
        return result;
    }

    public static string PackPath(Sandbox box, BlobId pack) => box.Store.PathOf(FileKind.Pack, pack.ToString());
}
