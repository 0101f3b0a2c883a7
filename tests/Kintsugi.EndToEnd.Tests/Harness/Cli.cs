using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Harness;

/// <summary>What one run of the kintsugi executable did.</summary>
public sealed record CliResult(IReadOnlyList<string> Arguments, int ExitCode, string StdOut, string StdErr)
{
    public IReadOnlyList<string> StdOutLines => SplitLines(StdOut);

    public IReadOnlyList<string> StdErrLines => SplitLines(StdErr);

    private static string[] SplitLines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToArray();

    public override string ToString() =>
        $"$ kintsugi {string.Join(' ', Arguments.Select(Quote))}\nexit code: {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}--- end ---";

    private static string Quote(string arg) => arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:".Contains(c, StringComparison.Ordinal)) ? arg : "'" + arg + "'";

    /// <summary>Fails the test, showing the whole run, unless the exit code is <paramref name="expected"/>.</summary>
    public CliResult ShouldExit(int expected)
    {
        if (ExitCode != expected)
        {
            throw new XunitException($"expected exit code {expected}, got {ExitCode}\n{this}");
        }
        return this;
    }

    public CliResult ShouldSucceed() => ShouldExit(0);

    /// <summary>
    /// The error contract: exactly one line on stderr, starting with "kintsugi:", no stack trace anywhere;
    /// returns that line.
    /// </summary>
    public string ShouldFailCleanly(int expectedExitCode)
    {
        ShouldExit(expectedExitCode);
        ShouldHaveNoStackTrace();
        var lines = StdErrLines;
        if (lines.Count != 1)
        {
            throw new XunitException($"expected exactly one line on stderr, got {lines.Count}\n{this}");
        }
        if (!lines[0].StartsWith("kintsugi:", StringComparison.Ordinal))
        {
            throw new XunitException($"expected the stderr line to start with \"kintsugi:\"\n{this}");
        }
        if (lines[0].Contains("internal error", StringComparison.Ordinal))
        {
            throw new XunitException($"kintsugi reports an internal error (which it calls a bug) instead of a user error\n{this}");
        }
        return lines[0];
    }

    public CliResult ShouldHaveNoStackTrace()
    {
        if (StdErr.Contains("   at ", StringComparison.Ordinal) || StdOut.Contains("   at ", StringComparison.Ordinal))
        {
            throw new XunitException($"the output holds a stack trace\n{this}");
        }
        return this;
    }

    public CliResult StdErrShouldContain(string text)
    {
        if (!StdErr.Contains(text, StringComparison.Ordinal))
        {
            throw new XunitException($"expected stderr to contain \"{text}\"\n{this}");
        }
        return this;
    }

    public CliResult StdOutShouldContain(string text)
    {
        if (!StdOut.Contains(text, StringComparison.Ordinal))
        {
            throw new XunitException($"expected stdout to contain \"{text}\"\n{this}");
        }
        return this;
    }

    /// <summary>stdout parsed as JSON (the test fails, showing the run, when it is not).</summary>
    public JsonElement Json()
    {
        try
        {
            using var doc = JsonDocument.Parse(StdOut);
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new XunitException($"stdout is not JSON: {e.Message}\n{this}");
        }
    }
}

/// <summary>Runs the real kintsugi executable (the built Kintsugi.Cli) as a child process.</summary>
public static class Cli
{
#if DEBUG
    public const string Configuration = "Debug";
#else
    public const string Configuration = "Release";
#endif

    /// <summary>Longest a single command may run before it is killed and the test fails.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static readonly Lazy<string> RepositoryRootLazy = new(FindRepositoryRoot);

    private static readonly Lazy<string> DllLazy = new(() =>
    {
        string dll = Path.Combine(RepositoryRootLazy.Value, "src", "Kintsugi.Cli", "bin", Configuration, "net10.0", "kintsugi.dll");
        if (!File.Exists(dll))
        {
            throw new InvalidOperationException($"{dll} does not exist; build src/Kintsugi.Cli in {Configuration} (building this test project does that)");
        }
        return dll;
    });

    public static string RepositoryRoot => RepositoryRootLazy.Value;

    public static string Dll => DllLazy.Value;

    private static readonly Lazy<string[]> CommandLazy = new(() =>
    {
        string? exe = Environment.GetEnvironmentVariable("KINTSUGI_TEST_CLI");
        if (string.IsNullOrEmpty(exe))
        {
            return [DotnetHost, Dll];
        }
        // Relative to the repository (the test host runs in its bin folder): KINTSUGI_TEST_CLI=out/kintsugi.
        exe = Path.GetFullPath(exe, RepositoryRoot);
        if (!File.Exists(exe))
        {
            throw new InvalidOperationException($"KINTSUGI_TEST_CLI names {exe}, which does not exist; publish Kintsugi there (README, \"Install\") or unset it");
        }
        return [exe];
    });

    /// <summary>
    /// The command that starts kintsugi: <c>dotnet kintsugi.dll</c> of this build, or the executable
    /// KINTSUGI_TEST_CLI names — a published build, such as the self-contained precompiled one the
    /// README installs — so the suite can run against what users install.
    /// </summary>
    public static IReadOnlyList<string> Command => CommandLazy.Value;

    /// <summary>Whether a process's command line (from /proc/PID/cmdline) is kintsugi as <see cref="Command"/> starts it.</summary>
    public static bool IsKintsugi(IReadOnlyList<string> cmdline) =>
        Command.Count == 1 ? cmdline.Count > 0 && cmdline[0] == Command[0] : cmdline.Any(a => a.EndsWith("kintsugi.dll", StringComparison.Ordinal));

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Kintsugi.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no folder above {AppContext.BaseDirectory} holds Kintsugi.slnx");
    }

    private static string DotnetHost
    {
        get
        {
            string? host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
            return !string.IsNullOrEmpty(host) && File.Exists(host) ? host : "dotnet";
        }
    }

    /// <summary>
    /// Runs kintsugi with <paramref name="args"/> in <paramref name="workingDirectory"/>. Inherited KINTSUGI_*
    /// variables are removed and <paramref name="environment"/> is set on top (a null value removes a variable).
    /// stdin is redirected and closed at once, so a password prompt cannot wait for input.
    /// </summary>
    public static async Task<CliResult> RunAsync(string workingDirectory, IReadOnlyDictionary<string, string?> environment, IReadOnlyList<string> args, string? asUser = null)
    {
        // As another user (for tests of permissions, which root ignores): setpriv drops to that user's ids first.
        var psi = new ProcessStartInfo(asUser is null ? Command[0] : "setpriv")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = new UTF8Encoding(false),
            StandardErrorEncoding = new UTF8Encoding(false),
        };
        if (asUser is not null)
        {
            foreach (var arg in new[] { $"--reuid={asUser}", $"--regid={asUser}", "--clear-groups", Command[0] })
            {
                psi.ArgumentList.Add(arg);
            }
        }
        foreach (var arg in Command.Skip(1))
        {
            psi.ArgumentList.Add(arg);
        }
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("KINTSUGI_", StringComparison.Ordinal)).ToList())
        {
            psi.Environment.Remove(name);
        }
        foreach (var (name, value) in environment)
        {
            if (value is null)
            {
                psi.Environment.Remove(name);
            }
            else
            {
                psi.Environment[name] = value;
            }
        }

        using var process = new Process { StartInfo = psi };
        process.Start();
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It exited just now.
            }
            await process.WaitForExitAsync();
            var partial = new CliResult(args, -1, await stdout, await stderr);
            throw new XunitException($"kintsugi did not finish within {Timeout.TotalSeconds} s and was killed\n{partial}");
        }
        return new CliResult(args, process.ExitCode, await stdout, await stderr);
    }
}
