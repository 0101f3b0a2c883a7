namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// A range of a file to store: a piece of tensor <see cref="Tensor"/> (an index into the plan's
/// tensors), or, where <see cref="Tensor"/> is -1, opaque bytes for content-defined chunking.
/// A <see cref="Length"/> of -1 runs to the end of the file, however long it is by then.
/// </summary>
internal readonly record struct SplitRange(long Offset, long Length, int Tensor, int Piece);

/// <summary>
/// Turns a container's layout into what to store: every tensor of at least
/// <see cref="MinTensorBytes"/> is cut into pieces of <see cref="PieceSize"/> from its own start,
/// so the same piece of the same tensor has the same bytes' place in every version however the
/// header around it changes; headers, small tensors and padding between them stay opaque.
/// </summary>
internal static class TensorSplitter
{
    /// <summary>Part of the format: a base is only found for pieces cut the same way.</summary>
    public const int PieceSize = 1 << 20;

    /// <summary>Smaller tensors (biases, norms) ride along with the opaque bytes around them.</summary>
    public const long MinTensorBytes = 64 * 1024;

    public static (List<SplitRange> Ranges, List<TensorSegment> Tensors) Plan(TensorLayout layout)
    {
        var ranges = new List<SplitRange>();
        var tensors = new List<TensorSegment>();
        long position = 0;
        foreach (var t in layout.Tensors.Where(t => t.Length >= MinTensorBytes).OrderBy(t => t.Offset))
        {
            if (t.Offset < position)
            {
                continue;
            }
            if (t.Offset > position)
            {
                ranges.Add(new SplitRange(position, t.Offset - position, -1, 0));
            }
            int index = tensors.Count;
            tensors.Add(t);
            int piece = 0;
            for (long start = 0; start < t.Length; start += PieceSize, piece++)
            {
                ranges.Add(new SplitRange(t.Offset + start, Math.Min(PieceSize, t.Length - start), index, piece));
            }
            position = t.Offset + t.Length;
        }
        ranges.Add(new SplitRange(position, -1, -1, 0));
        return (ranges, tensors);
    }

    /// <summary>The element width byte planes use for a tensor's pieces, or 0 for none.</summary>
    public static int PlaneWidth(TensorSegment tensor) => tensor.ElementSize switch
    {
        2 or 4 or 8 => tensor.ElementSize,
        1 when tensor.DType.StartsWith("F8", StringComparison.Ordinal) => 1,
        _ => 0,
    };

    public static int PieceCount(long tensorLength) => (int)((tensorLength + PieceSize - 1) / PieceSize);
}
