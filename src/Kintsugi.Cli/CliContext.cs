using System.CommandLine;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Kintsugi.Backup;
using Kintsugi.Backup.Storage;
using Spectre.Console;

namespace Kintsugi.Cli;

/// <summary>Options every command takes.</summary>
internal static class GlobalOptions
{
    public static readonly Option<string?> Repository = new("--repo", "-r")
    {
        Description = "Repository: a local folder (or local:PATH), s3:http(s)://host[:port]/bucket[/prefix], or azure:container:/prefix [env: KINTSUGI_REPOSITORY]",
        Recursive = true,
    };

    public static readonly Option<string?> PasswordFile = new("--password-file")
    {
        Description = "File whose first line is the repository password [env: KINTSUGI_PASSWORD_FILE; KINTSUGI_PASSWORD holds the password itself]",
        Recursive = true,
    };

    public static readonly Option<string?> PasswordCommand = new("--password-command")
    {
        Description = "Shell command whose first line of output is the repository password, e.g. a secret manager [env: KINTSUGI_PASSWORD_COMMAND]",
        Recursive = true,
    };

    public static readonly Option<string?> KeyFile = new("--key-file")
    {
        Description = "Key file that opens the repository without a password and without key derivation (made by `kintsugi key add --new-key-file`) [env: KINTSUGI_KEY_FILE]",
        Recursive = true,
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print machine-readable JSON on stdout instead of text",
        Recursive = true,
    };

    public static readonly Option<bool> Quiet = new("--quiet", "-q")
    {
        Description = "Print no progress and only essential output",
        Recursive = true,
    };

    public static readonly Option<string?> Connections = WithValidator(new Option<string?>("--connections")
    {
        Description = "At most N requests at once to an s3: or azure: repository (1 to 256; default 5)",
        HelpName = "N",
        Recursive = true,
    }, text => StoreSettings.ParseConnections(text, "--connections"));

    public static readonly Option<string?> LimitUpload = WithValidator(new Option<string?>("--limit-upload")
    {
        Description = "Upload at most RATE bytes per second to an s3: or azure: repository; RATE takes a suffix K, M or G (also KiB, MiB, GiB: powers of 1024), e.g. 512K, 10M",
        HelpName = "RATE",
        Recursive = true,
    }, text => StoreSettings.ParseRate(text, "--limit-upload"));

    public static readonly Option<string?> LimitDownload = WithValidator(new Option<string?>("--limit-download")
    {
        Description = "Download at most RATE bytes per second from an s3: or azure: repository; RATE as for --limit-upload (bytes per second, suffix K, M or G)",
        HelpName = "RATE",
        Recursive = true,
    }, text => StoreSettings.ParseRate(text, "--limit-download"));

    public static readonly Option<bool> NoCache = new("--no-cache")
    {
        Description = "Keep no local copy of a remote repository's metadata (default: $XDG_CACHE_HOME/kintsugi or ~/.cache/kintsugi)",
        Recursive = true,
    };

    /// <summary>A bad value is a parse error, one line, whatever the command.</summary>
    private static Option<string?> WithValidator(Option<string?> option, Action<string> parse)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0)
            {
                try
                {
                    parse(result.Tokens[^1].Value);
                }
                catch (UsageException e)
                {
                    result.AddError(e.Message);
                }
            }
        });
        return option;
    }
}

/// <summary>The values of the store options, read from their text (<see cref="GlobalOptions.Connections"/> and the limits).</summary>
internal static class StoreSettings
{
    public const int MaxConnections = 256;

    public static int ParseConnections(string text, string option) =>
        int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= MaxConnections
            ? n
            : throw new UsageException($"{option} {text}: give a number of connections from 1 to {MaxConnections}");

    /// <summary>Bytes per second: digits, then nothing (bytes) or K, M, G, optionally followed by iB or B (all powers of 1024).</summary>
    public static long ParseRate(string text, string option)
    {
        string t = text.Trim();
        int digits = 0;
        while (digits < t.Length && char.IsAsciiDigit(t[digits]))
        {
            digits++;
        }
        string unit = t[digits..].ToUpperInvariant();
        int shift = unit switch
        {
            "" or "B" => 0,
            "K" or "KB" or "KIB" => 10,
            "M" or "MB" or "MIB" => 20,
            "G" or "GB" or "GIB" => 30,
            _ => -1,
        };
        if (digits == 0 || shift < 0 || !long.TryParse(t.AsSpan(0, digits), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n)
            || n == 0 || n > (long.MaxValue >> shift))
        {
            throw new UsageException($"{option} {text}: give a rate in bytes per second above 0, e.g. 500000, 512K, 10M or 1G (K, M, G: powers of 1024)");
        }
        return n << shift;
    }
}

/// <summary>
/// What a command needs from its surroundings: the parsed options, the environment, the console.
/// The libraries see none of this; they get values.
/// </summary>
internal sealed class CliContext
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static readonly JsonSerializerOptions JsonLineOptions = new(JsonOptions) { WriteIndented = false };

    public CliContext(ParseResult parse)
    {
        Parse = parse;
        Json = parse.GetValue(GlobalOptions.Json);
        Quiet = parse.GetValue(GlobalOptions.Quiet);
        Out = Console.Out;
        Error = Console.Error;
    }

    public ParseResult Parse { get; }

    public bool Json { get; }

    public bool Quiet { get; }

    public TextWriter Out { get; }

    public TextWriter Error { get; }

    public TimeProvider Time { get; } = TimeProvider.System;

    public static string Host => Environment.MachineName;

    public static string User => Environment.UserName;

    /// <summary>Progress bars go to stderr, and only when it is a terminal and output is for people.</summary>
    public bool ShowProgress => !Json && !Quiet && !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("TERM") != "dumb";

    // Made on first use: setting up a Spectre.Console console costs milliseconds at start-up, and
    // JSON output and most errors never need one.
    private IAnsiConsole? _errorConsole;
    private IAnsiConsole? _outConsole;

    public IAnsiConsole ErrorConsole => LazyInitializer.EnsureInitialized(ref _errorConsole, () => AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }));

    /// <summary>Tables and text for people; plain (no colour) when stdout is not a terminal.</summary>
    public IAnsiConsole OutConsole => LazyInitializer.EnsureInitialized(ref _outConsole, CreateOutConsole);

    private static IAnsiConsole CreateOutConsole()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Out),
            Ansi = Console.IsOutputRedirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = Console.IsOutputRedirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
        });
        if (Console.IsOutputRedirected)
        {
            // A file or pipe has no width; wrapping tables at 80 columns would only hurt grep.
            console.Profile.Width = 240;
        }
        return console;
    }

    /// <summary>
    /// The repository as the store factory takes it: an s3: or azure: URL as given, or a local folder's
    /// full path (local:PATH or a plain path).
    /// </summary>
    public string RepositoryPath
    {
        get
        {
            string? path = Parse.GetValue(GlobalOptions.Repository);
            string from = "--repo";
            if (string.IsNullOrWhiteSpace(path))
            {
                path = Environment.GetEnvironmentVariable("KINTSUGI_REPOSITORY");
                from = "KINTSUGI_REPOSITORY";
            }
            if (string.IsNullOrWhiteSpace(path))
            {
                throw new UsageException("no repository given; pass --repo PATH or set KINTSUGI_REPOSITORY");
            }
            // s3:…, sftp:host:/path, rest:http://…: a scheme (a letter, then letters or digits: two or more, so not a drive like C:),
            // then ':'. Made a local folder of that name, a URL of a kind not supported would swallow backups meant for elsewhere.
            int colon = path.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 2 && char.IsAsciiLetter(path[0]) && !path.AsSpan(0, colon).ContainsAnyExcept(SchemeCharacters))
            {
                string scheme = path[..colon];
                if (scheme is "s3" or "azure")
                {
                    return path;
                }
                if (scheme == "local")
                {
                    string local = path[(colon + 1)..];
                    return string.IsNullOrWhiteSpace(local)
                        ? throw new UsageException($"{from} {path}: give a folder after local:")
                        : Path.GetFullPath(local);
                }
                throw new UsageException($"{from} {path}: {scheme}: repositories are not supported; give a local folder (or local:PATH), s3:http(s)://host[:port]/bucket[/prefix] or azure:container:/prefix (./{path} if a folder really has that name)");
            }
            return Path.GetFullPath(path);
        }
    }

    private static readonly System.Buffers.SearchValues<char> SchemeCharacters = System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");

    /// <summary>How to talk to a remote repository, from --connections, --limit-upload, --limit-download and --no-cache.</summary>
    public StoreOptions StoreOptions
    {
        get
        {
            string? connections = Parse.GetValue(GlobalOptions.Connections);
            string? up = Parse.GetValue(GlobalOptions.LimitUpload);
            string? down = Parse.GetValue(GlobalOptions.LimitDownload);
            return new StoreOptions
            {
                Connections = connections is null ? new StoreOptions().Connections : StoreSettings.ParseConnections(connections, "--connections"),
                UploadBytesPerSecond = up is null ? 0 : StoreSettings.ParseRate(up, "--limit-upload"),
                DownloadBytesPerSecond = down is null ? 0 : StoreSettings.ParseRate(down, "--limit-download"),
                CacheDirectory = Parse.GetValue(GlobalOptions.NoCache) ? null : DefaultCacheDirectory(),
                StallTimeout = DurationFromEnvironment("KINTSUGI_STALL_TIMEOUT") ?? new StoreOptions().StallTimeout,
                RetryBudget = DurationFromEnvironment("KINTSUGI_RETRY_BUDGET") ?? new StoreOptions().RetryBudget,
                Time = Time,
            };
        }
    }

    /// <summary>A duration from the environment (KINTSUGI_STALL_TIMEOUT, KINTSUGI_RETRY_BUDGET: how long a remote request may move no byte, and how long failures are retried); null when unset.</summary>
    private static TimeSpan? DurationFromEnvironment(string variable)
    {
        string? text = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }
        if (!Supervision.Config.DurationSyntax.TryParse(text, out var value) || value <= TimeSpan.Zero)
        {
            throw new UsageException($"{variable}={text}: give a positive duration such as {Supervision.Config.DurationSyntax.Example}");
        }
        return value;
    }

    /// <summary>$XDG_CACHE_HOME/kintsugi (when it is an absolute path, as the XDG spec asks), else ~/.cache/kintsugi.</summary>
    public static string DefaultCacheDirectory()
    {
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        return !string.IsNullOrEmpty(xdg) && Path.IsPathRooted(xdg)
            ? Path.Combine(xdg, "kintsugi")
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "kintsugi");
    }

    private IBlobStore? _store;

    /// <summary>Opens the repository's store (once: its request counts go into the JSON output, see <see cref="WriteJson"/>).</summary>
    public IBlobStore OpenStore() => _store ??= StoreFactory.Open(RepositoryPath, StoreOptions);

    /// <summary>
    /// The password from --password-file, --password-command, KINTSUGI_PASSWORD_FILE,
    /// KINTSUGI_PASSWORD_COMMAND, KINTSUGI_PASSWORD, or a prompt on a terminal (a key file is
    /// <see cref="KeyFilePath"/>'s business).
    /// </summary>
    /// <param name="fileOverride">Not null: the environment is not read (a new password); <paramref name="fileOption"/> is the option that gives it.</param>
    public string ReadPassword(bool confirm = false, string prompt = "password", string? fileOverride = null, string? fileOption = null) =>
        ReadPasswordAndSource(confirm, prompt, fileOverride, fileOption).Password;

    /// <summary>The password, and where it came from, in words for a hint: "the password file F (--password-file)", "KINTSUGI_PASSWORD", "the prompt".</summary>
    private (string Password, string Source) ReadPasswordAndSource(bool confirm = false, string prompt = "password", string? fileOverride = null, string? fileOption = null)
    {
        string? file = fileOverride ?? Parse.GetValue(GlobalOptions.PasswordFile);
        string fileSource = fileOverride is null ? "--password-file" : fileOption ?? "its password file";
        string? command = fileOverride is null ? Parse.GetValue(GlobalOptions.PasswordCommand) : null;
        string commandSource = "--password-command";
        if (!string.IsNullOrEmpty(file) && !string.IsNullOrEmpty(command))
        {
            throw new UsageException("--password-file and --password-command both give the password; pass one");
        }
        if (string.IsNullOrEmpty(file) && string.IsNullOrEmpty(command) && fileOverride is null)
        {
            file = Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD_FILE");
            fileSource = "KINTSUGI_PASSWORD_FILE";
            command = Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD_COMMAND");
            commandSource = "KINTSUGI_PASSWORD_COMMAND";
            if (!string.IsNullOrEmpty(file) && !string.IsNullOrEmpty(command))
            {
                throw new UsageException("KINTSUGI_PASSWORD_FILE and KINTSUGI_PASSWORD_COMMAND are both set and each gives the password; unset one, or pass --password-file or --password-command");
            }
        }
        if (!string.IsNullOrEmpty(file))
        {
            return (ReadPasswordFile(file), $"the password file {file} (from {fileSource})");
        }
        if (!string.IsNullOrEmpty(command))
        {
            // The command is not repeated in messages: it may hold a token.
            return (RunPasswordCommand(command, commandSource), $"the password command (from {commandSource})");
        }
        string? env = fileOverride is null ? Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD") : null;
        if (!string.IsNullOrEmpty(env))
        {
            return (env, "KINTSUGI_PASSWORD");
        }
        if (Console.IsInputRedirected)
        {
            throw new UsageException(fileOverride is null
                ? $"no {prompt} given: pass --password-file FILE{(prompt == "password" ? ", --password-command CMD or --key-file FILE" : " or --password-command CMD")}, set KINTSUGI_PASSWORD_FILE (a file), KINTSUGI_PASSWORD_COMMAND or KINTSUGI_PASSWORD (the password itself), or run on a terminal to be prompted (stdin is not one)"
                : $"no {prompt} given: pass {fileOption ?? "its password file"}, or run on a terminal to be prompted (stdin is not one)");
        }
        string first = Prompt($"enter {prompt}: ");
        if (confirm && Prompt($"enter {prompt} again: ") != first)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "the passwords do not match; nothing was changed");
        }
        return (first, "the prompt");
    }

    /// <summary>The most a password command may print: a password is a line, not a stream.</summary>
    private const int MaxPasswordCommandOutput = 1 << 20;

    /// <summary>
    /// Runs <paramref name="command"/> with /bin/sh (restic's --password-command): its first line of
    /// standard output is the password; its standard error goes to ours, so a secret manager can ask.
    /// Messages name <paramref name="source"/>, never the command, which may hold a token.
    /// </summary>
    public static string RunPasswordCommand(string command, string source)
    {
        var start = new System.Diagnostics.ProcessStartInfo("/bin/sh")
        {
            RedirectStandardOutput = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        var output = new StringBuilder();
        int status;
        try
        {
            using var process = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException("no process");
            var buffer = new char[4096];
            int n;
            while ((n = process.StandardOutput.Read(buffer, 0, buffer.Length)) > 0)
            {
                output.Append(buffer, 0, n);
                if (output.Length > MaxPasswordCommandOutput)
                {
                    process.Kill(entireProcessTree: true);
                    process.WaitForExit();
                    throw new KintsugiException(ErrorKind.InvalidInput, $"the password command (from {source}) printed more than {MaxPasswordCommandOutput >> 20} MiB; it must print the password on its first line and end");
                }
            }
            process.WaitForExit();
            status = process.ExitCode;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"cannot run the password command (from {source}): {e.Message}");
        }
        if (status != 0)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"the password command (from {source}) exited with status {status}; nothing was opened");
        }
        string text = output.ToString();
        int newline = text.IndexOf('\n', StringComparison.Ordinal);
        string line = (newline < 0 ? text : text[..newline]).TrimEnd('\r');
        if (line.Length == 0)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"the password command (from {source}) printed no password; it must print the password on its first line");
        }
        return line;
    }

    /// <summary>A wrong password's message, naming where the password came from: that is what to fix.</summary>
    public static KintsugiException WrongPassword(KintsugiException e, string source) =>
        new(ErrorKind.WrongPassword, $"{e.Message}; the password came from {source}: check it there", e);

    public static string ReadPasswordFile(string file)
    {
        try
        {
            using var reader = new StreamReader(file, Encoding.UTF8);
            string? line = reader.ReadLine();
            if (string.IsNullOrEmpty(line))
            {
                throw new KintsugiException(ErrorKind.InvalidInput, $"password file {file} is empty; write the password on its first line");
            }
            return line;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"cannot read password file {file}: {e.Message}");
        }
    }

    private static string Prompt(string text)
    {
        Console.Error.Write(text);
        var sb = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter)
            {
                break;
            }
            if (key.Key == ConsoleKey.Backspace)
            {
                if (sb.Length > 0)
                {
                    sb.Length--;
                }
                continue;
            }
            sb.Append(key.KeyChar);
        }
        Console.Error.WriteLine();
        return sb.ToString();
    }

    /// <summary>
    /// The key file to open the repository with: --key-file, or KINTSUGI_KEY_FILE unless a password is
    /// given on the command line; null when the password is to be used.
    /// </summary>
    private (string Path, string Source)? KeyFilePath()
    {
        string? option = Parse.GetValue(GlobalOptions.KeyFile);
        bool passwordOption = !string.IsNullOrEmpty(Parse.GetValue(GlobalOptions.PasswordFile)) || !string.IsNullOrEmpty(Parse.GetValue(GlobalOptions.PasswordCommand));
        if (!string.IsNullOrEmpty(option))
        {
            return passwordOption
                ? throw new UsageException("--key-file and a password option both give the key; pass one")
                : (option, "--key-file");
        }
        string? env = Environment.GetEnvironmentVariable("KINTSUGI_KEY_FILE");
        if (passwordOption || string.IsNullOrEmpty(env))
        {
            return null;
        }
        var passwordVariables = new[] { "KINTSUGI_PASSWORD_FILE", "KINTSUGI_PASSWORD_COMMAND", "KINTSUGI_PASSWORD" }
            .Where(v => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v))).ToList();
        if (passwordVariables.Count > 0)
        {
            throw new UsageException($"KINTSUGI_KEY_FILE and {string.Join(", ", passwordVariables)} are both set and each opens the repository; unset one, or pass --key-file or --password-file");
        }
        return (env, "KINTSUGI_KEY_FILE");
    }

    /// <summary>Refuses a key file where a new password is needed (init): it cannot make a repository.</summary>
    public void RefuseKeyFileOption(string command)
    {
        if (!string.IsNullOrEmpty(Parse.GetValue(GlobalOptions.KeyFile)))
        {
            throw new UsageException($"{command} makes a password key slot, so --key-file cannot be used; give a password, then add a key file with `kintsugi key add --new-key-file FILE`");
        }
    }

    /// <summary>A key file others can read is a key others may have: said once on stderr, as ssh says of a private key.</summary>
    private void WarnIfOthersCanRead(string keyFile, string source)
    {
        try
        {
            var mode = File.GetUnixFileMode(keyFile);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0)
            {
                Warn($"kintsugi: warning: key file {keyFile} (from {source}) can be read by other users; anyone who can read it can read the repository: chmod 600 it");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Reading it will say what is wrong.
        }
    }

    public async Task<Repository> OpenRepositoryAsync(CancellationToken ct)
    {
        var store = OpenStore();
        if (!await store.ExistsAsync(FileKind.Config, "config", ct).ConfigureAwait(false))
        {
            throw new KintsugiException(ErrorKind.RepositoryNotFound, $"{store.Location} is not a Kintsugi repository; create one with `kintsugi init` or check --repo / KINTSUGI_REPOSITORY");
        }
        if (KeyFilePath() is var (keyFile, keySource))
        {
            var opened = await Repository.OpenWithKeyFileAsync(store, keyFile, Time, keySource, ct).ConfigureAwait(false);
            WarnIfOthersCanRead(keyFile, keySource);
            return opened;
        }
        var (password, source) = ReadPasswordAndSource();
        try
        {
            return await Repository.OpenAsync(store, password, Time, ct).ConfigureAwait(false);
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.WrongPassword && KeyFile.IsKeyFileLine(password))
        {
            throw new KintsugiException(ErrorKind.WrongPassword, $"the password came from {source}, which holds a key file, not a password: pass it with --key-file (or KINTSUGI_KEY_FILE)", e);
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.WrongPassword)
        {
            throw WrongPassword(e, source);
        }
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Kintsugi's own types, in assemblies the trimmer keeps whole (TrimMode partial); the .NET types they hold are written by System.Text.Json's built-in converters, which reflection mode keeps.")]
    public void WriteJson<T>(T value)
    {
        string text = JsonSerializer.Serialize(value, JsonOptions);
        if (_store is null)
        {
            Out.WriteLine(text);
            return;
        }
        // Every command that opened a repository reports what it cost: requests by kind and bytes moved
        // (zeros for a local folder). An object gets a "requests" field; a list (snapshots, ls, find,
        // key list) stays a list, as scripts read it, and a remote store's figures go to stderr as one JSON line.
        var requests = JsonSerializer.SerializeToNode(_store.Statistics.Snapshot(), JsonOptions);
        if (text.StartsWith('{') && System.Text.Json.Nodes.JsonNode.Parse(text) is System.Text.Json.Nodes.JsonObject json)
        {
            json["requests"] = requests;
            Out.WriteLine(json.ToJsonString(JsonOptions));
            return;
        }
        Out.WriteLine(text);
        if (_store.Capabilities.IsRemote)
        {
            Error.WriteLine(new System.Text.Json.Nodes.JsonObject { ["requests"] = requests }.ToJsonString(JsonLineOptions));
        }
    }

    /// <summary>A line for people on stdout; nothing in JSON mode.</summary>
    public void Say(string line)
    {
        if (!Json)
        {
            Out.WriteLine(line);
        }
    }

    public void Warn(string line) => Error.WriteLine(line);

    /// <summary>
    /// <paramref name="text"/> with every control character written as <c>\xNN</c>. File names come
    /// from shared folders and from repositories others wrote; printed raw, one could move the cursor,
    /// retitle the terminal or forge a line of output.
    /// </summary>
    public static string Printable(string text)
    {
        if (!text.Any(char.IsControl))
        {
            return text;
        }
        var sb = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            if (char.IsControl(c))
            {
                sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\x{(int)c:x2}");
            }
            else
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }
}

/// <summary>A mistake in how the command was called: exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message)
{
    public UsageException() : this("bad usage") { }

    public UsageException(string message, Exception inner) : this(message + ": " + inner.Message) { }
}
