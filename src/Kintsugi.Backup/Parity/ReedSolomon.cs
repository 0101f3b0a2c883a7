using System.Collections.Concurrent;

namespace Kintsugi.Backup.Parity;

/// <summary>
/// A systematic Reed–Solomon erasure code over GF(2⁸) with k data columns and m parity columns:
/// parity row j is Σᵢ C[j,i]·dataᵢ with the Cauchy matrix C[j,i] = 1 / (j ⊕ (m + i)). Every square
/// submatrix of a Cauchy matrix is invertible, so any e ≤ m erased data stripes of a row are rebuilt
/// from any e intact parity stripes of that row. Needs k + m ≤ 256.
/// </summary>
internal sealed class ReedSolomon
{
    private readonly byte[,] _c;
    private readonly ConcurrentDictionary<string, byte[,]> _inverses = new(StringComparer.Ordinal);

    public ReedSolomon(int dataColumns, int parityColumns)
    {
        if (dataColumns < 1 || parityColumns < 1 || dataColumns + parityColumns > 256)
        {
            throw new ArgumentOutOfRangeException(nameof(dataColumns), $"Reed–Solomon needs 1 ≤ k, 1 ≤ m and k + m ≤ 256, got {dataColumns}+{parityColumns}");
        }
        DataColumns = dataColumns;
        ParityColumns = parityColumns;
        _c = new byte[parityColumns, dataColumns];
        for (int j = 0; j < parityColumns; j++)
        {
            for (int i = 0; i < dataColumns; i++)
            {
                _c[j, i] = GaloisField.Inverse((byte)(j ^ (parityColumns + i)));
            }
        }
    }

    public int DataColumns { get; }

    public int ParityColumns { get; }

    public byte Coefficient(int parityRow, int dataColumn) => _c[parityRow, dataColumn];

    /// <summary>
    /// Adds (XORs) data column <paramref name="column"/>'s bytes into each parity stripe. Adding the
    /// same bytes twice removes them again, which is how a member leaves a group.
    /// </summary>
    public void Accumulate(int column, ReadOnlySpan<byte> data, IReadOnlyList<Memory<byte>> parity)
    {
        for (int j = 0; j < ParityColumns; j++)
        {
            GaloisField.MulAdd(_c[j, column], data, parity[j].Span);
        }
    }

    /// <summary>
    /// Rebuilds, in place, the data stripes of one row that are marked erased in
    /// <paramref name="dataErased"/>, from the intact ones and the parity stripes not marked in
    /// <paramref name="parityErased"/>. All stripes have the same length. Returns false, changing
    /// nothing, when more data stripes are erased than parity stripes are intact.
    /// </summary>
    public bool Reconstruct(IReadOnlyList<Memory<byte>> data, ReadOnlySpan<bool> dataErased, IReadOnlyList<Memory<byte>> parity, ReadOnlySpan<bool> parityErased)
    {
        var erased = new List<int>();
        for (int i = 0; i < DataColumns; i++)
        {
            if (dataErased[i])
            {
                erased.Add(i);
            }
        }
        if (erased.Count == 0)
        {
            return true;
        }
        var rows = new List<int>();
        for (int j = 0; j < ParityColumns && rows.Count < erased.Count; j++)
        {
            if (!parityErased[j])
            {
                rows.Add(j);
            }
        }
        if (rows.Count < erased.Count)
        {
            return false;
        }
        int e = erased.Count;
        int length = data[erased[0]].Length;
        // Syndromes: each chosen parity stripe minus what the intact data contributes to it.
        var syndromes = new byte[e][];
        for (int t = 0; t < e; t++)
        {
            var s = parity[rows[t]].Span[..length].ToArray();
            for (int i = 0; i < DataColumns; i++)
            {
                if (!dataErased[i])
                {
                    GaloisField.MulAdd(_c[rows[t], i], data[i].Span[..length], s);
                }
            }
            syndromes[t] = s;
        }
        var inverse = _inverses.GetOrAdd(string.Join(',', rows) + "|" + string.Join(',', erased), _ =>
        {
            var a = new byte[e, e];
            for (int t = 0; t < e; t++)
            {
                for (int u = 0; u < e; u++)
                {
                    a[t, u] = _c[rows[t], erased[u]];
                }
            }
            return GaloisField.Invert(a);
        });
        for (int u = 0; u < e; u++)
        {
            var target = data[erased[u]].Span[..length];
            target.Clear();
            for (int t = 0; t < e; t++)
            {
                GaloisField.MulAdd(inverse[u, t], syndromes[t], target);
            }
        }
        return true;
    }
}
