using System.Collections.Concurrent;
using Kintsugi.Backup;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Tests.Shared;

/// <summary>A store in memory for tests: the whole <see cref="IBlobStore"/> contract, nothing on disk.</summary>
public sealed class MemoryBlobStore : IBlobStore
{
    private readonly ConcurrentDictionary<(FileKind Kind, string Name), byte[]> _files = new();

    public string Location => "memory";

    public Task<bool> ExistsAsync(FileKind kind, string name, CancellationToken cancellationToken = default) => Task.FromResult(_files.ContainsKey((kind, name)));

    public Task<bool> IsEmptyAsync(CancellationToken cancellationToken = default) => Task.FromResult(_files.IsEmpty);

    public Task PutAsync(FileKind kind, string name, ReadOnlyMemory<byte> data, bool overwrite = false, CancellationToken cancellationToken = default)
    {
        if (overwrite)
        {
            _files[(kind, name)] = data.ToArray();
        }
        else
        {
            _files.TryAdd((kind, name), data.ToArray());
        }
        return Task.CompletedTask;
    }

    public IPendingFile CreatePending(FileKind kind) => new Pending(this, kind);

    public Task<byte[]> GetAsync(FileKind kind, string name, CancellationToken cancellationToken = default) =>
        _files.TryGetValue((kind, name), out var data)
            ? Task.FromResult(data.ToArray())
            : Task.FromException<byte[]>(new KintsugiException(ErrorKind.Corrupt, $"repository file {kind} {name} is missing; run `kintsugi check` to see what is affected"));

    public ValueTask ReadAtAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_files.TryGetValue((kind, name), out var data))
        {
            return ValueTask.FromException(new KintsugiException(ErrorKind.Corrupt, $"repository file {kind} {name} is missing; run `kintsugi check` to see what is affected"));
        }
        if (offset < 0 || offset + buffer.Length > data.Length)
        {
            return ValueTask.FromException(new KintsugiException(ErrorKind.Corrupt, $"{kind} {name} is damaged (it ends before byte {offset + buffer.Length}); run `kintsugi check --read-data` to see what is affected"));
        }
        data.AsMemory((int)offset, buffer.Length).CopyTo(buffer);
        return ValueTask.CompletedTask;
    }

    public Task<IReadOnlyList<StoredFile>> ListAsync(FileKind kind, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<StoredFile>>([.. _files.Where(f => f.Key.Kind == kind).Select(f => new StoredFile(f.Key.Name, f.Value.Length)).OrderBy(f => f.Name, StringComparer.Ordinal)]);

    public Task DeleteAsync(FileKind kind, string name, CancellationToken cancellationToken = default)
    {
        _files.TryRemove((kind, name), out _);
        return Task.CompletedTask;
    }

    public Task CreateAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    /// <summary>Bytes kept in memory and stored only at commit.</summary>
    private sealed class Pending(MemoryBlobStore store, FileKind kind) : IPendingFile
    {
        private readonly MemoryStream _bytes = new();

        public long Length => _bytes.Length;

        public void Write(ReadOnlySpan<byte> data) => _bytes.Write(data);

        public Task CommitAsync(string name, bool overwrite, CancellationToken cancellationToken) =>
            store.PutAsync(kind, name, _bytes.ToArray(), overwrite, cancellationToken);

        public ValueTask DisposeAsync() => _bytes.DisposeAsync();
    }
}
