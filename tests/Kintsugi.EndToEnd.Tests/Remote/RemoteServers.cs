using System.Security.Cryptography;
using Kintsugi.Backup.Storage;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests.Remote;

/// <summary>
/// One object-storage emulator for a whole test class (xunit class fixture): repository URLs under
/// fresh prefixes, the environment the CLI reads its credentials from, and a store opened in the
/// test process to inspect or damage what the CLI wrote.
/// </summary>
public abstract class RemoteServerFixture : IAsyncLifetime
{
    /// <summary>Every variable a store reads credentials or settings from: removed from what the CLI inherits, so only a test's own count.</summary>
    private static readonly string[] CloudVariables =
    [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
        "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
        "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_ENDPOINT",
    ];

    /// <summary>"s3" or "azure", for messages.</summary>
    public abstract string Kind { get; }

    /// <summary>A repository URL under <paramref name="prefix"/>.</summary>
    public abstract string Url(string prefix);

    /// <summary>A URL in a bucket / container that does not exist.</summary>
    public abstract string UrlInMissingBucket(string prefix);

    /// <summary>The variables that give the CLI access (all other cloud variables removed).</summary>
    public IReadOnlyDictionary<string, string?> Credentials => WithCloudVariablesCleared(OwnCredentials);

    /// <summary>The same variables with a wrong secret.</summary>
    public IReadOnlyDictionary<string, string?> WrongCredentials => WithCloudVariablesCleared(OwnWrongCredentials);

    /// <summary>The secret in <see cref="Credentials"/> (an error message must never echo it).</summary>
    public abstract string Secret { get; }

    protected abstract IReadOnlyDictionary<string, string> OwnCredentials { get; }

    protected abstract IReadOnlyDictionary<string, string> OwnWrongCredentials { get; }

    /// <summary>Opens the repository at <paramref name="url"/> in this process, with the credentials above.</summary>
    public IBlobStore OpenStore(string url) => StoreFactory.Open(url, new StoreOptions
    {
        Environment = name => OwnCredentials.TryGetValue(name, out var v) ? v : null,
        RetryBudget = TimeSpan.FromSeconds(10),
    });

    public static string NewPrefix() => "e2e-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    private static Dictionary<string, string?> WithCloudVariablesCleared(IReadOnlyDictionary<string, string> own)
    {
        var env = CloudVariables.ToDictionary(v => v, _ => (string?)null, StringComparer.Ordinal);
        foreach (var (k, v) in own)
        {
            env[k] = v;
        }
        return env;
    }

    public abstract Task InitializeAsync();

    public abstract Task DisposeAsync();
}

/// <summary>s3rver: it checks request signatures, so a wrong secret key is refused.</summary>
public sealed class S3ServerFixture : RemoteServerFixture
{
    private S3rverServer? _server;

    private S3rverServer Server => _server ?? throw new InvalidOperationException("s3rver has not started");

    public override string Kind => "s3";

    public override string Url(string prefix) => Server.Url(prefix);

    public override string UrlInMissingBucket(string prefix) => $"s3:{Server.Endpoint}/no-such-bucket/{prefix}";

    public override string Secret => S3rverServer.SecretKey + "-not-it";

    // s3rver accepts only its own key pair; a test that needs a distinctive secret uses the wrong one.
    protected override IReadOnlyDictionary<string, string> OwnCredentials => new Dictionary<string, string>
    {
        ["AWS_ACCESS_KEY_ID"] = S3rverServer.AccessKey,
        ["AWS_SECRET_ACCESS_KEY"] = S3rverServer.SecretKey,
        ["AWS_REGION"] = "us-east-1",
    };

    protected override IReadOnlyDictionary<string, string> OwnWrongCredentials => new Dictionary<string, string>
    {
        ["AWS_ACCESS_KEY_ID"] = S3rverServer.AccessKey,
        ["AWS_SECRET_ACCESS_KEY"] = Secret,
        ["AWS_REGION"] = "us-east-1",
    };

    public override async Task InitializeAsync() => _server = await S3rverServer.StartAsync();

    public override async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>Azurite with one container, <see cref="Container"/>; it checks the shared key.</summary>
public sealed class AzureServerFixture : RemoteServerFixture
{
    public const string Container = "kintsugi";

    private AzuriteServer? _server;

    private AzuriteServer Server => _server ?? throw new InvalidOperationException("Azurite has not started");

    public override string Kind => "azure";

    public override string Url(string prefix) => $"azure:{Container}:/{prefix}";

    public override string UrlInMissingBucket(string prefix) => $"azure:no-such-container:/{prefix}";

    /// <summary>A well-formed key that is not the account's.</summary>
    public override string Secret { get; } = Convert.ToBase64String(RandomNumberGenerator.GetBytes(64));

    protected override IReadOnlyDictionary<string, string> OwnCredentials => new Dictionary<string, string>
    {
        ["AZURE_STORAGE_CONNECTION_STRING"] = Server.ConnectionString,
    };

    protected override IReadOnlyDictionary<string, string> OwnWrongCredentials => new Dictionary<string, string>
    {
        ["AZURE_STORAGE_ACCOUNT"] = AzuriteServer.Account,
        ["AZURE_STORAGE_KEY"] = Secret,
        ["AZURE_STORAGE_ENDPOINT"] = Server.Endpoint,
    };

    /// <summary>The other way to give credentials: account, key and endpoint.</summary>
    public IReadOnlyDictionary<string, string?> AccountKeyCredentials => new Dictionary<string, string?>
    {
        ["AZURE_STORAGE_ACCOUNT"] = AzuriteServer.Account,
        ["AZURE_STORAGE_KEY"] = AzuriteServer.Key,
        ["AZURE_STORAGE_ENDPOINT"] = Server.Endpoint,
    };

    public override async Task InitializeAsync() => _server = await AzuriteServer.StartAsync(Container);

    public override async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>
/// A repository at a URL on a remote server, driven through the real CLI from a <see cref="Workspace"/>
/// that plays one machine: its own HOME and XDG_CACHE_HOME (under the workspace) and the server's
/// credentials in the environment.
/// </summary>
public sealed class RemoteRepository
{
    public RemoteRepository(Workspace workspace, RemoteServerFixture server, string? prefix = null, string machine = "machine")
    {
        Workspace = workspace;
        Server = server;
        Prefix = prefix ?? RemoteServerFixture.NewPrefix();
        Url = server.Url(Prefix);
        Home = workspace.PathOf(Path.Combine(machine, "home"));
        CacheHome = workspace.PathOf(Path.Combine(machine, "cache"));
        Directory.CreateDirectory(Home);
        Directory.CreateDirectory(CacheHome);
        foreach (var (k, v) in server.Credentials)
        {
            Environment[k] = v;
        }
        Environment["HOME"] = Home;
        Environment["XDG_CACHE_HOME"] = CacheHome;
    }

    public Workspace Workspace { get; }

    public RemoteServerFixture Server { get; }

    public string Prefix { get; }

    public string Url { get; }

    /// <summary>This machine's home folder.</summary>
    public string Home { get; }

    /// <summary>This machine's XDG_CACHE_HOME (Kintsugi's cache is its <c>kintsugi</c> folder).</summary>
    public string CacheHome { get; }

    public string KintsugiCache => Path.Combine(CacheHome, "kintsugi");

    /// <summary>What every run on this machine gets (on top of the workspace's).</summary>
    public Dictionary<string, string?> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>Runs kintsugi with exactly these arguments in this machine's environment.</summary>
    public Task<CliResult> RunAsync(params string[] args) => Workspace.RunWithAsync(Environment, args);

    /// <summary>Runs kintsugi against the remote repository with the workspace's password file.</summary>
    public Task<CliResult> RepoAsync(params string[] args) => RunAsync(["--repo", Url, "--password-file", Workspace.PasswordFile, .. args]);

    public async Task InitAsync(params string[] more) => (await RepoAsync(["init", .. Workspace.CheapKdf, .. more])).ShouldSucceed();

    public async Task<System.Text.Json.JsonElement> BackupAsync(params string[] args) => (await RepoAsync(["backup", "--json", .. args])).ShouldSucceed().Json();

    public IBlobStore OpenStore() => Server.OpenStore(Url);
}
