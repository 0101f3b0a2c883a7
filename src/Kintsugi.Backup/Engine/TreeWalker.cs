using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>A node with its path inside the snapshot ("/" separated, starting with "/").</summary>
public readonly record struct WalkedNode(string Path, Node Node, int Depth);

/// <summary>
/// Walks a snapshot's trees depth first, in name order: each folder's entries, then its subfolders
/// (<see cref="WalkPreOrderAsync"/>: each entry, then what is under it).
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
    public static IAsyncEnumerable<WalkedNode> WalkAsync(Repository repo, MasterIndex index, BlobId root, Action<string, KintsugiException>? onUnreadable, CancellationToken ct = default) =>
        WalkAsync(repo, index, root, onUnreadable, null, ct);

    /// <summary>
    /// Walks as above, entering a subfolder only where <paramref name="descend"/> (given its path)
    /// says so: a restore of one file reads the trees on the way to it, not every tree of the
    /// snapshot. The subfolder's own node is still yielded.
    /// </summary>
    public static async IAsyncEnumerable<WalkedNode> WalkAsync(Repository repo, MasterIndex index, BlobId root, Action<string, KintsugiException>? onUnreadable, Func<string, bool>? descend, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(repo);
        // Only the folders on the current path are held, each with its pending subfolders as (name,
        // id): memory follows the trees read, not depth × width, and a subfolder's path is built
        // when it is entered.
        var path = new Stack<Frame>();
        var guard = new Guard(repo, index, null);
        (string Path, BlobId Tree, int Depth)? next = ("", root, 0);
        while (next is var (folder, treeId, depth))
        {
            var (nodes, subfolders) = await guard.EnterAsync(folder, treeId, depth, onUnreadable, ct).ConfigureAwait(false);
            foreach (var node in nodes)
            {
                yield return new WalkedNode(folder + "/" + node.Name, node, depth + 1);
            }
            path.Push(new Frame(folder, treeId, depth, subfolders));
            next = null;
            while (next is null && path.TryPeek(out var top))
            {
                if (top.Next < top.Subfolders.Count)
                {
                    var (name, sub) = top.Subfolders[top.Next++];
                    string subPath = top.Path + "/" + name;
                    if (descend is null || descend(subPath))
                    {
                        next = (subPath, sub, top.Depth + 1);
                    }
                }
                else
                {
                    guard.Leave(path.Pop().Tree);
                }
            }
        }
    }

    /// <summary>
    /// Walks depth first in pre-order, as <c>ls</c> and <c>find</c> print: each entry, then (for a
    /// folder) everything under it, then the next entry, in name order. The same refusals as
    /// <see cref="WalkAsync(Repository, MasterIndex, BlobId, CancellationToken)"/>; a damaged tree
    /// stops the walk. Paths start with <paramref name="prefix"/> ("" for a snapshot's root, "/a/b"
    /// for a walk of the folder at /a/b). Trees come from <paramref name="trees"/> when given, so
    /// walks of many snapshots read each distinct tree once.
    /// </summary>
    public static async IAsyncEnumerable<WalkedNode> WalkPreOrderAsync(Repository repo, MasterIndex index, BlobId root, string prefix = "", TreeCache? trees = null, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(repo);
        ArgumentNullException.ThrowIfNull(prefix);
        var guard = new Guard(repo, index, trees);
        int baseDepth = prefix.Count(c => c == '/');
        var open = new Stack<(string Path, BlobId Tree, int Depth, IReadOnlyList<Node> Nodes, int Next)>();
        var (rootNodes, _) = await guard.EnterAsync(prefix, root, baseDepth, null, ct).ConfigureAwait(false);
        open.Push((prefix, root, baseDepth, rootNodes, 0));
        while (open.Count > 0)
        {
            var top = open.Pop();
            if (top.Next >= top.Nodes.Count)
            {
                guard.Leave(top.Tree);
                continue;
            }
            var node = top.Nodes[top.Next];
            open.Push(top with { Next = top.Next + 1 });
            string path = top.Path + "/" + node.Name;
            yield return new WalkedNode(path, node, top.Depth + 1);
            if (node.Type == NodeType.Directory && node.Subtree is not null)
            {
                var sub = BlobId.Parse(node.Subtree);
                var (nodes, _) = await guard.EnterAsync(path, sub, top.Depth + 1, null, ct).ConfigureAwait(false);
                open.Push((path, sub, top.Depth + 1, nodes, 0));
            }
        }
    }

    /// <summary>
    /// What one walk has seen: the trees on the current path (a tree met again below itself is a
    /// cycle) and how many entries it has visited against how many distinct ones it has read.
    /// </summary>
    private sealed class Guard(Repository repo, MasterIndex index, TreeCache? trees)
    {
        private readonly HashSet<BlobId> _onPath = [];
        private readonly HashSet<BlobId> _distinct = [];
        private long _distinctNodes, _walkedNodes;

        /// <summary>Reads and checks the folder <paramref name="treeId"/> at <paramref name="folder"/>, and puts it on the path: its entries and its subfolders.</summary>
        public async Task<(IReadOnlyList<Node> Nodes, List<(string Name, BlobId Tree)> Subfolders)> EnterAsync(string folder, BlobId treeId, int depth, Action<string, KintsugiException>? onUnreadable, CancellationToken ct)
        {
            if (depth > MaxDepth)
            {
                throw KintsugiException.Corrupt($"tree {treeId.Short}", $"folders nested deeper than {MaxDepth}");
            }
            Tree? tree = null;
            try
            {
                tree = trees is not null ? await trees.LoadAsync(repo, index, treeId, ct).ConfigureAwait(false)
                    : await repo.LoadTreeAsync(index, treeId, ct).ConfigureAwait(false);
            }
            catch (KintsugiException e) when (onUnreadable is not null && e.Kind == ErrorKind.Corrupt)
            {
                onUnreadable(folder.Length == 0 ? "/" : folder, e);
            }
            var nodes = tree?.Nodes ?? [];
            _walkedNodes += nodes.Count;
            if (_distinct.Add(treeId))
            {
                _distinctNodes += nodes.Count;
            }
            if (_walkedNodes > AmplifiedNodesAllowed && _walkedNodes > AmplificationAllowed * _distinctNodes)
            {
                throw KintsugiException.Corrupt($"tree {treeId.Short}",
                    $"its folders share subfolders so often that the walk has visited {_walkedNodes} entries out of {_distinctNodes} distinct ones (a hostile snapshot?)");
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var subfolders = new List<(string, BlobId)>();
            foreach (var node in nodes)
            {
                ValidateName(node.Name, treeId);
                if (!seen.Add(node.Name))
                {
                    throw KintsugiException.Corrupt($"tree {treeId.Short}", $"the name '{node.Name}' appears twice");
                }
                if (node.Type == NodeType.Directory && node.Subtree is not null)
                {
                    var sub = BlobId.Parse(node.Subtree);
                    if (sub == treeId || _onPath.Contains(sub))
                    {
                        throw KintsugiException.Corrupt($"tree {treeId.Short}", $"'{node.Name}' contains itself (a cycle)");
                    }
                    subfolders.Add((node.Name, sub));
                }
            }
            _onPath.Add(treeId);
            return (nodes, subfolders);
        }

        /// <summary>The walk is done with everything under <paramref name="treeId"/>.</summary>
        public void Leave(BlobId treeId) => _onPath.Remove(treeId);
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

/// <summary>
/// Trees already read, by id, shared by several walks (find over every snapshot): snapshots share
/// most of their folders, and each distinct tree is read and decrypted once. Holds every tree read.
/// </summary>
public sealed class TreeCache
{
    private readonly Dictionary<BlobId, Tree> _trees = [];

    public int Count => _trees.Count;

    public async Task<Tree> LoadAsync(Repository repo, MasterIndex index, BlobId id, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(repo);
        if (!_trees.TryGetValue(id, out var tree))
        {
            tree = await repo.LoadTreeAsync(index, id, ct).ConfigureAwait(false);
            _trees[id] = tree;
        }
        return tree;
    }
}
