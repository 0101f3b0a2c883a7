
namespace Kintsugi.Backup.Format;

/// <summary>The kind byte in a sealed file's header. Part of the on-disk format.</summary>
internal enum SealedFileType : byte
{
    Config = 1,
    Index = 2,
    Snapshot = 3,
}

/// <summary>
/// The envelope of the config, index and snapshot files:
/// <c>"KSG1" ‖ type(1) ‖ codec(1) ‖ nonce(12) ‖ ciphertext ‖ tag(16)</c>, with the first six bytes
/// as associated data, so a file cannot be passed off as another type. See docs/FORMAT.md.
/// </summary>
internal static class SealedFile
{
    public const int HeaderSize = 6;
    public static ReadOnlySpan<byte> Magic => "KSG1"u8;

    public static byte[] Seal(MasterKey key, SealedFileType type, ReadOnlySpan<byte> payload)
    {
        var (codec, encoded) = Codecs.BlobEncoder.Encode(payload, allowStored: true);
        var result = new byte[HeaderSize + encoded.Length + Aead.Overhead];
        Magic.CopyTo(result);
        result[4] = (byte)type;
        result[5] = (byte)codec;
        Aead.Seal(key.EncryptionKey, encoded, result.AsSpan(0, HeaderSize), result.AsSpan(HeaderSize));
        return result;
    }

    /// <summary>Opens a sealed file; throws a <see cref="KintsugiException"/> naming <paramref name="what"/> when it is damaged.</summary>
    public static byte[] Open(MasterKey key, SealedFileType type, ReadOnlySpan<byte> data, string what, int maxPayload = 1 << 30)
    {
        if (data.Length < HeaderSize + Aead.Overhead || !data[..4].SequenceEqual(Magic))
        {
            throw KintsugiException.Corrupt(what, "not a Kintsugi file or truncated");
        }
        if (data[4] != (byte)type)
        {
            throw KintsugiException.Corrupt(what, $"file type {data[4]} where {(byte)type} was expected");
        }
        var encoded = Aead.TryOpen(key.EncryptionKey, data[HeaderSize..], data[..HeaderSize])
            ?? throw KintsugiException.Corrupt(what, "authentication failed: the bytes were altered");
        return Codecs.BlobEncoder.Decode((BlobCodec)data[5], encoded, maxPayload, what);
    }

}
