namespace Kintsugi.Backup.Format;

/// <summary>Seals and opens single blobs: encode (zstd, byte planes or stored), then AES-256-GCM with the blob header as associated data.</summary>
internal static class BlobSealer
{
    /// <summary>Seals <paramref name="plaintext"/> into a new array of exactly its sealed length, choosing zstd or stored.</summary>
    public static (BlobCodec Codec, byte[] Sealed) Seal(MasterKey key, BlobId id, BlobKind kind, ReadOnlySpan<byte> plaintext)
    {
        var (codec, pooled, length) = SealPooled(key, id, kind, plaintext);
        var sealedBytes = pooled.AsSpan(0, length).ToArray();
        BufferPool.Shared.Return(pooled);
        return (codec, sealedBytes);
    }

    /// <summary>
    /// Seals <paramref name="plaintext"/>, choosing zstd or stored, into an array rented from
    /// <see cref="System.Buffers.ArrayPool{T}.Shared"/> (the caller returns it); the backup's hot path.
    /// </summary>
    public static (BlobCodec Codec, byte[] Sealed, int Length) SealPooled(MasterKey key, BlobId id, BlobKind kind, ReadOnlySpan<byte> plaintext)
    {
        var encoded = BufferPool.Shared.Rent(Codecs.BlobEncoder.MaxEncodedLength(plaintext.Length));
        try
        {
            var (codec, length) = Codecs.BlobEncoder.Encode(plaintext, encoded);
            var (sealedBytes, sealedLength) = SealEncodedPooled(key, id, kind, codec, (uint)plaintext.Length, encoded.AsSpan(0, length));
            return (codec, sealedBytes, sealedLength);
        }
        finally
        {
            BufferPool.Shared.Return(encoded);
        }
    }

    /// <summary>
    /// Seals an already encoded payload whose plaintext is <paramref name="rawLength"/> bytes long
    /// (a delta also binds its base id), into an array rented from the shared pool (the caller returns it).
    /// </summary>
    public static (byte[] Sealed, int Length) SealEncodedPooled(MasterKey key, BlobId id, BlobKind kind, BlobCodec codec, uint rawLength, ReadOnlySpan<byte> encoded, BlobId baseId = default)
    {
        Span<byte> ad = stackalloc byte[PackEntry.AssociatedDataSize];
        int adLength = PackEntry.WriteAssociatedData(ad, id, kind, codec, rawLength, baseId);
        int length = encoded.Length + Aead.Overhead;
        var sealedBytes = BufferPool.Shared.Rent(length);
        Aead.Seal(key.EncryptionKey, encoded, ad[..adLength], sealedBytes.AsSpan(0, length));
        return (sealedBytes, length);
    }

    /// <summary>Opens a sealed blob that is not a delta, decodes it and checks that its keyed hash is its id.</summary>
    public static byte[] Open(MasterKey key, in IndexEntry entry, ReadOnlySpan<byte> sealedBytes)
    {
        if (entry.RawLength > PackFormat.MaxBlobRawLength)
        {
            throw KintsugiException.Corrupt($"blob {entry.Id.Short} in pack {entry.Pack.Short}", "raw length out of range");
        }
        // The raw length is allocated before the bytes are authenticated: refuse one they cannot decode to.
        long encodedLength = sealedBytes.Length - Aead.Overhead;
        if (entry.RawLength > Codecs.BlobEncoder.MaxDecodedLength(entry.Codec, encodedLength))
        {
            throw KintsugiException.Corrupt($"blob {entry.Id.Short} in pack {entry.Pack.Short}", $"raw length {entry.RawLength} is more than its {Math.Max(0, encodedLength)} encoded bytes can hold");
        }
        var plain = new byte[entry.RawLength];
        Open(key, entry, sealedBytes, plain);
        return plain;
    }

    /// <summary>Opens a sealed blob that is not a delta into <paramref name="plaintextOut"/> and checks it against its id.</summary>
    public static void Open(MasterKey key, in IndexEntry entry, ReadOnlySpan<byte> sealedBytes, Span<byte> plaintextOut)
    {
        if (entry.IsDelta)
        {
            throw KintsugiException.Corrupt($"blob {entry.Id.Short} in pack {entry.Pack.Short}", "a delta blob where a whole one is needed");
        }
        Decode(key, entry, sealedBytes, plaintextOut);
        if (key.IdOf(plaintextOut) != entry.Id)
        {
            throw KintsugiException.Corrupt($"blob {entry.Id.Short} in pack {entry.Pack.Short}", "content does not match its id");
        }
    }

    /// <summary>
    /// Authenticates, decrypts and decodes a blob's payload into <paramref name="payloadOut"/> (its raw length).
    /// For a delta blob the payload is the XOR against its base, so the id is checked by whoever applies it.
    /// </summary>
    public static void Decode(MasterKey key, in IndexEntry entry, ReadOnlySpan<byte> sealedBytes, Span<byte> payloadOut)
    {
        string what = $"blob {entry.Id.Short} in pack {entry.Pack.Short}";
        if (entry.RawLength > PackFormat.MaxBlobRawLength || payloadOut.Length != entry.RawLength)
        {
            throw KintsugiException.Corrupt(what, "raw length out of range");
        }
        Span<byte> ad = stackalloc byte[PackEntry.AssociatedDataSize];
        ad = ad[..PackEntry.WriteAssociatedData(ad, entry.Id, entry.Kind, entry.Codec, entry.RawLength, entry.Base)];
        if (sealedBytes.Length < Aead.Overhead)
        {
            throw KintsugiException.Corrupt(what, "shorter than its envelope");
        }
        byte[] encoded = BufferPool.Shared.Rent(sealedBytes.Length - Aead.Overhead);
        try
        {
            var encodedSpan = encoded.AsSpan(0, sealedBytes.Length - Aead.Overhead);
            if (!Aead.TryOpen(key.EncryptionKey, sealedBytes, ad, encodedSpan))
            {
                throw KintsugiException.Corrupt(what, "authentication failed: the bytes were altered");
            }
            Codecs.BlobEncoder.Decode(entry.Codec, encodedSpan, payloadOut, what);
        }
        finally
        {
            BufferPool.Shared.Return(encoded);
        }
    }
}
