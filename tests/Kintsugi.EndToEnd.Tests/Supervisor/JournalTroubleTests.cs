using System.Diagnostics;
using System.Globalization;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// A journal that cannot be written must not cost the workloads their supervisor: on a full disk
/// events are held in memory and written later; a journal deleted mid-run is noticed and made again.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class JournalTroubleTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    private const string Workloads = """
        workloads:
          flaky:
            command: [/bin/sh, -c, "sleep 0.3; exit 1"]
            restart: { backoff: { initial: 100ms, max: 200ms }, budget: { restarts: 100000, within: 1h } }
          steady:
            command: [/bin/sh, -c, "sleep 600"]
            stop: { grace: 1s }
        """;

    [Fact]
    public async Task On_a_full_disk_the_workloads_stay_supervised_and_held_events_are_written_with_their_times_once_there_is_room()
    {
        string disk = Ws.PathOf("small-disk");
        using var mount = TmpfsMount.Create(disk, "16m");
        WriteConfig($"journal: {Quote(Path.Combine(disk, "journal.db"))}\n{Workloads}");
        var s = SupervisorProcess.Start(Ws.Root, ConfigPath, Path.Combine(disk, "journal.db"), subreaper: false, "-q");
        await using var supervisor = s;
        var started = await s.WaitForAsync(events => events.Any(e => e.Is("process.started", "steady")) && events.Count(e => e.Is("process.started", "flaky")) >= 2, "both workloads to start");
        long steadyPid = started.First(e => e.Is("process.started", "steady")).Long("pid")!.Value;

        string filler = Path.Combine(disk, "filler");
        FillDisk(filler);
        await WaitForOutputAsync(s, "cannot write the journal");
        await Task.Delay(TimeSpan.FromSeconds(3));
        Check(SupervisorProcess.IsAlive((int)steadyPid) && !s.HasExited, "the full disk cost the supervisor or its workload", await s.EventsAsync(), s);
        File.Delete(filler);
        await WaitForOutputAsync(s, "is written again");
        s.Signal(SupervisorProcess.SIGTERM);
        int code = await s.WaitForExitAsync();

        var events = await s.EventsAsync();
        Check(code == 0, $"kintsugi run exited {code} after SIGTERM, expected 0", events, s);
        var recovered = events.FirstOrDefault(e => e.Type == "journal.recovered");
        Check(recovered is not null && recovered.Long("held") > 0 && recovered.Str("reason")!.Contains("full", StringComparison.Ordinal),
            "expected a journal.recovered naming the full disk, with held > 0", events, s);
        var since = DateTimeOffset.Parse(recovered!.Str("since")!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
        Check(events.Any(e => e.Is("process.started", "flaky") && e.Time > since && e.Time < recovered.Time && e.Id < recovered.Id),
            "expected flaky's restarts while the disk was full, written late with the times they happened", events, s);
        Check(OfType(events, "process.started", "steady").Count == 1, "the steady workload was restarted", events, s);
        Check(events.Any(e => e.Type == "supervisor.stopped"), "expected supervisor.stopped", events, s);
    }

    [Fact]
    public async Task A_journal_deleted_with_its_folder_while_in_use_is_made_again_with_every_event_so_far_and_still_refuses_a_second_run()
    {
        WriteConfig(Workloads);
        var s = StartSupervisor();
        var before = await s.WaitForAsync(events => events.Count(e => e.Is("process.started", "flaky")) >= 2, "flaky to restart");

        // The whole folder, run lock included, as `rm -rf .kintsugi` does.
        Directory.Delete(Path.GetDirectoryName(JournalPath)!, recursive: true);
        await WaitForOutputAsync(s, "was deleted while in use");
        var after = await s.WaitForAsync(events => events.Any(e => e.Type == "journal.recovered"), "the journal to be made again");
        var second = await Ws.RunAsync("run", "--config", ConfigPath, "-q");
        Assert.Contains("already supervising", second.ShouldFailCleanly(1), StringComparison.Ordinal);

        Check(after.Any(e => e.Type == "supervisor.started") && after.Count(e => e.Is("process.started", "flaky")) >= before.Count(e => e.Is("process.started", "flaky")),
            "the journal made again lacks the events written before it was deleted", after, s);
        s.Signal(SupervisorProcess.SIGTERM);
        await s.WaitForExitAsync();
        var events = await s.EventsAsync();
        Check(events.Any(e => e.Type == "supervisor.stopped"), "expected supervisor.stopped in the journal made again", events, s);
    }

    [Fact]
    public async Task A_journal_on_a_read_only_disk_is_refused_in_one_line_before_anything_starts()
    {
        string disk = Ws.PathOf("read-only");
        using var mount = TmpfsMount.Create(disk, "1m", readOnly: true);
        WriteConfig($"journal: {Quote(Path.Combine(disk, "journal.db"))}\nworkloads:\n  job:\n    command: [/bin/sh, -c, \"echo ran > ran\"]\n");

        var run = await RunToEndAsync();

        string line = run.ShouldFailCleanly(1);
        Assert.Contains("make its folder writable", line, StringComparison.Ordinal);
        Assert.False(File.Exists(Ws.PathOf("ran")), "the workload ran without a journal");
    }

    private static void FillDisk(string path)
    {
        var block = new byte[1 << 16];
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write);
        try
        {
            while (true)
            {
                f.Write(block);
                f.Flush();
            }
        }
        catch (IOException)
        {
            // Full.
        }
    }

    private static async Task WaitForOutputAsync(SupervisorProcess s, string text)
    {
        var clock = Stopwatch.StartNew();
        while (!s.StdErr.Contains(text, StringComparison.Ordinal))
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(60) || s.HasExited)
            {
                throw new XunitException($"no \"{text}\" on stderr\n{s.Describe(await s.EventsAsync())}");
            }
            await Task.Delay(200);
        }
    }
}

/// <summary>A small tmpfs mounted for one test (the tests run as root, as CI does) and always unmounted.</summary>
internal sealed class TmpfsMount : IDisposable
{
    private readonly string _path;

    private TmpfsMount(string path)
    {
        _path = path;
    }

    public static TmpfsMount Create(string path, string size, bool readOnly = false)
    {
        Directory.CreateDirectory(path);
        Run("mount", "-t", "tmpfs", "-o", $"size={size}{(readOnly ? ",ro" : "")}", "tmpfs", path);
        return new TmpfsMount(path);
    }

    /// <summary>Runs a command that needs root (mount, umount, chown), failing the test with its stderr.</summary>
    public static void Run(params string[] args)
    {
        var psi = new ProcessStartInfo(args[0]) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args.Skip(1))
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new XunitException($"{string.Join(' ', args)} failed ({p.ExitCode}): {err.Trim()} (this test needs root, as CI has)");
        }
    }

    public void Dispose()
    {
        try
        {
            Run("umount", "-l", _path);
        }
        catch (XunitException)
        {
            // Best effort; a lazy unmount of a busy mount still detaches it.
        }
    }
}
