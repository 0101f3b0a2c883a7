using System.Globalization;
using Kintsugi.Backup;
using Kintsugi.Backup.Engine;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Checkpoints;

/// <summary>
/// Copies a checkpoint by backing its folder or file up into the copy repository, tagged like the
/// main repository's snapshot. Correct while the checkpoint is still on disk (the guard only copies
/// checkpoints that are); its deltas are against the previous checkpoint copied there.
/// </summary>
public sealed class BackupCheckpointCopier(Func<CopySpec, CancellationToken, Task<Repository>> openRepository, string host) : ICheckpointCopier
{
    public async Task<CopyOutcome> CopyAsync(CheckpointCopyRequest request, CopySpec target, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var repo = await openRepository(target, ct).ConfigureAwait(false);
        var checkpoint = request.Checkpoint;
        var result = await new BackupEngine(repo).RunAsync(new BackupRequest
        {
            Paths = [checkpoint.Path],
            Parent = request.Parent,
            Host = host,
            Tags = ["kintsugi-run", "workload:" + request.Workload, "step:" + (checkpoint.Step?.ToString(CultureInfo.InvariantCulture) ?? "none")],
            Program = "kintsugi run",
            Exclude = request.Exclude,
        }, null, ct).ConfigureAwait(false);
        return new CopyOutcome(result.Snapshot.Id.ToString(), result.Snapshot.Snapshot.Summary?.BytesAddedStored ?? 0);
    }
}
