using BenchmarkDotNet.Attributes;

namespace Kintsugi.Micro;

/// <summary>zstd compression of 1 MiB: managed ZstdSharp.Port (what Kintsugi uses) against native libzstd through ZstdNet.</summary>
[Bytes(TestData.MiB)]
public class ZstdCompress
{
    private byte[] _data = [];
    private byte[] _destination = [];
    private ZstdSharp.Compressor _managed = null!;
    private ZstdNet.Compressor? _native;

    [Params(DataKind.Fp32Weights, DataKind.Random, DataKind.Text)]
    public DataKind Data { get; set; }

    [Params(1, 3)]
    public int Level { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = TestData.Create(Data, TestData.MiB);
        _destination = new byte[ZstdSharp.Compressor.GetCompressBound(_data.Length)];
        _managed = new ZstdSharp.Compressor(Level);
        if (NativeZstd.Available)
        {
            _native = new ZstdNet.Compressor(new ZstdNet.CompressionOptions(Level));
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _managed.Dispose();
        _native?.Dispose();
    }

    [Benchmark(Baseline = true)]
    public int Managed() => _managed.Wrap(_data, _destination);

    [Benchmark]
    [BenchmarkCategory(NativeZstd.Category)]
    public int Native() => _native!.Wrap(_data, _destination);
}

/// <summary>zstd decompression back to 1 MiB (of what the same level compressed), managed against native.</summary>
[Bytes(TestData.MiB)]
public class ZstdDecompress
{
    private byte[] _compressed = [];
    private byte[] _output = [];
    private ZstdSharp.Decompressor _managed = null!;
    private ZstdNet.Decompressor? _native;

    [Params(DataKind.Fp32Weights, DataKind.Random, DataKind.Text)]
    public DataKind Data { get; set; }

    [Params(1, 3)]
    public int Level { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var data = TestData.Create(Data, TestData.MiB);
        using (var compressor = new ZstdSharp.Compressor(Level))
        {
            _compressed = compressor.Wrap(data).ToArray();
        }
        _output = new byte[data.Length];
        _managed = new ZstdSharp.Decompressor();
        if (NativeZstd.Available)
        {
            _native = new ZstdNet.Decompressor();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _managed.Dispose();
        _native?.Dispose();
    }

    [Benchmark(Baseline = true)]
    public int Managed() => _managed.Unwrap(_compressed, _output);

    [Benchmark]
    [BenchmarkCategory(NativeZstd.Category)]
    public int Native() => _native!.Unwrap(_compressed, _output, bufferSizePrecheck: false);
}
