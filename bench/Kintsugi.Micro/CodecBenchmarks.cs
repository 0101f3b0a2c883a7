using System.Buffers;
using BenchmarkDotNet.Attributes;
using Kintsugi.Backup.Codecs;

namespace Kintsugi.Micro;

/// <summary>The byte-plane transform of 1 MiB, both ways.</summary>
[Bytes(TestData.MiB)]
public class BytePlaneTransform
{
    private byte[] _data = [];
    private byte[] _planes = [];
    private byte[] _splitOfData = [];
    private byte[] _joined = [];

    [Params(DataKind.Fp32Weights, DataKind.Random, DataKind.Text)]
    public DataKind Data { get; set; }

    [Params(2, 4)]
    public int Width { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = TestData.Create(Data, TestData.MiB);
        _planes = new byte[_data.Length];
        _joined = new byte[_data.Length];
        _splitOfData = new byte[_data.Length];
        BytePlanes.Split(_data, _splitOfData, Width);
    }

    [Benchmark(Baseline = true)]
    public byte Split()
    {
        BytePlanes.Split(_data, _planes, Width);
        return _planes[^1];
    }

    [Benchmark]
    public byte Join()
    {
        BytePlanes.Join(_splitOfData, _joined, Width);
        return _joined[^1];
    }
}

/// <summary>
/// <c>PieceEncoder.Encode</c> of a 1 MiB fp32 piece (width 4): alone, and against a base that is the
/// same weights before a small step (every weight moved by N(0, 0.02 * 1%)).
/// </summary>
[Bytes(TestData.MiB)]
public class PieceEncoding
{
    private byte[] _plain = [];
    private byte[] _base = [];

    [GlobalSetup]
    public void Setup()
    {
        _plain = TestData.Create(DataKind.Fp32Weights, TestData.MiB);
        _base = TestData.MovedCopy(_plain, 0.02, 0.01);
    }

    [Benchmark(Baseline = true)]
    public int Fp32NoBase() => Consume(PieceEncoder.Encode(_plain, 4, default));

    [Benchmark]
    public int Fp32WithBase() => Consume(PieceEncoder.Encode(_plain, 4, _base));

    /// <summary>The encoded bytes are rented from the shared pool; the caller (the backup engine) gives them back.</summary>
    private static int Consume(EncodedPiece piece)
    {
        ArrayPool<byte>.Shared.Return(piece.Bytes);
        return piece.Length;
    }
}

/// <summary>
/// <c>BlobEncoder.Encode</c> of 1 MiB: random bytes are caught by the 64 KiB sample and stored;
/// weights and text pass the sample and are compressed whole at level 3.
/// </summary>
[Bytes(TestData.MiB)]
public class BlobEncoding
{
    private byte[] _data = [];
    private byte[] _destination = [];

    [Params(DataKind.Random, DataKind.Fp32Weights, DataKind.Text)]
    public DataKind Data { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = TestData.Create(Data, TestData.MiB);
        _destination = new byte[BlobEncoder.MaxEncodedLength(_data.Length)];
    }

    [Benchmark]
    public int Encode() => BlobEncoder.Encode(_data, _destination).Length;
}
