using Kintsugi.Backup.Format;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Engine;

/// <summary>
/// A change to snapshots' tags, as restic's <c>tag</c>: <see cref="Set"/> replaces them all (an empty
/// list removes every tag); otherwise <see cref="Add"/> appends those missing and <see cref="Remove"/>
/// takes those given away.
/// </summary>
public sealed record TagChange
{
    public IReadOnlyList<string> Add { get; init; } = [];
    public IReadOnlyList<string> Remove { get; init; } = [];
    public IReadOnlyList<string>? Set { get; init; }

    /// <summary>The tags after the change, in their old order with the added ones after; none is an empty list.</summary>
    public IReadOnlyList<string> Apply(IReadOnlyList<string>? tags)
    {
        var result = new List<string>();
        foreach (string t in Set ?? [.. tags ?? [], .. Add])
        {
            if (!result.Contains(t, StringComparer.Ordinal) && (Set is not null || !Remove.Contains(t, StringComparer.Ordinal)))
            {
                result.Add(t);
            }
        }
        return result;
    }
}

/// <summary>One snapshot whose tags changed: the file it was, the file it is now.</summary>
public sealed record TagRewrite(SnapshotRef Before, SnapshotRef After);

/// <summary>
/// Changes snapshots' tags. A snapshot is named by the hash of its file, so a change is a new file:
/// the new snapshot is written (and protected by parity where the repository keeps it) before the
/// old one is deleted, so a crash in between leaves both, never neither. The new snapshot records in
/// <c>original</c> the id the backup gave it, which every later rewrite keeps.
/// The caller holds the repository lock, as for forget.
/// </summary>
public sealed class TagEngine(Repository repo)
{
    private readonly Repository _repo = repo ?? throw new ArgumentNullException(nameof(repo));

    /// <summary>Rewrites each snapshot whose tags the change alters; returns those rewritten, and warnings (parity left behind).</summary>
    public async Task<(IReadOnlyList<TagRewrite> Rewritten, IReadOnlyList<string> Warnings)> RunAsync(IReadOnlyList<SnapshotRef> snapshots, TagChange change, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(snapshots);
        ArgumentNullException.ThrowIfNull(change);
        var rewritten = new List<TagRewrite>();
        foreach (var before in snapshots)
        {
            var old = before.Snapshot.Tags ?? [];
            var tags = change.Apply(old);
            if (tags.SequenceEqual(old, StringComparer.Ordinal))
            {
                continue;
            }
            var snapshot = before.Snapshot with { Tags = tags.Count == 0 ? null : tags, Original = before.Snapshot.Original ?? before.Id.ToString() };
            var id = await _repo.SaveSnapshotAsync(snapshot, ct).ConfigureAwait(false);
            rewritten.Add(new TagRewrite(before, new SnapshotRef(id, snapshot)));
        }
        var warnings = new List<string>();
        if (rewritten.Count == 0)
        {
            return (rewritten, warnings);
        }
        var parity = new Parity.ParityEngine(_repo.Store);
        try
        {
            var cover = await parity.CoverAsync(ct: ct).ConfigureAwait(false);
            warnings.AddRange(cover.Skipped.Select(s => $"not protected by parity: {s}"));
        }
        catch (Exception e) when (e is KintsugiException or IOException)
        {
            warnings.Add($"the new snapshot files are not yet protected by parity ({e.Message}); run `kintsugi parity update`");
        }
        await parity.DeleteAsync([.. rewritten.Select(r => (FileKind.Snapshot, r.Before.Id.ToString()))], ct).ConfigureAwait(false);
        return (rewritten, warnings);
    }
}
