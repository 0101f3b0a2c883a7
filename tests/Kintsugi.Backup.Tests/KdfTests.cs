using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Tests;

/// <summary>Key derivation (native libsodium for new slots, managed for old ones) and key files.</summary>
public sealed class KdfTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static string FixtureRoot => Path.Combine(AppContext.BaseDirectory, "Fixtures", "repo-konscious-p2");

    /// <summary>A copy of the checked-in repository, written by Kintsugi before issue 13 (Konscious, p = 2, 32-byte salt).</summary>
    private async Task<LocalBlobStore> FixtureCopyAsync()
    {
        foreach (var file in Directory.EnumerateFiles(FixtureRoot, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(_box.RepoPath, Path.GetRelativePath(FixtureRoot, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var store = _box.Store;
        await store.CreateAsync(); // the empty folders git does not keep
        return store;
    }

    [Fact]
    public async Task A_repository_whose_key_slot_the_previous_implementation_wrote_opens_and_restores()
    {
        var store = await FixtureCopyAsync();
        var slot = JsonDocument.Parse(File.ReadAllBytes(Directory.GetFiles(Path.Combine(_box.RepoPath, "keys")).Single())).RootElement;
        Assert.Equal(2, slot.GetProperty("parallelism").GetInt32());
        Assert.Equal(65536, slot.GetProperty("memory_kib").GetInt32());
        Assert.Equal(32, Convert.FromBase64String(slot.GetProperty("salt").GetString()!).Length);

        var repo = await Repository.OpenAsync(store, "fixture-password", TimeProvider.System);
        var snapshot = Assert.Single(await repo.LoadSnapshotsAsync());
        string target = _box.NewTarget("fixture");
        var result = await new RestoreEngine(repo).RunAsync(snapshot, new RestoreRequest { Target = target, Host = "fixture" });

        Assert.Equal(1, result.Files);
        string restored = Directory.GetFiles(target, "hello.txt", SearchOption.AllDirectories).Single();
        Assert.Equal("hello from a repository written before issue 13\n", File.ReadAllText(restored));
        var e = await Assert.ThrowsAsync<KintsugiException>(() => Repository.OpenAsync(store, "not-the-password", TimeProvider.System));
        Assert.Equal(ErrorKind.WrongPassword, e.Kind);
    }

    [Fact]
    public async Task A_slot_with_two_lanes_and_one_with_one_lane_both_open()
    {
        var repo = await _box.InitAsync();
        string twoLanes = await repo.AddKeyAsync("two lanes", new KdfParameters(1024, 2, 2), "h", "u");
        string oneLane = await repo.AddKeyAsync("one lane", new KdfParameters(1024, 2, 1), "h", "u");

        Assert.Equal(twoLanes, (await _box.OpenAsync("two lanes")).KeyId);
        Assert.Equal(oneLane, (await _box.OpenAsync("one lane")).KeyId);
        var keys = await repo.ListKeysAsync();
        Assert.Equal(2, keys.Single(k => k.Id == twoLanes).Parallelism);
        Assert.Equal(1, keys.Single(k => k.Id == oneLane).Parallelism);
    }

    [Fact]
    public async Task New_slots_take_the_native_form_one_lane_and_a_16_byte_salt_with_64_MiB_by_default()
    {
        Assert.Equal(new KdfParameters(64 * 1024, 3, 1), KdfParameters.Default);
        var repo = await _box.InitAsync();
        await repo.AddKeyAsync("default cost", KdfParameters.Default, "h", "u");

        foreach (var file in Directory.GetFiles(Path.Combine(_box.RepoPath, "keys")))
        {
            var slot = JsonDocument.Parse(File.ReadAllBytes(file)).RootElement;
            var salt = Convert.FromBase64String(slot.GetProperty("salt").GetString()!);
            var kdf = new KdfParameters(slot.GetProperty("memory_kib").GetInt32(), slot.GetProperty("iterations").GetInt32(), slot.GetProperty("parallelism").GetInt32());
            Assert.True(Argon2.IsNative(salt.Length, kdf), $"slot {Path.GetFileName(file)} would not take the native path");
        }
        Assert.Equal(2, (await (await _box.OpenAsync("default cost")).ListKeysAsync()).Count);
    }

    [Theory]
    [InlineData("")]
    [InlineData("AAAAAAAAAA==")]
    public async Task A_slot_with_a_salt_argon2_cannot_take_is_skipped_and_the_others_still_open(string salt)
    {
        var repo = await _box.InitAsync();
        var bytes = Encoding.UTF8.GetBytes($"{{\"version\":1,\"created\":\"2026-12-02T00:00:00+00:00\",\"kdf\":\"argon2id\",\"memory_kib\":64,\"iterations\":1,\"parallelism\":1,\"salt\":\"{salt}\",\"wrapped\":\"AAAA\"}}");
        // Named so that it sorts first: it is tried before the real slot.
        File.WriteAllBytes(Path.Combine(_box.RepoPath, "keys", new string('0', 64)), bytes);

        Assert.Equal(repo.KeyId, (await _box.OpenAsync()).KeyId);
    }

    [Fact]
    public void Native_and_managed_Argon2id_compute_the_same_function()
    {
        int seed = Environment.TickCount;
        var rng = new Random(seed);
        for (int i = 0; i < 6; i++)
        {
            var password = new byte[rng.Next(1, 40)];
            rng.NextBytes(password);
            var salt = new byte[Argon2.NativeSaltLength];
            rng.NextBytes(salt);
            var kdf = new KdfParameters(rng.Next(8, 2048), rng.Next(1, 4), 1);

            var native = Argon2.DeriveNative(password, salt, kdf);
            var managed = Argon2.DeriveManaged(password, salt, kdf);

            Assert.True(native.AsSpan().SequenceEqual(managed), $"seed {seed}, case {i}: {kdf} gives different keys");
        }
    }

    [Fact]
    public async Task A_key_file_opens_the_repository_until_its_slot_is_removed()
    {
        var repo = await _box.InitAsync();
        string keyFile = Path.Combine(_box.Root, "ci.key");
        string slot = await repo.AddKeyFileAsync(keyFile, "h", "u");

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        var viaFile = await Repository.OpenWithKeyFileAsync(_box.Store, keyFile, TimeProvider.System);
        Assert.Equal(slot, viaFile.KeyId);
        Assert.Equal(repo.Config, viaFile.Config);
        Assert.Equal("key-file", (await repo.ListKeysAsync()).Single(k => k.Id == slot).Kdf);
        // The password still opens the password slot; the key file's slot is never tried with a password.
        Assert.Equal(repo.KeyId, (await _box.OpenAsync()).KeyId);

        await repo.RemoveKeyAsync(slot);
        var e = await Assert.ThrowsAsync<KintsugiException>(() => Repository.OpenWithKeyFileAsync(_box.Store, keyFile, TimeProvider.System));
        Assert.Equal(ErrorKind.WrongPassword, e.Kind);
        Assert.Contains(keyFile, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_file_for_a_repository_whose_path_holds_a_carriage_return_still_opens_it()
    {
        string root = Path.Combine(_box.Root, "cr\rpath");
        var store = new LocalBlobStore(root);
        var repo = await Repository.InitAsync(store, Sandbox.Password, Sandbox.Kdf, null, "h", "u", TimeProvider.System);
        string keyFile = Path.Combine(_box.Root, "cr.key");
        string slot = await repo.AddKeyFileAsync(keyFile, "h", "u");

        Assert.Equal(slot, (await Repository.OpenWithKeyFileAsync(store, keyFile, TimeProvider.System)).KeyId);
    }

    [Fact]
    public async Task A_key_file_is_never_overwritten_and_a_password_file_is_not_taken_for_one()
    {
        var repo = await _box.InitAsync();
        string existing = Path.Combine(_box.Root, "existing");
        File.WriteAllText(existing, "precious\n");
        int slots = (await repo.ListKeysAsync()).Count;

        var e = await Assert.ThrowsAsync<KintsugiException>(() => repo.AddKeyFileAsync(existing, "h", "u"));
        Assert.Contains("never overwritten", e.Message, StringComparison.Ordinal);
        Assert.Equal("precious\n", File.ReadAllText(existing));
        Assert.Equal(slots, (await repo.ListKeysAsync()).Count);

        var notKey = await Assert.ThrowsAsync<KintsugiException>(() => Repository.OpenWithKeyFileAsync(_box.Store, existing, TimeProvider.System));
        Assert.Equal(ErrorKind.InvalidInput, notKey.Kind);
        Assert.Contains("not a Kintsugi key file", notKey.Message, StringComparison.Ordinal);

        // A key file of another repository opens nothing here.
        using var other = new Sandbox();
        var otherRepo = await other.InitAsync();
        string otherKey = Path.Combine(other.Root, "other.key");
        await otherRepo.AddKeyFileAsync(otherKey, "h", "u");
        var wrong = await Assert.ThrowsAsync<KintsugiException>(() => Repository.OpenWithKeyFileAsync(_box.Store, otherKey, TimeProvider.System));
        Assert.Equal(ErrorKind.WrongPassword, wrong.Kind);
    }
}
