using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup;

/// <summary>A key slot as listed to the user.</summary>
public sealed record KeyInfo(string Id, DateTimeOffset Created, string? Host, string? User, bool Current, string Kdf, int MemoryKib, int Iterations, int Parallelism);

/// <summary>
/// Key slots: each wraps the master key under a password through Argon2id, or under the 256-bit
/// random secret of a key file through HKDF-SHA256 (no stretching: nothing to guess).
/// </summary>
internal static class KeyRing
{
    public const string PasswordKdf = "argon2id";
    public const string KeyFileKdf = "key-file";

    private static ReadOnlySpan<byte> AssociatedData => "kintsugi key v1"u8;

    private static ReadOnlySpan<byte> KeyFileInfo => "kintsugi key file v1"u8;

    public static async Task<string> AddAsync(IBlobStore store, MasterKey master, string password, KdfParameters kdf, DateTimeOffset now, string? host, string? user, CancellationToken ct)
    {
        kdf.Validate();
        // 16 bytes: libsodium's Argon2id takes exactly that salt length (slots written before took 32).
        var salt = RandomNumberGenerator.GetBytes(Argon2.NativeSaltLength);
        var wrappingKey = Derive(password, salt, kdf);
        var slot = new KeySlot
        {
            Created = now,
            Host = host,
            User = user,
            MemoryKib = kdf.MemoryKib,
            Iterations = kdf.Iterations,
            Parallelism = kdf.Parallelism,
            Salt = Convert.ToBase64String(salt),
            Wrapped = Convert.ToBase64String(Aead.Seal(wrappingKey, master.Material, AssociatedData)),
        };
        var bytes = JsonSerializer.SerializeToUtf8Bytes(slot, FormatJson.Default.KeySlot);
        string name = BlobId.HashOf(bytes).ToString();
        await store.PutAsync(FileKind.Key, name, bytes, cancellationToken: ct).ConfigureAwait(false);
        return name;
    }

    /// <summary>Adds a slot that opens with <paramref name="secret"/> (a key file's 32 random bytes).</summary>
    public static async Task<string> AddKeyFileAsync(IBlobStore store, MasterKey master, byte[] secret, DateTimeOffset now, string? host, string? user, CancellationToken ct)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        var slot = new KeySlot
        {
            Created = now,
            Host = host,
            User = user,
            Kdf = KeyFileKdf,
            MemoryKib = 0,
            Iterations = 0,
            Parallelism = 0,
            Salt = Convert.ToBase64String(salt),
            Wrapped = Convert.ToBase64String(Aead.Seal(KeyFileWrappingKey(secret, salt), master.Material, AssociatedData)),
        };
        var bytes = JsonSerializer.SerializeToUtf8Bytes(slot, FormatJson.Default.KeySlot);
        string name = BlobId.HashOf(bytes).ToString();
        await store.PutAsync(FileKind.Key, name, bytes, cancellationToken: ct).ConfigureAwait(false);
        return name;
    }

    /// <summary>Tries every key-file slot with <paramref name="secret"/>; returns the master key and the slot that opened it.</summary>
    public static async Task<(MasterKey Key, string SlotId)> OpenWithKeyFileAsync(IBlobStore store, byte[] secret, string keyFile, string source, CancellationToken ct) =>
        await TryOpenAsync(store, KeyFileKdf, slot => KeyFileWrappingKey(secret, Convert.FromBase64String(slot.Salt)), ct).ConfigureAwait(false)
        ?? throw new KintsugiException(ErrorKind.WrongPassword, $"key file {keyFile} (from {source}) does not open the repository at {store.Location}: no key slot of it matches (made for another repository, or its slot was removed)");

    /// <summary>
    /// Tries each slot of kind <paramref name="kdf"/> in turn; null when none opens. A damaged or hostile
    /// slot never stops the others; a derivation the machine could not run (memory) is thrown when no
    /// slot opened, as that rather than as a wrong password.
    /// </summary>
    private static async Task<(MasterKey Key, string SlotId)?> TryOpenAsync(IBlobStore store, string kdf, Func<KeySlot, byte[]> wrappingKey, CancellationToken ct)
    {
        KintsugiException? resources = null;
        foreach (var file in await ListSlotsAsync(store, ct).ConfigureAwait(false))
        {
            var slot = await ReadAsync(store, file.Name, ct).ConfigureAwait(false);
            if (slot is null || slot.Version != 1 || slot.Kdf != kdf)
            {
                continue;
            }
            try
            {
                var material = Aead.TryOpen(wrappingKey(slot), Convert.FromBase64String(slot.Wrapped), AssociatedData);
                if (material is { Length: MasterKey.Size })
                {
                    return (MasterKey.FromBytes(material), file.Name);
                }
            }
            catch (KintsugiException e) when (e.Kind == ErrorKind.Failed)
            {
                resources ??= e;
            }
            catch (Exception e) when (e is FormatException or KintsugiException)
            {
                // A damaged or hostile slot must not stop the others from opening the repository.
            }
        }
        return resources is null ? null : throw resources;
    }

    private static byte[] KeyFileWrappingKey(byte[] secret, byte[] salt) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, 32, salt, KeyFileInfo.ToArray());

    private static async Task<IReadOnlyList<StoredFile>> ListSlotsAsync(IBlobStore store, CancellationToken ct)
    {
        var slots = await store.ListAsync(FileKind.Key, ct).ConfigureAwait(false);
        if (slots.Count == 0)
        {
            throw new KintsugiException(ErrorKind.Corrupt, $"repository at {store.Location} has no key slots; it cannot be opened");
        }
        return slots;
    }

    /// <summary>Tries every slot; returns the master key and the slot that opened it.</summary>
    public static async Task<(MasterKey Key, string SlotId)> OpenAsync(IBlobStore store, string password, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(password))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "the password is empty; give the repository's password");
        }
        // Slots with the same KDF parameters and salt never occur, so each costs one derivation.
        return await TryOpenAsync(store, PasswordKdf, slot => Derive(password, Convert.FromBase64String(slot.Salt), new KdfParameters(slot.MemoryKib, slot.Iterations, slot.Parallelism)), ct).ConfigureAwait(false)
            ?? throw new KintsugiException(ErrorKind.WrongPassword, $"wrong password: no key of the repository at {store.Location} opens with it");
    }

    public static async Task<KeySlot?> ReadAsync(IBlobStore store, string name, CancellationToken ct)
    {
        try
        {
            var bytes = await store.GetAsync(FileKind.Key, name, ct).ConfigureAwait(false);
            var slot = JsonSerializer.Deserialize(bytes, FormatJson.Default.KeySlot);
            return slot is { Kdf: PasswordKdf or KeyFileKdf } ? slot : null;
        }
        catch (JsonException)
        {
            return null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static byte[] Derive(string password, byte[] salt, KdfParameters kdf)
    {
        kdf.Validate();
        return Argon2.Derive(Encoding.UTF8.GetBytes(password), salt, kdf);
    }
}
