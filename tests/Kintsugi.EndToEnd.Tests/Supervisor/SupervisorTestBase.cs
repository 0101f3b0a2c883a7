using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// The supervisor's end-to-end tests run one after another (one collection): each starts real
/// processes (PyTorch jobs, HTTP servers) and watches them in real time, so running them beside each
/// other on a small machine would only make them slower and their figures noisier.
/// </summary>
[CollectionDefinition(Name)]
public sealed class SupervisorCollection
{
    public const string Name = "supervisor end-to-end";
}

/// <summary>
/// One temporary folder per test holding its kintsugi.yaml; the journal, the repository and its
/// generated password are the embedded defaults under the folder's .kintsugi/.
/// </summary>
public abstract partial class SupervisorTestBase(ITestOutputHelper output) : IAsyncLifetime
{
    public const string Python = "/usr/bin/python3";

    private readonly List<SupervisorProcess> _supervisors = [];

    protected ITestOutputHelper Output { get; } = output;

    protected Workspace Ws { get; } = new();

    protected string ConfigPath => Ws.PathOf("kintsugi.yaml");

    protected string JournalPath => Path.Combine(Ws.Root, ".kintsugi", "journal.db");

    protected string CheckpointDir => Ws.PathOf("ckpt");

    protected static string TrainPy => Path.Combine(Cli.RepositoryRoot, "examples", "train", "train.py");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var s in _supervisors)
        {
            await s.DisposeAsync();
        }
        Ws.Dispose();
    }

    protected void WriteConfig(string yaml) => File.WriteAllText(ConfigPath, yaml, new UTF8Encoding(false));

    /// <summary>Starts <c>kintsugi run --config kintsugi.yaml</c> in the test's folder (with <c>-q</c> when <paramref name="quiet"/>).</summary>
    protected SupervisorProcess StartSupervisor(bool quiet = true, bool subreaper = false)
    {
        var s = SupervisorProcess.Start(Ws.Root, ConfigPath, JournalPath, subreaper, quiet ? ["-q"] : []);
        _supervisors.Add(s);
        return s;
    }

    /// <summary>Runs <c>kintsugi run</c> to its end (at most a minute) and returns what it did.</summary>
    protected Task<CliResult> RunToEndAsync() => Ws.RunAsync("run", "--config", ConfigPath, "-q");

    protected Task<IReadOnlyList<JournalEntry>> ReadJournalAsync() => JournalReader.ReadAsync(JournalPath, Ws.Root);

    /// <summary>A YAML flow sequence of double-quoted strings.</summary>
    protected static string YamlList(params string[] items) => "[" + string.Join(", ", items.Select(Quote)) + "]";

    protected static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    /// <summary>The command line of the PyTorch job with these options.</summary>
    protected static string Train(params string[] options) => YamlList([Python, TrainPy, .. options]);

    /// <summary>Fails at once, with a clear message, where Debian's PyTorch is missing (test.sh installs it).</summary>
    protected static void RequireTorch()
    {
        if (!File.Exists(Python))
        {
            throw new XunitException($"{Python} does not exist: these tests run examples/train/train.py with Debian's python3-torch (./test.sh installs it)");
        }
    }

    [GeneratedRegex(@"step-(\d+)\.pt$")]
    private static partial Regex CheckpointName();

    /// <summary>Checkpoint files now in the folder (complete ones: the job writes .tmp and renames), oldest step first.</summary>
    protected static IReadOnlyList<(string Path, long Step)> CheckpointFiles(string dir) =>
        Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir)
                .Select(p => (Path: p, Match: CheckpointName().Match(Path.GetFileName(p))))
                .Where(x => x.Match.Success)
                .Select(x => (x.Path, long.Parse(x.Match.Groups[1].Value, CultureInfo.InvariantCulture)))
                .OrderBy(x => x.Item2)
                .ToList()
            : [];

    protected static long? StepOf(string? path) =>
        path is not null && CheckpointName().Match(path) is { Success: true } m ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;

    protected static string Dump(IEnumerable<JournalEntry> events) => "--- journal ---\n" + JournalReader.Dump(events) + "\n--- end ---";

    /// <summary>Fails with the journal unless <paramref name="condition"/> holds.</summary>
    protected static void Check(bool condition, string what, IEnumerable<JournalEntry> events, SupervisorProcess? s = null)
    {
        if (!condition)
        {
            throw new XunitException($"{what}\n{(s is null ? Dump(events) : s.Describe(events.ToList()))}");
        }
    }

    /// <summary>
    /// Fails unless each process.started of a replica comes after the process.exited of the replica's
    /// previous process: one process per replica at a time.
    /// </summary>
    protected static void CheckOneProcessAtATime(IReadOnlyList<JournalEntry> events, string workload, int replica, SupervisorProcess? s = null)
    {
        var starts = OfType(events, "process.started", workload, replica);
        for (int i = 1; i < starts.Count; i++)
        {
            long? pid = starts[i - 1].Long("pid");
            var exit = events.FirstOrDefault(e => e.Is("process.exited", workload, replica) && e.Long("pid") == pid);
            Check(exit is not null && exit.Id < starts[i].Id,
                $"{workload}/{replica}: attempt {starts[i].Long("attempt")} (pid {starts[i].Long("pid")}, event #{starts[i].Id}) started while attempt {starts[i - 1].Long("attempt")} (pid {pid}) still ran (its process.exited is {(exit is null ? "missing" : "#" + exit.Id)})",
                events, s);
        }
    }

    protected static List<JournalEntry> OfType(IEnumerable<JournalEntry> events, string type, string? workload = null, int? replica = null) =>
        events.Where(e => e.Is(type, workload, replica)).ToList();
}
