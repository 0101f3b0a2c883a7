namespace Kintsugi.Backup.Storage;

/// <summary>
/// Groups small ranged reads of a remote file (a pack's blobs, read one by one by restore, check
/// and dump) into one request per window: a read that misses fetches <see cref="WindowSize"/> bytes
/// from its offset, and the reads after it that fall inside (the next blobs of the same pack, as
/// backup wrote them) are served from memory, including reads that arrive while the window is still
/// downloading. A read as large as a window goes straight to the store. At most
/// <see cref="MaxWindows"/> windows are held (the oldest is dropped), so memory stays bounded.
/// </summary>
public sealed class ReadWindows
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Window> _windows = new();

    public ReadWindows(int windowSize = 1 << 20, int maxWindows = 16)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(windowSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWindows, 1);
        WindowSize = windowSize;
        MaxWindows = maxWindows;
    }

    /// <summary>What remote stores use: 8 MiB windows (half a pack), at most 8 held (64 MiB).</summary>
    public const int RemoteWindowSize = 8 << 20;

    public const int RemoteMaxWindows = 8;

    public int WindowSize { get; }

    public int MaxWindows { get; }

    private sealed record Window(string Name, long Start, Task<byte[]> Data);

    /// <summary>
    /// Fills <paramref name="buffer"/> from <paramref name="name"/> at <paramref name="offset"/>.
    /// <paramref name="fetch"/>(offset, length, token) reads up to length bytes (fewer only at the end of the file);
    /// <paramref name="readExact"/> reads exactly the buffer (and throws when the file is shorter).
    /// </summary>
    public async ValueTask ReadAsync(string name, long offset, Memory<byte> buffer,
        Func<long, int, CancellationToken, Task<byte[]>> fetch, Func<long, Memory<byte>, CancellationToken, ValueTask> readExact, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(fetch);
        ArgumentNullException.ThrowIfNull(readExact);
        if (buffer.Length >= WindowSize)
        {
            await readExact(offset, buffer, ct).ConfigureAwait(false);
            return;
        }
        Window? window = null;
        lock (_lock)
        {
            for (var node = _windows.First; node is not null; node = node.Next)
            {
                var w = node.Value;
                bool fits = w.Name == name && offset >= w.Start && offset + buffer.Length <= w.Start + WindowSize;
                if (fits && !(w.Data.IsCompleted && (w.Data.IsFaulted || w.Data.IsCanceled || offset + buffer.Length > w.Start + w.Data.Result.Length)))
                {
                    window = w;
                    _windows.Remove(node);
                    _windows.AddFirst(node);
                    break;
                }
            }
            if (window is null)
            {
                // The fetch is not tied to this reader's token: other readers may be waiting on the window.
                window = new Window(name, offset, fetch(offset, WindowSize, CancellationToken.None));
                _windows.AddFirst(window);
                while (_windows.Count > MaxWindows)
                {
                    _windows.RemoveLast();
                }
            }
        }
        byte[] data;
        try
        {
            data = await window.Data.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            Drop(window);
            await readExact(offset, buffer, ct).ConfigureAwait(false);
            return;
        }
        long from = offset - window.Start;
        if (from + buffer.Length > data.Length)
        {
            // The file ends inside the window before this read does: the exact read reports it.
            await readExact(offset, buffer, ct).ConfigureAwait(false);
            return;
        }
        data.AsMemory((int)from, buffer.Length).CopyTo(buffer);
    }

    /// <summary>Forgets the windows of a file (deleted or replaced).</summary>
    public void Forget(string name)
    {
        lock (_lock)
        {
            for (var node = _windows.First; node is not null;)
            {
                var next = node.Next;
                if (node.Value.Name == name)
                {
                    _windows.Remove(node);
                }
                node = next;
            }
        }
    }

    private void Drop(Window window)
    {
        lock (_lock)
        {
            _windows.Remove(window);
        }
    }
}
