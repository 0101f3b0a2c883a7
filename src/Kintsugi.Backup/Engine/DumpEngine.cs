using System.Formats.Tar;
using System.IO.Compression;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>How <see cref="DumpEngine"/> writes a folder.</summary>
public enum DumpArchive
{
    /// <summary>A POSIX (PAX) tar stream: modes, owners, mtimes, symlinks, hard links, long names.</summary>
    Tar,
    /// <summary>A zip archive: modes and symlinks in the Unix attributes, mtimes to two seconds, no owners.</summary>
    Zip,
}

/// <summary>
/// Writes one path of a snapshot to a stream without restoring it: a file's bytes as they were
/// backed up, a folder (with everything under it) as a tar or zip archive. Content is read blob by
/// blob through the reader a restore uses, each blob checked against its id, so a tensor file split
/// into pieces comes out byte for byte as it went in, and a damaged blob stops the dump with an
/// error instead of writing wrong bytes. Memory holds one blob at a time, never a whole file.
/// </summary>
public sealed class DumpEngine
{
    private readonly Repository _repo;

    public DumpEngine(Repository repository) => _repo = repository;

    /// <summary>What <paramref name="path"/> is in the snapshot: "/" is its root folder.</summary>
    public async Task<WalkedNode> FindAsync(SnapshotRef snapshot, MasterIndex index, string path, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(path);
        var root = TreeWalker.RootOf(snapshot);
        var node = new Node { Name = "", Type = NodeType.Directory, Mode = 0x1ED, Subtree = root.ToString(), MtimeNs = snapshot.Snapshot.Time.ToUnixTimeMilliseconds() * 1_000_000 };
        string walked = "";
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        foreach (var part in parts)
        {
            if (node.Type != NodeType.Directory || node.Subtree is null)
            {
                throw NotIn(snapshot, path);
            }
            var treeId = BlobId.Parse(node.Subtree);
            var tree = await _repo.LoadTreeAsync(index, treeId, ct).ConfigureAwait(false);
            TreeWalker.ValidateName(part, treeId);
            node = tree.Nodes.FirstOrDefault(n => string.Equals(n.Name, part, StringComparison.Ordinal)) ?? throw NotIn(snapshot, path);
            walked += "/" + part;
        }
        return new WalkedNode(walked.Length == 0 ? "/" : walked, node, parts.Length);
    }

    private static KintsugiException NotIn(SnapshotRef snapshot, string path) =>
        new(ErrorKind.NotFound, $"{path} is not in snapshot {snapshot.ShortId}; `kintsugi ls {snapshot.ShortId}` lists what it holds and `kintsugi find NAME` searches every snapshot");

    /// <summary>
    /// Writes <paramref name="path"/> of <paramref name="snapshot"/> to <paramref name="output"/>:
    /// a file's content, a folder as <paramref name="archive"/>. A symlink or other special file
    /// alone is refused (it has no bytes to write); inside a folder it goes into the archive.
    /// </summary>
    public async Task DumpAsync(SnapshotRef snapshot, string path, Stream output, DumpArchive archive = DumpArchive.Tar, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        var index = await _repo.LoadIndexAsync(ct: ct).ConfigureAwait(false);
        var found = await FindAsync(snapshot, index, path, ct).ConfigureAwait(false);
        var reader = new BlobReader(_repo, index);
        switch (found.Node.Type)
        {
            case NodeType.File:
                await using (var content = new FileContentStream(reader, ContentEntries(index, found.Path, found.Node), found.Node.Size))
                {
                    await content.CopyToAsync(output, ct).ConfigureAwait(false);
                }
                break;
            case NodeType.Directory when archive == DumpArchive.Tar:
                await WriteTarAsync(reader, index, found, output, ct).ConfigureAwait(false);
                break;
            case NodeType.Directory:
                await WriteZipAsync(reader, index, found, output, ct).ConfigureAwait(false);
                break;
            default:
                throw new KintsugiException(ErrorKind.InvalidInput,
                    $"{found.Path} is a {found.Node.Type.ToString().ToLowerInvariant()}{(found.Node.LinkTarget is { } t ? $" (to {t})" : "")}, which has no content to dump; dump its folder to get it in an archive");
        }
        await output.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>A file's content blobs, checked before any is read (by dump and restore alike): content kinds only, adding up to the file's size.</summary>
    internal static IndexEntry[] ContentEntries(MasterIndex index, string path, Node node)
    {
        var entries = (node.Content ?? []).Select(c => index.Get(BlobId.Parse(c))).ToArray();
        int wrong = Array.FindIndex(entries, e => !e.Kind.IsContent());
        if (wrong >= 0)
        {
            throw KintsugiException.Corrupt($"file {path}", $"content blob {entries[wrong].Id.Short} is not a data blob");
        }
        long length = entries.Sum(e => (long)e.RawLength);
        if (length != node.Size)
        {
            throw KintsugiException.Corrupt($"file {path}", $"its size {node.Size} does not match its content of {length} bytes");
        }
        return entries;
    }

    /// <summary>The folder's own entry and everything under it, as restic names them: the path in the snapshot without its leading '/'.</summary>
    private async IAsyncEnumerable<WalkedNode> EntriesUnder(MasterIndex index, WalkedNode folder, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (folder.Path != "/")
        {
            yield return folder;
        }
        if (folder.Node.Subtree is null)
        {
            yield break;
        }
        string prefix = folder.Path == "/" ? "" : folder.Path;
        await foreach (var w in TreeWalker.WalkPreOrderAsync(_repo, index, BlobId.Parse(folder.Node.Subtree), prefix, ct: ct).ConfigureAwait(false))
        {
            yield return w;
        }
    }

    private static DateTimeOffset Mtime(Node node) => DateTimeOffset.UnixEpoch.AddTicks(node.MtimeNs / 100);

    private async Task WriteTarAsync(BlobReader reader, MasterIndex index, WalkedNode folder, Stream output, CancellationToken ct)
    {
        var firstName = new Dictionary<(ulong, ulong), string>();
        var writer = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        await using (writer.ConfigureAwait(false))
        {
            await foreach (var w in EntriesUnder(index, folder, ct).ConfigureAwait(false))
            {
                var node = w.Node;
                string name = w.Path.TrimStart('/');
                PaxTarEntry entry;
                FileContentStream? content = null;
                switch (node.Type)
                {
                    case NodeType.Directory:
                        entry = new PaxTarEntry(TarEntryType.Directory, name + "/");
                        break;
                    case NodeType.File when node.Links > 1 && firstName.TryGetValue((node.Device, node.Inode), out var first):
                        entry = new PaxTarEntry(TarEntryType.HardLink, name) { LinkName = first };
                        break;
                    case NodeType.File:
                        if (node.Links > 1)
                        {
                            firstName[(node.Device, node.Inode)] = name;
                        }
                        entry = new PaxTarEntry(TarEntryType.RegularFile, name);
                        content = new FileContentStream(reader, ContentEntries(index, w.Path, node), node.Size);
                        entry.DataStream = content;
                        break;
                    case NodeType.Symlink:
                        entry = new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = node.LinkTarget ?? "" };
                        break;
                    case NodeType.Fifo:
                        entry = new PaxTarEntry(TarEntryType.Fifo, name);
                        break;
                    case NodeType.CharDevice or NodeType.BlockDevice:
                        entry = new PaxTarEntry(node.Type == NodeType.CharDevice ? TarEntryType.CharacterDevice : TarEntryType.BlockDevice, name)
                        {
                            DeviceMajor = (int)(((node.RDevice >> 8) & 0xfff) | ((node.RDevice >> 32) & ~0xfffUL)),
                            DeviceMinor = (int)((node.RDevice & 0xff) | ((node.RDevice >> 12) & ~0xffUL)),
                        };
                        break;
                    default:
                        continue; // a socket: tar has no entry for one, and a restore does not make one either
                }
                entry.Mode = (UnixFileMode)(node.Mode & 0xFFF);
                entry.ModificationTime = Mtime(node);
                entry.Uid = (int)node.Uid;
                entry.Gid = (int)node.Gid;
                try
                {
                    await writer.WriteEntryAsync(entry, ct).ConfigureAwait(false);
                }
                finally
                {
                    if (content is not null)
                    {
                        await content.DisposeAsync().ConfigureAwait(false);
                    }
                }
            }
        }
    }

    private async Task WriteZipAsync(BlobReader reader, MasterIndex index, WalkedNode folder, Stream output, CancellationToken ct)
    {
        var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true);
        await using (zip.ConfigureAwait(false))
        {
            await foreach (var w in EntriesUnder(index, folder, ct).ConfigureAwait(false))
            {
                var node = w.Node;
                string name = w.Path.TrimStart('/');
                // st_mode in the high half of the external attributes, as Info-ZIP writes it.
                uint typeBits = node.Type switch { NodeType.Directory => 0x4000, NodeType.Symlink => 0xA000, NodeType.File => 0x8000, _ => 0 };
                if (typeBits == 0)
                {
                    continue; // FIFOs, devices and sockets have no zip entry
                }
                var entry = zip.CreateEntry(node.Type == NodeType.Directory ? name + "/" : name, node.Type == NodeType.File ? CompressionLevel.Fastest : CompressionLevel.NoCompression);
                entry.ExternalAttributes = (int)((typeBits | (node.Mode & 0xFFF)) << 16);
                var mtime = Mtime(node);
                entry.LastWriteTime = mtime.Year is >= 1980 and <= 2107 ? mtime : new DateTimeOffset(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);
                if (node.Type == NodeType.Directory)
                {
                    continue;
                }
                var target = await entry.OpenAsync(ct).ConfigureAwait(false);
                await using (target.ConfigureAwait(false))
                {
                    if (node.Type == NodeType.Symlink)
                    {
                        await target.WriteAsync(System.Text.Encoding.UTF8.GetBytes(node.LinkTarget ?? ""), ct).ConfigureAwait(false);
                    }
                    else
                    {
                        await using var content = new FileContentStream(reader, ContentEntries(index, w.Path, node), node.Size);
                        await content.CopyToAsync(target, ct).ConfigureAwait(false);
                    }
                }
            }
        }
    }
}

/// <summary>
/// A file's content read blob by blob, in order, each checked against its id as it is read. It
/// says it can seek (tar writers ask for the length first) but only ever moves forward.
/// </summary>
internal sealed class FileContentStream(BlobReader reader, IndexEntry[] entries, long length) : Stream
{
    private byte[] _blob = [];
    private int _blobLength, _blobOffset, _next;
    private long _position;

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => length;

    public override long Position
    {
        get => _position;
        set
        {
            if (value != _position)
            {
                throw new NotSupportedException("a file's content is read once, in order");
            }
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_blobOffset == _blobLength)
        {
            if (_next == entries.Length)
            {
                return 0;
            }
            var entry = entries[_next++];
            if (_blob.Length < entry.RawLength)
            {
                _blob = GC.AllocateUninitializedArray<byte>((int)entry.RawLength);
            }
            await reader.ReadAsync(entry, _blob.AsMemory(0, (int)entry.RawLength), cancellationToken).ConfigureAwait(false);
            (_blobLength, _blobOffset) = ((int)entry.RawLength, 0);
        }
        int n = Math.Min(buffer.Length, _blobLength - _blobOffset);
        _blob.AsMemory(_blobOffset, n).CopyTo(buffer);
        _blobOffset += n;
        _position += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var rented = new byte[buffer.Length];
        int n = ReadAsync(rented.AsMemory(), CancellationToken.None).AsTask().GetAwaiter().GetResult();
        rented.AsSpan(0, n).CopyTo(buffer);
        return n;
    }

    public override long Seek(long offset, SeekOrigin origin) =>
        (origin == SeekOrigin.Current && offset == 0) || (origin == SeekOrigin.Begin && offset == _position) ? _position
            : throw new NotSupportedException("a file's content is read once, in order");

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
