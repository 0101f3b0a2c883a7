namespace Kintsugi.Backup.Storage;

/// <summary>How a store talks to a remote service; ignored by a local folder.</summary>
public sealed record StoreOptions
{
    /// <summary>At most this many requests at once (`--connections`).</summary>
    public int Connections { get; init; } = 5;

    /// <summary>Upload limit in bytes per second, 0 for none (`--limit-upload`).</summary>
    public long UploadBytesPerSecond { get; init; }

    /// <summary>Download limit in bytes per second, 0 for none (`--limit-download`).</summary>
    public long DownloadBytesPerSecond { get; init; }

    /// <summary>A request that moves no byte for this long is cancelled and retried.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Transient failures are retried with exponential backoff and jitter until this much time has passed since the first attempt.</summary>
    public TimeSpan RetryBudget { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The first backoff delay (doubled per attempt, with jitter).</summary>
    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest single backoff delay (a Retry-After longer than this is still honoured within the budget).</summary>
    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where metadata is cached; null: no cache (`--no-cache`).</summary>
    public string? CacheDirectory { get; init; }

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The environment to read credentials from (tests pass their own).</summary>
    public Func<string, string?> Environment { get; init; } = System.Environment.GetEnvironmentVariable;

    public void Validate()
    {
        if (Connections is < 1 or > 256)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"--connections {Connections}: give a number from 1 to 256");
        }
        if (UploadBytesPerSecond < 0 || DownloadBytesPerSecond < 0)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, "--limit-upload / --limit-download: give a positive rate");
        }
    }
}
