namespace Kintsugi.Backup.Format;

/// <summary>What a blob holds. Values are part of the on-disk format (docs/FORMAT.md); readers reject kinds they do not know.</summary>
public enum BlobKind : byte
{
    /// <summary>A piece of file content.</summary>
    Data = 0,
    /// <summary>A directory listing (JSON tree).</summary>
    Tree = 1,
    /// <summary>A piece of a tensor, split at tensor boundaries and stable offsets inside the tensor.</summary>
    TensorPiece = 2,
    /// <summary>A piece of a tensor stored as the XOR against its base blob, whose id the index entry carries.</summary>
    Delta = 3,
    /// <summary>Reserved: erasure-coded parity over packs.</summary>
    Parity = 4,
}

/// <summary>How a blob's plaintext is encoded before encryption. Values are part of the on-disk format.</summary>
public enum BlobCodec : byte
{
    /// <summary>Stored as is.</summary>
    Stored = 0,
    /// <summary>A zstd frame.</summary>
    Zstd = 1,
    /// <summary>One byte, the element width (1, 2, 4 or 8), then a zstd frame of the byte planes (see BytePlanes).</summary>
    Planes = 2,
}

public static class BlobKindExtensions
{
    /// <summary>Kinds that hold file content: data chunks, tensor pieces and deltas.</summary>
    public static bool IsContent(this BlobKind kind) => kind is BlobKind.Data or BlobKind.TensorPiece or BlobKind.Delta;
}
