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
    /// <summary>Parity groups (erasure-coded redundancy over the other files), in <c>parity/</c>.</summary>
    Parity,
    /// <summary>The parity settings, the fixed name <c>parity/settings</c> (plain JSON).</summary>
    ParitySettings,
}
