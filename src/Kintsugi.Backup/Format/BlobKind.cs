namespace Kintsugi.Backup.Format;

/// <summary>What a blob holds. Values are part of the on-disk format (docs/FORMAT.md); readers reject kinds they do not know.</summary>
public enum BlobKind : byte
{
    /// <summary>A piece of file content.</summary>
    Data = 0,
    /// <summary>A directory listing (JSON tree).</summary>
    Tree = 1,
    /// <summary>Reserved: a piece of a tensor, split at tensor boundaries.</summary>
    TensorPiece = 2,
    /// <summary>Reserved: a delta against a base piece.</summary>
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
}
