using System.Security.Cryptography;
using NSec.Cryptography;

namespace Kintsugi.Backup;

/// <summary>
/// Argon2id (version 0x13, output 32 bytes) for key slots. Slots with one lane and a 16-byte salt (every
/// slot written since issue 13) go through libsodium (NSec), native and vectorised: about a quarter of the
/// managed implementation's time. libsodium computes only p = 1 with a 16-byte salt, so slots written
/// before (p = 2, 32-byte salt) go through the managed implementation (Konscious), which gives the same
/// function for any parameters: every slot keeps opening.
/// </summary>
internal static class Argon2
{
    /// <summary>The salt length libsodium's Argon2id accepts.</summary>
    public const int NativeSaltLength = 16;

    /// <summary>Whether <see cref="Derive"/> takes the native path for these parameters.</summary>
    public static bool IsNative(int saltLength, KdfParameters kdf) =>
        saltLength == NativeSaltLength && kdf.Parallelism == 1 && kdf.MemoryKib >= 8;

    public static byte[] Derive(byte[] password, byte[] salt, KdfParameters kdf)
    {
        if (salt.Length is < 8 or > 64)
        {
            // Argon2 wants at least 8 bytes; Kintsugi writes 16 (32 before issue 13). Anything else is a damaged or hostile slot.
            throw new KintsugiException(ErrorKind.Corrupt, $"key slot salt of {salt.Length} bytes is outside 8 to 64");
        }
        return IsNative(salt.Length, kdf) ? DeriveNative(password, salt, kdf) : DeriveManaged(password, salt, kdf);
    }

    internal static byte[] DeriveNative(byte[] password, byte[] salt, KdfParameters kdf)
    {
        var algorithm = PasswordBasedKeyDerivationAlgorithm.Argon2id(new Argon2Parameters
        {
            DegreeOfParallelism = 1,
            MemorySize = kdf.MemoryKib,
            NumberOfPasses = kdf.Iterations,
        });
        var key = new byte[32];
        try
        {
            algorithm.DeriveBytes(password, salt, key);
        }
        catch (CryptographicException e)
        {
            // libsodium refuses only when it cannot allocate the memory the slot asks for.
            throw OutOfMemory(kdf, e);
        }
        return key;
    }

    private static KintsugiException OutOfMemory(KdfParameters kdf, Exception e) =>
        new(ErrorKind.Failed, $"the key derivation (Argon2id, {Math.Max(1, kdf.MemoryKib / 1024)} MiB) could not get its memory ({e.Message}); free memory or raise the process's memory limit, and try again", e);

    internal static byte[] DeriveManaged(byte[] password, byte[] salt, KdfParameters kdf)
    {
        try
        {
            return DeriveManagedUnguarded(password, salt, kdf);
        }
        catch (OutOfMemoryException e)
        {
            throw OutOfMemory(kdf, e);
        }
    }

    private static byte[] DeriveManagedUnguarded(byte[] password, byte[] salt, KdfParameters kdf)
    {
        using var argon = new Konscious.Security.Cryptography.Argon2id(password)
        {
            Salt = salt,
            MemorySize = kdf.MemoryKib,
            Iterations = kdf.Iterations,
            DegreeOfParallelism = kdf.Parallelism,
        };
        return argon.GetBytes(32);
    }
}
