using BenchmarkDotNet.Attributes;
using Kintsugi.Backup.Chunking;

namespace Kintsugi.Micro;

/// <summary>Content-defined chunking of 16 MiB with the repository's sizes (256 KiB / 1 MiB / 4 MiB).</summary>
[Bytes(16 * TestData.MiB)]
public class Chunking
{
    private byte[] _data = [];
    private Chunker _chunker = null!;

    [Params(DataKind.Fp32Weights, DataKind.Random, DataKind.Text)]
    public DataKind Data { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = TestData.Create(Data, 16 * TestData.MiB);
        var seed = new byte[32];
        new Random(3).NextBytes(seed);
        _chunker = new Chunker(seed, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024);
    }

    /// <summary>Returns the number of chunks, so the loop cannot be elided.</summary>
    [Benchmark]
    public int NextBoundary16MiB()
    {
        int position = 0;
        int chunks = 0;
        while (position < _data.Length)
        {
            position += _chunker.NextBoundary(_data.AsSpan(position));
            chunks++;
        }
        return chunks;
    }
}
