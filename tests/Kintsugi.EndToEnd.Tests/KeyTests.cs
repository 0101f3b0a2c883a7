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
}
