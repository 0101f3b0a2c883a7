using System.Buffers;
using Kintsugi.Backup.Codecs;
using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>
/// Reads content blobs by their index entry and rebuilds delta blobs: the chain of bases is
/// followed down to a whole blob, which is read, then each delta on the way back up is XORed in,
/// and the result is checked against the id asked for.
/// </summary>
internal sealed class BlobReader(Repository repo, MasterIndex index)
{
    /// <summary>Readers refuse longer chains; writers keep them far shorter (see BackupRequest.DeltaChain).</summary>
    public const int MaxChainLength = 64;

    /// <summary>The entries from <paramref name="entry"/> down to the whole blob its chain rests on.</summary>
    public List<IndexEntry> ChainOf(IndexEntry entry)
    {
        var chain = new List<IndexEntry> { entry };
        while (chain[^1].IsDelta)
        {
            var link = chain[^1];
            if (chain.Count > MaxChainLength)
            {
                throw KintsugiException.Corrupt($"blob {entry.Id.Short}", $"its delta chain is longer than {MaxChainLength} (a cycle?)");
            }
            if (!index.TryGet(link.Base, out var baseEntry))
            {
                throw KintsugiException.Corrupt($"blob {link.Id.Short}", $"its base blob {link.Base.Short} is not in the index");
            }
            if (baseEntry.RawLength != link.RawLength)
            {
                throw KintsugiException.Corrupt($"blob {link.Id.Short}", $"its base blob {link.Base.Short} has another length");
            }
            chain.Add(baseEntry);
        }
        return chain;
    }

    /// <summary>
    /// Reads the plaintext of <paramref name="entry"/> into <paramref name="destination"/> (its raw
    /// length). Every link is authenticated as it is decrypted; the rebuilt content is checked
    /// against the id once, at the top: a wrong link cannot rebuild the right bytes. (check
    /// --read-data rebuilds every delta on its own, so it still names the first bad link.)
    /// </summary>
    public async Task ReadAsync(IndexEntry entry, Memory<byte> destination, CancellationToken ct)
    {
        if (!entry.IsDelta)
        {
            await ReadLinkAsync(entry, destination, ct).ConfigureAwait(false);
        }
        else
        {
            var chain = ChainOf(entry);
            await ReadLinkAsync(chain[^1], destination, ct).ConfigureAwait(false);
            var payload = BufferPool.Shared.Rent((int)entry.RawLength);
            try
            {
                for (int i = chain.Count - 2; i >= 0; i--)
                {
                    await ReadLinkAsync(chain[i], payload.AsMemory(0, (int)entry.RawLength), ct).ConfigureAwait(false);
                    BytePlanes.Xor(destination.Span, payload.AsSpan(0, (int)entry.RawLength));
                }
            }
            finally
            {
                BufferPool.Shared.Return(payload);
            }
        }
        if (repo.Key.IdOf(destination.Span) != entry.Id)
        {
            throw KintsugiException.Corrupt($"blob {entry.Id.Short} in pack {entry.Pack.Short}",
                entry.IsDelta ? "content rebuilt from its delta chain does not match its id" : "content does not match its id");
        }
    }

    /// <summary>Reads a blob's plaintext into a new array.</summary>
    public async Task<byte[]> ReadAsync(BlobId id, CancellationToken ct)
    {
        var entry = index.Get(id);
        var plain = new byte[entry.RawLength];
        await ReadAsync(entry, plain, ct).ConfigureAwait(false);
        return plain;
    }

    /// <summary>Reads, authenticates and decodes one blob's payload (a delta's XOR, or a whole blob's plaintext).</summary>
    private async Task ReadLinkAsync(IndexEntry entry, Memory<byte> destination, CancellationToken ct)
    {
        var sealedBytes = BufferPool.Shared.Rent((int)entry.StoredLength);
        try
        {
            await repo.Store.ReadAtAsync(Storage.FileKind.Pack, entry.Pack.ToString(), entry.Offset, sealedBytes.AsMemory(0, (int)entry.StoredLength), ct).ConfigureAwait(false);
            BlobSealer.Decode(repo.Key, entry, sealedBytes.AsSpan(0, (int)entry.StoredLength), destination.Span);
        }
        finally
        {
            BufferPool.Shared.Return(sealedBytes);
        }
    }
}
