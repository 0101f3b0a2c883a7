using System.Buffers;

namespace Kintsugi.Backup;

/// <summary>
/// The pool for the large buffers of the backup, restore and check pipelines (chunks, sealed and
/// encoded blobs, pack reads). ArrayPool&lt;byte&gt;.Shared keeps arrays per thread and per core,
/// which for 1–8 MiB buffers kept tens of MiB alive beyond what the pipeline has in flight;
/// this pool keeps at most <see cref="ArraysPerBucket"/> arrays of each size, so memory is bounded
/// by the pipeline's configuration (queued chunks, workers), not by how many threads touched it.
/// </summary>
internal static class BufferPool
{
    public const int ArraysPerBucket = 8;

    public static ArrayPool<byte> Shared { get; } = ArrayPool<byte>.Create(1 << 30, ArraysPerBucket);
}
