using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kintsugi.Backup.Engine;
using Kintsugi.Supervision.Checkpoints;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Processes;

namespace Kintsugi.Cli.Commands;

/// <summary>
/// <c>kintsugi protect-worker</c> (hidden): the process <c>kintsugi run</c> starts to back its
/// checkpoints up at low CPU and I/O priority. It reads one JSON job per line on stdin and answers
/// one JSON line per job on stdout (see <see cref="ProtectionWorker"/>, which speaks the other side);
/// it ends when stdin closes, which it does when the supervisor ends, however it ends.
/// </summary>
internal static class ProtectWorkerCommand
{
    public static Command Create()
    {
        var priority = new Option<string>("--priority") { Description = "low, idle or normal", DefaultValueFactory = _ => "low" };
        var command = new Command("protect-worker", "Backs checkpoints up for `kintsugi run` (started by it; not for use by hand)") { priority };
        command.Hidden = true;
        command.SetHandler(async (ctx, ct) =>
        {
            var level = ctx.Parse.GetValue(priority) switch
            {
                "idle" => ProtectionPriority.Idle,
                "normal" => ProtectionPriority.Normal,
                "low" => ProtectionPriority.Low,
                var p => throw new UsageException($"--priority '{p}': expected low, idle or normal"),
            };
            string? warning = ProcessPriority.Lower(level);
            var output = Console.Out;
            var outputLock = new Lock();
            void Answer(JsonObject line)
            {
                string text = line.ToJsonString();
                lock (outputLock)
                {
                    output.WriteLine(text);
                    output.Flush();
                }
            }
            Answer(new JsonObject
            {
                ["ready"] = true,
                ["pid"] = Environment.ProcessId,
                ["nice"] = level == ProtectionPriority.Normal ? 0 : ProcessPriority.NiceOf(level),
                ["io"] = level == ProtectionPriority.Normal ? "normal" : ProcessPriority.IoClassOf(level),
                ["warning"] = warning,
            });
            var repositories = new Dictionary<RepositoryTarget, RepositoryAccess>();
            var running = new Dictionary<long, CancellationTokenSource>();
            var jobs = new List<Task>();
            using var input = new StreamReader(Console.OpenStandardInput());
            while (true)
            {
                string? line;
                try
                {
                    line = await input.ReadLineAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                if (line is null)
                {
                    break;
                }
                JsonNode? message;
                try
                {
                    message = JsonNode.Parse(line);
                }
                catch (JsonException e)
                {
                    ctx.Error.WriteLine($"kintsugi protect-worker: ignored a line that is not JSON: {e.Message}");
                    continue;
                }
                if (message?["cancel"]?.GetValue<long>() is long cancel)
                {
                    lock (running)
                    {
                        if (running.TryGetValue(cancel, out var cts))
                        {
                            cts.Cancel();
                        }
                    }
                    continue;
                }
                if (message?["id"]?.GetValue<long>() is not long id || message["job"] is not JsonObject job || message["target"] is not JsonObject target)
                {
                    ctx.Error.WriteLine("kintsugi protect-worker: ignored a line that is not a job");
                    continue;
                }
                var jobCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                lock (running)
                {
                    running[id] = jobCts;
                    jobs.RemoveAll(t => t.IsCompleted);
                }
                jobs.Add(Task.Run(async () =>
                {
                    var answer = new JsonObject { ["id"] = id };
                    try
                    {
                        var where = ReadTarget(target);
                        RepositoryAccess access;
                        lock (repositories)
                        {
                            if (!repositories.TryGetValue(where, out access!))
                            {
                                access = new RepositoryAccess(where, ctx.Time);
                                repositories[where] = access;
                            }
                        }
                        var outcome = await new InProcessCheckpointBackup(access.OpenAsync, null).BackupAsync(ReadJob(job), jobCts.Token).ConfigureAwait(false);
                        answer["snapshot"] = outcome.Snapshot;
                        answer["bytes"] = outcome.Bytes;
                    }
                    catch (OperationCanceledException) when (jobCts.IsCancellationRequested)
                    {
                        answer["cancelled"] = true;
                    }
                    catch (Exception e)
                    {
                        answer["error"] = e is Backup.KintsugiException or IOException or UnauthorizedAccessException ? e.Message : $"{e.GetType().Name}: {e.Message}";
                    }
                    finally
                    {
                        lock (running)
                        {
                            running.Remove(id);
                        }
                        jobCts.Dispose();
                    }
                    Answer(answer);
                }, CancellationToken.None));
            }
            // stdin closed (the supervisor ended) or a stop signal: every job still running stops.
            lock (running)
            {
                foreach (var cts in running.Values)
                {
                    cts.Cancel();
                }
            }
            await Task.WhenAll(jobs).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The job as <see cref="ProtectionWorker.Describe(CheckpointBackupJob)"/> wrote it (the copy is in the target).</summary>
    private static CheckpointBackupJob ReadJob(JsonObject job) => new()
    {
        Workload = job["workload"]!.GetValue<string>(),
        Path = job["path"]!.GetValue<string>(),
        Step = job["step"]?.GetValue<long>(),
        Parent = job["parent"]?.GetValue<string>(),
        Host = job["host"]!.GetValue<string>(),
        Exclude = [.. (job["exclude"]?.AsArray() ?? []).Select(p => PathPattern.Parse(p!["text"]!.GetValue<string>(), p["ignore_case"]?.GetValue<bool>() ?? false))],
    };

    private static RepositoryTarget ReadTarget(JsonObject target) => new(
        target["location"]!.GetValue<string>(),
        target["password_file"]?.GetValue<string>(),
        target["key_file"]?.GetValue<string>(),
        target["default_password"]!.GetValue<string>(),
        target["limit_upload"]?.GetValue<long>() ?? 0);
}
