using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace Kintsugi.Supervision.Probes;

/// <summary>Runs a command in the replica's folder; healthy when it exits 0. Cancelled, it kills the command's whole tree.</summary>
internal sealed class ExecProbe : IProbe
{
    private const int MaxDetailChars = 200;
    private readonly IReadOnlyList<string> _command;
    private readonly string _workingDirectory;

    public ExecProbe(IReadOnlyList<string> command, string workingDirectory)
    {
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
        {
            throw new ArgumentException("an exec probe needs a command", nameof(command));
        }
        _command = command;
        _workingDirectory = workingDirectory;
    }

    public async Task<ProbeResult> CheckAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        string program = _command[0];
        // A relative path with a folder in it means the replica's folder, not the supervisor's.
        if (!Path.IsPathRooted(program) && program.Contains('/', StringComparison.Ordinal))
        {
            program = Path.GetFullPath(program, _workingDirectory);
        }
        var psi = new ProcessStartInfo(program)
        {
            WorkingDirectory = _workingDirectory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in _command.Skip(1))
        {
            psi.ArgumentList.Add(arg);
        }
        using var process = new Process { StartInfo = psi };
        var output = new OutputTail();
        process.OutputDataReceived += (_, e) => output.Add(e.Data);
        process.ErrorDataReceived += (_, e) => output.Add(e.Data);
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            return new ProbeResult(false, $"cannot run {_command[0]}: {e.Message}");
        }
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            throw;
        }
        int code = process.ExitCode;
        string said = output.Text;
        string detail = code == 0 ? "exit code 0" : code > 128 ? $"killed by signal {code - 128}" : $"exit code {code}";
        return new ProbeResult(code == 0, said.Length == 0 ? detail : $"{detail}: {said}");
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It exited on its own meanwhile.
        }
        catch (Win32Exception)
        {
            // Some member of the tree could not be signalled; nothing more can be done.
        }
    }

    /// <summary>The first lines the command printed, enough to say why it failed.</summary>
    private sealed class OutputTail
    {
        private readonly StringBuilder _text = new();
        private readonly Lock _gate = new();

        public string Text
        {
            get
            {
                lock (_gate)
                {
                    return _text.ToString().Trim();
                }
            }
        }

        public void Add(string? line)
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                return;
            }
            lock (_gate)
            {
                if (_text.Length >= MaxDetailChars)
                {
                    return;
                }
                if (_text.Length > 0)
                {
                    _text.Append(" | ");
                }
                _text.Append(line.Length + _text.Length > MaxDetailChars ? line[..(MaxDetailChars - _text.Length)] + "…" : line);
            }
        }
    }
}
