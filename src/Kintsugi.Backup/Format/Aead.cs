using System.Security.Cryptography;

namespace Kintsugi.Backup.Format;

/// <summary>
/// AES-256-GCM with a random 96-bit nonce. Sealed bytes are <c>nonce(12) ‖ ciphertext ‖ tag(16)</c>;
/// the associated data binds whatever header describes the bytes.
/// </summary>
internal static class Aead
{
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int Overhead = NonceSize + TagSize;

    /// <summary>
    /// The cipher of the key last used on this thread. Creating one sets up an OpenSSL context and
    /// expands the key: for a blob of a few KiB that cost as much as encrypting it.
    /// </summary>
    [ThreadStatic] private static AesGcm? t_gcm;
    [ThreadStatic] private static byte[]? t_gcmKey;

    /// <summary>
    /// Random bytes drawn ahead for this thread's nonces: one call to the system's generator per
    /// 4 KiB instead of one per blob (each of which also asked the kernel for the process id).
    /// Every nonce is still fresh random bytes, used once.
    /// </summary>
    [ThreadStatic] private static byte[]? t_nonces;
    [ThreadStatic] private static int t_noncesUsed;

    private const int NoncePoolSize = 4096 / NonceSize * NonceSize;

    private static AesGcm CipherFor(ReadOnlySpan<byte> key)
    {
        if (t_gcm is { } gcm && key.SequenceEqual(t_gcmKey))
        {
            return gcm;
        }
        t_gcm?.Dispose();
        t_gcm = null;
        gcm = new AesGcm(key, TagSize);
        t_gcmKey = key.ToArray();
        t_gcm = gcm;
        return gcm;
    }

    private static void FillNonce(Span<byte> nonce)
    {
        var pool = t_nonces ??= new byte[NoncePoolSize];
        if (t_noncesUsed == 0 || t_noncesUsed + NonceSize > pool.Length)
        {
            RandomNumberGenerator.Fill(pool);
            t_noncesUsed = 0;
        }
        var drawn = pool.AsSpan(t_noncesUsed, NonceSize);
        drawn.CopyTo(nonce);
        // Not left behind to be read again.
        drawn.Clear();
        t_noncesUsed += NonceSize;
        if (t_noncesUsed == pool.Length)
        {
            t_noncesUsed = 0;
        }
    }

    public static void Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> sealedOut)
    {
        var nonce = sealedOut[..NonceSize];
        FillNonce(nonce);
        var gcm = CipherFor(key);
        gcm.Encrypt(nonce, plaintext, sealedOut.Slice(NonceSize, plaintext.Length), sealedOut.Slice(NonceSize + plaintext.Length, TagSize), associatedData);
    }

    public static byte[] Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var result = new byte[plaintext.Length + Overhead];
        Seal(key, plaintext, associatedData, result);
        return result;
    }

    /// <summary>Opens sealed bytes into <paramref name="plaintextOut"/>; false if they were altered or the key is wrong.</summary>
    public static bool TryOpen(ReadOnlySpan<byte> key, ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> associatedData, Span<byte> plaintextOut)
    {
        if (sealedBytes.Length < Overhead)
        {
            return false;
        }
        int length = sealedBytes.Length - Overhead;
        var gcm = CipherFor(key);
        try
        {
            gcm.Decrypt(sealedBytes[..NonceSize], sealedBytes.Slice(NonceSize, length), sealedBytes.Slice(NonceSize + length, TagSize), plaintextOut[..length], associatedData);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }

    public static byte[]? TryOpen(ReadOnlySpan<byte> key, ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> associatedData)
    {
        if (sealedBytes.Length < Overhead)
        {
            return null;
        }
        var plain = new byte[sealedBytes.Length - Overhead];
        return TryOpen(key, sealedBytes, associatedData, plain) ? plain : null;
    }
}
