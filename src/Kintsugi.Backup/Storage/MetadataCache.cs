using System.Text;

namespace Kintsugi.Backup.Storage;

/// <summary>
/// A local cache of a remote repository's metadata: index files, snapshot files and tree blobs (never
/// packs), in <c>&lt;root&gt;/&lt;repository id&gt;/{index,snapshots,trees}/</c>. Everything cached is
/// stored as the repository holds it (encrypted), so the cache reveals no more than the bucket.
/// A cached file is used only after the caller's check passes (index and snapshot files are named by
/// the hash of their bytes; a tree is authenticated and checked against its id), so a damaged or stale
/// cache costs a download, never a wrong answer. The cache is optional: any failure to read or write
/// it is ignored.
/// </summary>
public sealed class MetadataCache
{
    private MetadataCache(string directory) => Directory = directory;

    /// <summary>The repository's folder in the cache.</summary>
    public string Directory { get; }

    /// <summary>Opens (creating) the cache of repository <paramref name="repositoryId"/> under <paramref name="root"/>; null when the cache cannot be used.</summary>
    public static MetadataCache? Open(string root, string repositoryId)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        if (repositoryId.Length == 0 || !repositoryId.All(char.IsAsciiHexDigit))
        {
            return null;
        }
        try
        {
            string dir = Path.Combine(root, repositoryId);
            System.IO.Directory.CreateDirectory(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            System.IO.Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            string tag = Path.Combine(root, "CACHEDIR.TAG");
            if (!File.Exists(tag))
            {
                // https://bford.info/cachedir/: backup tools (Kintsugi's own --exclude-caches included) skip this folder.
                File.WriteAllText(tag, "Signature: 8a477f597d28d172789f06886806bc55\n# This folder is Kintsugi's cache of remote repositories' metadata; it can be deleted at any time.\n", Encoding.ASCII);
            }
            return new MetadataCache(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The cached bytes of <paramref name="name"/> in <paramref name="folder"/> if present and <paramref name="valid"/>; an invalid file is deleted.</summary>
    public byte[]? Get(string folder, string name, Func<byte[], bool> valid)
    {
        ArgumentNullException.ThrowIfNull(valid);
        string path = PathOf(folder, name);
        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        bool ok;
        try
        {
            ok = valid(data);
        }
        catch (KintsugiException)
        {
            ok = false;
        }
        if (!ok)
        {
            Remove(folder, name);
            return null;
        }
        return data;
    }

    /// <summary>Stores a file (atomically: a reader sees the whole file or none).</summary>
    public void Put(string folder, string name, ReadOnlySpan<byte> data)
    {
        string path = PathOf(folder, name);
        string temp = $"{path}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp";
        try
        {
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                f.Write(data);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception e2) when (e2 is IOException or UnauthorizedAccessException)
            {
                // The cache is optional.
            }
        }
    }

    public void Remove(string folder, string name)
    {
        try
        {
            File.Delete(PathOf(folder, name));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The cache is optional.
        }
    }

    /// <summary>Deletes the files of <paramref name="folder"/> whose names are not in <paramref name="keep"/> (files the repository no longer has).</summary>
    public void Retain(string folder, IReadOnlySet<string> keep)
    {
        ArgumentNullException.ThrowIfNull(keep);
        try
        {
            var dir = new DirectoryInfo(Path.Combine(Directory, folder));
            if (!dir.Exists)
            {
                return;
            }
            foreach (var file in dir.EnumerateFiles())
            {
                if (!keep.Contains(file.Name))
                {
                    file.Delete();
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The cache is optional.
        }
    }

    private string PathOf(string folder, string name)
    {
        if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal) || name.StartsWith('.'))
        {
            throw new ArgumentException($"not a cache name: {name}", nameof(name));
        }
        return Path.Combine(Directory, folder, name);
    }
}
