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

    public static void Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> sealedOut)
    {
        var nonce = sealedOut[..NonceSize];
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(key, TagSize);
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
        using var gcm = new AesGcm(key, TagSize);
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
