using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Kintsugi.Backup.Format;

namespace Kintsugi.Micro;

/// <summary>Naming a 1 MiB chunk: HMAC-SHA-256 (what <see cref="MasterKey.IdOf"/> does) against keyed BLAKE3 and plain SHA-256.</summary>
[Bytes(TestData.MiB)]
public class Hashing
{
    private byte[] _data = [];
    private readonly byte[] _key = new byte[32];
    private readonly byte[] _digest = new byte[32];
    private MasterKey _masterKey = null!;

    [Params(DataKind.Fp32Weights, DataKind.Random, DataKind.Text)]
    public DataKind Data { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = TestData.Create(Data, TestData.MiB);
        new Random(7).NextBytes(_key);
        _masterKey = MasterKey.Generate();
    }

    [Benchmark(Baseline = true)]
    public byte HmacSha256()
    {
        HMACSHA256.HashData(_key, _data, _digest);
        return _digest[0];
    }

    [Benchmark]
    public BlobId MasterKeyIdOf() => _masterKey.IdOf(_data);

    [Benchmark]
    public byte Sha256()
    {
        SHA256.HashData(_data, _digest);
        return _digest[0];
    }

    /// <summary>Blake3 3.x is the fully managed SIMD implementation (Blake3.Native would be the Rust one).</summary>
    [Benchmark]
    public byte Blake3Keyed()
    {
        using var hasher = Blake3.Hasher.NewKeyed(_key);
        hasher.Update(_data);
        hasher.Finalize(_digest);
        return _digest[0];
    }

    /// <summary>Keyed BLAKE3 with its multi-threaded tree update (both cores of this machine).</summary>
    [Benchmark]
    public byte Blake3KeyedMultiThread()
    {
        using var hasher = Blake3.Hasher.NewKeyed(_key);
        hasher.UpdateWithJoin(_data);
        hasher.Finalize(_digest);
        return _digest[0];
    }
}
