using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Kintsugi.Supervision.Config;

/// <summary>A YAML node with the dotted path that led to it, so every error can name file, line and field.</summary>
internal readonly struct YamlNode(string file, string path, YamlDotNet.RepresentationModel.YamlNode node)
{
    private const string NullTag = "tag:yaml.org,2002:null";

    public string Path { get; } = path;

    public YamlDotNet.RepresentationModel.YamlNode Node { get; } = node;

    /// <summary>"file:line:column" of the node.</summary>
    public string Position => $"{file}:{Node.Start.Line}:{Node.Start.Column}";

    public ConfigException Error(string message) =>
        new($"{Position}: {(Path.Length == 0 ? "" : Path + ": ")}{message}");

    public bool IsScalar => Node is YamlScalarNode;

    public bool IsMapping => Node is YamlMappingNode;

    public bool IsSequence => Node is YamlSequenceNode;

    /// <summary>
    /// A YAML null: nothing after the colon, <c>~</c> or <c>null</c> written plain (untagged), or tagged
    /// <c>!!null</c>. A quoted "null" or '' is a string.
    /// </summary>
    public bool IsNull => Node is YamlScalarNode s && IsNullScalar(s);

    /// <summary>No value at all, or an empty string: where a field may be left empty (<c>restart:</c>).</summary>
    public bool IsEmpty => Node is YamlScalarNode s && (IsNullScalar(s) || string.IsNullOrEmpty(s.Value));

    private static bool IsNullScalar(YamlScalarNode s) =>
        (!s.Tag.IsEmpty && s.Tag.Value == NullTag)
        || ((s.Tag.IsEmpty || s.Tag.Value == "?") && s.Style is ScalarStyle.Plain or ScalarStyle.Any && s.Value is null or "" or "~" or "null" or "Null" or "NULL");

    /// <summary>The text of a scalar. A null is refused: it would otherwise become the word "null" or nothing, unasked.</summary>
    public string Scalar => Node switch
    {
        YamlScalarNode s when IsNullScalar(s) => throw Error("no value; give one, or write '' for an empty string"),
        YamlScalarNode s => s.Value ?? "",
        _ => throw Error("expected a single value, not a list or a mapping"),
    };

    /// <summary>The entries of a mapping, checked against the allowed keys; merge keys (<c>&lt;&lt;: *base</c>) are expanded.</summary>
    public IReadOnlyList<(string Key, YamlNode Value)> Mapping(params string[] allowed) => Entries(false, allowed);

    /// <summary>
    /// As <see cref="Mapping"/>, leaving out extension fields (keys starting with <c>x-</c>, as in
    /// docker-compose files), which hold anchors for merge keys and are otherwise ignored.
    /// </summary>
    public IReadOnlyList<(string Key, YamlNode Value)> MappingWithExtensions(params string[] allowed) => Entries(true, allowed);

    private List<(string Key, YamlNode Value)> Entries(bool extensions, string[] allowed)
    {
        if (Node is not YamlMappingNode map)
        {
            throw Error(IsNull ? "no value; give a mapping (key: value), or {} for none" : "expected a mapping (key: value)");
        }
        var result = new List<(string, YamlNode)>();
        foreach (var (key, keyNode, value) in Effective(map, new HashSet<YamlMappingNode>(ReferenceEqualityComparer.Instance) { map }))
        {
            if (extensions && key.StartsWith("x-", StringComparison.Ordinal))
            {
                continue;
            }
            if (allowed.Length > 0 && !allowed.Contains(key, StringComparer.Ordinal))
            {
                string others = extensions ? "; or x-NAME for an extension field, which is ignored" : "";
                throw new YamlNode(file, Path, keyNode).Error($"unknown field '{key}' (expected one of: {string.Join(", ", allowed)}{others})");
            }
            result.Add((key, new YamlNode(file, Path.Length == 0 ? key : $"{Path}.{key}", value)));
        }
        return result;
    }

    /// <summary>
    /// The entries of <paramref name="map"/> in order, each merge key (YAML 1.1, as docker-compose reads
    /// it) replaced by the entries of the mappings it merges: keys written in the mapping itself override
    /// merged ones, and of merged ones the first merged wins.
    /// </summary>
    private List<(string Key, YamlDotNet.RepresentationModel.YamlNode KeyNode, YamlDotNet.RepresentationModel.YamlNode Value)> Effective(YamlMappingNode map, HashSet<YamlMappingNode> merging)
    {
        var entries = new List<(string Key, YamlDotNet.RepresentationModel.YamlNode KeyNode, YamlDotNet.RepresentationModel.YamlNode Value, bool Own)>();
        var ownKeys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (k, v) in map.Children)
        {
            if (k is not YamlScalarNode { Value: { } key } s)
            {
                throw new YamlNode(file, Path, k).Error("keys must be plain names");
            }
            if (key != "<<" || s.Style is not (ScalarStyle.Plain or ScalarStyle.Any))
            {
                if (!ownKeys.Add(key))
                {
                    throw new YamlNode(file, Path, k).Error($"field '{key}' appears twice");
                }
                entries.Add((key, k, v, true));
                continue;
            }
            var at = new YamlNode(file, Path.Length == 0 ? "<<" : $"{Path}.<<", v);
            List<YamlMappingNode> sources = v switch
            {
                YamlMappingNode m => [m],
                YamlSequenceNode seq when seq.Children.All(c => c is YamlMappingNode) => seq.Children.Cast<YamlMappingNode>().ToList(),
                _ => throw at.Error("a merge key takes a mapping (<<: *base) or a list of them (<<: [*a, *b])"),
            };
            foreach (var source in sources)
            {
                if (!merging.Add(source))
                {
                    throw at.Error("merges a mapping into itself");
                }
                entries.AddRange(Effective(source, merging).Select(e => (e.Key, e.KeyNode, e.Value, false)));
                merging.Remove(source);
            }
        }
        var merged = new HashSet<string>(StringComparer.Ordinal);
        return entries.Where(e => e.Own || (!ownKeys.Contains(e.Key) && merged.Add(e.Key))).Select(e => (e.Key, e.KeyNode, e.Value)).ToList();
    }

    public IReadOnlyList<YamlNode> Sequence()
    {
        if (Node is not YamlSequenceNode seq)
        {
            throw Error(IsNull ? "no value; give a list, or [] for none" : "expected a list");
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
