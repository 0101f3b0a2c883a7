using System.Buffers.Binary;
using System.Text;
using Kintsugi.Backup.Engine;
using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;
using Xunit;
using Xunit.Abstractions;

namespace Kintsugi.Backup.Tests;

/// <summary>CopyEngine: snapshots with what they need, from one repository to another, moving only what the destination lacks.</summary>
public sealed class CopyTests(ITestOutputHelper output) : IDisposable
{
    private readonly Sandbox _box = new();

    public void Dispose() => _box.Dispose();

    private string DestinationPath => Path.Combine(_box.Root, "dst");

    private Task<Repository> InitDestinationAsync(Repository source, IBlobStore? store = null) =>
        Repository.InitAsync(store ?? new LocalBlobStore(DestinationPath), "another password", Sandbox.Kdf, null, Sandbox.Host, "tester", TimeProvider.System, settingsFrom: source);

    /// <summary>A destination with its own keys and chunking, as plain `kintsugi init` makes it: its blob ids differ from the source's.</summary>
    private Task<Repository> InitUnrelatedAsync(IBlobStore? store = null) =>
        Repository.InitAsync(store ?? new LocalBlobStore(DestinationPath), "another password", Sandbox.Kdf, Sandbox.SmallChunks, Sandbox.Host, "tester", TimeProvider.System);

    private Task<Repository> InitDestinationAsync(Repository source, bool sharedIds) =>
        sharedIds ? InitDestinationAsync(source) : InitUnrelatedAsync();

    private static Task<CopyResult> CopyAsync(Repository source, Repository destination, IReadOnlyList<SnapshotRef> snapshots, IProgress<CopyProgress>? progress = null, CancellationToken ct = default) =>
        new CopyEngine(source, destination).RunAsync(new CopyRequest { Snapshots = snapshots, Host = Sandbox.Host }, progress, ct);

    private void WriteFiles(Random rng, string folder, int count, int size)
    {
        for (int i = 0; i < count; i++)
        {
            Files.Write(Path.Combine(_box.Source, folder, $"f{i}.bin"), i % 2 == 0 ? Files.RandomBytes(rng, size) : Files.CompressibleBytes(rng, size));
        }
    }

    private async Task AssertRestoresAsync(Repository repo, SnapshotRef snapshot, string name)
    {
        var (target, result) = await _box.RestoreAsync(repo, snapshot, name);
        Assert.Empty(result.Issues);
        Files.AssertSameTree(_box.Source, Sandbox.Restored(target, _box.Source));
    }

    private static async Task AssertCheckPassesAsync(Repository repo)
    {
        var check = await new CheckEngine(repo).RunAsync(new CheckRequest { ReadData = true, Host = Sandbox.Host });
        Assert.True(check.Ok, string.Join("; ", check.Problems.Select(p => p.Message)));
    }

    [Fact]
    public async Task Copying_every_snapshot_moves_them_restorable_and_a_second_copy_moves_nothing()
    {
        var rng = new Random(TestSeed.Get(output));
        var source = await _box.InitAsync();
        WriteFiles(rng, "a", 4, 300_000);
        var first = await Sandbox.BackupAsync(source, _box.Source);
        WriteFiles(rng, "b", 3, 200_000);
        var second = await Sandbox.BackupAsync(source, _box.Source);
        var destination = await InitDestinationAsync(source);

        var copied = await CopyAsync(source, destination, await source.LoadSnapshotsAsync());
        Assert.Equal(2, copied.SnapshotsCopied);
        Assert.Equal(0, copied.SnapshotsSkipped);
        Assert.True(copied.BlobsCopied > 0 && copied.BytesCopied > 0);
        var inDestination = await destination.LoadSnapshotsAsync();
        Assert.Equal([first.Snapshot.Id.ToString(), second.Snapshot.Id.ToString()], inDestination.Select(s => s.Snapshot.Original!));
        Assert.Equal([first.Snapshot.Snapshot.Tree, second.Snapshot.Snapshot.Tree], inDestination.Select(s => s.Snapshot.Tree));
        await AssertRestoresAsync(destination, inDestination[^1], "latest");
        await AssertCheckPassesAsync(destination);

        var again = await CopyAsync(source, destination, await source.LoadSnapshotsAsync());
        Assert.Equal(0, again.SnapshotsCopied);
        Assert.Equal(2, again.SnapshotsSkipped);
        Assert.Equal(0, again.BlobsCopied);
        Assert.Equal(0, again.BytesCopied);
        Assert.Equal(inDestination.Select(s => s.Id), again.Snapshots.Select(s => s.Destination));
        Assert.Equal(2, (await destination.LoadSnapshotsAsync()).Count);

        // A copy of the copy, back into the source, is recognised too: it is the same snapshot.
        var back = await CopyAsync(destination, source, inDestination);
        Assert.Equal(0, back.SnapshotsCopied);
    }

    [Fact]
    public async Task A_copy_after_a_new_backup_moves_only_the_new_blobs()
    {
        var rng = new Random(TestSeed.Get(output));
        var source = await _box.InitAsync();
        WriteFiles(rng, "a", 4, 300_000);
        await Sandbox.BackupAsync(source, _box.Source);
        var destination = await InitDestinationAsync(source);
        await CopyAsync(source, destination, await source.LoadSnapshotsAsync());

        Files.Write(Path.Combine(_box.Source, "new.bin"), Files.RandomBytes(rng, 500_000));
        var next = await Sandbox.BackupAsync(source, _box.Source);
        var copied = await CopyAsync(source, destination, await source.LoadSnapshotsAsync());

        Assert.Equal(1, copied.SnapshotsCopied);
        Assert.Equal(1, copied.SnapshotsSkipped);
        Assert.Equal(next.Snapshot.Snapshot.Summary!.BlobsAdded, copied.BlobsCopied);
        await AssertRestoresAsync(destination, (await destination.LoadSnapshotsAsync())[^1], "next");
    }

    [Fact]
    public async Task Copying_only_the_newest_checkpoint_brings_the_bases_of_its_deltas_and_restores_bit_exact()
    {
        var rng = new Random(TestSeed.Get(output));
        var source = await _box.InitAsync();
        string path = Path.Combine(_box.Source, "model.safetensors");
        var embedding = Fp32(rng, 12288 * 64);
        SnapshotRef newest = null!;
        for (int v = 0; v < 3; v++)
        {
            for (int k = 0; k < 200; k++)
            {
                Fp32(rng, 64).CopyTo(embedding, rng.Next(12288) * 256);
            }
            WriteSafetensors(path, "embedding.weight", [12288, 64], embedding);
            newest = (await Sandbox.BackupAsync(source, _box.Source)).Snapshot;
        }
        var sourceIndex = await source.LoadIndexAsync();
        var deltas = (await RepoFacts.BlobsOfAsync(source, newest)).Select(sourceIndex.Get).Where(e => e.IsDelta).ToList();
        Assert.NotEmpty(deltas);

        var destination = await InitDestinationAsync(source);
        var copied = await CopyAsync(source, destination, [newest]);
        Assert.Equal(1, copied.SnapshotsCopied);

        var destinationIndex = await destination.LoadIndexAsync();
        foreach (var delta in deltas)
        {
            var entry = destinationIndex.Get(delta.Id);
            Assert.Equal(BlobKind.Delta, entry.Kind);
            Assert.Equal(delta.Codec, entry.Codec);
            Assert.Equal(delta.Base, entry.Base);
            Assert.True(destinationIndex.Contains(entry.Base), $"the base {entry.Base.Short} of delta {entry.Id.Short} was copied");
        }
        var (target, result) = await _box.RestoreAsync(destination, (await destination.LoadSnapshotsAsync()).Single(), "newest");
        Assert.Empty(result.Issues);
        Assert.True(File.ReadAllBytes(path).AsSpan().SequenceEqual(File.ReadAllBytes(Sandbox.Restored(target, path))), "the newest checkpoint restores bit-exact from the copy");
        await AssertCheckPassesAsync(destination);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_interrupted_copy_writes_no_snapshot_and_the_next_run_reuses_what_it_stored(bool sharedIds)
    {
        var rng = new Random(TestSeed.Get(output));
        var source = await _box.InitAsync();
        WriteFiles(rng, "a", 12, 700_000);
        var snapshot = (await Sandbox.BackupAsync(source, _box.Source)).Snapshot;
        var destination = await InitDestinationAsync(source, sharedIds);

        using var cancel = new CancellationTokenSource();
        long toCopy = 0;
        var progress = new InlineProgress(p =>
        {
            toCopy = p.BlobsToCopy;
            if (p.BlobsCopied * 4 >= p.BlobsToCopy * 3)
            {
                cancel.Cancel();
            }
        });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => CopyAsync(source, destination, [snapshot], progress, cancel.Token));
        Assert.Empty(await destination.LoadSnapshotsAsync());
        int indexed = (await destination.LoadIndexAsync()).Count;
        output.WriteLine($"interrupted after indexing {indexed} of {toCopy} blobs");
        Assert.True(indexed > 0, "the packs stored before the interruption are indexed");

        // Where ids differ the resumed copy re-reads every blob to learn its new id, but stores only what is not indexed.
        var resumed = await CopyAsync(source, destination, [snapshot]);
        Assert.Equal(1, resumed.SnapshotsCopied);
        Assert.Equal(sharedIds, resumed.IdsShared);
        Assert.Equal(toCopy - indexed, resumed.BlobsCopied);
        await AssertRestoresAsync(destination, (await destination.LoadSnapshotsAsync()).Single(), "resumed");
        await AssertCheckPassesAsync(destination);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task The_snapshot_is_written_after_every_pack_and_index_file_it_needs(bool sharedIds)
    {
        var rng = new Random(TestSeed.Get(output));
        var source = await _box.InitAsync();
        WriteFiles(rng, "a", 8, 500_000);
        await Sandbox.BackupAsync(source, _box.Source);
        var recording = new RecordingStore(new LocalBlobStore(DestinationPath));
        var destination = sharedIds ? await InitDestinationAsync(source, recording) : await InitUnrelatedAsync(recording);
        recording.Writes.Clear();

        await CopyAsync(source, destination, await source.LoadSnapshotsAsync());

        var kinds = recording.Writes.Where(w => w != FileKind.Lock).ToList();
        output.WriteLine(string.Join(" ", kinds));
        Assert.True(kinds.Count(k => k == FileKind.Pack) > 1, "several packs were written");
        Assert.Equal(FileKind.Snapshot, kinds.SkipWhile(k => k != FileKind.Snapshot).Distinct().Single());
        Assert.True(kinds.LastIndexOf(FileKind.Index) < kinds.IndexOf(FileKind.Snapshot) && kinds.LastIndexOf(FileKind.Pack) < kinds.IndexOf(FileKind.Snapshot));
    }

    [Fact]
    public async Task A_repository_made_with_the_sources_settings_deduplicates_new_backups_against_copied_data()
    {
        var rng = new Random(TestSeed.Get(output));
        var source = await _box.InitAsync();
        WriteFiles(rng, "a", 5, 400_000);
        await Sandbox.BackupAsync(source, _box.Source);
        var destination = await InitDestinationAsync(source);
        Assert.Equal(source.Config.ChunkerSeed, destination.Config.ChunkerSeed);
        Assert.Equal((source.Config.ChunkMin, source.Config.ChunkAverage, source.Config.ChunkMax, source.Config.PackSize), (destination.Config.ChunkMin, destination.Config.ChunkAverage, destination.Config.ChunkMax, destination.Config.PackSize));
        Assert.NotEqual(source.Config.Id, destination.Config.Id);
        await CopyAsync(source, destination, await source.LoadSnapshotsAsync());

        int contentBefore = (await destination.LoadIndexAsync()).Entries.Count(e => e.Kind != BlobKind.Tree);
        var backup = await new BackupEngine(destination).RunAsync(new BackupRequest { Paths = [_box.Source], Host = Sandbox.Host, Full = true });
        Assert.True(backup.Snapshot.Snapshot.Summary!.BytesRead > 0, "the full backup read the files");
        // Only folder listings may be new (the folders above the source changed); every chunk was there.
        Assert.Equal(contentBefore, (await destination.LoadIndexAsync()).Entries.Count(e => e.Kind != BlobKind.Tree));
    }

    [Fact]
    public async Task The_source_itself_is_refused()
    {
        var source = await _box.InitAsync();
        Files.Write(Path.Combine(_box.Source, "x"), [1, 2, 3]);
        await Sandbox.BackupAsync(source, _box.Source);
        var snapshots = await source.LoadSnapshotsAsync();

        var sameAgain = await _box.OpenAsync();
        var e = await Assert.ThrowsAsync<KintsugiException>(() => CopyAsync(source, sameAgain, snapshots));
        Assert.Contains("same repository", e.Message, StringComparison.Ordinal);
        Assert.Single(await source.LoadSnapshotsAsync());
    }

    [Fact]
    public async Task Copying_into_a_repository_with_other_blob_ids_re_identifies_every_blob_and_restores_each_snapshot_bit_exact()
    {
        var rng = new Random(TestSeed.Get(output));
        var source = await _box.InitAsync();
        string model = Path.Combine(_box.Source, "model.safetensors");
        var embedding = Fp32(rng, 12288 * 64);
        var versions = new List<byte[]>();
        for (int v = 0; v < 3; v++)
        {
            WriteFiles(rng, $"v{v}", 2, 200_000);
            for (int k = 0; k < 200; k++)
            {
                Fp32(rng, 64).CopyTo(embedding, rng.Next(12288) * 256);
            }
            WriteSafetensors(model, "embedding.weight", [12288, 64], embedding);
            versions.Add(File.ReadAllBytes(model));
            await Sandbox.BackupAsync(source, _box.Source);
        }
        var snapshots = await source.LoadSnapshotsAsync();
        var sourceIndex = await source.LoadIndexAsync();
        Assert.Contains(sourceIndex.Entries, e => e.IsDelta);
        var destination = await InitUnrelatedAsync();
        Assert.False(CopyEngine.SharesIds(source, destination));

        var copied = await CopyAsync(source, destination, snapshots);
        Assert.False(copied.IdsShared);
        Assert.Equal(3, copied.SnapshotsCopied);
        var copies = await destination.LoadSnapshotsAsync();
        Assert.Equal(snapshots.Select(s => s.Id.ToString()), copies.Select(c => c.Snapshot.Original!));
        Assert.Equal(snapshots.Select(s => s.Snapshot.Paths), copies.Select(c => c.Snapshot.Paths));
        var destinationIndex = await destination.LoadIndexAsync();
        Assert.All(copies, c => Assert.False(sourceIndex.Contains(BlobId.Parse(c.Snapshot.Tree)), "the copy's tree has a new id"));
        // Every source blob the snapshots reach has exactly one counterpart, and none is a delta.
        var reached = new HashSet<BlobId>();
        foreach (var s in snapshots)
        {
            reached.UnionWith(await RepoFacts.BlobsOfAsync(source, s));
        }
        Assert.Equal(reached.Count, destinationIndex.Count);
        Assert.Equal(reached.Count, copied.BlobsCopied);
        Assert.DoesNotContain(destinationIndex.Entries, e => e.IsDelta);
        Assert.Equal(sourceIndex.Entries.Count(e => e.Kind is BlobKind.TensorPiece or BlobKind.Delta), destinationIndex.Entries.Count(e => e.Kind == BlobKind.TensorPiece));
        Assert.DoesNotContain(destinationIndex.Entries, e => sourceIndex.Contains(e.Id));

        for (int v = 0; v < 3; v++)
        {
            var (target, result) = await _box.RestoreAsync(destination, copies[v], $"v{v}");
            Assert.Empty(result.Issues);
            Assert.True(versions[v].AsSpan().SequenceEqual(File.ReadAllBytes(Sandbox.Restored(target, model))), $"checkpoint {v} restores bit-exact from the copy");
        }
        await AssertRestoresAsync(destination, copies[^1], "latest");
        await AssertCheckPassesAsync(destination);

        var again = await CopyAsync(source, destination, snapshots);
        Assert.Equal((0, 3, 0L, 0L), (again.SnapshotsCopied, again.SnapshotsSkipped, again.BlobsCopied, again.BytesCopied));
        Assert.Equal(copies.Select(c => c.Id), again.Snapshots.Select(s => s.Destination));
        // A copy of the copy, back into the source, is recognised by its first id.
        Assert.Equal(0, (await CopyAsync(destination, source, copies)).SnapshotsCopied);
        Assert.Equal(3, (await source.LoadSnapshotsAsync()).Count);
    }

    [Fact]
    public async Task Snapshots_sharing_files_share_their_re_identified_blobs_and_a_later_copy_moves_only_what_is_new()
    {
        var rng = new Random(TestSeed.Get(output));
        var source = await _box.InitAsync();
        WriteFiles(rng, "a", 4, 300_000);
        var first = (await Sandbox.BackupAsync(source, _box.Source)).Snapshot;
        Files.Write(Path.Combine(_box.Source, "b", "copy-of-a0.bin"), File.ReadAllBytes(Path.Combine(_box.Source, "a", "f0.bin")));
        var second = await Sandbox.BackupAsync(source, _box.Source);
        var destination = await InitUnrelatedAsync();

        var one = await CopyAsync(source, destination, [first]);
        Assert.Equal(1, one.SnapshotsCopied);
        Assert.Equal((await RepoFacts.BlobsOfAsync(source, first)).Count, one.BlobsCopied);
        var two = await CopyAsync(source, destination, await source.LoadSnapshotsAsync());
        Assert.Equal((1, 1), (two.SnapshotsCopied, two.SnapshotsSkipped));
        // The duplicate file added no content in the source; its copy adds none either: only the changed folder listings move.
        Assert.Equal(second.Snapshot.Snapshot.Summary!.BlobsAdded, two.BlobsCopied);
        Assert.Equal(
            (await source.LoadIndexAsync()).Entries.Count(e => e.Kind != BlobKind.Tree),
            (await destination.LoadIndexAsync()).Entries.Count(e => e.Kind != BlobKind.Tree));
        await AssertRestoresAsync(destination, (await destination.LoadSnapshotsAsync())[^1], "second");
        await AssertCheckPassesAsync(destination);
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

    /// <summary>A safetensors file of one tensor: header length, JSON header padded to 8, the bytes.</summary>
    private static void WriteSafetensors(string path, string name, long[] shape, byte[] data)
    {
        var json = new StringBuilder().Append(System.Globalization.CultureInfo.InvariantCulture, $"{{\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[0,{data.Length}]}}}}");
        while (json.Length % 8 != 0)
        {
            json.Append(' ');
        }
        var header = Encoding.UTF8.GetBytes(json.ToString());
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var stream = File.Create(path);
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        stream.Write(data);
    }

    /// <summary>Reports on the caller's thread, so a test can cancel at an exact point (Progress&lt;T&gt; posts later).</summary>
    private sealed class InlineProgress(Action<CopyProgress> report) : IProgress<CopyProgress>
    {
        public void Report(CopyProgress value) => report(value);
    }

    /// <summary>A store that records the kind of every file made visible, in order.</summary>
    private sealed class RecordingStore(IBlobStore inner) : IBlobStore
    {
        public List<FileKind> Writes { get; } = [];

        public string Location => inner.Location;

        public StoreCapabilities Capabilities => inner.Capabilities;

        public StoreStatistics Statistics => inner.Statistics;

        public Task<bool> ExistsAsync(FileKind kind, string name, CancellationToken cancellationToken = default) => inner.ExistsAsync(kind, name, cancellationToken);

        public Task<bool> IsEmptyAsync(CancellationToken cancellationToken = default) => inner.IsEmptyAsync(cancellationToken);

        public async Task PutAsync(FileKind kind, string name, ReadOnlyMemory<byte> data, bool overwrite = false, CancellationToken cancellationToken = default)
        {
            await inner.PutAsync(kind, name, data, overwrite, cancellationToken);
            lock (Writes)
            {
                Writes.Add(kind);
            }
        }

        public IPendingFile CreatePending(FileKind kind) => new RecordingPending(inner.CreatePending(kind), kind, Writes);

        public Task<byte[]> GetAsync(FileKind kind, string name, CancellationToken cancellationToken = default) => inner.GetAsync(kind, name, cancellationToken);

        public ValueTask ReadAtAsync(FileKind kind, string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAtAsync(kind, name, offset, buffer, cancellationToken);

        public Task<IReadOnlyList<StoredFile>> ListAsync(FileKind kind, CancellationToken cancellationToken = default) => inner.ListAsync(kind, cancellationToken);

        public Task DeleteAsync(FileKind kind, string name, CancellationToken cancellationToken = default) => inner.DeleteAsync(kind, name, cancellationToken);

        public Task CreateAsync(CancellationToken cancellationToken = default) => inner.CreateAsync(cancellationToken);

        public Task<int> CleanTemporaryFilesAsync(TimeSpan olderThan, DateTimeOffset now, CancellationToken cancellationToken = default) => inner.CleanTemporaryFilesAsync(olderThan, now, cancellationToken);
    }

    private sealed class RecordingPending(IPendingFile inner, FileKind kind, List<FileKind> writes) : IPendingFile
    {
        public long Length => inner.Length;

        public void Write(ReadOnlySpan<byte> data) => inner.Write(data);

        public async Task CommitAsync(string name, bool overwrite, CancellationToken cancellationToken)
        {
            await inner.CommitAsync(name, overwrite, cancellationToken);
            lock (writes)
            {
                writes.Add(kind);
            }
        }

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
