using System.Globalization;
using System.Security.Cryptography;
using Kintsugi.Backup.Chunking;
using Kintsugi.Backup.Format;

// Chunk-size study: how much of a series of AI artifacts is stored once deduplicated, and how many
// chunks (each costs index, tree and encryption overhead), for several min/avg/max settings.
// Run: dotnet run -c Release --project bench/Kintsugi.Bench -- chunk-sizes [seed]
//
// init-small-packs: a repository whose packs are PACK_SIZE bytes (the format allows 1 KiB and up),
// with a cheap key (Argon2id 8 MiB, t = 1), password from KINTSUGI_PASSWORD. Backing up a folder of
// many small files into it gives, in seconds, the pack and index-entry counts of a repository
// thousands of times larger (bench/large-index.sh).
// Run: dotnet run -c Release --project bench/Kintsugi.Bench -- init-small-packs PATH PACK_SIZE
if (args.Length == 3 && args[0] == "init-small-packs")
{
    var store = new Kintsugi.Backup.Storage.LocalBlobStore(Path.GetFullPath(args[1]));
    string password = Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD") ?? "";
    var options = new Kintsugi.Backup.RepositoryOptions { PackSize = int.Parse(args[2], CultureInfo.InvariantCulture) };
    await Kintsugi.Backup.Repository.InitAsync(store, password, new Kintsugi.Backup.KdfParameters(8 * 1024, 1, 1), options, "bench", "bench", TimeProvider.System).ConfigureAwait(false);
    Console.WriteLine($"created {args[1]} with {options.PackSize}-byte packs");
    return 0;
}
// load-index: opens a repository (password from KINTSUGI_PASSWORD) and loads its index ROUNDS times,
// printing wall and CPU time and the bytes allocated by each load.
// Run: dotnet run -c Release --project bench/Kintsugi.Bench -- load-index PATH [ROUNDS]
if (args.Length is 2 or 3 && args[0] == "load-index")
{
    var repo = await Kintsugi.Backup.Repository.OpenAsync(new Kintsugi.Backup.Storage.LocalBlobStore(Path.GetFullPath(args[1])), Environment.GetEnvironmentVariable("KINTSUGI_PASSWORD") ?? "", TimeProvider.System).ConfigureAwait(false);
    int rounds = args.Length == 3 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 5;
    for (int r = 0; r < rounds; r++)
    {
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        var cpu = Environment.CpuUsage.TotalTime;
        var wall = System.Diagnostics.Stopwatch.StartNew();
        var index = await repo.LoadIndexAsync().ConfigureAwait(false);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{index.Count} entries from {index.Files.Count} files: {wall.Elapsed.TotalMilliseconds:F0} ms wall, {(Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds:F0} ms CPU, {(GC.GetTotalAllocatedBytes(precise: true) - allocated) / 1048576.0:F1} MiB allocated"));
    }
    return 0;
}
if (args.Length == 0 || args[0] != "chunk-sizes")
{
    Console.Error.WriteLine("usage: Kintsugi.Bench chunk-sizes [seed] | init-small-packs PATH PACK_SIZE | load-index PATH [ROUNDS]");
    return 2;
}
int seed = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 42;
Console.WriteLine($"seed {seed}");
var settings = new (string Name, int Min, int Avg, int Max)[]
{
    ("64K/256K/1M", 64 << 10, 256 << 10, 1 << 20),
    ("256K/1M/4M", 256 << 10, 1 << 20, 4 << 20),
    ("512K/1M/8M", 512 << 10, 1 << 20, 8 << 20),
    ("1M/4M/16M", 1 << 20, 4 << 20, 16 << 20),
};
var corpora = new (string Name, Func<Random, List<byte[]>> Make)[]
{
    ("fine-tune: 4 x 128 MiB, last 10% changes", FineTune),
    ("dataset: JSONL shard, 3 versions, 20 records inserted at random", Dataset),
    ("sparse embedding: 4 x 64 MiB rows of 256 B, 2% of rows change", Embedding),
    ("tar of checkpoints: 3 x 96 MiB, one 16 MiB member replaced mid-archive", TarLike),
};
var key = MasterKey.Generate();
var chunkerSeed = RandomNumberGenerator.GetBytes(32);
Console.WriteLine($"{"corpus",-70} {"setting",-12} {"input MiB",10} {"stored MiB",11} {"stored %",9} {"chunks",8} {"overhead KiB",13}");
foreach (var (name, make) in corpora)
{
    var versions = make(new Random(seed));
    long input = versions.Sum(v => (long)v.Length);
    foreach (var s in settings)
    {
        var chunker = new Chunker(chunkerSeed, s.Min, s.Avg, s.Max);
        var seen = new HashSet<BlobId>();
        long stored = 0;
        foreach (var v in versions)
        {
            int pos = 0;
            while (pos < v.Length)
            {
                int n = chunker.NextBoundary(v.AsSpan(pos));
                if (seen.Add(key.IdOf(v.AsSpan(pos, n))))
                {
                    stored += n;
                }
                pos += n;
            }
        }
        // Per stored chunk: 28 B AEAD + 48 B pack header + 48 B index entry; per referenced chunk ~67 B of tree JSON.
        long chunksReferenced = versions.Sum(v => (long)Math.Ceiling(v.Length / (double)s.Avg));
        double overheadKib = (seen.Count * (28 + 48 + 48) + chunksReferenced * 67) / 1024.0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name,-70} {s.Name,-12} {input / 1048576.0,10:F1} {stored / 1048576.0,11:F1} {100.0 * stored / input,8:F1}% {seen.Count,8} {overheadKib,13:F0}"));
    }
}
return 0;

static List<byte[]> FineTune(Random rng)
{
    var model = new byte[128 << 20];
    rng.NextBytes(model);
    var result = new List<byte[]> { (byte[])model.Clone() };
    for (int i = 1; i < 4; i++)
    {
        rng.NextBytes(model.AsSpan(model.Length - model.Length / 10));
        result.Add((byte[])model.Clone());
    }
    return result;
}

static List<byte[]> Dataset(Random rng)
{
    var records = new List<byte[]>();
    for (int i = 0; i < 200_000; i++)
    {
        records.Add(System.Text.Encoding.UTF8.GetBytes($"{{\"id\":{i},\"text\":\"{RandomText(rng, rng.Next(100, 600))}\"}}\n"));
    }
    var result = new List<byte[]>();
    for (int v = 0; v < 3; v++)
    {
        if (v > 0)
        {
            for (int k = 0; k < 20; k++)
            {
                records.Insert(rng.Next(records.Count), System.Text.Encoding.UTF8.GetBytes($"{{\"id\":-1,\"text\":\"{RandomText(rng, 300)}\"}}\n"));
            }
        }
        result.Add(records.SelectMany(r => r).ToArray());
    }
    return result;
}

static string RandomText(Random rng, int n)
{
    const string letters = "abcdefghijklmnopqrstuvwxyz      ";
    return string.Create(n, rng, (span, r) =>
    {
        for (int i = 0; i < span.Length; i++)
        {
            span[i] = letters[r.Next(letters.Length)];
        }
    });
}

static List<byte[]> Embedding(Random rng)
{
    var table = new byte[64 << 20];
    rng.NextBytes(table);
    var result = new List<byte[]> { (byte[])table.Clone() };
    int rows = table.Length / 256;
    for (int i = 1; i < 4; i++)
    {
        for (int k = 0; k < rows / 50; k++)
        {
            rng.NextBytes(table.AsSpan(rng.Next(rows) * 256, 256));
        }
        result.Add((byte[])table.Clone());
    }
    return result;
}

static List<byte[]> TarLike(Random rng)
{
    var members = Enumerable.Range(0, 6).Select(_ => { var b = new byte[16 << 20]; rng.NextBytes(b); return b; }).ToList();
    var result = new List<byte[]>();
    for (int v = 0; v < 3; v++)
    {
        if (v > 0)
        {
            var replacement = new byte[(16 << 20) + rng.Next(1, 4096)];
            rng.NextBytes(replacement);
            members[2 + v] = replacement;
        }
        result.Add(members.SelectMany(m => m).ToArray());
    }
    return result;
}
