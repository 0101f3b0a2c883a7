using Kintsugi.EndToEnd.Tests.Harness;
using static Kintsugi.EndToEnd.Tests.Remote.RemoteTestData;

namespace Kintsugi.EndToEnd.Tests.Remote;

public sealed class S3DisasterDrillTests(S3ServerFixture server) : DisasterDrillTests(server), IClassFixture<S3ServerFixture>;

public sealed class AzureDisasterDrillTests(AzureServerFixture server) : DisasterDrillTests(server), IClassFixture<AzureServerFixture>
{
    /// <summary>Machine B gets the account, key and endpoint instead of machine A's connection string.</summary>
    protected override IReadOnlyDictionary<string, string?> MachineBCredentials
    {
        get
        {
            var env = new Dictionary<string, string?>(Server.Credentials, StringComparer.Ordinal) { ["AZURE_STORAGE_CONNECTION_STRING"] = null };
            foreach (var (k, v) in ((AzureServerFixture)Server).AccountKeyCredentials)
            {
                env[k] = v;
            }
            return env;
        }
    }
}

/// <summary>
/// The disaster drill: machine A backs up to object storage, then loses everything (source, home,
/// cache); machine B, a fresh home with only the repository URL, the password and the storage
/// credentials in its environment, restores bit-exact and the repository checks.
/// </summary>
public abstract class DisasterDrillTests(RemoteServerFixture server)
{
    protected RemoteServerFixture Server { get; } = server;

    protected virtual IReadOnlyDictionary<string, string?> MachineBCredentials => Server.Credentials;

    [Fact]
    public async Task Machine_b_restores_bit_exact_from_the_url_and_password_alone_after_machine_a_is_lost()
    {
        using var ws = new Workspace();
        const string password = "correct horse battery staple";
        var a = new RemoteRepository(ws, Server, machine: "machine-a");
        string src = ws.PathOf(Path.Combine("machine-a", "work"));
        WriteSource(src, modelBytes: 1 << 20);
        await a.InitAsync();
        await a.BackupAsync(src);
        FileTree.WriteRandom(Path.Combine(src, "checkpoints", "step-2.bin"), 500_000);
        File.AppendAllText(Path.Combine(src, "sub", "notes.txt"), "epoch 2\n");
        string lastId = (await a.BackupAsync(src)).GetProperty("snapshot").GetString()!;
        // The disaster: machine A's files, home and cache are gone (the source moves out of the way to compare with).
        string reference = ws.PathOf("reference");
        Directory.Move(src, reference);
        Directory.Delete(ws.PathOf("machine-a"), recursive: true);
        File.Delete(ws.PasswordFile);

        var b = new RemoteRepository(ws, Server, machine: "machine-b");
        var env = new Dictionary<string, string?>(MachineBCredentials, StringComparer.Ordinal)
        {
            ["HOME"] = b.Home,
            ["XDG_CACHE_HOME"] = b.CacheHome,
            ["KINTSUGI_REPOSITORY"] = a.Url,
            ["KINTSUGI_PASSWORD"] = password,
        };
        foreach (var (k, v) in env)
        {
            b.Environment[k] = v;
        }

        var snapshots = (await b.RunAsync("snapshots", "--json")).ShouldSucceed().Json().EnumerateArray().ToList();
        Assert.Equal(2, snapshots.Count);
        Assert.Equal(lastId, snapshots[^1].GetProperty("id").GetString());
        string target = ws.PathOf("machine-b-restore");
        (await b.RunAsync("restore", "latest", "--target", target)).ShouldSucceed();
        Assert.False(Directory.Exists(src), "machine A's source is gone");
        FileTree.AssertSameTree(reference, target + src);
        (await b.RunAsync("check", "--read-data")).ShouldSucceed().StdOutShouldContain("no errors found");

        // Machine B carries on where A stopped: its first backup of the restored tree stores almost nothing new.
        var next = (await b.RunAsync("backup", "--json", target + src)).ShouldSucceed().Json();
        Assert.True(Summary(next, "bytes_added") < 100_000, $"the restored data is already in the repository: {next}");
    }
}
