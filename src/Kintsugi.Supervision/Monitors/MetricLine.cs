using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Kintsugi.Supervision.Monitors;

/// <summary>
/// The workload protocol for metrics: a line of output "KINTSUGI {json object}" reports metrics,
/// e.g. <c>KINTSUGI {"step": 120, "loss": 0.53}</c>. Values are numbers; the bare literals NaN,
/// Infinity and -Infinity that Python's json.dumps writes parse to <see cref="double.NaN"/> and
/// ±∞, and so do strings like "nan", "inf", "-inf" (and any string that is a number).
/// Fields of other types are ignored.
/// </summary>
public static class MetricLine
{
    public const string Prefix = "KINTSUGI ";

    private static readonly IReadOnlyDictionary<string, double> Empty = new Dictionary<string, double>(StringComparer.Ordinal);

    /// <summary>True for a metric line (its numeric fields in <paramref name="values"/>, possibly none); false for any other line.</summary>
    public static bool TryParse(string line, out IReadOnlyDictionary<string, double> values)
    {
        values = Empty;
        if (line is null || !line.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }
        string json = QuoteNonFiniteLiterals(line.AsSpan(Prefix.Length).Trim());
        if (json.Length == 0 || json[0] != '{')
        {
            return false;
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException)
        {
            return false;
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return false;
            }
            var parsed = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var field in document.RootElement.EnumerateObject())
            {
                if (ToDouble(field.Value) is double v)
                {
                    parsed[field.Name] = v;
                }
            }
            values = parsed;
            return true;
        }
    }

    private static double? ToDouble(JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Number:
                // TryGetDouble refuses numbers beyond double's range; they are ±∞.
                return value.TryGetDouble(out double d) ? d : double.Parse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture);
            case JsonValueKind.String:
                string s = value.GetString()!.Trim();
                return s.ToUpperInvariant() switch
                {
                    "NAN" or "+NAN" or "-NAN" => double.NaN,
                    "INF" or "+INF" or "INFINITY" or "+INFINITY" => double.PositiveInfinity,
                    "-INF" or "-INFINITY" => double.NegativeInfinity,
                    _ => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double n) ? n : null,
                };
            default:
                return null;
        }
    }

    /// <summary>Turns the bare NaN, Infinity and -Infinity outside strings into strings, which JSON allows.</summary>
    private static string QuoteNonFiniteLiterals(ReadOnlySpan<char> json)
    {
        if (json.IndexOfAny('N', 'I') < 0)
        {
            return json.ToString();
        }
        var result = new StringBuilder(json.Length + 8);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                result.Append(c);
                if (c == '\\' && i + 1 < json.Length)
                {
                    result.Append(json[++i]);
                }
                else if (c == '"')
                {
                    inString = false;
                }
                continue;
            }
            if (c == '"')
            {
                inString = true;
                result.Append(c);
                continue;
            }
            string? literal = c switch
            {
                'N' when json[i..].StartsWith("NaN", StringComparison.Ordinal) => "NaN",
                'I' when json[i..].StartsWith("Infinity", StringComparison.Ordinal) => "Infinity",
                '-' when json[i..].StartsWith("-Infinity", StringComparison.Ordinal) => "-Infinity",
                _ => null,
            };
            if (literal is null)
            {
                result.Append(c);
                continue;
            }
            result.Append('"').Append(literal).Append('"');
            i += literal.Length - 1;
        }
        return result.ToString();
    }
}
