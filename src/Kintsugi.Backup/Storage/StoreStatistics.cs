namespace Kintsugi.Backup.Storage;

/// <summary>The kinds of request a remote store makes; what a cloud bills separately.</summary>
public enum RequestKind
{
    /// <summary>A listing page (S3 ListObjectsV2, Azure List Blobs).</summary>
    List,
    /// <summary>A whole-object read.</summary>
    Get,
    /// <summary>A ranged read (part of an object).</summary>
    GetRange,
    /// <summary>A metadata read (HEAD / get properties).</summary>
    Head,
    /// <summary>An upload (a whole object, or one part of a multipart upload, or the commit of one).</summary>
    Put,
    Delete,
}

/// <summary>
/// Requests made and bytes moved by a store, counted as they happen (thread-safe). Retried
/// attempts count as requests: they are billed.
/// </summary>
public sealed class StoreStatistics
{
    /// <summary>For stores that make no requests (a local folder).</summary>
    public static readonly StoreStatistics None = new();

    private readonly long[] _requests = new long[Enum.GetValues<RequestKind>().Length];
    private long _bytesUp;
    private long _bytesDown;
    private long _retries;

    public void CountRequest(RequestKind kind) => Interlocked.Increment(ref _requests[(int)kind]);

    public void CountUp(long bytes) => Interlocked.Add(ref _bytesUp, bytes);

    public void CountDown(long bytes) => Interlocked.Add(ref _bytesDown, bytes);

    public void CountRetry() => Interlocked.Increment(ref _retries);

    public long Requests(RequestKind kind) => Interlocked.Read(ref _requests[(int)kind]);

    public long TotalRequests => Enum.GetValues<RequestKind>().Sum(Requests);

    public long BytesUp => Interlocked.Read(ref _bytesUp);

    public long BytesDown => Interlocked.Read(ref _bytesDown);

    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>A copy of the figures, for reports (`--json`: "requests").</summary>
    public StoreStatisticsSnapshot Snapshot() => new(
        Requests(RequestKind.List), Requests(RequestKind.Get), Requests(RequestKind.GetRange), Requests(RequestKind.Head),
        Requests(RequestKind.Put), Requests(RequestKind.Delete), Retries, BytesUp, BytesDown);
}

/// <summary>Requests by kind and bytes moved, as reported in a command's `--json` ("requests").</summary>
public sealed record StoreStatisticsSnapshot(long List, long Get, long GetRange, long Head, long Put, long Delete, long Retries, long BytesUp, long BytesDown)
{
    public long Total => List + Get + GetRange + Head + Put + Delete;
}
