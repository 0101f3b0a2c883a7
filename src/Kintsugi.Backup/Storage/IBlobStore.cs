namespace Kintsugi.Backup.Storage;

/// <summary>A named file in a store, with its size and, where the store knows it, when it was last written (default: unknown).</summary>
public readonly record struct StoredFile(string Name, long Size, DateTimeOffset Modified = default);

/// <summary>
/// Where repository files live. Files are written once and never changed in place (locks aside):
/// <see cref="PutAsync"/> is put-if-absent and atomic, so a reader never sees half a file.
/// </summary>
public interface IBlobStore
{
    /// <summary>A human-readable location for messages.</summary>
    string Location { get; }

    /// <summary>Whether the store holds a repository (its config file exists).</summary>
    bool Exists(FileKind kind, string name);

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

    /// <summary>Lists the files of a kind.</summary>
    IReadOnlyList<StoredFile> List(FileKind kind);

    /// <summary>Deletes a file; deleting a missing file is not an error.</summary>
    Task DeleteAsync(FileKind kind, string name, CancellationToken cancellationToken = default);

    /// <summary>Creates the folder structure of a new repository.</summary>
    void Create();
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
