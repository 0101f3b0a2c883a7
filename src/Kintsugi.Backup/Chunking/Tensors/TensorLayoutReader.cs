using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// Finds the tensors inside an AI container file: safetensors, NumPy .npy and .npz, PyTorch
/// <c>torch.save</c> zips, GGUF and ONNX. The format is recognised from the bytes (magic numbers,
/// then structure), never from the file name.
/// </summary>
public static class TensorLayoutReader
{
    /// <summary>
    /// The layout of <paramref name="file"/>, or null when it is no known container or is malformed or
    /// truncated in any way, so the caller falls back to content-defined chunking. Malformed content
    /// never throws; only an I/O error from reading the file does. The file is read at offsets, never
    /// loaded, and no length field in it can make this allocate more than a bounded header.
    /// A container with no non-empty tensor also gives null, since there is nothing to align to.
    /// </summary>
    public static TensorLayout? TryRead(SafeFileHandle file, long fileLength)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentOutOfRangeException.ThrowIfNegative(fileLength);
        var container = new ContainerFile(file, fileLength);
        try
        {
            Span<byte> head = stackalloc byte[16];
            head = head[..(int)Math.Min(head.Length, fileLength)];
            container.Read(0, head);
            // Formats with a magic number first; ONNX, which has none, only when nothing else matched.
            TensorLayout? layout =
                GgufReader.Matches(head) ? GgufReader.Read(container)
                : NpyReader.Matches(head) ? NpyReader.Read(container)
                : ZipContainerReader.Matches(head) ? ZipContainerReader.Read(container)
                : SafetensorsReader.Matches(head, fileLength) ? SafetensorsReader.Read(container)
                : fileLength > 0 ? OnnxReader.Read(container)
                : null;
            return layout is null ? null : Normalise(layout, fileLength);
        }
        catch (InvalidDataException)
        {
            return null;
        }
        catch (JsonException)
        {
            return null;
        }
        catch (OverflowException)
        {
            // Checked arithmetic on sizes, shapes and offsets from the file: a lie, not a bug.
            return null;
        }
    }

    /// <summary>The number of elements of a shape (1 for a scalar); overflow throws <see cref="OverflowException"/>.</summary>
    internal static long ElementCount(IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (long dim in shape)
        {
            if (dim < 0)
            {
                throw ContainerFile.Malformed($"dimension {dim} is negative");
            }
            count = checked(count * dim);
        }
        return count;
    }

    /// <summary>
    /// Drops empty tensors, sorts by offset and checks, whatever the format reader did, that every
    /// tensor lies inside the file, none overlaps the next, and lengths agree with shapes where the
    /// element size is known. Any failure means the file is not what it claims: null.
    /// </summary>
    private static TensorLayout? Normalise(TensorLayout layout, long fileLength)
    {
        var tensors = layout.Tensors.Where(t => t.Length > 0).OrderBy(t => t.Offset).ThenBy(t => t.Length).ToList();
        long previousEnd = 0;
        foreach (var t in tensors)
        {
            if (t.Offset < previousEnd || t.Length > fileLength - t.Offset)
            {
                return null;
            }
            if (t.ElementSize is not (0 or 1 or 2 or 4 or 8)
                || (t.ElementSize > 0 && checked(ElementCount(t.Shape) * t.ElementSize) != t.Length))
            {
                return null;
            }
            previousEnd = t.Offset + t.Length;
        }
        return tensors.Count == 0 ? null : new TensorLayout(layout.Format, tensors);
    }
}
