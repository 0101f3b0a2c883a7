using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Kintsugi.EndToEnd.Tests.Harness;

/// <summary>
/// A temporary folder for one test, deleted afterwards: a repository path, a password file, and helpers
/// to run kintsugi against them.
/// </summary>
public sealed class Workspace : IDisposable
{
    /// <summary>Cheap key derivation: every init and key command in these tests passes it.</summary>
    public static readonly string[] CheapKdf = ["--kdf-memory", "8", "--kdf-iterations", "1"];

    public Workspace()
    {
        Root = Path.Combine(Path.GetTempPath(), "kintsugi-e2e-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        Directory.CreateDirectory(Root);
        Repo = Path.Combine(Root, "repo");
        PasswordFile = WritePassword("password", "correct horse battery staple");
    }

    public string Root { get; }

    public string Repo { get; }

    public string PasswordFile { get; }

    /// <summary>Environment variables every run gets (on top of a clean KINTSUGI_* environment).</summary>
    public Dictionary<string, string?> Environment { get; } = new(StringComparer.Ordinal);

    public string PathOf(string relative) => Path.Combine(Root, relative);

    public string WritePassword(string name, string password)
    {
        string path = PathOf(name);
        File.WriteAllText(path, password + "\n", new UTF8Encoding(false));
        return path;
    }

    /// <summary>Runs kintsugi with exactly these arguments (no repository or password added).</summary>
    public Task<CliResult> RunAsync(params string[] args) => RunWithAsync(Environment, args);

    public Task<CliResult> RunWithAsync(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var merged = new Dictionary<string, string?>(Environment, StringComparer.Ordinal);
        foreach (var (k, v) in environment)
        {
            merged[k] = v;
        }
        return Cli.RunAsync(Root, merged, args);
    }

    /// <summary>Runs kintsugi against this workspace's repository with its password file.</summary>
    public Task<CliResult> RepoAsync(params string[] args) => RunAsync(["--repo", Repo, "--password-file", PasswordFile, .. args]);

    /// <summary>Runs kintsugi against this workspace's repository with another password file.</summary>
    public Task<CliResult> RepoWithPasswordAsync(string passwordFile, params string[] args) => RunAsync(["--repo", Repo, "--password-file", passwordFile, .. args]);

    public async Task InitAsync() => (await RepoAsync(["init", .. CheapKdf])).ShouldSucceed();

    /// <summary>Runs <c>backup --json</c> and returns its JSON output.</summary>
    public async Task<JsonElement> BackupAsync(params string[] args) => (await RepoAsync(["backup", "--json", .. args])).ShouldSucceed().Json();

    /// <summary>The snapshots listed by <c>snapshots --json</c>.</summary>
    public async Task<List<JsonElement>> SnapshotsAsync() => (await RepoAsync("snapshots", "--json")).ShouldSucceed().Json().EnumerateArray().ToList();

    public void Dispose()
    {
        try
        {
            FileTree.MakeWritable(Root);
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover in the temp folder must not fail a test.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
