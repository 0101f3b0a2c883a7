using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kintsugi.Backup;
using Kintsugi.Cli.Commands;
using Kintsugi.Supervision.Checkpoints;
using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Processes;

namespace Kintsugi.Cli;

/// <summary>
/// Runs the supervisor's checkpoint backups in a helper process, <c>kintsugi protect-worker</c>, at
/// low CPU and I/O priority (<see cref="ProcessPriority"/>), so that chunking, compressing, encrypting
/// and uploading a checkpoint take what the training job leaves. One process serves the whole run
/// (it opens each repository once); jobs go to it as JSON lines on its stdin, answers come back on its
/// stdout. If it dies, the jobs it held fail (journaled, retried at the next checkpoint) and the next
/// job starts a new one. It ends when its stdin closes: when this object is disposed, or when the
/// supervisor's process is gone, however it went.
/// </summary>
internal sealed class ProtectionWorker(SupervisorConfig config, ProtectionPriority priority, Action<string> warn) : ICheckpointBackupRunner, IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly ConcurrentDictionary<long, TaskCompletionSource<CopyOutcome>> _pending = new();
    private readonly Queue<string> _stderr = new();
    private Process? _process;
    private Task? _reader;
    private TaskCompletionSource<JsonObject>? _ready;
    private long _nextId;
    private bool _disposed;

    /// <summary>The worker's pid once it is running (for tests and diagnostics), else null.</summary>
    public int? ProcessId
    {
        get
        {
            lock (_lock)
            {
                return _process is { HasExited: false } p ? p.Id : null;
            }
        }
    }

    public async Task<CopyOutcome> BackupAsync(CheckpointBackupJob job, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(job);
        var target = job.Copy is null ? RepositoryTarget.Primary(config) : RepositoryTarget.Copy(config, job.Copy);
        var (process, ready) = Start();
        await ready.WaitAsync(ct).ConfigureAwait(false);
        long id = Interlocked.Increment(ref _nextId);
        var answer = new TaskCompletionSource<CopyOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = answer;
        try
        {
            Send(process, new JsonObject { ["id"] = id, ["job"] = Describe(job), ["target"] = Describe(target) });
            await using (ct.Register(() => Send(process, new JsonObject { ["cancel"] = id })))
            {
                return await answer.Task.WaitAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    internal static JsonObject Describe(CheckpointBackupJob job)
    {
        var exclude = new JsonArray();
        foreach (var p in job.Exclude)
        {
            exclude.Add((JsonNode)new JsonObject { ["text"] = p.Text, ["ignore_case"] = p.IgnoreCase });
        }
        return new JsonObject
        {
            ["workload"] = job.Workload,
            ["path"] = job.Path,
            ["step"] = job.Step,
            ["parent"] = job.Parent,
            ["host"] = job.Host,
            ["exclude"] = exclude,
        };
    }

    private static JsonObject Describe(RepositoryTarget target) => new()
    {
        ["location"] = target.Location,
        ["password_file"] = target.PasswordFile,
        ["key_file"] = target.KeyFile,
        ["default_password"] = target.DefaultPassword,
        ["limit_upload"] = target.LimitUpload,
    };

    private void Send(Process process, JsonObject message)
    {
        string line = message.ToJsonString();
        lock (_lock)
        {
            try
            {
                process.StandardInput.WriteLine(line);
                process.StandardInput.Flush();
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // It has exited: its reader fails the pending jobs.
            }
        }
    }

    /// <summary>The running worker, started now if there is none (or it died).</summary>
    private (Process Process, Task<JsonObject> Ready) Start()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_process is { HasExited: false } running)
            {
                return (running, _ready!.Task);
            }
            var (file, prefix) = Self();
            var start = new ProcessStartInfo(file)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in prefix.Concat(["protect-worker", "--priority", priority.ToString().ToLowerInvariant()]))
            {
                start.ArgumentList.Add(arg);
            }
            _stderr.Clear();
            var ready = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
            Process process;
            try
            {
                process = Process.Start(start) ?? throw new InvalidOperationException("no process");
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                throw new KintsugiException(ErrorKind.InvalidInput, $"cannot start the checkpoint backup process ({file} protect-worker): {e.Message}; set 'protection: {{ priority: normal }}' to back up inside the supervisor");
            }
            _process = process;
            _ready = ready;
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is { } line)
                {
                    lock (_stderr)
                    {
                        _stderr.Enqueue(line);
                        while (_stderr.Count > 5)
                        {
                            _stderr.Dequeue();
                        }
                    }
                }
            };
            process.BeginErrorReadLine();
            _reader = Task.Run(() => ReadAsync(process, ready));
            return (process, ready.Task);
        }
    }

    /// <summary>Answers from the worker until it exits; then every job it held fails, saying why.</summary>
    private async Task ReadAsync(Process process, TaskCompletionSource<JsonObject> ready)
    {
        try
        {
            while (await process.StandardOutput.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                JsonObject? message;
                try
                {
                    message = JsonNode.Parse(line) as JsonObject;
                }
                catch (JsonException)
                {
                    continue;
                }
                if (message is null)
                {
                    continue;
                }
                if (message["ready"] is not null)
                {
                    if (message["warning"]?.GetValue<string>() is { } warning)
                    {
                        warn($"checkpoint backups: {warning}");
                    }
                    ready.TrySetResult(message);
                    continue;
                }
                if (message["id"]?.GetValue<long>() is long id && _pending.TryRemove(id, out var answer))
                {
                    if (message["snapshot"]?.GetValue<string>() is { } snapshot)
                    {
                        answer.TrySetResult(new CopyOutcome(snapshot, message["bytes"]?.GetValue<long>() ?? 0));
                    }
                    else if (message["cancelled"] is not null)
                    {
                        answer.TrySetCanceled();
                    }
                    else
                    {
                        answer.TrySetException(new KintsugiException(ErrorKind.Failed, message["error"]?.GetValue<string>() ?? "the checkpoint backup process gave no reason"));
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }
        await process.WaitForExitAsync().ConfigureAwait(false);
        string why;
        lock (_stderr)
        {
            why = $"the checkpoint backup process (pid {process.Id}) exited with code {process.ExitCode}" + (_stderr.Count > 0 ? ": " + string.Join(" / ", _stderr) : "");
        }
        ready.TrySetException(new KintsugiException(ErrorKind.Failed, why));
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var answer))
            {
                answer.TrySetException(new KintsugiException(ErrorKind.Failed, why));
            }
        }
    }

    /// <summary>How to start this program again: its executable, or `dotnet kintsugi.dll` when it runs on the shared host.</summary>
    private static (string File, string[] Prefix) Self()
    {
        string path = Environment.ProcessPath ?? "kintsugi";
        string dll = typeof(ProtectionWorker).Assembly.Location;
        if (Path.GetFileNameWithoutExtension(path) == "dotnet" && dll.Length > 0)
        {
            return (path, [dll]);
        }
        if (System.Reflection.Assembly.GetEntryAssembly() == typeof(ProtectionWorker).Assembly || dll.Length == 0)
        {
            // Its own executable (an apphost or a single-file publish), whatever it is named.
            return (path, []);
        }
        // Hosted by something else (a test host): the shared host, with this assembly.
        return (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet", [dll]);
    }

    /// <summary>Closes the worker's stdin (it stops what it is doing and exits); kills it if it has not within 30 s.</summary>
    public async ValueTask DisposeAsync()
    {
        Process? process;
        lock (_lock)
        {
            _disposed = true;
            process = _process;
            try
            {
                process?.StandardInput.Close();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
            }
        }
        if (process is null)
        {
            return;
        }
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
        }
        if (_reader is not null)
        {
            await _reader.ConfigureAwait(false);
        }
        process.Dispose();
    }
}
