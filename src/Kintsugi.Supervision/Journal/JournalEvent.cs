using System.Globalization;
using System.Text.Json;

namespace Kintsugi.Supervision.Journal;

/// <summary>One event of the journal.</summary>
public sealed record JournalEvent(long Id, DateTimeOffset Time, string Type, string? Workload, int? Replica, JsonElement Data)
{
    /// <summary>Whether the data has the field at all (a field written as null has it).</summary>
    public bool Has(string name) => Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out _);

    public string? GetString(string name) => Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public double? GetDouble(string name) => Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    public long? GetInt64(string name) => Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : null;

    public bool? GetBool(string name) => Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    /// <summary>A field holding an ISO 8601 time (such as checkpoint_time); null when absent or not a time.</summary>
    public DateTimeOffset? GetTime(string name) =>
        GetString(name) is { } text && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) ? time : null;
}
