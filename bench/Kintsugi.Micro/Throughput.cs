using System.Globalization;
using System.Reflection;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Kintsugi.Micro;

/// <summary>How many input bytes one benchmark operation processes (1 MiB when absent).</summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method)]
public sealed class BytesAttribute(long bytes) : Attribute
{
    public long Bytes { get; } = bytes;
}

/// <summary>A "MB/s" column: input bytes per operation divided by the mean time, in 10^6 bytes per second.</summary>
public sealed class ThroughputColumn : IColumn
{
    public string Id => "Throughput";

    public string ColumnName => "MB/s";

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Throughput: input bytes per operation / mean time, in MB/s (1 MB = 10^6 bytes)";

    public static long BytesPerOperation(BenchmarkCase benchmarkCase) =>
        benchmarkCase.Descriptor.WorkloadMethod.GetCustomAttribute<BytesAttribute>()?.Bytes
        ?? benchmarkCase.Descriptor.Type.GetCustomAttribute<BytesAttribute>()?.Bytes
        ?? TestData.MiB;

    /// <summary>MB/s from a mean in nanoseconds.</summary>
    public static double MegabytesPerSecond(BenchmarkCase benchmarkCase, double meanNanoseconds) =>
        BytesPerOperation(benchmarkCase) / meanNanoseconds * 1e9 / 1e6;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        return stats is null ? "NA" : MegabytesPerSecond(benchmarkCase, stats.Mean).ToString("F0", CultureInfo.InvariantCulture);
    }

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;

    public override string ToString() => ColumnName;
}
