using System.CommandLine;
using Kintsugi.Backup;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Cli.Commands;

/// <summary>
/// A second repository a command reads from (copy's source, init's --copy-settings-from), with its
/// own password: --from-password-file, --from-key-file, KINTSUGI_FROM_PASSWORD_FILE,
/// KINTSUGI_FROM_KEY_FILE or KINTSUGI_FROM_PASSWORD. Never the destination's password: two
/// repositories sharing one would be an accident waiting to happen.
/// </summary>
internal sealed class SourceRepositoryOptions
{
    private readonly Option<string?> _repository;
    private readonly string? _repositoryVariable;

    private readonly Option<string?> _passwordFile = new("--from-password-file")
    {
        Description = "File whose first line is the source repository's password [env: KINTSUGI_FROM_PASSWORD_FILE; KINTSUGI_FROM_PASSWORD holds the password itself]",
        HelpName = "FILE",
    };

    private readonly Option<string?> _keyFile = new("--from-key-file")
    {
        Description = "Key file that opens the source repository (made by `kintsugi key add --new-key-file`) [env: KINTSUGI_FROM_KEY_FILE]",
        HelpName = "FILE",
    };

    private SourceRepositoryOptions(Option<string?> repository, string? repositoryVariable)
    {
        _repository = repository;
        _repositoryVariable = repositoryVariable;
    }

    /// <summary>The option naming the source, for messages.</summary>
    public string Name => _repository.Name;

    /// <summary>Adds the source option (<paramref name="name"/>) and its password options to <paramref name="command"/>.</summary>
    /// <param name="variable">The environment variable that names the source when the option is not given (none: only the option does).</param>
    public static SourceRepositoryOptions AddTo(Command command, string name, string description, string? variable)
    {
        var options = new SourceRepositoryOptions(new Option<string?>(name) { Description = description, HelpName = "REPO" }, variable);
        command.Options.Add(options._repository);
        command.Options.Add(options._passwordFile);
        command.Options.Add(options._keyFile);
        return options;
    }

    /// <summary>The source's URL or folder (made absolute), or null when none is given.</summary>
    public string? Location(CliContext ctx)
    {
        string? location = ctx.Parse.GetValue(_repository);
        if (string.IsNullOrWhiteSpace(location) && _repositoryVariable is not null)
        {
            location = Environment.GetEnvironmentVariable(_repositoryVariable);
        }
        if (string.IsNullOrWhiteSpace(location))
        {
            return null;
        }
        return StoreFactory.IsRemote(location) || location.StartsWith("local:", StringComparison.Ordinal) ? location : Path.GetFullPath(location);
    }

    /// <summary>Opens the source repository at <paramref name="location"/> with its own password or key file.</summary>
    public async Task<Repository> OpenAsync(CliContext ctx, string location, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var (password, keyFile, source) = ReadSecret(ctx);
        // Read before the store is opened: a missing password is a usage error, whatever the URL.
        var store = StoreFactory.Open(location, new StoreOptions { Time = ctx.Time });
        try
        {
            return keyFile is not null
                ? await Repository.OpenWithKeyFileAsync(store, keyFile, ctx.Time, source, ct).ConfigureAwait(false)
                : await Repository.OpenAsync(store, password!, ctx.Time, ct).ConfigureAwait(false);
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.WrongPassword && keyFile is null)
        {
            throw CliContext.WrongPassword(new KintsugiException(e.Kind, $"{e.Message} (the source repository, from {Name})", e), source);
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.RepositoryNotFound)
        {
            throw new KintsugiException(e.Kind, $"{store.Location} (from {Name}) is not a Kintsugi repository; check {Name}", e);
        }
    }

    /// <summary>The source's password, or its key file, and where it came from.</summary>
    private (string? Password, string? KeyFile, string Source) ReadSecret(CliContext ctx)
    {
        string? file = ctx.Parse.GetValue(_passwordFile);
        string? keyFile = ctx.Parse.GetValue(_keyFile);
        if (!string.IsNullOrEmpty(file) && !string.IsNullOrEmpty(keyFile))
        {
            throw new UsageException("--from-password-file and --from-key-file both open the source repository; pass one");
        }
        if (!string.IsNullOrEmpty(file))
        {
            return (CliContext.ReadPasswordFile(file), null, $"the password file {file} (from --from-password-file)");
        }
        if (!string.IsNullOrEmpty(keyFile))
        {
            return (null, keyFile, "--from-key-file");
        }
        var given = new[] { "KINTSUGI_FROM_PASSWORD_FILE", "KINTSUGI_FROM_KEY_FILE", "KINTSUGI_FROM_PASSWORD" }
            .Where(v => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v))).ToList();
        if (given.Count > 1)
        {
            throw new UsageException($"{string.Join(" and ", given)} are all set and each opens the source repository; unset all but one, or pass --from-password-file or --from-key-file");
        }
        string value = given.Count == 1 ? Environment.GetEnvironmentVariable(given[0])! : "";
        return given.FirstOrDefault() switch
        {
            "KINTSUGI_FROM_PASSWORD_FILE" => (CliContext.ReadPasswordFile(value), null, $"the password file {value} (from KINTSUGI_FROM_PASSWORD_FILE)"),
            "KINTSUGI_FROM_KEY_FILE" => (null, value, "KINTSUGI_FROM_KEY_FILE"),
            "KINTSUGI_FROM_PASSWORD" => (value, null, "KINTSUGI_FROM_PASSWORD"),
            _ => throw new UsageException($"no password for the source repository ({Name}): pass --from-password-file FILE or --from-key-file FILE, or set KINTSUGI_FROM_PASSWORD_FILE, KINTSUGI_FROM_KEY_FILE or KINTSUGI_FROM_PASSWORD (its own password, never the destination's)"),
        };
    }
}
