using System.Text;
using Kintsugi.Supervision.Probes;

namespace Kintsugi.Supervision.Monitors;

/// <summary>
/// Follows a log file the workload writes, like <c>tail -F</c>: polls every <c>poll</c> on the
/// <see cref="TimeProvider"/> and delivers complete lines (without the line break), one at a time,
/// on its own task. A file present at <see cref="Start"/> is followed from its end (its old lines
/// were seen by an earlier run); a file that appears later, is truncated, or replaced by rotation
/// (the path names another file) is read from its beginning, after the rest of a rotated file.
/// A truncation is seen when the file is shorter than what was read; one that regrows past that
/// between two polls is not.
/// </summary>
public sealed class LogFileFollower : IAsyncDisposable
{
    // A "line" this long without a break is delivered as it is, so a runaway writer cannot grow the buffer without bound.
    private const int MaxLineBytes = 1 << 20;

    private readonly string _path;
    private readonly TimeSpan _poll;
    private readonly TimeProvider _time;
    private readonly Action<string> _onLine;
    private readonly MemoryStream _partial = new();
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly Lock _gate = new();
    private FileStream? _stream;
    private FileIdentity? _identity;
    private CancellationTokenSource? _cancellation;
    private Task _loop = Task.CompletedTask;

    public LogFileFollower(string path, TimeSpan poll, TimeProvider time, Action<string> onLine)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(onLine);
        if (poll <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(poll), poll, "the poll interval must be longer than 0");
        }
        _path = path;
        _poll = poll;
        _time = time;
        _onLine = onLine;
    }

    /// <summary>After every poll (tests wait on it instead of on wall-clock time).</summary>
    internal event Action? Polled;

    /// <summary>Starts following; throws <see cref="InvalidOperationException"/> if already started.</summary>
    public void Start()
    {
        lock (_gate)
        {
            if (_cancellation is not null)
            {
                throw new InvalidOperationException($"already following {_path}");
            }
            // Decided now, not at the first poll, so lines written right after Start are not skipped.
            if (TryOpen())
            {
                _stream!.Seek(0, SeekOrigin.End);
            }
            _cancellation = new CancellationTokenSource();
            _loop = RunAsync(_time.GetUtcNow(), _cancellation.Token);
        }
    }

    /// <summary>Stops following and closes the file; lines not yet complete are dropped.</summary>
    public async Task StopAsync()
    {
        CancellationTokenSource? cancellation;
        lock (_gate)
        {
            cancellation = _cancellation;
            cancellation?.Cancel();
        }
        await _loop.ConfigureAwait(false);
        Close();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _cancellation?.Dispose();
        _partial.Dispose();
    }

    private async Task RunAsync(DateTimeOffset startedAt, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var due = startedAt + _poll;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await DueTime.WaitAsync(_time, due, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            Poll(cancellationToken);
            due += _poll;
            var now = _time.GetUtcNow();
            if (due < now)
            {
                due += _poll * ((now - due).Ticks / _poll.Ticks + 1);
            }
            Polled?.Invoke();
        }
    }

    private void Poll(CancellationToken cancellationToken)
    {
        try
        {
            if (_stream is null)
            {
                if (!TryOpen())
                {
                    return;
                }
            }
            else if (FileIdentity.OfPath(_path) is FileIdentity now && now != _identity)
            {
                // Rotated: finish the old file (its last line will not be completed), then start the new one.
                ReadAvailable(cancellationToken);
                if (_partial.Length > 0)
                {
                    DeliverPartial();
                }
                Close();
                if (!TryOpen())
                {
                    return;
                }
            }
            else if (_stream.Length < _stream.Position)
            {
                _partial.SetLength(0);
                _stream.Seek(0, SeekOrigin.Begin);
            }
            ReadAvailable(cancellationToken);
        }
        catch (IOException)
        {
            // Gone or unreadable for now: start over from the path at the next poll.
            Close();
        }
        catch (UnauthorizedAccessException)
        {
            Close();
        }
    }

    private bool TryOpen()
    {
        try
        {
            _stream = new FileStream(_path, new FileStreamOptions
            {
                Mode = FileMode.Open,
                Access = FileAccess.Read,
                Share = FileShare.ReadWrite | FileShare.Delete,
                BufferSize = 0,
            });
            _identity = FileIdentity.OfHandle(_stream.SafeFileHandle);
            _partial.SetLength(0);
            return true;
        }
        catch (IOException)
        {
            // Not there yet (or not readable yet): the next poll tries again.
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private void ReadAvailable(CancellationToken cancellationToken)
    {
        int read;
        while (!cancellationToken.IsCancellationRequested && (read = _stream!.Read(_buffer, 0, _buffer.Length)) > 0)
        {
            int start = 0;
            for (int i = 0; i < read; i++)
            {
                if (_buffer[i] != (byte)'\n')
                {
                    continue;
                }
                _partial.Write(_buffer, start, i - start);
                DeliverPartial();
                start = i + 1;
            }
            _partial.Write(_buffer, start, read - start);
            if (_partial.Length >= MaxLineBytes)
            {
                DeliverPartial();
            }
        }
    }

    private void DeliverPartial()
    {
        var bytes = _partial.GetBuffer().AsSpan(0, (int)_partial.Length);
        if (bytes.Length > 0 && bytes[^1] == (byte)'\r')
        {
            bytes = bytes[..^1];
        }
        string line = Encoding.UTF8.GetString(bytes);
        _partial.SetLength(0);
        _onLine(line);
    }

    private void Close()
    {
        _stream?.Dispose();
        _stream = null;
        _identity = null;
    }
}
