namespace Kintsugi.Backup.Format;

/// <summary>Seals and opens single blobs: encode (zstd or stored), then AES-256-GCM with the blob header as associated data.</summary>
internal static class BlobSealer
{
    /// <summary>Seals <paramref name="plaintext"/> into a new array.</summary>
    public static (BlobCodec Codec, byte[] Sealed) Seal(MasterKey key, BlobId id, BlobKind kind, ReadOnlySpan<byte> plaintext)
    {
        var encoded = new byte[Codecs.BlobEncoder.MaxEncodedLength(plaintext.Length)];
        var (codec, length) = Codecs.BlobEncoder.Encode(plaintext, encoded);
        Span<byte> ad = stackalloc byte[PackEntry.AssociatedDataSize];
        PackEntry.WriteAssociatedData(ad, id, kind, codec, (uint)plaintext.Length);
        var sealedBytes = new byte[length + Aead.Overhead];
        Aead.Seal(key.EncryptionKey, encoded.AsSpan(0, length), ad, sealedBytes);
        return (codec, sealedBytes);
    }

    /// <summary>Opens a sealed blob, decodes it and checks that its keyed hash is its id.</summary>
    public static byte[] Open(MasterKey key, in IndexEntry entry, ReadOnlySpan<byte> sealedBytes)
    {
        if (entry.RawLength > PackFormat.MaxBlobRawLength)
        {
            throw KintsugiException.Corrupt($"blob {entry.Id.Short} in pack {entry.Pack.Short}", "raw length out of range");
        }
        var plain = new byte[entry.RawLength];
        Open(key, entry, sealedBytes, plain);
        return plain;
    }

    public static void Open(MasterKey key, in IndexEntry entry, ReadOnlySpan<byte> sealedBytes, Span<byte> plaintextOut)
    {
        string what = $"blob {entry.Id.Short} in pack {entry.Pack.Short}";
        if (entry.RawLength > PackFormat.MaxBlobRawLength || plaintextOut.Length != entry.RawLength)
        {
            throw KintsugiException.Corrupt(what, "raw length out of range");
        }
        Span<byte> ad = stackalloc byte[PackEntry.AssociatedDataSize];
        PackEntry.WriteAssociatedData(ad, entry.Id, entry.Kind, entry.Codec, entry.RawLength);
        if (sealedBytes.Length < Aead.Overhead)
        {
            throw KintsugiException.Corrupt(what, "shorter than its envelope");
        }
        byte[] encoded = System.Buffers.ArrayPool<byte>.Shared.Rent(sealedBytes.Length - Aead.Overhead);
        try
        {
            var encodedSpan = encoded.AsSpan(0, sealedBytes.Length - Aead.Overhead);
            if (!Aead.TryOpen(key.EncryptionKey, sealedBytes, ad, encodedSpan))
            {
                throw KintsugiException.Corrupt(what, "authentication failed: the bytes were altered");
            }
            Codecs.BlobEncoder.Decode(entry.Codec, encodedSpan, plaintextOut, what);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(encoded);
        }
        if (key.IdOf(plaintextOut) != entry.Id)
        {
            throw KintsugiException.Corrupt(what, "content does not match its id");
        }
    }
}
