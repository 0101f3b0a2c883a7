namespace Kintsugi.Backup.Storage;

/// <summary>A named file in a store, with its size and, where the store knows it, when it was last written (default: unknown).</summary>
public readonly record struct StoredFile(string Name, long Size, DateTimeOffset Modified = default);

/// <summary>What a store can do beyond the common contract, so callers ask instead of testing for a type.</summary>
public sealed record StoreCapabilities
{
    /// <summary>Files live on another machine: a request costs time and money, metadata is worth caching.</summary>
    public bool IsRemote { get; init; }

    /// <summary>Writers that die leave temporary files (or uploads) behind that <see cref="IBlobStore.CleanTemporaryFilesAsync"/> removes.</summary>
    public bool HasTemporaryFiles { get; init; }

    public static readonly StoreCapabilities Local = new() { HasTemporaryFiles = true };

    public static readonly StoreCapabilities Remote = new() { IsRemote = true };
}

/// <summary>
/// Where repository files live. Files are written once and never changed in place (locks aside):
/// <see cref="PutAsync"/> is put-if-absent and atomic, so a reader never sees half a file.
/// A file that is not there is reported as <see cref="KintsugiException"/> with
/// <see cref="ErrorKind.Corrupt"/> (a repository file the repository needs is missing), never as a
/// transient error; transient errors of a remote store are retried inside the store.
/// </summary>
public interface IBlobStore
{
    /// <summary>A human-readable location for messages (a folder, or a URL without credentials).</summary>
    string Location { get; }

    StoreCapabilities Capabilities => StoreCapabilities.Local;

    /// <summary>Where this store's metadata may be cached (remote stores: <see cref="StoreOptions.CacheDirectory"/>); null: not cached.</summary>
    string? CacheDirectory => null;

    /// <summary>Requests made and bytes moved so far (all zero for a local folder).</summary>
    StoreStatistics Statistics => StoreStatistics.None;

    /// <summary>Whether the file exists.</summary>
    Task<bool> ExistsAsync(FileKind kind, string name, CancellationToken cancellationToken = default);

    /// <summary>Whether the location holds nothing at all (init refuses a non-empty folder or prefix).</summary>
    Task<bool> IsEmptyAsync(CancellationToken cancellationToken = default);

    /// <summary>Stores <paramref name="data"/> under the name, atomically; a file that already exists is left as it is, unless <paramref name="overwrite"/>.</summary>
    Task PutAsync(FileKind kind, string name, ReadOnlyMemory<byte> data, bool overwrite = false, CancellationToken cancellationToken = default);

    /// <summary>
    /// Starts a file whose name is known only once it is complete (a pack is named by its hash).
    /// Nothing is visible under any name until <see cref="IPendingFile.CommitAsync"/>; disposing
    /// an uncommitted file discards it.
    /// </summary>
    IPendingFile CreatePending(FileKind kind);

    /// <summary>Reads a whole file.</summary>
    Task<byte[]> GetAsync(FileKind kind, string name, CancellationToken cancellationToken = default);

    /// <summary>Reads <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; throws if the file is shorter.</summary>
    ValueTask ReadAtAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default);

    /// <summary>Lists the files of a kind, sorted by name (ordinal).</summary>
    Task<IReadOnlyList<StoredFile>> ListAsync(FileKind kind, CancellationToken cancellationToken = default);

    /// <summary>Deletes a file; deleting a missing file is not an error.</summary>
    Task DeleteAsync(FileKind kind, string name, CancellationToken cancellationToken = default);

    /// <summary>Creates the structure of a new repository (folders; nothing for object stores).</summary>
    Task CreateAsync(CancellationToken cancellationToken = default);

    /// <summary>Removes what writers that died left behind, older than <paramref name="olderThan"/>; returns how many.</summary>
    Task<int> CleanTemporaryFilesAsync(TimeSpan olderThan, DateTimeOffset now, CancellationToken cancellationToken = default) => Task.FromResult(0);
}

/// <summary>A file being written to a store, appended to in order, and named when complete.</summary>
public interface IPendingFile : IAsyncDisposable
{
    /// <summary>The bytes written so far.</summary>
    long Length { get; }

    /// <summary>Appends <paramref name="data"/>.</summary>
    void Write(ReadOnlySpan<byte> data);

    /// <summary>Makes the file durable and gives it its name, atomically; an existing file of that name is kept unless <paramref name="overwrite"/>.</summary>
    Task CommitAsync(string name, bool overwrite, CancellationToken cancellationToken);
}
