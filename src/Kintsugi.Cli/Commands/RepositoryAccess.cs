using System.Security.Cryptography;
using Kintsugi.Backup;
using Kintsugi.Backup.Storage;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Cli.Commands;

/// <summary>
/// A checkpoint repository as the config names it: where, how it is opened, its upload limit. Plain
/// values, so that the process that backs checkpoints up (<see cref="ProtectionWorker"/>) is told
/// exactly what the supervisor would use.
/// </summary>
internal sealed record RepositoryTarget(string Location, string? PasswordFile, string? KeyFile, string DefaultPassword, long LimitUpload)
{
    /// <summary>The main repository: 'repository', 'password-file', 'key-file', 'protection: limit-upload'; its default password file is beside a local one, else in .kintsugi/ beside the config.</summary>
    public static RepositoryTarget Primary(SupervisorConfig cfg) => new(cfg.Repository, cfg.PasswordFile, cfg.KeyFile, DefaultPasswordOf(cfg), cfg.LimitUpload);

    /// <summary>A copy: its own password or key file, else the main repository's password file or the environment; its upload limit.</summary>
    public static RepositoryTarget Copy(SupervisorConfig cfg, CopySpec copy) =>
        new(copy.Repository, copy.KeyFile is null ? copy.PasswordFile ?? cfg.PasswordFile : null, copy.KeyFile, DefaultPasswordOf(cfg), copy.LimitUpload);

    private static string DefaultPasswordOf(SupervisorConfig cfg) =>
        StoreFactory.IsRemote(cfg.Repository)
            ? Path.Combine(Path.GetDirectoryName(cfg.SourcePath)!, ".kintsugi", "password")
            : Path.Combine(Path.GetDirectoryName(cfg.Repository)!, "password");
}

/// <summary>
/// Opens a checkpoint repository (the main one or a copy) once, on first use. The embedded default
/// (.kintsugi/repository beside the config, no password given) is created on first use with a
/// generated password in .kintsugi/password; so is a copy that does not exist yet, with the main
/// repository's password unless it has its own.
/// </summary>
internal sealed class RepositoryAccess(RepositoryTarget target, TimeProvider time)
{
    public static RepositoryAccess Primary(SupervisorConfig cfg, TimeProvider time) => new(RepositoryTarget.Primary(cfg), time);

    public static RepositoryAccess Copy(SupervisorConfig cfg, CopySpec copy, TimeProvider time) => new(RepositoryTarget.Copy(cfg, copy), time);

    private readonly string location = target.Location;
    private readonly string? passwordFile = target.PasswordFile;
    private readonly string? keyFile = target.KeyFile;
    private readonly string defaultPassword = target.DefaultPassword;
    private readonly StoreOptions storeOptions = new() { Time = time, UploadBytesPerSecond = target.LimitUpload };

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Repository? _repo;

    public async Task<Repository> OpenAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return _repo ??= await OpenOrCreateAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<Repository> OpenOrCreateAsync(CancellationToken ct)
    {
        var store = StoreFactory.Open(location, storeOptions);
        string label = RepositoryLabel.Of(location);
        // A key file (`key-file:` in the config) opens with no key derivation. KINTSUGI_KEY_FILE is not read
        // here: like KINTSUGI_REPOSITORY, it names the repository of the shell, not the config's.
        bool exists = await store.ExistsAsync(FileKind.Config, "config", ct).ConfigureAwait(false);
        if (keyFile is not null)
        {
            if (!exists)
            {
                throw new KintsugiException(ErrorKind.RepositoryNotFound, $"{label} is not a Kintsugi repository, and a key file cannot create one; create it with `kintsugi init`, then `kintsugi key add --new-key-file`");
            }
            return await Repository.OpenWithKeyFileAsync(store, keyFile, time, "'key-file' in the config", ct).ConfigureAwait(false);
        }
        string? password = passwordFile is not null ? CliContext.ReadPasswordFile(passwordFile)
            : Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD_FILE") is { Length: > 0 } envFile ? CliContext.ReadPasswordFile(envFile)
            : Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD_COMMAND") is { Length: > 0 } envCommand ? CliContext.RunPasswordCommand(envCommand, "KINTSUGI_PASSWORD_COMMAND")
            : Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD") is { Length: > 0 } envPassword ? envPassword
            : File.Exists(defaultPassword) ? CliContext.ReadPasswordFile(defaultPassword)
            : null;
        if (exists)
        {
            string source = passwordFile is not null ? $"the password file {passwordFile} (from 'password-file' in the config)"
                : Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD_FILE") is { Length: > 0 } file ? $"the password file {file} (from KINTSUGI_PASSWORD_FILE)"
                : Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD_COMMAND") is { Length: > 0 } ? "the password command (from KINTSUGI_PASSWORD_COMMAND)"
                : Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD") is { Length: > 0 } ? "KINTSUGI_PASSWORD"
                : $"the password file {defaultPassword}";
            try
            {
                return await Repository.OpenAsync(store, password ?? throw new KintsugiException(ErrorKind.InvalidInput, $"repository {label} needs a password: set 'password-file' or 'key-file' in the config, KINTSUGI_PASSWORD_FILE (a file), KINTSUGI_PASSWORD_COMMAND or KINTSUGI_PASSWORD (the password itself), or write it in {defaultPassword}"), time, ct).ConfigureAwait(false);
            }
            catch (KintsugiException e) when (e.Kind == ErrorKind.WrongPassword)
            {
                throw CliContext.WrongPassword(e, source);
            }
        }
        if (password is null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(defaultPassword)!);
            password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
            // Created readable by its owner only, never for a moment by anyone else.
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite };
            await using (var stream = new FileStream(defaultPassword, options))
            {
                await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(password + "\n"), ct).ConfigureAwait(false);
            }
        }
        return await Repository.InitAsync(store, password, KdfParameters.Default, null, CliContext.Host, CliContext.User, time, ct).ConfigureAwait(false);
    }
}
