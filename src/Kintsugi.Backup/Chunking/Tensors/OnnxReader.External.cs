using System.Buffers;
using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace Kintsugi.Backup.Chunking.Tensors;

/// <summary>
/// ONNX external data: initializers whose TensorProto has data_location EXTERNAL (or a "location"
/// entry) keep their bytes in a file beside the model, named by external_data's "location", at
/// "offset" (default 0) for "length" bytes (default: the size dims and data_type give).
/// </summary>
internal static partial class OnnxReader
{
    private static readonly IReadOnlyDictionary<string, TensorLayout> NoExternalLayouts = new Dictionary<string, TensorLayout>(StringComparer.Ordinal);

    /// <summary>Characters that make a location more than a plain file name (NUL and ':' too: no stream or drive tricks).</summary>
    private static readonly SearchValues<char> PathCharacters = SearchValues.Create("/\\\0:");

    /// <summary>
    /// The tensors of the external data files an ONNX model at <paramref name="model"/> points to,
    /// keyed by each "location" exactly as the model writes it (ordinal). Each layout has Format
    /// "onnx-external" and lists that file's tensors sorted by offset, non-overlapping and non-empty,
    /// with offsets and lengths in the external file, and lengths that agree with dims and data_type
    /// wherever the type's size is known.
    /// <para>
    /// Only the model is read: the external files are never opened, so nothing here says that a segment
    /// lies inside its file. The caller must check every segment against the actual length of the file
    /// it opens (and discard that file's layout if any segment reaches past its end), and must open it
    /// as the plain file it names in the model's own folder (not following a symbolic link out of it).
    /// </para>
    /// <para>
    /// A location that is anything but a plain file name in the model's folder (absolute, containing
    /// "..", a path separator, ':' or NUL) is not listed. A location is dropped whole when two of its
    /// tensors overlap, or one has an offset or length that is no decimal number, or a length that
    /// disagrees with its dims and data_type. A tensor whose length cannot be known (no "length" and a
    /// type of unknown size), or that names a location more than once, is left out, its bytes then
    /// being opaque to whoever splits the file.
    /// </para>
    /// <para>
    /// Malformed content never throws: a model that does not parse as a ModelProto with an ir_version
    /// and a graph gives an empty dictionary. Only an I/O error from reading the model does. Memory is
    /// bounded like <see cref="TensorLayoutReader.TryRead"/>'s: the model is streamed, and only names,
    /// dims and external_data strings (each capped) are kept.
    /// </para>
    /// </summary>
    internal static IReadOnlyDictionary<string, TensorLayout> ReadExternalLayouts(SafeFileHandle model, long modelLength)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegative(modelLength);
        // A null list marks a location dropped whole: later tensors in it are ignored.
        var byLocation = new Dictionary<string, List<TensorSegment>?>(StringComparer.Ordinal);
        try
        {
            if (!WalkInitializers(new ContainerFile(model, modelLength), readExternalData: true, initializer => AddExternal(initializer, byLocation)))
            {
                return NoExternalLayouts;
            }
        }
        catch (InvalidDataException)
        {
            return NoExternalLayouts;
        }
        catch (OverflowException)
        {
            return NoExternalLayouts;
        }
        var layouts = new Dictionary<string, TensorLayout>(StringComparer.Ordinal);
        foreach (var (location, tensors) in byLocation)
        {
            if (tensors is not null && SortedWithoutOverlap(tensors) is { } sorted)
            {
                layouts.Add(location, new TensorLayout("onnx-external", sorted));
            }
        }
        return layouts.Count == 0 ? NoExternalLayouts : layouts;
    }

    private static void AddExternal(Initializer initializer, Dictionary<string, List<TensorSegment>?> byLocation)
    {
        string? location = null, offsetText = null, lengthText = null;
        foreach (var (key, value) in initializer.External)
        {
            switch (key)
            {
                case "location" when location is null:
                    location = value;
                    break;
                case "offset" when offsetText is null:
                    offsetText = value;
                    break;
                case "length" when lengthText is null:
                    lengthText = value;
                    break;
                case "location" or "offset" or "length":
                    // A key given twice: ONNX's own loader takes the last, another reader might take the first.
                    return;
            }
        }
        if (location is null)
        {
            // Not external, or external with nowhere to look.
            return;
        }
        // Security: the model is untrusted input and the caller reads the file the location names. Only a
        // plain file name in the model's own folder is accepted, so a crafted model cannot make a backup
        // read (and store) /etc/shadow, ~/.ssh/id_ed25519 or anything else outside that folder.
        if (!IsPlainFileName(location))
        {
            return;
        }
        if (!byLocation.TryGetValue(location, out var tensors))
        {
            tensors = [];
            byLocation.Add(location, tensors);
        }
        if (tensors is null)
        {
            return;
        }
        var (dtype, elementSize, bitsPerElement) = DataType(initializer.DataType);
        long? size;
        try
        {
            size = bitsPerElement > 0 ? ByteSize(TensorLayoutReader.ElementCount(initializer.Dims), bitsPerElement) : null;
        }
        catch (OverflowException)
        {
            byLocation[location] = null;
            return;
        }
        long offset = 0, length = 0;
        if ((offsetText is not null && !TryParseDecimal(offsetText, out offset))
            || (lengthText is not null && !TryParseDecimal(lengthText, out length))
            || (lengthText is not null && size is { } stated && stated != length))
        {
            byLocation[location] = null;
            return;
        }
        if (lengthText is null)
        {
            if (size is null)
            {
                // No length and a type of unknown size: nothing to say about these bytes.
                return;
            }
            length = size.Value;
        }
        if (length > long.MaxValue - offset)
        {
            byLocation[location] = null;
            return;
        }
        if (length > 0)
        {
            tensors.Add(new TensorSegment(initializer.Name, dtype, initializer.Dims, offset, length, elementSize));
        }
    }

    /// <summary>True for a non-empty name that names a file in the model's own folder and nothing else.</summary>
    private static bool IsPlainFileName(string location) =>
        location.Length > 0
        && location != "."
        && !location.Contains("..", StringComparison.Ordinal)
        && !location.AsSpan().ContainsAny(PathCharacters)
        && !Path.IsPathRooted(location);

    /// <summary>ASCII digits only (no sign, space or separators), at most <see cref="long.MaxValue"/>.</summary>
    private static bool TryParseDecimal(string text, out long value) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    /// <summary>The tensors by offset, or null where two overlap.</summary>
    private static List<TensorSegment>? SortedWithoutOverlap(List<TensorSegment> tensors)
    {
        if (tensors.Count == 0)
        {
            return null;
        }
        var sorted = tensors.OrderBy(t => t.Offset).ThenBy(t => t.Length).ToList();
        long previousEnd = 0;
        foreach (var t in sorted)
        {
            if (t.Offset < previousEnd)
            {
                return null;
            }
            previousEnd = t.Offset + t.Length;
        }
        return sorted;
    }
}
