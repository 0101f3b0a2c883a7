namespace Kintsugi.Backup.Storage;

/// <summary>The kinds of file a repository holds; each lives in its own folder.</summary>
public enum FileKind
{
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
}
