using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kintsugi.Backup.Parity;

/// <summary>
/// How a repository protects itself with parity: every group has <see cref="DataColumns"/> data
/// columns and <see cref="ParityColumns"/> parity columns, so it survives the loss of any
/// <see cref="ParityColumns"/> columns in every stripe row — a whole lost file counts once, bit rot
/// counts per stripe. Kept in <c>parity/settings</c> as plain JSON (docs/FORMAT.md §15).
/// </summary>
public sealed record ParitySettings
{
    public const int DefaultStripe = 64 * 1024;
    public const long DefaultColumnCapacity = 16L * 1024 * 1024;

    [JsonPropertyName("version")] public int Version { get; init; } = 1;
    [JsonPropertyName("data")] public required int DataColumns { get; init; }
    [JsonPropertyName("parity")] public required int ParityColumns { get; init; }
    [JsonPropertyName("stripe")] public int StripeSize { get; init; } = DefaultStripe;
    [JsonPropertyName("column")] public long ColumnCapacity { get; init; } = DefaultColumnCapacity;

    /// <summary>Parity bytes per data byte once groups are full: m / k.</summary>
    [JsonIgnore] public double Overhead => (double)ParityColumns / DataColumns;

    [JsonIgnore] public string Scheme => $"{DataColumns}+{ParityColumns}";

    /// <summary>Parses "K+M", e.g. "8+2".</summary>
    public static ParitySettings Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var parts = spec.Split('+');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int k)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int m))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"parity scheme '{spec}' is not DATA+PARITY; give e.g. 8+2 (8 data columns, 2 parity columns per group)");
        }
        var settings = new ParitySettings { DataColumns = k, ParityColumns = m };
        settings.Validate();
        return settings;
    }

    public void Validate()
    {
        if (Version != 1)
        {
            throw new KintsugiException(ErrorKind.Failed, $"parity settings have version {Version}; this kintsugi reads version 1; use a matching kintsugi");
        }
        if (DataColumns is < 1 or > ParityGroup.MaxDataColumns || ParityColumns is < 1 or > ParityGroup.MaxParityColumns)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"parity scheme {Scheme} is out of range; give 1 to {ParityGroup.MaxDataColumns} data columns and 1 to {ParityGroup.MaxParityColumns} parity columns, e.g. 8+2");
        }
        if (StripeSize is < ParityGroup.MinStripe or > ParityGroup.MaxStripe || !int.IsPow2(StripeSize))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"parity stripe size {StripeSize} is not a power of two from {ParityGroup.MinStripe} to {ParityGroup.MaxStripe}");
        }
        // A column is held in memory while its group is written: at most 1 GiB.
        if (ColumnCapacity < StripeSize || ColumnCapacity > 1L << 30)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"parity column size {ColumnCapacity} is out of range ({StripeSize} to {1L << 30} bytes)");
        }
    }

    internal byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, ParityJson.Default.ParitySettings);

    internal static ParitySettings FromJson(byte[] json, string what)
    {
        ParitySettings? settings;
        try
        {
            settings = JsonSerializer.Deserialize(json, ParityJson.Default.ParitySettings);
        }
        catch (JsonException e)
        {
            throw new KintsugiException(ErrorKind.Corrupt, $"{what} is damaged ({e.Message}); set them again with `kintsugi parity set K+M`", e);
        }
        if (settings is null)
        {
            throw new KintsugiException(ErrorKind.Corrupt, $"{what} is empty; set them again with `kintsugi parity set K+M`");
        }
        if (settings.Version == 0)
        {
            throw new KintsugiException(ErrorKind.Corrupt, $"{what} is damaged (no version); set them again with `kintsugi parity set K+M`");
        }
        try
        {
            settings.Validate();
        }
        catch (KintsugiException e) when (e.Kind == ErrorKind.InvalidInput)
        {
            throw new KintsugiException(ErrorKind.Corrupt, $"{what} is damaged ({e.Message}); set them again with `kintsugi parity set K+M`", e);
        }
        return settings;
    }
}

[JsonSourceGenerationOptions(WriteIndented = false)]
[JsonSerializable(typeof(ParitySettings))]
internal sealed partial class ParityJson : JsonSerializerContext;
