using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Kintsugi.Backup.Format;

namespace Kintsugi.Micro;

/// <summary>AES-256-GCM over 1 MiB: Kintsugi's <c>Aead.Seal</c>/<c>TryOpen</c> (new AesGcm and random nonce per call) and a reused AesGcm.</summary>
[Bytes(TestData.MiB)]
public class Aes256Gcm
{
    private byte[] _plain = [];
    private byte[] _sealed = [];
    private byte[] _toOpen = [];
    private byte[] _opened = [];
    private readonly byte[] _key = new byte[32];
    private readonly byte[] _associated = new byte[48];
    private readonly byte[] _nonce = new byte[Aead.NonceSize];
    private readonly byte[] _tag = new byte[Aead.TagSize];
    private byte[] _ciphertext = [];
    private AesGcm? _gcm;

    [Params(DataKind.Fp32Weights, DataKind.Random, DataKind.Text)]
    public DataKind Data { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _plain = TestData.Create(Data, TestData.MiB);
        var rng = new Random(11);
        rng.NextBytes(_key);
        rng.NextBytes(_associated);
        rng.NextBytes(_nonce);
        _sealed = new byte[_plain.Length + Aead.Overhead];
        _ciphertext = new byte[_plain.Length];
        _opened = new byte[_plain.Length];
        _toOpen = Aead.Seal(_key, _plain, _associated);
        _gcm = new AesGcm(_key, Aead.TagSize);
    }

    [GlobalCleanup]
    public void Cleanup() => _gcm?.Dispose();

    [Benchmark(Baseline = true)]
    public byte AeadSeal()
    {
        Aead.Seal(_key, _plain, _associated, _sealed);
        return _sealed[^1];
    }

    [Benchmark]
    public byte AesGcmEncryptReused()
    {
        _gcm!.Encrypt(_nonce, _plain, _ciphertext, _tag, _associated);
        return _tag[0];
    }

    [Benchmark]
    public bool AeadTryOpen() => Aead.TryOpen(_key, _toOpen, _associated, _opened);
}
