using Kintsugi.Backup.Format;

namespace Kintsugi.Backup.Engine;

/// <summary>A node with its path inside the snapshot ("/" separated, starting with "/").</summary>
public readonly record struct WalkedNode(string Path, Node Node, int Depth);

/// <summary>
/// Walks a snapshot's trees depth first, in name order. Refuses what a hostile repository could
/// use to escape a restore target or loop forever: names that are empty, ".", "..", or contain "/"
/// or NUL; the same name twice in one folder; a tree that contains itself.
/// </summary>
public static class TreeWalker
{
    public const int MaxDepth = 1024;

    public static async IAsyncEnumerable<WalkedNode> WalkAsync(Repository repo, MasterIndex index, BlobId root, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(repo);
        var stack = new Stack<(string Path, BlobId Tree, int Depth, HashSet<BlobId> Ancestors)>();
        stack.Push(("", root, 0, [root]));
        while (stack.Count > 0)
        {
            var (path, treeId, depth, ancestors) = stack.Pop();
            if (depth > MaxDepth)
            {
                throw KintsugiException.Corrupt($"tree {treeId.Short}", $"folders nested deeper than {MaxDepth}");
            }
            var tree = await repo.LoadTreeAsync(index, treeId, ct).ConfigureAwait(false);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var subdirs = new List<(string, BlobId, int, HashSet<BlobId>)>();
            foreach (var node in tree.Nodes)
            {
                ValidateName(node.Name, treeId);
                if (!Enum.IsDefined(node.Type))
                {
                    throw KintsugiException.Corrupt($"tree {treeId.Short}", $"'{node.Name}' has an unknown type {(int)node.Type}");
                }
                if (!seen.Add(node.Name))
                {
                    throw KintsugiException.Corrupt($"tree {treeId.Short}", $"the name '{node.Name}' appears twice");
                }
                string childPath = path + "/" + node.Name;
                yield return new WalkedNode(childPath, node, depth + 1);
                if (node.Type == NodeType.Directory && node.Subtree is not null)
                {
                    var sub = BlobId.Parse(node.Subtree);
                    if (ancestors.Contains(sub))
                    {
                        throw KintsugiException.Corrupt($"tree {treeId.Short}", $"'{node.Name}' contains itself (a cycle)");
                    }
                    subdirs.Add((childPath, sub, depth + 1, new HashSet<BlobId>(ancestors) { sub }));
                }
            }
            for (int i = subdirs.Count - 1; i >= 0; i--)
            {
                stack.Push(subdirs[i]);
            }
        }
    }

    public static void ValidateName(string name, BlobId tree)
    {
        if (name.Length == 0 || name == "." || name == ".." || name.Contains('/', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
        {
            throw KintsugiException.Corrupt($"tree {tree.Short}", $"invalid name '{name}'; a restore would write outside its target");
        }
    }
}
