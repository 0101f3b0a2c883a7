using System.Security.Cryptography;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Tests;

public sealed class KeyTests : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>Every file of the repository with its size and content hash.</summary>
    private SortedDictionary<string, string> Fingerprint() =>
        new(Files.Listing(_box.RepoPath).ToDictionary(
            kv => kv.Key,
            kv => kv.Value < 0 ? "dir" : $"{kv.Value}:{Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(_box.RepoPath, kv.Key))))}"),
            StringComparer.Ordinal);

    [Theory]
    [InlineData("wrong password")]
    [InlineData("correct horse battery stapl")]
    public async Task A_wrong_password_is_refused_and_changes_nothing(string password)
    {
        await _box.InitAsync();
        var before = Fingerprint();

        var e = await Assert.ThrowsAsync<KintsugiException>(() => _box.OpenAsync(password));

        Assert.Equal(ErrorKind.WrongPassword, e.Kind);
        Assert.Equal(before, Fingerprint());
    }

    [Fact]
    public async Task An_empty_password_is_refused_as_a_user_error()
    {
        // No key slot can have an empty password (init and key add refuse one), so it is a wrong or invalid password.
        await _box.InitAsync();
        var before = Fingerprint();

        var e = await Record.ExceptionAsync(() => _box.OpenAsync(""));

        var k = Assert.IsType<KintsugiException>(e);
        Assert.Contains(k.Kind, new[] { ErrorKind.WrongPassword, ErrorKind.InvalidInput });
        Assert.Equal(before, Fingerprint());
    }

    [Fact]
    public async Task An_added_key_opens_the_same_repository_as_the_first()
    {
        var repo = await _box.InitAsync();
        string added = await repo.AddKeyAsync("second password", Sandbox.Kdf, "laptop", "alice");

        var viaFirst = await _box.OpenAsync(Sandbox.Password);
        var viaSecond = await _box.OpenAsync("second password");

        Assert.Equal(repo.KeyId, viaFirst.KeyId);
        Assert.Equal(added, viaSecond.KeyId);
        Assert.NotEqual(viaFirst.KeyId, viaSecond.KeyId);
        Assert.Equal(repo.Config, viaSecond.Config);
        // Same master key: both name the same content with the same id.
        Assert.Equal(viaFirst.Key.IdOf("model"u8), viaSecond.Key.IdOf("model"u8));

        var keys = await viaSecond.ListKeysAsync();
        Assert.Equal(2, keys.Count);
        Assert.Equal(added, Assert.Single(keys, k => k.Current).Id);
        var info = Assert.Single(keys, k => k.Id == added);
        Assert.Equal(("laptop", "alice", "argon2id", Sandbox.Kdf.MemoryKib, Sandbox.Kdf.Iterations, Sandbox.Kdf.Parallelism),
            (info.Host, info.User, info.Kdf, info.MemoryKib, info.Iterations, info.Parallelism));
    }

    [Fact]
    public async Task A_removed_key_no_longer_opens_the_repository()
    {
        var repo = await _box.InitAsync();
        string first = repo.KeyId;
        await repo.AddKeyAsync("second password", Sandbox.Kdf, null, null);
        var viaSecond = await _box.OpenAsync("second password");

        Assert.Equal(first, await viaSecond.RemoveKeyAsync(first[..10]));

        var e = await Assert.ThrowsAsync<KintsugiException>(() => _box.OpenAsync(Sandbox.Password));
        Assert.Equal(ErrorKind.WrongPassword, e.Kind);
        Assert.Equal(viaSecond.KeyId, (await _box.OpenAsync("second password")).KeyId);
    }

    [Fact]
    public async Task Removing_the_key_in_use_is_refused()
    {
        var repo = await _box.InitAsync();
        await repo.AddKeyAsync("second password", Sandbox.Kdf, null, null);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => repo.RemoveKeyAsync(repo.KeyId));

        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Equal(2, (await repo.ListKeysAsync()).Count);
        Assert.Equal(repo.KeyId, (await _box.OpenAsync()).KeyId);
    }

    [Fact]
    public async Task Removing_the_last_key_is_refused_even_when_removing_the_current_one_is_allowed()
    {
        var repo = await _box.InitAsync();

        var e = await Assert.ThrowsAsync<KintsugiException>(() => repo.RemoveKeyAsync(repo.KeyId, allowCurrent: true));

        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Single(await repo.ListKeysAsync());
        Assert.Equal(repo.KeyId, (await _box.OpenAsync()).KeyId);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ffffffffffffffffffff")]
    public async Task Removing_an_unknown_key_is_refused(string id)
    {
        var repo = await _box.InitAsync();
        await repo.AddKeyAsync("second password", Sandbox.Kdf, null, null);

        var e = await Assert.ThrowsAsync<KintsugiException>(() => repo.RemoveKeyAsync(id));

        Assert.Equal(ErrorKind.NotFound, e.Kind);
        Assert.Equal(2, (await repo.ListKeysAsync()).Count);
    }

    [Fact]
    public async Task A_damaged_key_slot_does_not_stop_the_others_from_opening()
    {
        var repo = await _box.InitAsync();
        // A slot file that is not JSON, and one with a nonsense salt and KDF cost.
        await repo.Store.PutAsync(FileKind.Key, "00garbage00", "not json at all"u8.ToArray());
        await repo.Store.PutAsync(FileKind.Key, "01hostile01", """{"version":1,"created":"2024-01-01T00:00:00Z","kdf":"argon2id","memory_kib":1,"iterations":0,"parallelism":0,"salt":"%%%","wrapped":"%%%"}"""u8.ToArray());

        Assert.Equal(repo.KeyId, (await _box.OpenAsync()).KeyId);
        var e = await Assert.ThrowsAsync<KintsugiException>(() => _box.OpenAsync("wrong"));
        Assert.Equal(ErrorKind.WrongPassword, e.Kind);
    }

    [Fact]
    public async Task Init_on_an_existing_repository_is_refused_and_changes_nothing()
    {
        await _box.InitAsync();
        var before = Fingerprint();

        var e = await Assert.ThrowsAsync<KintsugiException>(() => _box.InitAsync());

        Assert.Equal(ErrorKind.RepositoryExists, e.Kind);
        Assert.Equal(before, Fingerprint());
    }

    [Fact]
    public async Task Init_in_a_folder_that_holds_other_files_is_refused()
    {
        Directory.CreateDirectory(_box.RepoPath);
        File.WriteAllText(Path.Combine(_box.RepoPath, "notes.txt"), "mine");

        var e = await Assert.ThrowsAsync<KintsugiException>(() => _box.InitAsync());

        Assert.Equal(ErrorKind.RepositoryExists, e.Kind);
        Assert.Equal(["notes.txt"], Directory.EnumerateFileSystemEntries(_box.RepoPath).Select(Path.GetFileName));
    }

    [Fact]
    public async Task Init_with_an_empty_password_is_refused()
    {
        var e = await Assert.ThrowsAsync<KintsugiException>(() =>
            Repository.InitAsync(_box.Store, "", Sandbox.Kdf, null, null, null, TimeProvider.System));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.False(File.Exists(Path.Combine(_box.RepoPath, "config")));
    }

    [Fact]
    public async Task Adding_a_key_with_an_empty_password_is_refused()
    {
        var repo = await _box.InitAsync();
        var e = await Assert.ThrowsAsync<KintsugiException>(() => repo.AddKeyAsync("", Sandbox.Kdf, null, null));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Single(await repo.ListKeysAsync());
    }

    [Fact]
    public async Task Open_on_a_folder_that_is_not_a_repository_is_refused()
    {
        File.WriteAllText(Path.Combine(_box.Source, "file.txt"), "x");
        var e1 = await Assert.ThrowsAsync<KintsugiException>(() => Repository.OpenAsync(new LocalBlobStore(_box.Source), Sandbox.Password, TimeProvider.System));
        Assert.Equal(ErrorKind.RepositoryNotFound, e1.Kind);
        var e2 = await Assert.ThrowsAsync<KintsugiException>(() => Repository.OpenAsync(new LocalBlobStore(Path.Combine(_box.Root, "missing")), Sandbox.Password, TimeProvider.System));
        Assert.Equal(ErrorKind.RepositoryNotFound, e2.Kind);
    }
}
