using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>Key slots: add, list, remove, passwd.</summary>
public sealed class KeyTests
{
    [Fact]
    public async Task Keys_can_be_added_listed_and_changed_and_the_key_in_use_cannot_be_removed()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 1_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        string second = ws.WritePassword("second-password", "second secret");
        string third = ws.WritePassword("third-password", "third secret");

        var added = (await ws.RepoAsync(["key", "add", "--new-password-file", second, "--json", .. Workspace.CheapKdf])).ShouldSucceed().Json();
        string secondId = added.GetProperty("id").GetString()!;

        Assert.Single((await ws.RepoWithPasswordAsync(second, "snapshots", "--json")).ShouldSucceed().Json().EnumerateArray());

        var keys = (await ws.RepoWithPasswordAsync(second, "key", "list", "--json")).ShouldSucceed().Json().EnumerateArray().ToList();
        Assert.Equal(2, keys.Count);
        var current = Assert.Single(keys, k => k.GetProperty("current").GetBoolean());
        Assert.Equal(secondId, current.GetProperty("id").GetString());
        string firstId = Assert.Single(keys, k => !k.GetProperty("current").GetBoolean()).GetProperty("id").GetString()!;

        var refused = await ws.RepoWithPasswordAsync(second, "key", "remove", secondId);
        refused.ShouldFailCleanly(1);
        Assert.Equal(2, (await ws.RepoAsync("key", "list", "--json")).ShouldSucceed().Json().GetArrayLength());

        var changed = (await ws.RepoAsync(["key", "passwd", "--new-password-file", third, "--json", .. Workspace.CheapKdf])).ShouldSucceed().Json();
        Assert.Equal(firstId, changed.GetProperty("removed").GetString());

        Assert.Contains("wrong password", (await ws.RepoAsync("snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
        (await ws.RepoWithPasswordAsync(third, "snapshots")).ShouldSucceed();
        (await ws.RepoWithPasswordAsync(second, "snapshots")).ShouldSucceed();

        var after = (await ws.RepoWithPasswordAsync(third, "key", "list", "--json")).ShouldSucceed().Json().EnumerateArray().ToList();
        Assert.Equal(2, after.Count);
        Assert.Equal(changed.GetProperty("id").GetString(), Assert.Single(after, k => k.GetProperty("current").GetBoolean()).GetProperty("id").GetString());
        Assert.DoesNotContain(after, k => k.GetProperty("id").GetString() == firstId);

        // Removing another key works; the repository then opens only with the remaining password.
        (await ws.RepoWithPasswordAsync(third, "key", "remove", secondId[..12])).ShouldSucceed();
        Assert.Contains("wrong password", (await ws.RepoWithPasswordAsync(second, "snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
        (await ws.RepoWithPasswordAsync(third, "check")).ShouldSucceed();
    }

    [Fact]
    public async Task A_key_file_opens_the_repository_without_a_password_and_key_remove_revokes_it()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "a.bin"), 1_000);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        string keyFile = ws.PathOf("ci.key");

        var added = (await ws.RepoAsync("key", "add", "--new-key-file", keyFile, "--json")).ShouldSucceed().Json();
        string slot = added.GetProperty("id").GetString()!;
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));

        // By option and by environment, with no password anywhere.
        Assert.Single((await ws.RunAsync("--repo", ws.Repo, "--key-file", keyFile, "snapshots", "--json")).ShouldSucceed().Json().EnumerateArray());
        var env = new Dictionary<string, string?> { ["KINTSUGI_KEY_FILE"] = keyFile, ["KINTSUGI_REPOSITORY"] = ws.Repo };
        (await ws.RunWithAsync(env, "backup", src)).ShouldSucceed();
        var list = (await ws.RunWithAsync(env, "key", "list", "--json")).ShouldSucceed().Json().EnumerateArray().ToList();
        var current = Assert.Single(list, k => k.GetProperty("current").GetBoolean());
        Assert.Equal((slot, "key-file"), (current.GetProperty("id").GetString(), current.GetProperty("kdf").GetString()));
        Assert.Contains("key file", (await ws.RepoAsync("key", "list")).ShouldSucceed().StdOut, StringComparison.Ordinal);
        // A password given on the command line wins over KINTSUGI_KEY_FILE; a key file and a password option together are a usage error.
        (await ws.RunWithAsync(env, "--password-file", ws.PasswordFile, "snapshots")).ShouldSucceed();
        Assert.Contains("pass one", (await ws.RunAsync("--repo", ws.Repo, "--key-file", keyFile, "--password-file", ws.PasswordFile, "snapshots")).ShouldFailCleanly(2), StringComparison.Ordinal);
        // The same name again is refused and the file kept; a password file is not a key file.
        string before = File.ReadAllText(keyFile);
        Assert.Contains("never overwritten", (await ws.RepoAsync("key", "add", "--new-key-file", keyFile)).ShouldFailCleanly(1), StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllText(keyFile));
        Assert.Contains("not a Kintsugi key file", (await ws.RunAsync("--repo", ws.Repo, "--key-file", ws.PasswordFile, "snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
        Assert.Contains("no password to change", (await ws.RunWithAsync(env, "key", "passwd", "--new-password-file", ws.PasswordFile)).ShouldFailCleanly(2), StringComparison.Ordinal);

        // Nothing is chosen silently: a key file beside a password variable, a key file for init, KDF options for a key file.
        var mixed = new Dictionary<string, string?>(env) { ["KINTSUGI_PASSWORD"] = "correct horse battery staple" };
        Assert.Contains("both set", (await ws.RunWithAsync(mixed, "snapshots")).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Contains("key add --new-key-file", (await ws.RunAsync("--repo", ws.PathOf("fresh"), "--key-file", keyFile, "init")).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.False(Directory.Exists(ws.PathOf("fresh")));
        Assert.Contains("do not apply", (await ws.RepoAsync("key", "add", "--new-key-file", ws.PathOf("k2.key"), "--kdf-memory", "999")).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.False(File.Exists(ws.PathOf("k2.key")));
        Assert.Contains("pass it with --key-file", (await ws.RepoWithPasswordAsync(keyFile, "snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
        // A key file others can read still opens, with one warning.
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var open = (await ws.RunWithAsync(env, "snapshots", "-q")).ShouldSucceed();
        Assert.Contains("can be read by other users", Assert.Single(open.StdErrLines), StringComparison.Ordinal);

        (await ws.RepoAsync("key", "remove", slot)).ShouldSucceed();
        string gone = (await ws.RunWithAsync(env, "snapshots")).ShouldFailCleanly(1);
        Assert.Contains("does not open the repository", gone, StringComparison.Ordinal);
        Assert.Contains("(from KINTSUGI_KEY_FILE)", gone, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_password_command_gives_the_password_and_its_failure_is_one_line()
    {
        using var ws = new Workspace();
        await ws.InitAsync();
        string command = $"cat '{ws.PasswordFile}'";

        (await ws.RunAsync("--repo", ws.Repo, "--password-command", command, "snapshots")).ShouldSucceed();
        var env = new Dictionary<string, string?> { ["KINTSUGI_PASSWORD_COMMAND"] = command, ["KINTSUGI_REPOSITORY"] = ws.Repo };
        (await ws.RunWithAsync(env, "snapshots")).ShouldSucceed();

        string failed = (await ws.RunAsync("--repo", ws.Repo, "--password-command", "exit 3", "snapshots")).ShouldFailCleanly(1);
        Assert.Contains("exited with status 3", failed, StringComparison.Ordinal);
        Assert.Contains("printed no password", (await ws.RunAsync("--repo", ws.Repo, "--password-command", "true", "snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
        // The command may hold a token: it is never repeated.
        string wrong = (await ws.RunAsync("--repo", ws.Repo, "--password-command", "echo token-hunter2", "snapshots")).ShouldFailCleanly(1);
        Assert.Contains("the password command (from --password-command)", wrong, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", wrong, StringComparison.Ordinal);
        Assert.Contains("more than 1 MiB", (await ws.RunAsync("--repo", ws.Repo, "--password-command", "yes pw", "snapshots")).ShouldFailCleanly(1), StringComparison.Ordinal);
        var both = new Dictionary<string, string?> { ["KINTSUGI_PASSWORD_COMMAND"] = command, ["KINTSUGI_PASSWORD_FILE"] = ws.PasswordFile, ["KINTSUGI_REPOSITORY"] = ws.Repo };
        Assert.Contains("both set", (await ws.RunWithAsync(both, "snapshots")).ShouldFailCleanly(2), StringComparison.Ordinal);
        Assert.Contains("pass one", (await ws.RunAsync("--repo", ws.Repo, "--password-command", command, "--password-file", ws.PasswordFile, "snapshots")).ShouldFailCleanly(2), StringComparison.Ordinal);
    }
}
