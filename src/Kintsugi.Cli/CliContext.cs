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
        Description = "Repository folder, local (remote URLs such as s3:… or sftp:… are not supported yet) [env: KINTSUGI_REPOSITORY]",
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
            // then ':'. Made a local folder of that name, it would swallow backups meant for elsewhere.
            int colon = path.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 2 && char.IsAsciiLetter(path[0]) && !path.AsSpan(0, colon).ContainsAnyExcept(SchemeCharacters))
            {
                throw new UsageException($"{from} {path}: remote repositories (s3:, azure:, sftp:…) are not supported yet; give a local folder (./{path} if a folder really has that name)");
            }
            return Path.GetFullPath(path);
        }
    }

    private static readonly System.Buffers.SearchValues<char> SchemeCharacters = System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");

    public IBlobStore OpenStore() => new LocalBlobStore(RepositoryPath);

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
        if (!store.Exists(FileKind.Config, "config"))
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
        Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));
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
