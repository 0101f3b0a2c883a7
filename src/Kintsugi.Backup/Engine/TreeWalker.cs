using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>A node with its path inside the snapshot ("/" separated, starting with "/").</summary>
public readonly record struct WalkedNode(string Path, Node Node, int Depth);

/// <summary>
/// Walks a snapshot's trees depth first, in name order: each folder's entries, then its subfolders.
/// Refuses what a hostile repository could use to escape a restore target or loop forever: names
/// that are empty, ".", "..", or contain "/" or NUL; the same name twice in one folder; a tree that
/// contains itself or an ancestor; folders nested deeper than <see cref="MaxDepth"/>. (What no valid
/// tree holds at all — null names, unknown types, subtrees that are no ids — is refused as the tree
/// is read, by <see cref="Tree"/>.)
/// </summary>
public static class TreeWalker
{
    public const int MaxDepth = 1024;

    /// <summary>
    /// Folders may share subfolders (identical folders are stored once), so a walk can visit a tree
    /// many times. A hostile snapshot uses that to make 2⁴⁰ paths out of 41 trees. A walk that has
    /// visited more than <see cref="AmplifiedNodesAllowed"/> entries, and more than
    /// <see cref="AmplificationAllowed"/> times the distinct entries it has read, is refused.
    /// </summary>
    public const long AmplifiedNodesAllowed = 100_000;
    public const long AmplificationAllowed = 1_000;

    /// <summary>A folder on the current path, with the subfolders of it still to walk.</summary>
    private sealed class Frame(string path, BlobId tree, int depth, List<(string Name, BlobId Tree)> subfolders)
    {
        public string Path { get; } = path;
        public BlobId Tree { get; } = tree;
        public int Depth { get; } = depth;
        public List<(string Name, BlobId Tree)> Subfolders { get; } = subfolders;
        public int Next { get; set; }
    }

    public static IAsyncEnumerable<WalkedNode> WalkAsync(Repository repo, MasterIndex index, BlobId root, CancellationToken ct = default) =>
        WalkAsync(repo, index, root, null, ct);

    /// <summary>
    /// Walks as above; a folder whose tree cannot be read (damaged, or its pack missing) is reported
    /// to <paramref name="onUnreadable"/> with its path and skipped, and the walk goes on with the
    /// rest (without it, the walk stops with the error). Trees that are hostile rather than damaged
    /// (cycles, repeated or unsafe names, too deep) always stop it.
    /// </summary>
    public static async IAsyncEnumerable<WalkedNode> WalkAsync(Repository repo, MasterIndex index, BlobId root, Action<string, KintsugiException>? onUnreadable, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(repo);
        // Only the folders on the current path are held, each with its pending subfolders as (name,
        // id): memory follows the trees read, not depth × width, and a subfolder's path is built
        // when it is entered.
        var path = new Stack<Frame>();
        var onPath = new HashSet<BlobId>();
        var distinct = new HashSet<BlobId>();
        long distinctNodes = 0, walkedNodes = 0;
        (string Path, BlobId Tree, int Depth)? next = ("", root, 0);
        while (next is var (folder, treeId, depth))
        {
            if (depth > MaxDepth)
            {
                throw KintsugiException.Corrupt($"tree {treeId.Short}", $"folders nested deeper than {MaxDepth}");
            }
            Tree? tree = null;
            try
            {
                tree = await repo.LoadTreeAsync(index, treeId, ct).ConfigureAwait(false);
            }
            catch (KintsugiException e) when (onUnreadable is not null && e.Kind == ErrorKind.Corrupt)
            {
                onUnreadable(folder.Length == 0 ? "/" : folder, e);
            }
            int count = tree?.Nodes.Count ?? 0;
            walkedNodes += count;
            if (distinct.Add(treeId))
            {
                distinctNodes += count;
            }
            if (walkedNodes > AmplifiedNodesAllowed && walkedNodes > AmplificationAllowed * distinctNodes)
            {
                throw KintsugiException.Corrupt($"tree {treeId.Short}",
                    $"its folders share subfolders so often that the walk has visited {walkedNodes} entries out of {distinctNodes} distinct ones (a hostile snapshot?)");
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var subfolders = new List<(string, BlobId)>();
            foreach (var node in tree?.Nodes ?? [])
            {
                ValidateName(node.Name, treeId);
                if (!seen.Add(node.Name))
                {
                    throw KintsugiException.Corrupt($"tree {treeId.Short}", $"the name '{node.Name}' appears twice");
                }
                if (node.Type == NodeType.Directory && node.Subtree is not null)
                {
                    var sub = BlobId.Parse(node.Subtree);
                    if (sub == treeId || onPath.Contains(sub))
                    {
                        throw KintsugiException.Corrupt($"tree {treeId.Short}", $"'{node.Name}' contains itself (a cycle)");
                    }
                    subfolders.Add((node.Name, sub));
                }
            }
            foreach (var node in tree?.Nodes ?? [])
            {
                yield return new WalkedNode(folder + "/" + node.Name, node, depth + 1);
            }
            path.Push(new Frame(folder, treeId, depth, subfolders));
            onPath.Add(treeId);
            next = null;
            while (next is null && path.TryPeek(out var top))
            {
                if (top.Next < top.Subfolders.Count)
                {
                    var (name, sub) = top.Subfolders[top.Next++];
                    next = (top.Path + "/" + name, sub, top.Depth + 1);
                }
                else
                {
                    onPath.Remove(path.Pop().Tree);
                }
            }
        }
    }

    /// <summary>The root tree of a snapshot; a snapshot whose tree is not an id is damaged.</summary>
    public static BlobId RootOf(SnapshotRef snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        return BlobId.TryParse(snapshot.Snapshot.Tree, out var root) ? root
            : throw KintsugiException.Corrupt($"snapshot {snapshot.ShortId}", $"its tree '{snapshot.Snapshot.Tree}' is not a 64-digit id");
    }

    public static void ValidateName(string name, BlobId tree)
    {
        if (name.Length == 0 || name == "." || name == ".." || name.Contains('/', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
        {
            throw KintsugiException.Corrupt($"tree {tree.Short}", $"invalid name '{name}'; a restore would write outside its target");
        }
    }
}
