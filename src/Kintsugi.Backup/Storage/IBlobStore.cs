namespace Kintsugi.Backup.Storage;

/// <summary>A named file in a store, with its size.</summary>
public readonly record struct StoredFile(string Name, long Size);

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
