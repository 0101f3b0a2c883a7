using System.Buffers.Binary;
using System.Text;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;
using Xunit;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

/// <summary>Checkpoint series through backup, restore, check, stats and prune, with tensor pieces and deltas.</summary>
public sealed class TensorBackupTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private sealed record Tensor(string Name, string DType, long[] Shape, byte[] Data);

    /// <summary>Writes a safetensors file: header length, JSON header (padded to 8), tensor bytes.</summary>
    private static void WriteSafetensors(string path, IReadOnlyList<Tensor> tensors, string metadata = "step")
    {
        var json = new StringBuilder("{\"__metadata__\":{\"note\":\"" + metadata + "\"}");
        long offset = 0;
        foreach (var t in tensors)
        {
            json.Append(System.Globalization.CultureInfo.InvariantCulture, $",\"{t.Name}\":{{\"dtype\":\"{t.DType}\",\"shape\":[{string.Join(",", t.Shape)}],\"data_offsets\":[{offset},{offset + t.Data.Length}]}}");
            offset += t.Data.Length;
        }
        json.Append('}');
        while ((json.Length + 8) % 8 != 0)
        {
            json.Append(' ');
        }
        var header = Encoding.UTF8.GetBytes(json.ToString());
        using var stream = File.Create(path);
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var t in tensors)
        {
            stream.Write(t.Data);
        }
    }

    private static byte[] Fp32(Random rng, int count)
    {
        var data = new byte[count * 4];
        for (int i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), (float)(rng.NextDouble() - 0.5) * 0.04f);
        }
        return data;
    }

    private static byte[] Bf16(Random rng, int count)
    {
        var data = new byte[count * 2];
        for (int i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(i * 2), (ushort)(BitConverter.SingleToInt32Bits((float)(rng.NextDouble() - 0.5) * 0.04f) >> 16));
        }
        return data;
    }

    /// <summary>A small model: an embedding table (fp32, 3 MiB), a bf16 matrix (1.5 MiB), a bias.</summary>
    private static List<Tensor> Model(Random rng) =>
    [
        new("embedding.weight", "F32", [12288, 64], Fp32(rng, 12288 * 64)),
        new("block.0.weight", "BF16", [768, 1024], Bf16(rng, 768 * 1024)),
        new("block.0.bias", "F32", [256], Fp32(rng, 256)),
    ];

    /// <summary>A training step: 2% of the embedding rows rewritten, every bf16 weight's low bits moved.</summary>
    private static List<Tensor> Step(Random rng, List<Tensor> model)
    {
        var embedding = (byte[])model[0].Data.Clone();
        for (int k = 0; k < 12288 / 50; k++)
        {
            Fp32(rng, 64).CopyTo(embedding, rng.Next(12288) * 256);
        }
        var block = (byte[])model[1].Data.Clone();
        for (int i = 0; i < block.Length; i += 2)
        {
            block[i] ^= (byte)rng.Next(4);
        }
        return [model[0] with { Data = embedding }, model[1] with { Data = block }, model[2] with { Data = Fp32(rng, 256) }];
    }

    private async Task<IndexEntry[]> ContentEntriesAsync(Repository repo, SnapshotRef snapshot, string file)
    {
        var index = await repo.LoadIndexAsync();
        await foreach (var w in TreeWalker.WalkAsync(repo, index, BlobId.Parse(snapshot.Snapshot.Tree)))
        {
            if (w.Path.EndsWith("/" + file, StringComparison.Ordinal))
            {
                return w.Node.Content!.Select(c => index.Get(BlobId.Parse(c))).ToArray();
            }
        }
        throw new InvalidOperationException($"{file} not in snapshot {snapshot.ShortId}");
    }

    private async Task AssertRestoresAsync(Repository repo, SnapshotRef snapshot, string file, byte[] expected, string name)
    {
        var (target, result) = await _box.RestoreAsync(repo, snapshot, name);
        Assert.Empty(result.Issues);
        var restored = File.ReadAllBytes(Sandbox.Restored(target, Path.Combine(_box.Source, file)));
        Assert.True(expected.AsSpan().SequenceEqual(restored), $"{file} of snapshot {snapshot.ShortId} is not restored bit-exact");
    }

    [Fact]
    public async Task A_checkpoint_series_is_stored_as_pieces_and_deltas_and_every_version_restores_bit_exact()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        string path = Path.Combine(_box.Source, "model.safetensors");
        var model = Model(rng);
        var versions = new List<(SnapshotRef Snapshot, byte[] Bytes)>();
        for (int v = 0; v < 4; v++)
        {
            if (v > 0)
            {
                model = Step(rng, model);
            }
            WriteSafetensors(path, model, "step " + v);
            var result = await Sandbox.BackupAsync(repo, _box.Source);
            Assert.Empty(result.Issues);
            versions.Add((result.Snapshot, File.ReadAllBytes(path)));
            output.WriteLine($"version {v}: {result.Snapshot.Snapshot.Summary!.BytesAddedStored} bytes stored for {versions[^1].Bytes.Length}");
        }

        var first = await ContentEntriesAsync(repo, versions[0].Snapshot, "model.safetensors");
        var last = await ContentEntriesAsync(repo, versions[^1].Snapshot, "model.safetensors");
        Assert.Contains(first, e => e.Kind == BlobKind.TensorPiece && e.Codec == BlobCodec.Planes);
        Assert.Equal(5, last.Count(e => e.Kind == BlobKind.Delta)); // 3 pieces of the embedding, 2 of the bf16 matrix
        long firstStored = versions[0].Snapshot.Snapshot.Summary!.BytesAddedStored;
        Assert.All(versions.Skip(1), v => Assert.True(v.Snapshot.Snapshot.Summary!.BytesAddedStored < firstStored / 2, $"a later version stores less than half the first ({v.Snapshot.Snapshot.Summary!.BytesAddedStored} of {firstStored})"));

        for (int v = 0; v < versions.Count; v++)
        {
            await AssertRestoresAsync(repo, versions[v].Snapshot, "model.safetensors", versions[v].Bytes, "v" + v);
        }
        var check = await new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = true, Host = Sandbox.Host });
        Assert.True(check.Ok, string.Join("; ", check.Problems.Select(p => p.Message)));
        Assert.True(check.BlobsVerified >= 5 * 3, "deltas are rebuilt and verified by check --read-data");

        var stats = await new StatsEngine(repo).RunAsync(versions[^1].Snapshot);
        var file = Assert.Single(stats.Files);
        Assert.Equal("safetensors", file.Layout);
        Assert.Contains(stats.Codecs, c => c.Codec.StartsWith("delta ", StringComparison.Ordinal));
        Assert.True(stats.BaseBlobs > 0, "the newest snapshot's deltas rest on older blobs");
    }

    [Fact]
    public async Task Prune_keeps_the_bases_a_kept_delta_needs()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        string path = Path.Combine(_box.Source, "model.safetensors");
        var model = Model(rng);
        SnapshotRef? newest = null;
        byte[] newestBytes = [];
        for (int v = 0; v < 3; v++)
        {
            model = v == 0 ? model : Step(rng, model);
            WriteSafetensors(path, model);
            newest = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
            newestBytes = File.ReadAllBytes(path);
        }
        foreach (var snap in (await repo.LoadSnapshotsAsync()).Where(s => s.Id != newest!.Id))
        {
            await repo.Store.DeleteAsync(FileKind.Snapshot, snap.Id.ToString());
        }
        var pruned = await new PruneEngine(repo).RunAsync(new PruneRequest { Host = Sandbox.Host, RepackThreshold = 0.01 });
        output.WriteLine($"prune: {pruned.BlobsRemoved} blobs removed, {pruned.BlobsKept} kept, {pruned.PacksRepacked} packs repacked");
        Assert.True(pruned.BlobsRemoved > 0, "the forgotten versions' own blobs are removed");

        await AssertRestoresAsync(repo, newest!, "model.safetensors", newestBytes, "after-prune");
        var check = await new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = true, Host = Sandbox.Host });
        Assert.True(check.Ok, string.Join("; ", check.Problems.Select(p => p.Message)));
    }

    [Fact]
    public async Task Delta_chains_never_exceed_the_configured_length()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        string path = Path.Combine(_box.Source, "model.safetensors");
        var model = Model(rng);
        var all = new List<(SnapshotRef, byte[])>();
        for (int v = 0; v < 5; v++)
        {
            model = v == 0 ? model : Step(rng, model);
            WriteSafetensors(path, model);
            var snap = (await new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [_box.Source], Host = Sandbox.Host, DeltaChain = 2 })).Snapshot;
            all.Add((snap, File.ReadAllBytes(path)));
        }
        var index = await repo.LoadIndexAsync();
        var reader = new BlobReader(repo, index);
        var deltas = index.Entries.Where(e => e.IsDelta).ToList();
        Assert.NotEmpty(deltas);
        Assert.All(deltas, d => Assert.True(reader.ChainOf(d).Count <= 2, $"delta {d.Id.Short} rests on a chain of {reader.ChainOf(d).Count}"));
        for (int v = 0; v < all.Count; v++)
        {
            await AssertRestoresAsync(repo, all[v].Item1, "model.safetensors", all[v].Item2, "chain" + v);
        }
    }

    [Fact]
    public async Task A_new_checkpoint_file_finds_its_bases_in_the_previous_checkpoint_beside_it()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        var model = Model(rng);
        WriteSafetensors(Path.Combine(_box.Source, "step-100.safetensors"), model);
        await Sandbox.BackupAsync(repo, _box.Source);
        model = Step(rng, model);
        WriteSafetensors(Path.Combine(_box.Source, "step-200.safetensors"), model);
        var second = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        var entries = await ContentEntriesAsync(repo, second, "step-200.safetensors");
        Assert.Equal(5, entries.Count(e => e.Kind == BlobKind.Delta));
        await AssertRestoresAsync(repo, second, "step-200.safetensors", File.ReadAllBytes(Path.Combine(_box.Source, "step-200.safetensors")), "sibling");
    }

    [Fact]
    public async Task A_checkpoint_backed_up_alone_finds_its_bases_in_the_snapshot_named_as_parent()
    {
        // How `kintsugi run` protects checkpoints: one snapshot per checkpoint file, the previous one as parent.
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        var model = Model(rng);
        string first = Path.Combine(_box.Source, "step-100.safetensors");
        string second = Path.Combine(_box.Source, "step-200.safetensors");
        WriteSafetensors(first, model);
        var firstSnap = (await Sandbox.BackupAsync(repo, first)).Snapshot;
        WriteSafetensors(second, Step(rng, model));
        var secondSnap = (await new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [second], Host = Sandbox.Host, Parent = firstSnap.Id.ToString() })).Snapshot;
        var entries = await ContentEntriesAsync(repo, secondSnap, "step-200.safetensors");
        Assert.Equal(5, entries.Count(e => e.Kind == BlobKind.Delta));
        await AssertRestoresAsync(repo, secondSnap, "step-200.safetensors", File.ReadAllBytes(second), "alone");
    }

    [Fact]
    public async Task NumPy_files_are_split_by_array_and_their_next_version_is_stored_as_deltas()
    {
        var repo = await _box.InitAsync();
        const string script = """
            import sys, numpy as np
            out, version = sys.argv[1], int(sys.argv[2])
            r = np.random.default_rng(7)
            a = (r.standard_normal((512, 1024)) * 0.02).astype(np.float32)
            b = (r.standard_normal((700, 1000)) * 0.02).astype(np.float16)
            for v in range(1, version):
                rows = np.random.default_rng(v).choice(512, 10, replace=False)
                a[rows] += np.float32(0.001)
                b *= np.float16(1.01)
            np.save(out + "/weights.npy", a)
            np.savez(out + "/state.npz", a=a, b=b)
            """;
        var snapshots = new List<(SnapshotRef, Dictionary<string, byte[]>)>();
        for (int v = 1; v <= 2; v++)
        {
            var (code, err) = RunPython(script, _box.Source, v.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(code == 0, "the numpy fixture failed: " + err);
            var snap = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
            snapshots.Add((snap, Directory.GetFiles(_box.Source).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes)));
        }
        var stats = await new StatsEngine(repo).RunAsync(snapshots[^1].Item1);
        Assert.Equal(["npy", "npz"], stats.Files.Select(f => f.Layout ?? "none").Order().ToArray());
        var npy = await ContentEntriesAsync(repo, snapshots[^1].Item1, "weights.npy");
        var npz = await ContentEntriesAsync(repo, snapshots[^1].Item1, "state.npz");
        Assert.Equal(2, npy.Count(e => e.IsDelta)); // the 2 MiB array: both pieces moved in 10 rows
        Assert.True(npz.Count(e => e.IsDelta) >= 3, "the float16 array that moved everywhere is stored as deltas too");
        for (int i = 0; i < snapshots.Count; i++)
        {
            var (target, result) = await _box.RestoreAsync(repo, snapshots[i].Item1, "numpy" + i);
            Assert.Empty(result.Issues);
            foreach (var (name, bytes) in snapshots[i].Item2)
            {
                Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Sandbox.Restored(target, Path.Combine(_box.Source, name)))), $"{name} of version {i + 1} is not restored bit-exact");
            }
        }
    }

    private static (int Code, string Error) RunPython(string script, params string[] args)
    {
        var info = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3") { RedirectStandardError = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        using var p = System.Diagnostics.Process.Start(info)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, err);
    }

    [Fact]
    public async Task Damage_to_a_base_is_reported_against_the_files_whose_deltas_need_it()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        string path = Path.Combine(_box.Source, "model.safetensors");
        var model = Model(rng);
        WriteSafetensors(path, model);
        var first = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;
        WriteSafetensors(path, Step(rng, model));
        var second = (await Sandbox.BackupAsync(repo, _box.Source)).Snapshot;

        var baseEntry = (await ContentEntriesAsync(repo, second, "model.safetensors")).First(e => e.IsDelta);
        var index = await repo.LoadIndexAsync();
        var pack = index.Get(baseEntry.Base).Pack;
        string packPath = Directory.EnumerateFiles(_box.RepoPath, pack.ToString(), SearchOption.AllDirectories).Single();
        File.SetUnixFileMode(packPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var bytes = File.ReadAllBytes(packPath);
        bytes[(int)index.Get(baseEntry.Base).Offset + 20] ^= 0x40;
        File.WriteAllBytes(packPath, bytes);

        var check = await new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = true, Host = Sandbox.Host });
        Assert.False(check.Ok);
        Assert.Contains(check.AffectedFiles, f => f.Snapshot == first.ShortId && f.Path.EndsWith("model.safetensors", StringComparison.Ordinal));
        Assert.Contains(check.AffectedFiles, f => f.Snapshot == second.ShortId && f.Path.EndsWith("model.safetensors", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Without_tensor_awareness_and_for_malformed_containers_files_are_chunked_as_opaque_bytes()
    {
        var rng = new Random(TestSeed.Get(output));
        var repo = await _box.InitAsync();
        string good = Path.Combine(_box.Source, "model.safetensors");
        string broken = Path.Combine(_box.Source, "broken.safetensors");
        WriteSafetensors(good, Model(rng));
        WriteSafetensors(broken, Model(rng));
        using (var f = File.OpenWrite(broken))
        {
            f.SetLength(f.Length - 1000); // the header promises more than the file holds
        }
        var plain = (await new BackupEngine(repo).RunAsync(new BackupRequest { Paths = [_box.Source], Host = Sandbox.Host, TensorAware = false })).Snapshot;
        Assert.DoesNotContain(await ContentEntriesAsync(repo, plain, "model.safetensors"), e => e.Kind != BlobKind.Data);

        var aware = (await Sandbox.BackupAsync(repo, _box.Source, full: true)).Snapshot;
        Assert.DoesNotContain(await ContentEntriesAsync(repo, aware, "broken.safetensors"), e => e.Kind != BlobKind.Data);
        var (target, result) = await _box.RestoreAsync(repo, aware, "aware");
        Assert.Empty(result.Issues);
        Files.AssertSameTree(_box.Source, Sandbox.Restored(target, _box.Source));
    }
}
