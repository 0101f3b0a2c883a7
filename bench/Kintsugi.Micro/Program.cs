using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Kintsugi.Backup.Codecs;
using Perfolizer.Horology;

namespace Kintsugi.Micro;

/// <summary>
/// Micro-benchmarks of Kintsugi's hot paths on 1 MiB of fp32 weights, random bytes and text.
/// Run everything: <c>dotnet run -c Release --project bench/Kintsugi.Micro -- --filter '*'</c>
/// (one class: <c>--filter '*Hashing*'</c>; list: <c>--list flat</c>).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var clock = Stopwatch.StartNew();
        Console.WriteLine($"native zstd (ZstdNet): {(NativeZstd.Available ? "available" : "NOT available, its benchmarks are skipped")}: {NativeZstd.Detail}");

        // Short on purpose: the suite is ~70 cases and must run in minutes on 2 shared cores.
        var job = Job.Default
            .WithId("Micro")
            .WithLaunchCount(1)
            .WithWarmupCount(3)
            .WithIterationCount(5)
            .WithIterationTime(TimeInterval.FromMilliseconds(250))
            .WithUnrollFactor(1);
        var config = ManualConfig.Create(DefaultConfig.Instance)
            .AddJob(job)
            .AddColumn(StatisticColumn.Median, StatisticColumn.Min, new ThroughputColumn())
            .AddDiagnoser(MemoryDiagnoser.Default)
            .WithOptions(ConfigOptions.DisableLogFile);
        var projectDirectory = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", ".."));
        if (File.Exists(Path.Combine(projectDirectory, "Kintsugi.Micro.csproj")))
        {
            config = config.WithArtifactsPath(Path.Combine(projectDirectory, "BenchmarkDotNet.Artifacts"));
        }
        if (!NativeZstd.Available)
        {
            config = config.AddFilter(new SimpleFilter(b => !b.Descriptor.HasCategory(NativeZstd.Category)));
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config).ToList();
        if (summaries.Count == 0 || summaries.All(s => s.Reports.Length == 0))
        {
            return summaries.Count == 0 ? 0 : 1;
        }
        PrintThroughput(summaries);
        PrintSizes();
        Console.WriteLine($"native zstd (ZstdNet): {(NativeZstd.Available ? "available" : "NOT available")}: {NativeZstd.Detail}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"total run time: {clock.Elapsed.TotalMinutes:F1} min"));
        Console.WriteLine("note: the machine may be shared; compare StdDev with the differences before trusting them.");
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }

    private static void PrintThroughput(List<Summary> summaries)
    {
        Console.WriteLine();
        Console.WriteLine("## Throughput (MB/s = 10^6 bytes of input per second; \"best\" is from the fastest iteration, which contention on a shared machine disturbs least)");
        Console.WriteLine();
        Console.WriteLine($"| {"benchmark",-32} | {"params",-27} | {"input",6} | {"mean",10} | {"StdDev",9} | {"min",10} | {"MB/s",6} | {"best MB/s",9} | {"alloc/op",9} |");
        Console.WriteLine($"|{new string('-', 34)}|{new string('-', 29)}|{new string('-', 7)}:|{new string('-', 11)}:|{new string('-', 10)}:|{new string('-', 11)}:|{new string('-', 7)}:|{new string('-', 10)}:|{new string('-', 10)}:|");
        foreach (var summary in summaries)
        {
            foreach (var report in summary.Reports)
            {
                var bc = report.BenchmarkCase;
                string name = $"{bc.Descriptor.Type.Name}.{bc.Descriptor.WorkloadMethod.Name}";
                string parameters = bc.Parameters.DisplayInfo;
                long bytes = ThroughputColumn.BytesPerOperation(bc);
                string input = bytes % TestData.MiB == 0 ? $"{bytes / TestData.MiB} MiB" : $"{bytes} B";
                var stats = report.ResultStatistics;
                string mean = stats is null ? "NA" : FormatTime(stats.Mean);
                string stdDev = stats is null ? "NA" : FormatTime(stats.StandardDeviation);
                string min = stats is null ? "NA" : FormatTime(stats.Min);
                string mbps = stats is null ? "NA" : ThroughputColumn.MegabytesPerSecond(bc, stats.Mean).ToString("F0", CultureInfo.InvariantCulture);
                string best = stats is null ? "NA" : ThroughputColumn.MegabytesPerSecond(bc, stats.Min).ToString("F0", CultureInfo.InvariantCulture);
                long? allocated = report.GcStats.GetBytesAllocatedPerOperation(bc);
                string alloc = allocated is { } a ? FormatBytes(a) : "?";
                Console.WriteLine($"| {name,-32} | {parameters,-27} | {input,6} | {mean,10} | {stdDev,9} | {min,10} | {mbps,6} | {best,9} | {alloc,9} |");
            }
        }
    }

    /// <summary>What the codecs make of the same 1 MiB inputs (computed here, once; cheap).</summary>
    private static void PrintSizes()
    {
        Console.WriteLine();
        Console.WriteLine("## Encoded size of the 1 MiB inputs (% of input)");
        Console.WriteLine();
        Console.WriteLine($"| {"data",-12} | {"zstd-1",7} | {"zstd-3",7} | {"native-1",8} | {"native-3",8} | {"planes4+zstd-1",14} | {"BlobEncoder",-18} |");
        Console.WriteLine($"|{new string('-', 14)}|{new string('-', 8)}:|{new string('-', 8)}:|{new string('-', 9)}:|{new string('-', 9)}:|{new string('-', 15)}:|{new string('-', 20)}|");
        foreach (var kind in Enum.GetValues<DataKind>())
        {
            var data = TestData.Create(kind, TestData.MiB);
            var destination = new byte[ZstdSharp.Compressor.GetCompressBound(data.Length) + 1];
            string Managed(int level)
            {
                using var c = new ZstdSharp.Compressor(level);
                return Percent(c.Wrap(data, destination), data.Length);
            }
            string Native(int level)
            {
                if (!NativeZstd.Available)
                {
                    return "n/a";
                }
                using var c = new ZstdNet.Compressor(new ZstdNet.CompressionOptions(level));
                return Percent(c.Wrap(data, destination), data.Length);
            }
            var planes = new byte[data.Length];
            BytePlanes.Split(data, planes, 4);
            using var planesCompressor = new ZstdSharp.Compressor(1);
            string planesSize = Percent(planesCompressor.Wrap(planes, destination), data.Length);
            var (codec, length) = BlobEncoder.Encode(data, destination);
            Console.WriteLine($"| {kind,-12} | {Managed(1),7} | {Managed(3),7} | {Native(1),8} | {Native(3),8} | {planesSize,14} | {$"{codec} {Percent(length, data.Length)}",-18} |");
        }
        var plain = TestData.Create(DataKind.Fp32Weights, TestData.MiB);
        var moved = TestData.MovedCopy(plain, 0.02, 0.01);
        var alone = PieceEncoder.Encode(plain, 4, default);
        var delta = PieceEncoder.Encode(plain, 4, moved);
        Console.WriteLine();
        Console.WriteLine($"PieceEncoder fp32 no base:   {alone.Kind}/{alone.Codec} {Percent(alone.Length, plain.Length)}");
        Console.WriteLine($"PieceEncoder fp32 with base: {delta.Kind}/{delta.Codec} {Percent(delta.Length, plain.Length)}");
        ArrayPool<byte>.Shared.Return(alone.Bytes);
        ArrayPool<byte>.Shared.Return(delta.Bytes);
    }

    private static string Percent(int length, int of) => (100.0 * length / of).ToString("F1", CultureInfo.InvariantCulture) + "%";

    private static string FormatTime(double nanoseconds) => nanoseconds switch
    {
        >= 1e6 => (nanoseconds / 1e6).ToString("F3", CultureInfo.InvariantCulture) + " ms",
        >= 1e3 => (nanoseconds / 1e3).ToString("F1", CultureInfo.InvariantCulture) + " us",
        _ => nanoseconds.ToString("F0", CultureInfo.InvariantCulture) + " ns",
    };

    private static string FormatBytes(long bytes) => bytes switch
    {
        >= 1 << 20 => (bytes / (double)(1 << 20)).ToString("F2", CultureInfo.InvariantCulture) + " MiB",
        >= 1 << 10 => (bytes / 1024.0).ToString("F1", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };
}
