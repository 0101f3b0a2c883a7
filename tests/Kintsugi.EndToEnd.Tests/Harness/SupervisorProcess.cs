using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Harness;

/// <summary>One event of a journal, as <c>kintsugi events --json</c> prints it.</summary>
public sealed record JournalEntry(long Id, DateTimeOffset Time, string Type, string? Workload, int? Replica, JsonElement Data)
{
    private static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public long? Long(string name) =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    public double? Double(string name) =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    public string? Str(string name) =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public bool? Bool(string name) =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    public IReadOnlyList<string> Strings(string name) =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetRawText()).ToList()
            : [];

    public JsonElement? Property(string name) =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) ? v : null;

    public bool Is(string type, string? workload = null, int? replica = null) =>
        Type == type && (workload is null || Workload == workload) && (replica is null || (Replica ?? 0) == replica);

    public override string ToString()
    {
        string who = Workload is null ? "-" : Replica is { } r ? $"{Workload}/{r.ToString(CultureInfo.InvariantCulture)}" : Workload;
        return $"#{Id.ToString(CultureInfo.InvariantCulture)} {Time.ToUniversalTime():HH:mm:ss.fff} {Type,-20} {who,-10} {JsonSerializer.Serialize(Data, Compact)}";
    }
}

/// <summary>Reads a journal through <c>kintsugi events --journal J --json --limit 0</c>.</summary>
public static class JournalReader
{
    /// <summary>Every event of the journal, oldest first; empty while the journal does not exist yet.</summary>
    public static async Task<IReadOnlyList<JournalEntry>> ReadAsync(string journal, string workingDirectory)
    {
        if (!File.Exists(journal))
        {
            return [];
        }
        var run = await Cli.RunAsync(workingDirectory, new Dictionary<string, string?>(), ["events", "--journal", journal, "--json", "--limit", "0"]);
        run.ShouldSucceed();
        return Parse(run.Json());
    }

    public static IReadOnlyList<JournalEntry> Parse(JsonElement array) =>
        array.EnumerateArray().Select(e => new JournalEntry(
            e.GetProperty("id").GetInt64(),
            DateTimeOffset.Parse(e.GetProperty("time").GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
            e.GetProperty("type").GetString()!,
            e.TryGetProperty("workload", out var w) && w.ValueKind == JsonValueKind.String ? w.GetString() : null,
            e.TryGetProperty("replica", out var r) && r.ValueKind == JsonValueKind.Number ? r.GetInt32() : null,
            e.TryGetProperty("data", out var d) ? d.Clone() : default)).ToList();

    /// <summary>The journal as text, one event a line (for failure messages), monitor.evaluations left out.</summary>
    public static string Dump(IEnumerable<JournalEntry> events) =>
        string.Join('\n', events.Where(e => e.Type != "monitor.evaluations").Select(e => e.ToString()));
}

/// <summary>
/// <c>kintsugi run</c> as a long-running child process: its output captured line by line with the
/// time each line arrived, signals sent to it with kill(2), its journal read and polled.
/// </summary>
public sealed partial class SupervisorProcess : IAsyncDisposable
{
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    /// <summary>How long a wait for a journal condition may take before the test fails.</summary>
    public static readonly TimeSpan DefaultDeadline = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly List<(DateTimeOffset Time, string Line, bool StdErr)> _lines = [];
    private readonly TaskCompletionSource _stdoutDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IReadOnlyList<JournalEntry> _lastEvents = [];

    private SupervisorProcess(Process process, string journal, string workingDirectory, IReadOnlyList<string> args)
    {
        _process = process;
        Journal = journal;
        WorkingDirectory = workingDirectory;
        Arguments = args;
    }

    public string Journal { get; }

    public string WorkingDirectory { get; }

    public IReadOnlyList<string> Arguments { get; }

    /// <summary>The supervisor's pid (<c>dotnet kintsugi.dll</c> runs kintsugi in this very process).</summary>
    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int signal);

    /// <summary>Sends <paramref name="signal"/> to a process (not its group); false when it is gone.</summary>
    public static bool Kill(int pid, int signal) => SysKill(pid, signal) == 0;

    public static bool IsAlive(int pid)
    {
        // A zombie still has a /proc entry; its state is Z.
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }

    /// <summary>
    /// A parent for <c>kintsugi run</c> that is a child subreaper (prctl PR_SET_CHILD_SUBREAPER) and
    /// reaps every child at once: a workload orphaned by a supervisor killed with SIGKILL becomes its
    /// child, so when the orphan dies it leaves no zombie behind. (Where the orphans go to an init that
    /// reaps late, as on some VMs, a dead orphan lingers in /proc as a zombie for a second or two.)
    /// It exits with kintsugi's status once it has no child left.
    /// </summary>
    private const string SubreaperScript = """
        import ctypes, os, subprocess, sys
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
        child = subprocess.Popen(sys.argv[1:])
        code = 0
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == child.pid:
                code = os.waitstatus_to_exitcode(status)
        sys.exit(code if code >= 0 else 128 - code)
        """;

    /// <summary>
    /// Starts <c>kintsugi run --config CONFIG</c> (plus <paramref name="extraArgs"/>) in <paramref name="workingDirectory"/>.
    /// With <paramref name="subreaper"/>, under a parent that adopts and reaps the processes it orphans
    /// (<see cref="Pid"/> is then that parent's: take the supervisor's pid from supervisor.started).
    /// </summary>
    public static SupervisorProcess Start(string workingDirectory, string config, string journal, bool subreaper, params string[] extraArgs)
    {
        var psi = new ProcessStartInfo(subreaper ? "/usr/bin/python3" : Cli.Command[0])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = new UTF8Encoding(false),
            StandardErrorEncoding = new UTF8Encoding(false),
        };
        string[] args = ["run", "--config", config, .. extraArgs];
        if (subreaper)
        {
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(SubreaperScript);
            psi.ArgumentList.Add(Cli.Command[0]);
        }
        foreach (var a in Cli.Command.Skip(1))
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("KINTSUGI_", StringComparison.Ordinal)).ToList())
        {
            psi.Environment.Remove(name);
        }
        var process = new Process { StartInfo = psi };
        var sp = new SupervisorProcess(process, journal, workingDirectory, args);
        process.OutputDataReceived += (_, e) => sp.OnLine(e.Data, false);
        process.ErrorDataReceived += (_, e) => sp.OnLine(e.Data, true);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return sp;
    }

    private void OnLine(string? line, bool stderr)
    {
        if (line is null)
        {
            (stderr ? _stderrDone : _stdoutDone).TrySetResult();
            return;
        }
        lock (_lines)
        {
            _lines.Add((DateTimeOffset.UtcNow, line, stderr));
        }
    }

    /// <summary>The output lines so far, with the time each arrived.</summary>
    public IReadOnlyList<(DateTimeOffset Time, string Line, bool StdErr)> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public string StdOut => string.Join('\n', Lines.Where(l => !l.StdErr).Select(l => l.Line));

    public string StdErr => string.Join('\n', Lines.Where(l => l.StdErr).Select(l => l.Line));

    /// <summary>The last lines of output, for failure messages.</summary>
    public string OutputTail(int count = 40) => string.Join('\n', Lines.TakeLast(count).Select(l => (l.StdErr ? "err| " : "out| ") + l.Line));

    /// <summary>Sends a signal to the supervisor itself.</summary>
    public void Signal(int signal)
    {
        if (!Kill(Pid, signal))
        {
            throw new XunitException($"kill({Pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public async Task<IReadOnlyList<JournalEntry>> EventsAsync()
    {
        var events = await JournalReader.ReadAsync(Journal, WorkingDirectory);
        _lastEvents = events;
        return events;
    }

    /// <summary>
    /// Polls the journal until <paramref name="condition"/> holds and returns the events that satisfied it;
    /// fails with the journal and the output when the deadline passes or the supervisor exits first.
    /// </summary>
    public async Task<IReadOnlyList<JournalEntry>> WaitForAsync(Func<IReadOnlyList<JournalEntry>, bool> condition, string what, TimeSpan? deadline = null)
    {
        var stopwatch = Stopwatch.StartNew();
        var limit = deadline ?? DefaultDeadline;
        while (true)
        {
            bool exited = HasExited;
            var events = await EventsAsync();
            if (condition(events))
            {
                return events;
            }
            if (exited)
            {
                throw new XunitException($"kintsugi run exited (code {_process.ExitCode}) before {what}\n{Describe(events)}");
            }
            if (stopwatch.Elapsed > limit)
            {
                throw new XunitException($"no {what} within {limit.TotalSeconds} s\n{Describe(events)}");
            }
            await Task.Delay(200);
        }
    }

    /// <summary>Waits for the supervisor to exit; kills it and fails the test after <paramref name="deadline"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan? deadline = null)
    {
        using var cts = new CancellationTokenSource(deadline ?? DefaultDeadline);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            var events = await EventsAsync();
            KillTree();
            throw new XunitException($"kintsugi run did not exit within {(deadline ?? DefaultDeadline).TotalSeconds} s and was killed\n{Describe(events)}");
        }
        await Task.WhenAny(Task.WhenAll(_stdoutDone.Task, _stderrDone.Task), Task.Delay(TimeSpan.FromSeconds(5)));
        return _process.ExitCode;
    }

    /// <summary>The command, the journal and the end of the output, for failure messages.</summary>
    public string Describe(IReadOnlyList<JournalEntry>? events = null) =>
        $"$ kintsugi {string.Join(' ', Arguments)}\n--- journal ---\n{JournalReader.Dump(events ?? _lastEvents)}\n--- output (tail) ---\n{OutputTail()}\n--- end ---";

    private void KillTree()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
            // Gone already.
        }
    }

    /// <summary>
    /// Kills the supervisor if it still runs, and any workload process of its journal that outlived it
    /// (a supervisor killed with SIGKILL leaves its workloads running in their own sessions).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            KillTree();
        }
        KillLeftovers(_lastEvents);
        _process.Dispose();
        await Task.CompletedTask;
    }

    /// <summary>Kills (group and process) every process.started pid that still runs the command it was started with.</summary>
    public static void KillLeftovers(IEnumerable<JournalEntry> events)
    {
        foreach (var e in events.Where(e => e.Type == "process.started"))
        {
            if (e.Long("pid") is not long pid || !IsAlive((int)pid))
            {
                continue;
            }
            string cmdline;
            try
            {
                cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
            }
            catch (IOException)
            {
                continue;
            }
            if (cmdline == string.Join(' ', e.Strings("command")))
            {
                Kill(-(int)pid, SIGKILL);
                Kill((int)pid, SIGKILL);
            }
        }
    }
}
