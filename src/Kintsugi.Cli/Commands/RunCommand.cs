using System.Collections;
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Kintsugi.Backup;
using Kintsugi.Backup.Storage;
using Kintsugi.Supervision;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Journal;
using Kintsugi.Supervision.Metrics;
using Kintsugi.Supervision.Policies;

namespace Kintsugi.Cli.Commands;

/// <summary><c>kintsugi run</c>: supervise the workloads of a kintsugi.yaml until they finish, fail, or Ctrl-C.</summary>
internal static class RunCommand
{
    private static readonly TimeSpan MaxLinger = TimeSpan.FromDays(1);

    public static Command Create()
    {
        var config = new Option<string>("--config", "-c") { Description = "The supervisor configuration (docs/CONFIG.md)", DefaultValueFactory = _ => "kintsugi.yaml" };
        var metrics = new Option<string?>("--metrics") { Description = "Serve Prometheus metrics at HOST:PORT/metrics (loopback only), e.g. 127.0.0.1:9464" };
        var check = new Option<bool>("--check") { Description = "Only check the configuration: validate it, and that every program is found, every cwd exists and every checkpoint folder can be written; start nothing, create no journal or repository. Exit 0 with a summary (--json: an object), or 2 with the first problem" };
        var linger = new Option<string>("--metrics-linger") { Description = "With --metrics: once the workloads have finished or failed, keep serving the final figures (kintsugi_supervisor_running 0) this long before exiting, e.g. 30s; Ctrl-C ends it at once", DefaultValueFactory = _ => "0s" };
        var command = new Command("run",
            "Run and supervise the workloads of a kintsugi.yaml: probes and monitors watch them; restarts with backoff, adjustments, rollbacks to the last good checkpoint, failover and giving up keep them going; checkpoints are backed up as they appear. Every event goes to the journal (`kintsugi status`, `kintsugi events`). Exit 0 when all workloads finish (or on Ctrl-C), 1 when one fails, 2 for a configuration it refuses (`--check` checks one without running it).")
        {
            config, metrics, check, linger,
        };
        command.SetHandler(async (ctx, ct) =>
        {
            string path = ctx.Parse.GetValue(config)!;
            bool checkOnly = ctx.Parse.GetValue(check);
            string lingerText = ctx.Parse.GetValue(linger) ?? "0s";
            if (!DurationSyntax.TryParse(lingerText, out var lingerTime) || lingerTime < TimeSpan.Zero || lingerTime > MaxLinger)
            {
                throw new UsageException($"--metrics-linger '{lingerText}' is not a duration of at most 1d; write it like 0s, 30s or 2m");
            }
            if (lingerTime > TimeSpan.Zero && ctx.Parse.GetValue(metrics) is null)
            {
                throw new UsageException("--metrics-linger keeps the metrics endpoint up, and there is none: add --metrics 127.0.0.1:9464");
            }
            SupervisorConfig cfg;
            try
            {
                cfg = ConfigLoader.Load(path);
            }
            catch (ConfigException e)
            {
                if (!checkOnly)
                {
                    RecordConfigError(path, e.Message, ctx.Time);
                }
                throw new UsageException(e.Message);
            }
            if (checkOnly)
            {
                try
                {
                    Preflight(cfg, InheritedEnvironment(), leaveNothing: true);
                }
                catch (ConfigException e)
                {
                    throw new UsageException(e.Message);
                }
                ReportChecked(path, cfg, ctx);
                return ExitCodes.Ok;
            }
            // Signals are ours from here: a stop must run to its end (every process signalled, given its
            // grace, killed, journaled), however long the grace; System.CommandLine would end the
            // process 2 s after the first Ctrl-C and orphan the workloads (Program leaves them to us).
            using var stop = new CancellationTokenSource();
            using var hurry = new CancellationTokenSource();
            using var signals = StopSignals.Register(stop, hurry, ctx);
            using var runLock = RunLock.Acquire(cfg.Journal, () => DescribeHolder(cfg.Journal));
            using var journal = EventJournal.Open(cfg.Journal, ctx.Time);
            // A journal that cannot be written does not stop supervision; it is said loudly, even with -q.
            journal.Warning += message =>
            {
                lock (ctx.Error)
                {
                    ctx.Error.WriteLine($"kintsugi: WARNING: {message}");
                }
                // The journal's folder may have gone with it: the run lock is made again beside it.
                if (runLock.Renew() is { } lockWarning)
                {
                    lock (ctx.Error)
                    {
                        ctx.Error.WriteLine($"kintsugi: WARNING: {lockWarning}");
                    }
                }
            };
            var inherited = InheritedEnvironment();
            try
            {
                Preflight(cfg, inherited, leaveNothing: false);
            }
            catch (ConfigException e)
            {
                journal.Append(EventTypes.Error, null, null, new { message = e.Message });
                throw new UsageException(e.Message);
            }
            var repository = RepositoryAccess.Primary(cfg, ctx.Time);
            var copies = cfg.Copies.ToDictionary(c => c, c => RepositoryAccess.Copy(cfg, c, ctx.Time));
            // Checkpoints are chunked, compressed, encrypted and uploaded by a helper process at low CPU
            // and I/O priority, so protecting them takes what the training job leaves ('protection: priority').
            await using var protection = cfg.ProtectionPriority != ProtectionPriority.Normal && cfg.Workloads.Any(w => w.Checkpoints is { BackupOnChange: true })
                ? new ProtectionWorker(cfg, cfg.ProtectionPriority, message =>
                {
                    lock (ctx.Error)
                    {
                        ctx.Error.WriteLine($"kintsugi: WARNING: {message}");
                    }
                })
                : null;
            var options = new SupervisorOptions
            {
                CheckpointBackup = protection,
                OpenRepository = repository.OpenAsync,
                OpenCopy = (copy, ct) => copies[copy].OpenAsync(ct),
                Host = CliContext.Host,
                BaseEnvironment = inherited,
                OnOutput = ctx.Quiet ? null : (workload, replica, line, stderr) =>
                {
                    var writer = stderr ? ctx.Error : ctx.Out;
                    lock (writer)
                    {
                        writer.WriteLine($"[{workload}/{replica}] {line}");
                    }
                },
            };
            if (cfg.Workloads.Any(w => w.Checkpoints is { BackupOnChange: true }))
            {
                // Before the first workload starts, not at its first checkpoint: creating the embedded
                // repository (or deriving its key) takes a while, and a checkpoint written meanwhile would
                // wait unprotected; a wrong password is better refused now than at every checkpoint.
                try
                {
                    await repository.OpenAsync(stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return ExitCodes.Interrupted;
                }
                catch (KintsugiException e)
                {
                    journal.Append(EventTypes.Error, null, null, new { message = $"cannot open the repository {RepositoryLabel.Of(cfg.Repository)}: {e.Message}" });
                    throw new KintsugiException(e.Kind, $"repository {RepositoryLabel.Of(cfg.Repository)}: {e.Message}", e);
                }
            }
            bool supervising = true;
            await using var endpoint = ctx.Parse.GetValue(metrics) is { } hostPort
                ? StartMetrics(hostPort, journal, ctx.Time, () => Volatile.Read(ref supervising))
                : null;
            if (!ctx.Quiet)
            {
                ctx.Error.WriteLine($"kintsugi: supervising {string.Join(", ", cfg.Workloads.Select(w => w.Replicas > 1 ? $"{w.Name} ×{w.Replicas}" : w.Name))}; journal {cfg.Journal}; Ctrl-C stops");
            }
            using var narration = new CancellationTokenSource();
            var narrator = ctx.Quiet ? Task.CompletedTask : NarrateAsync(journal, ctx, journal.Last(EventTypes.SupervisorStarted)?.Id ?? 0, narration.Token);
            var outcome = await new Supervisor(cfg, journal, options, ctx.Time).RunAsync(stop.Token, hurry.Token).ConfigureAwait(false);
            // At once: a scrape after supervisor.stopped is in the journal must see the final figures.
            Volatile.Write(ref supervising, false);
            await Task.Delay(300, CancellationToken.None).ConfigureAwait(false);
            await narration.CancelAsync().ConfigureAwait(false);
            await narrator.ConfigureAwait(false);
            journal.Maintain();
            if (journal.HeldCount > 0)
            {
                ctx.Error.WriteLine($"kintsugi: WARNING: {journal.HeldCount} events of this run could not be written to the journal {cfg.Journal} and are lost with this process; `kintsugi status` does not show them");
            }
            if (!ctx.Quiet)
            {
                ctx.Error.WriteLine($"kintsugi: {outcome.ToString().ToLowerInvariant()}; `kintsugi status` and `kintsugi events` show what happened");
            }
            if (endpoint is not null && lingerTime > TimeSpan.Zero && !stop.IsCancellationRequested)
            {
                // Workloads that finish between two scrapes would otherwise leave Prometheus without
                // their final figures; Ctrl-C or SIGTERM ends the wait at once.
                if (!ctx.Quiet)
                {
                    ctx.Error.WriteLine($"kintsugi: serving the final metrics at {endpoint.Url} for {lingerText}; Ctrl-C stops");
                }
                try
                {
                    await Task.Delay(lingerTime, ctx.Time, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }
            return outcome == SupervisorOutcome.Failed ? ExitCodes.Failed : ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>What the workloads inherit: kintsugi's own environment without KINTSUGI_* variables (the supervisor sets those).</summary>
    private static Dictionary<string, string> InheritedEnvironment() =>
        Environment.GetEnvironmentVariables().Cast<DictionaryEntry>()
            .Where(e => !((string)e.Key).StartsWith("KINTSUGI_", StringComparison.Ordinal))
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "", StringComparer.Ordinal);

    /// <summary>Who holds a journal's run lock, as its newest supervisor.started tells.</summary>
    private static string? DescribeHolder(string journalPath)
    {
        try
        {
            using var journal = EventJournal.OpenReadOnly(journalPath);
            return journal.Last(EventTypes.SupervisorStarted) is { } started && started.GetInt64("pid") is long pid
                ? $"`kintsugi run` (pid {pid}, since {started.Time.ToLocalTime():yyyy-MM-dd HH:mm:ss})"
                : null;
        }
        catch (KintsugiException)
        {
            return null;
        }
    }

    /// <summary>
    /// SIGINT, SIGTERM and SIGHUP: the first stops the workloads gracefully (stop signal, grace,
    /// SIGKILL); a second cuts the graces short to SIGKILL. Neither ends kintsugi before its workloads.
    /// </summary>
    private sealed class StopSignals : IDisposable
    {
        private readonly PosixSignalRegistration[] _registrations;
        private int _count;

        private StopSignals(CancellationTokenSource stop, CancellationTokenSource hurry, CliContext ctx)
        {
            void OnSignal(PosixSignalContext signal)
            {
                signal.Cancel = true;
                int n = Interlocked.Increment(ref _count);
                if (n == 1)
                {
                    if (!ctx.Quiet)
                    {
                        ctx.Error.WriteLine($"kintsugi: {signal.Signal}: stopping the workloads (each gets its stop signal and grace; {signal.Signal} again kills them at once)");
                    }
                    stop.Cancel();
                }
                else if (n == 2)
                {
                    ctx.Error.WriteLine($"kintsugi: {signal.Signal} again: killing the workloads now ({signal.Signal} a third time exits without waiting for them)");
                    hurry.Cancel();
                }
                else
                {
                    // A process that even SIGKILL does not end (stuck in the kernel, a hung driver) must
                    // not make kintsugi itself unstoppable; the next `kintsugi run` stops what is left.
                    ctx.Error.WriteLine("kintsugi: exiting without waiting for the workloads; the next `kintsugi run` of this config stops what is left of them");
                    Environment.Exit(ExitCodes.Interrupted);
                }
            }
            _registrations =
            [
                PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal),
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal),
                PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal),
            ];
        }

        public static StopSignals Register(CancellationTokenSource stop, CancellationTokenSource hurry, CliContext ctx) => new(stop, hurry, ctx);

        public void Dispose()
        {
            foreach (var r in _registrations)
            {
                r.Dispose();
            }
        }
    }

    /// <summary>Serves the figures since now (when the supervisor starts): its counters count from there.</summary>
    private static PrometheusEndpoint StartMetrics(string hostPort, EventJournal journal, TimeProvider time, Func<bool> supervising)
    {
        var since = time.GetUtcNow();
        var metrics = new PrometheusMetrics(() => Figures.Compute(journal.Read(since: since), since, time.GetUtcNow()), supervising);
        try
        {
            return PrometheusEndpoint.Start(hostPort, metrics.WriteAsync);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--metrics {hostPort}: {e.Message}");
        }
    }

    /// <summary>A config that cannot be loaded is still recorded, in the journal where its folder keeps one by default.</summary>
    private static void RecordConfigError(string path, string message, TimeProvider time)
    {
        try
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            if (!Directory.Exists(dir))
            {
                return;
            }
            using var journal = EventJournal.Open(Path.Combine(dir, ".kintsugi", "journal.db"), time);
            journal.Append(EventTypes.Error, null, null, new { message });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Microsoft.Data.Sqlite.SqliteException)
        {
            // The message reaches the user on stderr either way.
        }
    }

    /// <summary>What <c>kintsugi run --check</c> prints when the configuration is usable.</summary>
    private static void ReportChecked(string path, SupervisorConfig cfg, CliContext ctx)
    {
        if (ctx.Json)
        {
            ctx.WriteJson(new
            {
                Config = cfg.SourcePath,
                Ok = true,
                Strategy = cfg.Strategy == Strategy.OneForAll ? "one-for-all" : "one-for-one",
                Journal = cfg.Journal,
                Repository = RepositoryLabel.Of(cfg.Repository),
                Copies = cfg.Copies.Select(c => RepositoryLabel.Of(c.Repository)).ToList(),
                Protection = new { Priority = cfg.ProtectionPriority.ToString().ToLowerInvariant(), cfg.LimitUpload },
                Workloads = cfg.Workloads.Select(w => new { w.Name, w.Replicas, w.Command, Cwd = w.WorkingDirectory, w.Port, CheckpointDir = w.Checkpoints?.Directory }).ToList(),
            });
            return;
        }
        if (!ctx.Quiet)
        {
            int n = cfg.Workloads.Count;
            string names = string.Join(", ", cfg.Workloads.Select(w => w.Replicas > 1 ? $"{w.Name} ×{w.Replicas}" : w.Name));
            ctx.Out.WriteLine($"{path}: ok: {n} workload{(n == 1 ? "" : "s")} ({names}); journal {cfg.Journal}; repository {RepositoryLabel.Of(cfg.Repository)}{(cfg.Copies.Count == 0 ? "" : "; copies " + string.Join(", ", cfg.Copies.Select(c => RepositoryLabel.Of(c.Repository))))}");
        }
    }

    /// <summary>
    /// Checks what can be checked before anything starts: working folders exist, programs are found,
    /// checkpoint folders can be written, and every adjustment can be applied to the command and to the
    /// environment the workload starts with (its 'env' over <paramref name="inherited"/>: halving a
    /// variable set in neither can never work). A problem is a <see cref="ConfigException"/> naming where the
    /// field is written. With <paramref name="leaveNothing"/>, checkpoint folders made to test them are
    /// removed again.
    /// </summary>
    private static void Preflight(SupervisorConfig cfg, IReadOnlyDictionary<string, string> inherited, bool leaveNothing)
    {
        string file = Path.GetFileName(cfg.SourcePath);
        foreach (var w in cfg.Workloads)
        {
            if (!Directory.Exists(w.WorkingDirectory))
            {
                throw new ConfigException($"{w.WorkingDirectoryAt ?? file}: workloads.{w.Name}.cwd: folder {w.WorkingDirectory} does not exist; create it or fix 'cwd'");
            }
            if (ProgramProblem(w.Command[0], w.WorkingDirectory) is { } problem)
            {
                throw new ConfigException($"{w.CommandAt ?? file}: workloads.{w.Name}.command: {problem}");
            }
            if (Adjuster.Check(w, inherited).FirstOrDefault() is { } adjustment)
            {
                string hint = adjustment.Problem == AdjustmentProblem.Missing && adjustment.Adjustment.Target == AdjustTarget.Env
                    ? "; set it in the workload's 'env', or in the environment kintsugi runs in"
                    : "";
                throw new ConfigException($"{adjustment.Adjustment.Where($"{file}: workloads.{w.Name}")}: {adjustment.Reason}{hint}");
            }
            if (w.Checkpoints is { } c)
            {
                try
                {
                    CheckWritable(c.Directory, leaveNothing);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new ConfigException($"{c.DirectoryAt ?? file}: workloads.{w.Name}.checkpoints.dir: folder {c.Directory} cannot be written ({e.Message}); fix its permissions or choose another 'dir'");
                }
            }
        }
    }

    /// <summary>Makes the folder if it is missing and writes and deletes a file in it; with <paramref name="leaveNothing"/>, removes the folders it made.</summary>
    private static void CheckWritable(string dir, bool leaveNothing)
    {
        var made = new List<string>();
        for (string? d = dir; d is not null && !Directory.Exists(d) && !File.Exists(d); d = Path.GetDirectoryName(d))
        {
            made.Add(d);
        }
        try
        {
            Directory.CreateDirectory(dir);
            string probe = Path.Combine(dir, $".kintsugi-write-test-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        finally
        {
            if (leaveNothing)
            {
                foreach (var d in made)
                {
                    try
                    {
                        Directory.Delete(d);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        // Not made by this check after all, or no longer empty: left as it is.
                    }
                }
            }
        }
    }

    /// <summary>Why the program cannot be started, or null when it is found.</summary>
    private static string? ProgramProblem(string program, string workingDirectory)
    {
        if (program.Contains('/', StringComparison.Ordinal))
        {
            string path = Path.GetFullPath(program, workingDirectory);
            if (Directory.Exists(path))
            {
                return $"program '{program}' is a folder ({path}); name the program file";
            }
            if (!File.Exists(path))
            {
                return $"program '{program}' not found: {path} does not exist; fix the path (relative paths start from 'cwd')";
            }
            if ((File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) == 0)
            {
                return $"program '{program}' is not executable ({path}); chmod +x it, or run it with its interpreter, e.g. [python3, {program}]";
            }
            return null;
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            if (File.Exists(Path.Combine(dir, program)))
            {
                return null;
            }
        }
        return $"program '{program}' not found on PATH; install it, or give its path";
    }

    /// <summary>Prints what the supervisor decides and does, as it happens, by following the journal.</summary>
    private static async Task NarrateAsync(EventJournal journal, CliContext ctx, long afterId, CancellationToken ct)
    {
        string[] told = [EventTypes.Decision, EventTypes.Restart, EventTypes.Rollback, EventTypes.Failover, EventTypes.GiveUp, EventTypes.WorkloadFailed, EventTypes.Error, EventTypes.ReplicaUnhealthy, EventTypes.CheckpointProtected, EventTypes.CheckpointBad];
        try
        {
            while (true)
            {
                foreach (var e in journal.Read(afterId: afterId))
                {
                    afterId = e.Id;
                    if (!told.Contains(e.Type) || (e.Type == EventTypes.Decision && e.GetString("action") == "none"))
                    {
                        continue;
                    }
                    string who = e.Workload is null ? "supervisor" : e.Replica is int r ? $"{e.Workload}/{r}" : e.Workload;
                    string what = e.Type switch
                    {
                        EventTypes.Decision => $"decided {e.GetString("action")}: {e.GetString("reason")}" + (e.GetDouble("delay_s") is > 0 and var d ? $" (in {d:0.###} s)" : ""),
                        EventTypes.Restart => $"restarting, attempt {e.GetInt64("attempt")}",
                        EventTypes.Rollback => $"rolled back to {e.GetString("checkpoint") ?? $"the start ({e.GetString("reason") ?? "no good checkpoint"})"}, skipping {e.GetInt64("skip_steps")} steps",
                        EventTypes.Failover => "replaced (failover)",
                        EventTypes.GiveUp => $"gave up: {e.GetString("reason")}",
                        EventTypes.WorkloadFailed => $"FAILED: {e.GetString("reason")}",
                        EventTypes.Error => $"error: {e.GetString("message")}",
                        EventTypes.ReplicaUnhealthy => $"unhealthy ({e.GetString("source")}): {e.GetString("detail")}",
                        EventTypes.CheckpointProtected => $"checkpoint {Path.GetFileName(e.GetString("path"))} protected in snapshot {e.GetString("snapshot")?[..8]}",
                        _ => $"checkpoint {e.GetString("path")} marked bad",
                    };
                    lock (ctx.Error)
                    {
                        ctx.Error.WriteLine($"kintsugi: {who}: {what}");
                    }
                }
                await Task.Delay(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
