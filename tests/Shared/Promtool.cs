using System.Diagnostics;

namespace Kintsugi.Tests.Shared;

/// <summary>
/// Prometheus's own linter, <c>promtool check metrics</c> (Debian package prometheus; test.sh installs it).
/// Its absence fails the test that needs it, with a message saying how to install it.
/// </summary>
internal static class Promtool
{
    /// <summary>Runs <c>promtool check metrics</c> on <paramref name="page"/>: its exit code, and what it printed (problems, one a line).</summary>
    public static (int ExitCode, string Report) CheckMetrics(string page)
    {
        string promtool = Find() ?? throw new InvalidOperationException(
            "promtool is not installed, and the Prometheus format checks need it: run ./test.sh, which installs it, or `apt-get install prometheus`");
        var start = new ProcessStartInfo(promtool, ["check", "metrics"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(page);
        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill();
            throw new TimeoutException("promtool check metrics did not finish in 30 s");
        }
        return (process.ExitCode, (stdout.Result + stderr.Result).Trim());
    }

    private static string? Find() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "promtool"))
            .FirstOrDefault(File.Exists);
}
