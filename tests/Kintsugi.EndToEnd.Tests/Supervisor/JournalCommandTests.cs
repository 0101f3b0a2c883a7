using System.Diagnostics;
using System.Text;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary><c>kintsugi events --follow</c> and <c>kintsugi status</c> on journals that real runs wrote.</summary>
[Collection(SupervisorCollection.Name)]
public sealed class JournalCommandTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    [Fact]
    public async Task Events_follow_waits_for_a_journal_that_does_not_exist_yet_then_prints_its_events_and_SIGTERM_ends_it_with_0()
    {
        WriteConfig("""
            workloads:
              quick:
                command: [/bin/true]
            """);
        Assert.False(File.Exists(JournalPath));
        using var follower = StartKintsugi("events", "--follow", "--journal", JournalPath);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        follower.OutputDataReceived += (_, e) => { lock (stdout) { stdout.AppendLine(e.Data); } };
        follower.ErrorDataReceived += (_, e) => { lock (stderr) { stderr.AppendLine(e.Data); } };
        follower.BeginOutputReadLine();
        follower.BeginErrorReadLine();
        try
        {
            await Until(() => Text(stderr).Contains("waiting", StringComparison.Ordinal) || follower.HasExited, "events --follow to say it waits");
            StillRunning(follower, stderr);
            Assert.Contains(JournalPath, Text(stderr), StringComparison.Ordinal);

            (await Ws.RunAsync("run", "-q", "--config", ConfigPath)).ShouldSucceed();
            await Until(() => Text(stdout).Contains("supervisor.stopped", StringComparison.Ordinal) || follower.HasExited, "events --follow to print the run's events");
            StillRunning(follower, stderr);
            Assert.Contains("supervisor.started", Text(stdout), StringComparison.Ordinal);
            Assert.Contains("process.started", Text(stdout), StringComparison.Ordinal);

            Assert.True(SupervisorProcess.Kill(follower.Id, SupervisorProcess.SIGTERM));
            Assert.True(follower.WaitForExit(TimeSpan.FromSeconds(20)), "events --follow did not end on SIGTERM");
            Assert.Equal(0, follower.ExitCode);
            Output.WriteLine(Text(stdout));
        }
        finally
        {
            if (!follower.HasExited)
            {
                follower.Kill();
            }
        }
    }

    [Fact]
    public async Task Status_exits_4_when_a_workload_failed_with_or_without_json()
    {
        WriteConfig("""
            workloads:
              doomed:
                command: [/bin/sh, -c, "exit 3"]
                restart: { backoff: { initial: 50ms, jitter: 0 }, budget: { restarts: 1, within: 1h } }
            """);
        (await Ws.RunAsync("run", "-q", "--config", ConfigPath)).ShouldExit(1);

        var text = await Ws.RunAsync("status", "--journal", JournalPath);
        var json = await Ws.RunAsync("status", "--journal", JournalPath, "--json");

        text.ShouldExit(4).StdOutShouldContain("doomed: failed");
        var doomed = json.ShouldExit(4).Json().GetProperty("workloads").EnumerateArray().Single();
        Assert.Equal("failed", doomed.GetProperty("state").GetString());
    }

    [Fact]
    public async Task Status_exits_0_when_every_workload_finished()
    {
        WriteConfig("""
            workloads:
              fine:
                command: [/bin/true]
            """);
        (await Ws.RunAsync("run", "-q", "--config", ConfigPath)).ShouldSucceed();

        (await Ws.RunAsync("status", "--journal", JournalPath)).ShouldSucceed().StdOutShouldContain("fine: stopped");
        (await Ws.RunAsync("status", "--journal", JournalPath, "--json")).ShouldSucceed();
    }

    private Process StartKintsugi(params string[] args)
    {
        var psi = new ProcessStartInfo(Cli.Command[0])
        {
            WorkingDirectory = Ws.Root,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in Cli.Command.Skip(1).Concat(args))
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("KINTSUGI_", StringComparison.Ordinal)).ToList())
        {
            psi.Environment.Remove(name);
        }
        var process = Process.Start(psi)!;
        process.StandardInput.Close();
        return process;
    }

    private static void StillRunning(Process follower, StringBuilder stderr)
    {
        if (follower.HasExited)
        {
            throw new XunitException($"events --follow exited {follower.ExitCode}:\n{Text(stderr)}");
        }
    }

    private static string Text(StringBuilder b)
    {
        lock (b)
        {
            return b.ToString();
        }
    }

    private static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new XunitException($"timed out waiting for {what}");
            }
            await Task.Delay(100);
        }
    }
}
