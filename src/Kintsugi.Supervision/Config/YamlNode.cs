using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Kintsugi.Supervision.Config;

/// <summary>A YAML node with the dotted path that led to it, so every error can name file, line and field.</summary>
internal readonly struct YamlNode(string file, string path, YamlDotNet.RepresentationModel.YamlNode node)
{
    public string Path { get; } = path;

    public YamlDotNet.RepresentationModel.YamlNode Node { get; } = node;

    public ConfigException Error(string message) =>
        new($"{file}:{Node.Start.Line}:{Node.Start.Column}: {(Path.Length == 0 ? "" : Path + ": ")}{message}");

    public bool IsScalar => Node is YamlScalarNode;

    public bool IsMapping => Node is YamlMappingNode;

    public bool IsSequence => Node is YamlSequenceNode;

    public string Scalar => Node is YamlScalarNode s ? s.Value ?? "" : throw Error("expected a single value, not a list or a mapping");

    /// <summary>The entries of a mapping, checked against the allowed keys.</summary>
    public IReadOnlyList<(string Key, YamlNode Value)> Mapping(params string[] allowed)
    {
        if (Node is not YamlMappingNode map)
        {
            throw Error("expected a mapping (key: value)");
        }
        var result = new List<(string, YamlNode)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (k, v) in map.Children)
        {
            string key = k is YamlScalarNode s ? s.Value ?? "" : throw new YamlNode(file, Path, k).Error("keys must be plain names");
            var child = new YamlNode(file, Path.Length == 0 ? key : $"{Path}.{key}", v);
            if (allowed.Length > 0 && !allowed.Contains(key, StringComparer.Ordinal))
            {
                throw new YamlNode(file, Path, k).Error($"unknown field '{key}' (expected one of: {string.Join(", ", allowed)})");
            }
            if (!seen.Add(key))
            {
                throw new YamlNode(file, Path, k).Error($"field '{key}' appears twice");
            }
            result.Add((key, child));
        }
        return result;
    }

    public IReadOnlyList<YamlNode> Sequence()
    {
        if (Node is not YamlSequenceNode seq)
        {
            throw Error("expected a list");
        }
        var p = Path;
        var f = file;
        return seq.Children.Select((n, i) => new YamlNode(f, $"{p}[{i}]", n)).ToList();
    }

    /// <summary>A list of strings; a single scalar is accepted as a one-item list.</summary>
    public IReadOnlyList<string> Strings() =>
        IsScalar ? [Scalar] : Sequence().Select(n => n.Scalar).ToList();

    public string NonEmpty()
    {
        string s = Scalar;
        return s.Length > 0 ? s : throw Error("must not be empty");
    }

    public int Int(int min, int max)
    {
        if (!int.TryParse(Scalar, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
        {
            throw Error($"expected a whole number from {min} to {max}, got '{Scalar}'");
        }
        return v;
    }

    public double Double(double min, double max)
    {
        if (!double.TryParse(Scalar, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || double.IsNaN(v) || v < min || v > max)
        {
            throw Error($"expected a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}, got '{Scalar}'");
        }
        return v;
    }

    public bool Bool()
    {
        return Scalar switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            var s => throw Error($"expected true or false, got '{s}'"),
        };
    }

    /// <summary>A duration in <see cref="DurationSyntax"/>.</summary>
    public TimeSpan Duration() =>
        DurationSyntax.TryParse(Scalar, out var d) ? d : throw Error($"expected a duration like {DurationSyntax.Example}, got '{Scalar.Trim()}'");
}
