using System.Security.Cryptography;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Parity;

/// <summary>
/// A parity group being changed: members are added (placed at the end of the emptiest column that
/// has room) or removed, their contributions XORed into the parity columns held in memory, and the
/// stripe hashes of every touched stripe recomputed. Parity is linear, so neither needs the other
/// members' bytes — only the stripes a change shares with them, which are checked against their old
/// hashes first so that damage is never folded into a new hash.
/// </summary>
internal sealed class ParityGroupBuilder
{
    private const int ReadChunk = 1 << 20;
    /// <summary>Files up to this size are read once, whole, when they join a group.</summary>
    private const int WholeReadLimit = 64 << 20;

    private readonly IBlobStore _store;
    private readonly ReedSolomon _rs;
    private readonly List<ParityMember> _members;
    private readonly List<ParityMember> _oldMembers;
    private readonly long[] _heights;
    private readonly byte[][] _parity;
    private readonly int _oldRows;
    private readonly byte[] _oldHashes;
    private readonly HashSet<(int Column, int Row)> _touched = [];
    /// <summary>Hashes of stripes that one added file fills alone, computed when it was read.</summary>
    private readonly Dictionary<(int Column, int Row), byte[]> _known = [];
    private int _rowsAllocated;

    private ParityGroupBuilder(IBlobStore store, int k, int m, int stripe, long capacity, long sequence, string? replaces,
        List<ParityMember> members, byte[][] parity, int oldRows, byte[] oldHashes)
    {
        _store = store;
        _rs = new ReedSolomon(k, m);
        DataColumns = k;
        ParityColumns = m;
        StripeSize = stripe;
        ColumnCapacity = capacity;
        Sequence = sequence;
        Replaces = replaces;
        _members = members;
        _oldMembers = [.. members];
        _parity = parity;
        _oldRows = oldRows;
        _rowsAllocated = oldRows;
        _oldHashes = oldHashes;
        _heights = new long[k];
        foreach (var x in members)
        {
            _heights[x.Column] = Math.Max(_heights[x.Column], x.End);
        }
    }

    public int DataColumns { get; }
    public int ParityColumns { get; }
    public int StripeSize { get; }
    public long ColumnCapacity { get; }
    public long Sequence { get; }
    /// <summary>The parity file this builder's result replaces, if it extends or shrinks an existing group.</summary>
    public string? Replaces { get; }
    public bool Changed { get; private set; }
    public IReadOnlyList<ParityMember> Members => _members;

    public static ParityGroupBuilder New(IBlobStore store, ParitySettings settings, long sequence) =>
        new(store, settings.DataColumns, settings.ParityColumns, settings.StripeSize, settings.ColumnCapacity, sequence, null,
            [], [.. Enumerable.Range(0, settings.ParityColumns).Select(_ => Array.Empty<byte>())], 0, []);

    /// <summary>Loads an existing group's parity to change it; null when its parity stripes do not match their hashes (repair's business).</summary>
    public static async Task<ParityGroupBuilder?> OpenAsync(IBlobStore store, string name, ParityGroup group, CancellationToken ct)
    {
        var parity = new byte[group.ParityColumns][];
        var hash = new byte[32];
        for (int j = 0; j < group.ParityColumns; j++)
        {
            parity[j] = new byte[group.ColumnLength];
            try
            {
                await store.ReadAtAsync(FileKind.Parity, name, group.HeaderLength + (j * group.ColumnLength), parity[j], ct).ConfigureAwait(false);
            }
            catch (KintsugiException)
            {
                return null;
            }
            for (int r = 0; r < group.Rows; r++)
            {
                ParityGroup.HashStripe(parity[j].AsSpan(r * group.StripeSize, group.StripeSize), hash);
                if (!hash.AsSpan(0, ParityGroup.StripeHashLength).SequenceEqual(group.StripeHash(group.DataColumns + j, r)))
                {
                    return null;
                }
            }
        }
        return new ParityGroupBuilder(store, group.DataColumns, group.ParityColumns, group.StripeSize, group.ColumnCapacity, group.Sequence, name,
            [.. group.Members], parity, group.Rows, group.StripeHashes);
    }

    public bool SameGeometry(ParitySettings s) =>
        s.DataColumns == DataColumns && s.ParityColumns == ParityColumns && s.StripeSize == StripeSize && s.ColumnCapacity == ColumnCapacity;

    /// <summary>The column a file of this length would go to, or -1 when the group has no room for it.</summary>
    public int Place(long length)
    {
        int best = -1;
        for (int c = 0; c < DataColumns; c++)
        {
            bool fits = _heights[c] == 0 || _heights[c] + length <= ColumnCapacity;
            if (fits && (best < 0 || _heights[c] < _heights[best]))
            {
                best = c;
            }
        }
        return best;
    }

    /// <summary>
    /// Adds a file at the end of <paramref name="column"/>. Returns null when it was added, or why not:
    /// it cannot be read whole, or (for files named by their hash) its bytes do not match its name.
    /// </summary>
    public async Task<string?> AddAsync(FileKind kind, string name, long length, int column, CancellationToken ct)
    {
        if (length > WholeReadLimit)
        {
            return await AddStreamedAsync(kind, name, length, column, ct).ConfigureAwait(false);
        }
        // One read: hash, parity and the hashes of the stripes the file fills alone all come from memory.
        var content = BufferPool.Shared.Rent((int)Math.Max(length, 1));
        try
        {
            if (!await ReadWholeAsync(_store, kind, name, content.AsMemory(0, (int)length), ct).ConfigureAwait(false))
            {
                return "it could not be read whole";
            }
            // The file's SHA-256 on one core while the other adds it to the parity and hashes its stripes.
            var sha = new byte[32];
            var member = new ParityMember(kind, name, column, _heights[column], length, sha);
            EnsureRows(member.End);
            var known = new List<((int, int) Stripe, byte[] Hash)>();
            Parallel.Invoke(
                () => SHA256.HashData(content.AsSpan(0, (int)length), sha),
                () =>
                {
                    AccumulateInMemory(member, content.AsSpan(0, (int)length));
                    var full = new byte[32];
                    for (long r = (member.Offset + StripeSize - 1) / StripeSize; (r + 1) * StripeSize <= member.End; r++)
                    {
                        ParityGroup.HashStripe(content.AsSpan((int)((r * StripeSize) - member.Offset), StripeSize), full);
                        known.Add(((column, (int)r), full.AsSpan(0, ParityGroup.StripeHashLength).ToArray()));
                    }
                });
            if (ParityFile.NamedByHash(kind) && Convert.ToHexStringLower(sha) != name)
            {
                // XOR is its own inverse: adding the bytes again takes them out.
                AccumulateInMemory(member, content.AsSpan(0, (int)length));
                return "its bytes do not match its name (run `kintsugi check --read-data`)";
            }
            foreach (var (stripe, hash) in known)
            {
                _known[stripe] = hash;
            }
            _members.Add(member);
            _heights[column] = member.End;
            Touch(member);
            Changed = true;
            return null;
        }
        finally
        {
            BufferPool.Shared.Return(content);
        }
    }

    private async Task<string?> AddStreamedAsync(FileKind kind, string name, long length, int column, CancellationToken ct)
    {
        var sha = await HashFileAsync(_store, kind, name, length, ct).ConfigureAwait(false);
        if (sha is null)
        {
            return "it could not be read whole";
        }
        if (ParityFile.NamedByHash(kind) && Convert.ToHexStringLower(sha) != name)
        {
            return "its bytes do not match its name (run `kintsugi check --read-data`)";
        }
        var member = new ParityMember(kind, name, column, _heights[column], length, sha);
        EnsureRows(member.End);
        if (!await AccumulateAsync(member, ct).ConfigureAwait(false))
        {
            return "it could not be read whole";
        }
        _members.Add(member);
        _heights[column] = member.End;
        Touch(member);
        Changed = true;
        return null;
    }

    /// <summary>XORs <paramref name="data"/>, the member's bytes from <paramref name="at"/> on, into the parity columns.</summary>
    private void AccumulateInMemory(ParityMember member, ReadOnlySpan<byte> data, long at = 0)
    {
        var slices = new Memory<byte>[ParityColumns];
        for (int j = 0; j < ParityColumns; j++)
        {
            slices[j] = _parity[j].AsMemory((int)(member.Offset + at), data.Length);
        }
        _rs.Accumulate(member.Column, data, slices);
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes, and checks that the file is not longer.</summary>
    private static async Task<bool> ReadWholeAsync(IBlobStore store, FileKind kind, string name, Memory<byte> buffer, CancellationToken ct)
    {
        try
        {
            await store.ReadAtAsync(kind, name, 0, buffer, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KintsugiException or IOException)
        {
            return false;
        }
        try
        {
            await store.ReadAtAsync(kind, name, buffer.Length, new byte[1], ct).ConfigureAwait(false);
            return false;
        }
        catch (Exception e) when (e is KintsugiException or IOException)
        {
            return true;
        }
    }

    /// <summary>Removes members (their files must still hold the bytes recorded); false when one does not, and then nothing is changed that matters: the caller drops the group.</summary>
    public async Task<bool> RemoveAsync(IReadOnlyCollection<ParityMember> members, CancellationToken ct)
    {
        foreach (var member in members)
        {
            var sha = await HashFileAsync(_store, member.Kind, member.Name, member.Length, ct).ConfigureAwait(false);
            if (sha is null || !sha.AsSpan().SequenceEqual(member.Sha256))
            {
                return false;
            }
        }
        foreach (var member in members)
        {
            if (!await AccumulateAsync(member, ct).ConfigureAwait(false))
            {
                return false;
            }
            _members.Remove(member);
            _known.Clear();
            Touch(member);
            Changed = true;
        }
        for (int c = 0; c < DataColumns; c++)
        {
            _heights[c] = _members.Where(x => x.Column == c).Select(x => x.End).DefaultIfEmpty(0).Max();
        }
        return true;
    }

    /// <summary>Recomputes the touched stripes' hashes and returns the finished group and its parity columns; null when a stripe shared with an untouched member no longer matches its old hash.</summary>
    public async Task<(ParityGroup Group, byte[][] Parity)?> FinishAsync(CancellationToken ct)
    {
        long height = _heights.DefaultIfEmpty(0).Max();
        int rows = (int)((height + StripeSize - 1) / StripeSize);
        int columns = DataColumns + ParityColumns;
        var hashes = new byte[(long)columns * rows * ParityGroup.StripeHashLength];
        var stripe = new byte[StripeSize];
        var full = new byte[32];
        for (int c = 0; c < DataColumns; c++)
        {
            var oldInColumn = _oldMembers.Where(x => x.Column == c).OrderBy(x => x.Offset).ToList();
            var newInColumn = _members.Where(x => x.Column == c).OrderBy(x => x.Offset).ToList();
            for (int r = 0; r < rows; r++)
            {
                int target = ((c * rows) + r) * ParityGroup.StripeHashLength;
                if (r < _oldRows && !_touched.Contains((c, r)))
                {
                    _oldHashes.AsSpan(((c * _oldRows) + r) * ParityGroup.StripeHashLength, ParityGroup.StripeHashLength).CopyTo(hashes.AsSpan(target));
                    continue;
                }
                if (_known.TryGetValue((c, r), out var known) && (r >= _oldRows || !oldInColumn.Any(x => x.Offset < (long)(r + 1) * StripeSize && x.End > (long)r * StripeSize)))
                {
                    known.CopyTo(hashes.AsSpan(target));
                    continue;
                }
                if (r < _oldRows)
                {
                    // The stripe held other members' bytes before: they must still be what was protected.
                    if (!await AssembleAsync(_store, oldInColumn, r, StripeSize, stripe, ct).ConfigureAwait(false))
                    {
                        return null;
                    }
                    ParityGroup.HashStripe(stripe, full);
                    if (!full.AsSpan(0, ParityGroup.StripeHashLength).SequenceEqual(_oldHashes.AsSpan(((c * _oldRows) + r) * ParityGroup.StripeHashLength, ParityGroup.StripeHashLength)))
                    {
                        return null;
                    }
                }
                if (!await AssembleAsync(_store, newInColumn, r, StripeSize, stripe, ct).ConfigureAwait(false))
                {
                    return null;
                }
                ParityGroup.HashStripe(stripe, full);
                full.AsSpan(0, ParityGroup.StripeHashLength).CopyTo(hashes.AsSpan(target));
            }
        }
        var parity = new byte[ParityColumns][];
        for (int j = 0; j < ParityColumns; j++)
        {
            parity[j] = _parity[j].Length == (long)rows * StripeSize ? _parity[j] : _parity[j].AsSpan(0, (int)Math.Min(_parity[j].Length, (long)rows * StripeSize)).ToArray();
            if (parity[j].Length < (long)rows * StripeSize)
            {
                Array.Resize(ref parity[j], rows * StripeSize);
            }
            for (int r = 0; r < rows; r++)
            {
                ParityGroup.HashStripe(parity[j].AsSpan(r * StripeSize, StripeSize), full);
                full.AsSpan(0, ParityGroup.StripeHashLength).CopyTo(hashes.AsSpan((((DataColumns + j) * rows) + r) * ParityGroup.StripeHashLength));
            }
        }
        var group = new ParityGroup
        {
            DataColumns = DataColumns,
            ParityColumns = ParityColumns,
            StripeSize = StripeSize,
            Rows = rows,
            ColumnCapacity = ColumnCapacity,
            Sequence = Sequence,
            Members = [.. _members],
            StripeHashes = hashes,
        };
        return (group, parity);
    }

    private void Touch(ParityMember member)
    {
        if (member.Length == 0)
        {
            return;
        }
        for (long r = member.Offset / StripeSize; r <= (member.End - 1) / StripeSize; r++)
        {
            _touched.Add((member.Column, (int)r));
        }
    }

    private void EnsureRows(long end)
    {
        long rows = (end + StripeSize - 1) / StripeSize;
        if (rows > ParityGroup.MaxRows || rows * StripeSize > Array.MaxLength
            || (long)(DataColumns + ParityColumns) * rows * ParityGroup.StripeHashLength > ParityGroup.MaxHeaderLength / 2)
        {
            throw new KintsugiException(ErrorKind.Failed, $"a parity column would grow to {end} bytes, more than this kintsugi holds in memory; use a larger stripe or smaller packs");
        }
        if (rows <= _rowsAllocated)
        {
            return;
        }
        for (int j = 0; j < ParityColumns; j++)
        {
            Array.Resize(ref _parity[j], (int)(rows * StripeSize));
        }
        _rowsAllocated = (int)rows;
    }

    /// <summary>XORs the member's contribution into the parity columns (which adds or, done again, removes it).</summary>
    private async Task<bool> AccumulateAsync(ParityMember member, CancellationToken ct)
    {
        long done = await XorFileAsync(member, member.Length, ct).ConfigureAwait(false);
        if (done == member.Length)
        {
            return true;
        }
        // Take out what was added so far, so the parity stays consistent with the member list.
        if (await XorFileAsync(member, done, ct).ConfigureAwait(false) != done)
        {
            throw new KintsugiException(ErrorKind.Corrupt, $"{member} could not be read again while its parity was undone; run `kintsugi repair`");
        }
        return false;
    }

    /// <summary>XORs the first <paramref name="upTo"/> bytes of a member's file into the parity; returns how many were added before a read failed.</summary>
    private async Task<long> XorFileAsync(ParityMember member, long upTo, CancellationToken ct)
    {
        var buffer = new byte[(int)Math.Min(ReadChunk, Math.Max(upTo, 1))];
        for (long done = 0; done < upTo;)
        {
            int n = (int)Math.Min(buffer.Length, upTo - done);
            try
            {
                await _store.ReadAtAsync(member.Kind, member.Name, done, buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is KintsugiException or IOException)
            {
                return done;
            }
            AccumulateInMemory(member, buffer.AsSpan(0, n), done);
            done += n;
        }
        return upTo;
    }

    /// <summary>The SHA-256 of a whole file of the expected length; null when it is missing or of another length.</summary>
    internal static async Task<byte[]?> HashFileAsync(IBlobStore store, FileKind kind, string name, long length, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[(int)Math.Min(ReadChunk, Math.Max(length, 1))];
        try
        {
            for (long done = 0; done < length;)
            {
                int n = (int)Math.Min(buffer.Length, length - done);
                await store.ReadAtAsync(kind, name, done, buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                hash.AppendData(buffer, 0, n);
                done += n;
            }
            // One byte more must not be there: the file is exactly as long as recorded.
            var probe = new byte[1];
            try
            {
                await store.ReadAtAsync(kind, name, length, probe, ct).ConfigureAwait(false);
                return null;
            }
            catch (KintsugiException)
            {
            }
        }
        catch (KintsugiException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
        return hash.GetHashAndReset();
    }

    /// <summary>Fills <paramref name="stripe"/> with row <paramref name="row"/> of a data column made of <paramref name="members"/> (zeros where none lies); false when one cannot be read.</summary>
    internal static async Task<bool> AssembleAsync(IBlobStore store, IReadOnlyList<ParityMember> members, int row, int stripeSize, byte[] stripe, CancellationToken ct)
    {
        Array.Clear(stripe);
        long start = (long)row * stripeSize, end = start + stripeSize;
        foreach (var x in members)
        {
            long from = Math.Max(start, x.Offset), to = Math.Min(end, x.End);
            if (from >= to)
            {
                continue;
            }
            try
            {
                await store.ReadAtAsync(x.Kind, x.Name, from - x.Offset, stripe.AsMemory((int)(from - start), (int)(to - from)), ct).ConfigureAwait(false);
            }
            catch (KintsugiException)
            {
                return false;
            }
            catch (IOException)
            {
                return false;
            }
        }
        return true;
    }
}
