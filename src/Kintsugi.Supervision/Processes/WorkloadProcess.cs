using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Kintsugi.Supervision.Processes;

/// <summary>How a process ended: an exit code, or the signal that killed it.</summary>
public readonly record struct ExitStatus(int? Code, int? Signal)
{
    public override string ToString() => Signal is int s ? $"killed by signal {s}" : $"exited with code {Code}";
}

/// <summary>
/// A running workload process in its own session and process group (started through setsid), so a
/// stop reaches the whole tree: the stop signal to the group, then SIGKILL after the grace period.
/// Output lines are delivered as they come.
/// </summary>
public sealed class WorkloadProcess : IDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource<ExitStatus> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stdoutDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private WorkloadProcess(Process process)
    {
        _process = process;
    }

    public int Pid { get; private set; }

    public DateTimeOffset StartedAt { get; private set; }

    /// <summary>The process's start in clock ticks since boot, so a later reader can tell it from a process that reused its pid.</summary>
    public long? StartTicks { get; private set; }

    /// <summary>Completes when the process has exited and its output has been read to the end.</summary>
    public Task<ExitStatus> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>
    /// What setsid(1) prints on stderr when it cannot execute the program (then it exits 126 or 127):
    /// the launcher's own failure, told apart from a workload that exits 126 or 127 itself.
    /// </summary>
    public const string LaunchFailurePrefix = "setsid: failed to execute ";

    /// <summary>Why the launcher could not execute the program, from its message; null when it did.</summary>
    public string? LaunchError { get; set; }

    /// <summary>Lines read from its stderr so far (the launcher's failure is always the first).</summary>
    public int StderrLines { get; set; }

    /// <summary>Set by whoever journals this process's exit, so it is journaled once.</summary>
    public bool ExitRecorded { get; set; }


    /// <summary>Starts <paramref name="command"/>; throws <see cref="Win32Exception"/>-derived errors when the program cannot be started.</summary>
    public static WorkloadProcess Start(IReadOnlyList<string> command, string workingDirectory, IReadOnlyDictionary<string, string> environment, Action<WorkloadProcess, string, bool> onLine, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(environment);
        bool setsid = File.Exists("/usr/bin/setsid");
        var psi = new ProcessStartInfo(setsid ? "/usr/bin/setsid" : command[0])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in setsid ? command : command.Skip(1))
        {
            psi.ArgumentList.Add(arg);
        }
        foreach (var (k, v) in environment)
        {
            psi.Environment[k] = v;
        }
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var wp = new WorkloadProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                wp._stdoutDone.TrySetResult();
            }
            else
            {
                onLine(wp, e.Data, false);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                wp._stderrDone.TrySetResult();
            }
            else
            {
                onLine(wp, e.Data, true);
            }
        };
        process.Exited += (_, _) => _ = wp.CompleteAsync();
        process.Start();
        wp.Pid = process.Id;
        wp.StartedAt = time.GetUtcNow();
        wp.StartTicks = ProcessGroup.StartTicks(wp.Pid);
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return wp;
    }

    private async Task CompleteAsync()
    {
        // Output may still be in the pipes; deliver it before reporting the exit, but do not wait
        // forever on a grandchild that keeps the pipe open.
        await Task.WhenAny(Task.WhenAll(_stdoutDone.Task, _stderrDone.Task), Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
        int code = _process.ExitCode;
        // .NET reports death by signal N as 128 + N.
        _exited.TrySetResult(code is > 128 and <= 128 + 64 ? new ExitStatus(null, code - 128) : new ExitStatus(code, null));
    }

    /// <summary>Sends a signal to the whole process group (or the process, without setsid).</summary>
    public void Signal(int signal)
    {
        if (HasExited)
        {
            return;
        }
        ProcessGroup.Signal(Pid, signal);
    }

    /// <summary>
    /// Graceful stop: <paramref name="signal"/>, then SIGKILL to the group after <paramref name="grace"/>,
    /// or as soon as <paramref name="hurry"/> is cancelled (a second Ctrl-C). It returns only once the
    /// process has exited: a stop never leaves it behind.
    /// </summary>
    public async Task<ExitStatus> StopAsync(int signal, TimeSpan grace, TimeProvider time, CancellationToken hurry = default)
    {
        bool wasRunning = !HasExited;
        if (wasRunning)
        {
            if (!hurry.IsCancellationRequested)
            {
                Signal(signal);
            }
            var delay = Task.Delay(grace, time, hurry);
            if (await Task.WhenAny(Exited, delay).ConfigureAwait(false) != Exited)
            {
                Signal(ProcessGroup.SIGKILL);
                try
                {
                    _process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                }
            }
        }
        var status = await Exited.ConfigureAwait(false);
        if (wasRunning)
        {
            // Whatever the leader did, leave no member of its group behind. Only right after this
            // stop: the group id of a process that ended long ago may belong to someone else now.
            ProcessGroup.KillGroup(Pid);
        }
        return status;
    }

    public void Dispose() => _process.Dispose();
}
