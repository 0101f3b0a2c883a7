using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Kintsugi.Supervision.Config;

/// <summary>
/// A YAML parser that remembers where it is: the last event read, the flow collections ('[' or '{')
/// still open, and where each document starts. YamlDotNet throws some of its syntax errors without a
/// position (an InvalidOperationException for an unclosed '[' followed by more lines), so these are
/// what an error message can point at instead.
/// </summary>
internal sealed class TrackingParser(IParser inner) : IParser
{
    // Every collection open now: '[' or '{' for flow ones, ' ' for block ones.
    private readonly Stack<(char Bracket, Mark Start)> _open = new();
    private readonly List<Mark> _documents = [];
    private readonly HashSet<string> _anchors = new(StringComparer.Ordinal);

    public ParsingEvent? Current => inner.Current;

    /// <summary>Where the last event read starts (the start of the file before any).</summary>
    public Mark Last { get; private set; } = Mark.Empty;

    /// <summary>The innermost '[' or '{' not yet closed, if any.</summary>
    public (char Bracket, Mark Start)? Open => _open.Where(c => c.Bracket != ' ').Select(c => ((char, Mark)?)c).FirstOrDefault();

    /// <summary>Where each document read so far starts (its '---', or its first node).</summary>
    public IReadOnlyList<Mark> Documents => _documents;

    private readonly List<(string Name, Mark Start)> _aliases = [];

    /// <summary>The first alias (<c>*name</c>) read so far with no anchor of its name (<c>&amp;name</c>) anywhere read.</summary>
    public (string Name, Mark Start)? UnknownAlias =>
        _aliases.Where(a => !_anchors.Contains(a.Name)).Select(a => ((string, Mark)?)a).FirstOrDefault();

    public bool MoveNext()
    {
        if (!inner.MoveNext())
        {
            return false;
        }
        var e = inner.Current!;
        Last = e.Start;
        if (e is NodeEvent { Anchor: { IsEmpty: false } anchor })
        {
            _anchors.Add(anchor.Value);
        }
        switch (e)
        {
            case AnchorAlias alias:
                _aliases.Add((alias.Value.Value, e.Start));
                break;
            case SequenceStart s:
                _open.Push((s.Style == SequenceStyle.Flow ? '[' : ' ', e.Start));
                break;
            case MappingStart m:
                _open.Push((m.Style == MappingStyle.Flow ? '{' : ' ', e.Start));
                break;
            case SequenceEnd or MappingEnd when _open.Count > 0:
                _open.Pop();
                break;
            case DocumentStart:
                _documents.Add(e.Start);
                break;
        }
        return true;
    }
}
