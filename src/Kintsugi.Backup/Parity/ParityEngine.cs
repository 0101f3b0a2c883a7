using System.Diagnostics;
using System.Security.Cryptography;
using Kintsugi.Backup.Storage;

namespace Kintsugi.Backup.Parity;

/// <summary>What parity protects now.</summary>
public sealed record ParityStatus(
    ParitySettings? Settings,
    int Groups,
    IReadOnlyList<string> DamagedGroups,
    int CoveredFiles,
    long CoveredBytes,
    int UncoveredFiles,
    long UncoveredBytes,
    long ParityBytes);

/// <summary>What a pass that protects new files did.</summary>
public sealed record ParityCoverResult(int FilesAdded, long BytesAdded, int GroupsWritten, int GroupsDeleted, IReadOnlyList<string> Skipped)
{
    public static readonly ParityCoverResult None = new(0, 0, 0, 0, []);

    /// <summary>Groups asked to be replaced that were kept, because some of their files could not be protected anew.</summary>
    public IReadOnlyList<string> GroupsKept { get; init; } = [];
}

/// <summary>Live counters for a progress display of a repair or a parity pass: bytes of repository files read.</summary>
public sealed class ParityProgress
{
    internal long TotalBytesField, BytesDoneField;

    public long TotalBytes => Interlocked.Read(ref TotalBytesField);
    public long BytesDone => Interlocked.Read(ref BytesDoneField);
}

public enum RepairOutcome
{
    /// <summary>Damaged or missing, rebuilt from parity and checked against its SHA-256.</summary>
    Repaired,
    /// <summary>Damaged beyond what its parity group can rebuild.</summary>
    Unrepairable,
    /// <summary>Damaged and not protected by any parity group.</summary>
    Unprotected,
}

public sealed record RepairedFile(FileKind Kind, string Name, RepairOutcome Outcome, string Detail)
{
    public override string ToString() => $"{ParityFile.Describe(Kind, Name)}: {Detail}";
}

public sealed record RepairResult(int FilesChecked, long BytesChecked, IReadOnlyList<RepairedFile> Files, int GroupsRewritten, bool DryRun, TimeSpan Elapsed)
{
    public int Repaired => Files.Count(f => f.Outcome == RepairOutcome.Repaired);
    public int NotRepaired => Files.Count(f => f.Outcome != RepairOutcome.Repaired);
}

/// <summary>
/// Erasure-coded redundancy inside a repository (docs/FORMAT.md §15). Groups of files — packs,
/// index files, snapshots, key slots, the config — get Reed–Solomon parity, so that
/// <see cref="RepairAsync"/> rebuilds bit-rotted files and wholly lost ones within the scheme's
/// budget. Works on the stored bytes only: no key is needed, so a repository whose key slots or
/// config are damaged can still be repaired.
/// </summary>
public sealed class ParityEngine
{
    private readonly IBlobStore _store;

    public ParityEngine(IBlobStore store)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
    }

    private sealed record LoadedGroup(string Name, ParityGroup Group);

    // ----- settings -----

    public async Task<ParitySettings?> LoadSettingsAsync(CancellationToken ct = default)
    {
        if (!await _store.ExistsAsync(FileKind.ParitySettings, "settings", ct).ConfigureAwait(false))
        {
            return null;
        }
        var json = await _store.GetAsync(FileKind.ParitySettings, "settings", ct).ConfigureAwait(false);
        return ParitySettings.FromJson(json, $"the parity settings ({_store.Location}/parity/settings)");
    }

    /// <summary>Stores the settings; files are protected from the next <see cref="CoverAsync"/> on (the caller runs one).</summary>
    public Task SaveSettingsAsync(ParitySettings settings, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        return _store.PutAsync(FileKind.ParitySettings, "settings", settings.ToJson(), overwrite: true, ct);
    }

    /// <summary>Turns parity off: deletes the settings and every parity group. Returns how many groups were deleted.</summary>
    public async Task<int> DisableAsync(CancellationToken ct = default)
    {
        if (await _store.ExistsAsync(FileKind.ParitySettings, "settings", ct).ConfigureAwait(false))
        {
            await _store.DeleteAsync(FileKind.ParitySettings, "settings", ct).ConfigureAwait(false);
        }
        var files = await _store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false);
        foreach (var f in files)
        {
            await _store.DeleteAsync(FileKind.Parity, f.Name, ct).ConfigureAwait(false);
        }
        return files.Count;
    }

    // ----- status -----

    public async Task<ParityStatus> StatusAsync(CancellationToken ct = default)
    {
        var settings = await LoadSettingsAsync(ct).ConfigureAwait(false);
        var (groups, damaged) = await LoadGroupsAsync(ct).ConfigureAwait(false);
        var covered = groups.SelectMany(g => g.Group.Members).Select(m => (m.Kind, m.Name)).ToHashSet();
        var files = await ListProtectedAsync(ct).ConfigureAwait(false);
        var coveredFiles = files.Where(f => covered.Contains((f.Kind, f.File.Name))).ToList();
        var uncovered = files.Where(f => !covered.Contains((f.Kind, f.File.Name))).ToList();
        long parityBytes = (await _store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false)).Sum(f => f.Size);
        return new ParityStatus(settings, groups.Count, damaged.Select(d => d.Name).ToList(),
            coveredFiles.Count, coveredFiles.Sum(f => f.File.Size), uncovered.Count, uncovered.Sum(f => f.File.Size), parityBytes);
    }

    /// <summary>Files that a readable group names but that are not in the repository.</summary>
    public async Task<IReadOnlyList<(FileKind Kind, string Name)>> MissingMembersAsync(CancellationToken ct = default)
    {
        var (groups, _) = await LoadGroupsAsync(ct).ConfigureAwait(false);
        var present = (await ListProtectedAsync(ct).ConfigureAwait(false)).Select(f => (f.Kind, f.File.Name)).ToHashSet();
        return [.. groups.SelectMany(g => g.Group.Members).Select(m => (m.Kind, m.Name)).Distinct().Where(m => !present.Contains(m))];
    }

    /// <summary>Whether a group file's bytes hash to its name.</summary>
    public async Task<bool> GroupFileIntactAsync(StoredFile file, CancellationToken ct = default)
    {
        var sha = await ParityGroupBuilder.HashFileAsync(_store, FileKind.Parity, file.Name, file.Size, ct).ConfigureAwait(false);
        // One replaced by a concurrent parity pass since it was listed is gone, not damaged.
        return sha is null ? !await _store.ExistsAsync(FileKind.Parity, file.Name, ct).ConfigureAwait(false) : Convert.ToHexStringLower(sha) == file.Name;
    }

    // ----- keeping parity up to date -----

    /// <summary>
    /// Protects every file no group covers yet: they are appended to the newest group while it has
    /// room, then to new groups. Does nothing when parity is off. <paramref name="exclude"/> are
    /// files about to be deleted; <paramref name="dropGroups"/> are groups to replace (their members
    /// count as uncovered, and their files are deleted once the new groups are written).
    /// </summary>
    public async Task<ParityCoverResult> CoverAsync(IReadOnlyCollection<(FileKind Kind, string Name)>? exclude = null, IReadOnlyCollection<string>? dropGroups = null, ParitySettings? fallback = null, ParityProgress? progress = null, CancellationToken ct = default)
    {
        var settings = await LoadSettingsAsync(ct).ConfigureAwait(false) ?? fallback;
        if (settings is null)
        {
            return ParityCoverResult.None;
        }
        var excluded = exclude?.ToHashSet() ?? [];
        var dropped = dropGroups?.ToHashSet(StringComparer.Ordinal) ?? [];
        var (groups, _) = await LoadGroupsAsync(ct).ConfigureAwait(false);
        var kept = groups.Where(g => !dropped.Contains(g.Name)).ToList();
        var covered = kept.SelectMany(g => g.Group.Members).Select(m => (m.Kind, m.Name)).ToHashSet();
        var uncovered = (await ListProtectedAsync(ct).ConfigureAwait(false)).Where(f => !excluded.Contains((f.Kind, f.File.Name)) && !covered.Contains((f.Kind, f.File.Name))).ToList();
        long sequence = groups.Select(g => g.Group.Sequence).DefaultIfEmpty(0).Max() + 1;

        int written = 0, deleted = 0, added = 0;
        long bytes = 0;
        var skipped = new List<string>();
        if (uncovered.Count > 0)
        {
            // Largest first, so that packs take the columns and small files fill the gaps. At most two
            // groups are open at once (each holds m parity columns in memory): the newest existing
            // one, while it has room, and a new one.
            uncovered.Sort((a, b) => b.File.Size.CompareTo(a.File.Size));
            if (progress is not null)
            {
                Interlocked.Add(ref progress.TotalBytesField, uncovered.Sum(f => f.File.Size));
            }
            var active = new List<ParityGroupBuilder>();
            var open = kept.OrderByDescending(g => g.Group.Sequence).FirstOrDefault();
            if (open is not null && await ParityGroupBuilder.OpenAsync(_store, open.Name, open.Group, ct).ConfigureAwait(false) is { } existing && existing.SameGeometry(settings))
            {
                active.Add(existing);
            }
            foreach (var (kind, file) in uncovered)
            {
                var builder = active.FirstOrDefault(b => b.Place(file.Size) >= 0);
                if (builder is null)
                {
                    if (active.Count >= 2)
                    {
                        if (await WriteAsync(active[0], ct).ConfigureAwait(false))
                        {
                            written++;
                        }
                        active.RemoveAt(0);
                    }
                    builder = ParityGroupBuilder.New(_store, settings, sequence++);
                    active.Add(builder);
                }
                string? problem = await builder.AddAsync(kind, file.Name, file.Size, builder.Place(file.Size), ct).ConfigureAwait(false);
                if (progress is not null)
                {
                    Interlocked.Add(ref progress.BytesDoneField, file.Size);
                }
                if (problem is null)
                {
                    added++;
                    bytes += file.Size;
                }
                else
                {
                    skipped.Add($"{ParityFile.Describe(kind, file.Name)}: {problem}");
                }
            }
            foreach (var builder in active)
            {
                if (await WriteAsync(builder, ct).ConfigureAwait(false))
                {
                    written++;
                }
            }
        }
        // A replaced group goes only once every file it protected (and that stays) is in a group again:
        // it may be the last redundancy of a file that could not be taken in.
        var keptDrops = new List<string>();
        if (dropped.Count > 0)
        {
            var (after, _) = await LoadGroupsAsync(ct).ConfigureAwait(false);
            var protectedNow = after.Where(g => !dropped.Contains(g.Name)).SelectMany(g => g.Group.Members).Select(m => (m.Kind, m.Name)).ToHashSet();
            foreach (var g in groups.Where(g => dropped.Contains(g.Name)))
            {
                if (g.Group.Members.All(m => excluded.Contains((m.Kind, m.Name)) || protectedNow.Contains((m.Kind, m.Name))))
                {
                    await _store.DeleteAsync(FileKind.Parity, g.Name, ct).ConfigureAwait(false);
                    deleted++;
                }
                else
                {
                    keptDrops.Add(g.Name);
                }
            }
            // Names given that were not even readable groups (damaged ones, in repair) protect nothing: they go.
            foreach (var name in dropped.Where(n => !groups.Any(g => g.Name == n)))
            {
                await _store.DeleteAsync(FileKind.Parity, name, ct).ConfigureAwait(false);
                deleted++;
            }
        }
        return new ParityCoverResult(added, bytes, written, deleted, skipped) { GroupsKept = keptDrops };
    }

    /// <summary>
    /// Deletes repository files, taking them out of their parity groups first (their contribution is
    /// subtracted, or, when a file no longer holds the bytes recorded, the group is rebuilt from the
    /// others), so that parity never depends on a file that is gone. Files are deleted in the order given.
    /// </summary>
    public async Task DeleteAsync(IReadOnlyList<(FileKind Kind, string Name)> files, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(files);
        var set = files.Where(f => f.Kind is not FileKind.Lock and not FileKind.Parity and not FileKind.ParitySettings).ToHashSet();
        if (set.Count > 0 && (await _store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false)).Count > 0)
        {
            var (groups, _) = await LoadGroupsAsync(ct).ConfigureAwait(false);
            var drop = new List<string>();
            ParitySettings? fallback = null;
            foreach (var g in groups)
            {
                var leaving = g.Group.Members.Where(m => set.Contains((m.Kind, m.Name))).ToList();
                if (leaving.Count == 0)
                {
                    continue;
                }
                if (leaving.Count == g.Group.Members.Count)
                {
                    await _store.DeleteAsync(FileKind.Parity, g.Name, ct).ConfigureAwait(false);
                    continue;
                }
                var builder = await ParityGroupBuilder.OpenAsync(_store, g.Name, g.Group, ct).ConfigureAwait(false);
                if (builder is null || !await builder.RemoveAsync(leaving, ct).ConfigureAwait(false) || !await WriteAsync(builder, ct).ConfigureAwait(false))
                {
                    // The group is to be rebuilt from the files that stay: each must still be what it protects,
                    // or this group is that file's last redundancy and must not go.
                    foreach (var stay in g.Group.Members.Where(m => !set.Contains((m.Kind, m.Name))))
                    {
                        var sha = await ParityGroupBuilder.HashFileAsync(_store, stay.Kind, stay.Name, stay.Length, ct).ConfigureAwait(false);
                        if (sha is null || !sha.AsSpan().SequenceEqual(stay.Sha256))
                        {
                            throw new KintsugiException(ErrorKind.Corrupt, $"{stay} is damaged and parity group {g.Name[..8]} is what can rebuild it; run `kintsugi repair` first (nothing was deleted)");
                        }
                    }
                    drop.Add(g.Name);
                    fallback ??= g.Group.Geometry;
                }
            }
            if (drop.Count > 0)
            {
                var cover = await CoverAsync(set, drop, fallback, null, ct).ConfigureAwait(false);
                if (cover.GroupsKept.Count > 0)
                {
                    throw new KintsugiException(ErrorKind.Failed, $"parity groups {string.Join(", ", cover.GroupsKept.Select(n => n[..8]))} could not be rebuilt without the files to delete ({string.Join("; ", cover.Skipped)}); nothing was deleted; run `kintsugi repair`, then try again");
                }
            }
        }
        foreach (var (kind, name) in files)
        {
            await _store.DeleteAsync(kind, name, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Writes the builder's group under its hash and deletes the file it replaces; false when a shared stripe turned out damaged (nothing written).</summary>
    private async Task<bool> WriteAsync(ParityGroupBuilder builder, CancellationToken ct)
    {
        if (!builder.Changed)
        {
            return false;
        }
        var finished = await builder.FinishAsync(ct).ConfigureAwait(false);
        if (finished is not { } result)
        {
            return false;
        }
        var header = result.Group.SerializeHeader();
        await using (var pending = _store.CreatePending(FileKind.Parity))
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            pending.Write(header);
            sha.AppendData(header);
            foreach (var column in result.Parity)
            {
                pending.Write(column);
                sha.AppendData(column);
            }
            string name = Convert.ToHexStringLower(sha.GetHashAndReset());
            await pending.CommitAsync(name, overwrite: false, ct).ConfigureAwait(false);
            if (builder.Replaces is { } old && old != name)
            {
                await _store.DeleteAsync(FileKind.Parity, old, ct).ConfigureAwait(false);
            }
        }
        return true;
    }

    // ----- repair -----

    /// <summary>
    /// Reads every protected file and every parity group; rebuilds each file that is damaged or
    /// missing from its group's parity (checked against the SHA-256 recorded for it before it is
    /// written back), then rewrites groups whose own parity was damaged and protects what is not yet
    /// covered. With <paramref name="dryRun"/>, only reports.
    /// </summary>
    public async Task<RepairResult> RepairAsync(bool dryRun, TimeProvider time, ParityProgress? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(time);
        progress ??= new ParityProgress();
        long started = time.GetTimestamp();
        var (groups, damagedGroups) = await LoadGroupsAsync(ct).ConfigureAwait(false);
        var files = await ListProtectedAsync(ct).ConfigureAwait(false);
        Interlocked.Add(ref progress.TotalBytesField, files.Sum(f => f.File.Size));
        var hashes = new Dictionary<(FileKind, string), byte[]?>();
        long bytesChecked = 0;
        foreach (var (kind, file) in files)
        {
            hashes[(kind, file.Name)] = await ParityGroupBuilder.HashFileAsync(_store, kind, file.Name, file.Size, ct).ConfigureAwait(false);
            bytesChecked += file.Size;
            Interlocked.Add(ref progress.BytesDoneField, file.Size);
        }
        bool Intact(ParityMember m) =>
            hashes.TryGetValue((m.Kind, m.Name), out var h) && h is not null && h.AsSpan().SequenceEqual(m.Sha256);

        var outcomes = new Dictionary<(FileKind, string), RepairedFile>();
        var members = groups.SelectMany(g => g.Group.Members).Select(m => (m.Kind, m.Name)).ToHashSet();
        foreach (var g in groups)
        {
            var damaged = g.Group.Members.Where(m => !Intact(m) && !(outcomes.TryGetValue((m.Kind, m.Name), out var o) && o.Outcome == RepairOutcome.Repaired)).ToList();
            if (damaged.Count == 0)
            {
                continue;
            }
            var rebuilt = await ReconstructAsync(g, damaged, ct).ConfigureAwait(false);
            foreach (var m in damaged)
            {
                var (content, lost) = rebuilt[m];
                if (content is not null && SHA256.HashData(content).AsSpan().SequenceEqual(m.Sha256))
                {
                    string what = hashes.ContainsKey((m.Kind, m.Name)) ? "damaged" : "missing";
                    if (!dryRun)
                    {
                        await _store.PutAsync(m.Kind, m.Name, content, overwrite: true, ct).ConfigureAwait(false);
                        hashes[(m.Kind, m.Name)] = m.Sha256;
                    }
                    outcomes[(m.Kind, m.Name)] = new RepairedFile(m.Kind, m.Name, RepairOutcome.Repaired, dryRun ? $"{what}, can be rebuilt from parity" : $"{what}, rebuilt from parity ({m.Length} bytes)");
                }
                else if (!outcomes.ContainsKey((m.Kind, m.Name)))
                {
                    outcomes[(m.Kind, m.Name)] = new RepairedFile(m.Kind, m.Name, RepairOutcome.Unrepairable,
                        $"{lost} bytes lie in stripes with more damage than the group's {g.Group.ParityColumns} parity columns can rebuild");
                }
            }
        }
        foreach (var (kind, file) in files)
        {
            var h = hashes[(kind, file.Name)];
            if (ParityFile.NamedByHash(kind) && !members.Contains((kind, file.Name)) && (h is null || Convert.ToHexStringLower(h) != file.Name))
            {
                outcomes[(kind, file.Name)] = new RepairedFile(kind, file.Name, RepairOutcome.Unprotected, "damaged, and no parity group protects it");
            }
        }

        int rewritten = 0;
        if (!dryRun)
        {
            // Groups whose own parity is damaged are rebuilt from their (now intact) members; a group
            // with a member still damaged is kept, since it is all the redundancy that member has.
            var drop = new List<string>();
            foreach (var g in groups)
            {
                bool membersIntact = g.Group.Members.All(m => Intact(m));
                if (membersIntact && !await ParityIntactAsync(g, ct).ConfigureAwait(false))
                {
                    drop.Add(g.Name);
                }
            }
            drop.AddRange(damagedGroups.Select(d => d.Name));
            var settings = await TryLoadSettingsAsync(ct).ConfigureAwait(false);
            var fallback = settings ?? groups.Select(g => g.Group.Geometry).FirstOrDefault();
            if (drop.Count > 0 || settings is not null)
            {
                var cover = await CoverAsync(null, drop, fallback, null, ct).ConfigureAwait(false);
                rewritten = cover.GroupsWritten;
            }
        }
        return new RepairResult(files.Count, bytesChecked, [.. outcomes.Values.OrderBy(o => o.Kind).ThenBy(o => o.Name, StringComparer.Ordinal)], rewritten, dryRun, time.GetElapsedTime(started));
    }

    private async Task<ParitySettings?> TryLoadSettingsAsync(CancellationToken ct)
    {
        try
        {
            return await LoadSettingsAsync(ct).ConfigureAwait(false);
        }
        catch (KintsugiException)
        {
            return null;
        }
    }

    private async Task<bool> ParityIntactAsync(LoadedGroup g, CancellationToken ct) =>
        await GroupFileIntactAsync((await _store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false)).FirstOrDefault(f => f.Name == g.Name), ct).ConfigureAwait(false);

    /// <summary>Rebuilds the damaged members of one group, stripe row by stripe row; for each, its bytes (null when some row has too much damage) and how many bytes were lost.</summary>
    private async Task<Dictionary<ParityMember, (byte[]? Content, long Lost)>> ReconstructAsync(LoadedGroup loaded, IReadOnlyList<ParityMember> damaged, CancellationToken ct)
    {
        var g = loaded.Group;
        var rs = new ReedSolomon(g.DataColumns, g.ParityColumns);
        int s = g.StripeSize;
        var byColumn = Enumerable.Range(0, g.DataColumns).Select(c => g.Members.Where(m => m.Column == c).OrderBy(m => m.Offset).ToList()).ToArray();
        var content = damaged.ToDictionary(m => m, m => new byte[m.Length]);
        var lost = damaged.ToDictionary(m => m, _ => 0L);
        var rows = new SortedSet<int>();
        foreach (var m in damaged.Where(m => m.Length > 0))
        {
            for (long r = m.Offset / s; r <= (m.End - 1) / s; r++)
            {
                rows.Add((int)r);
            }
        }
        var data = Enumerable.Range(0, g.DataColumns).Select(_ => new byte[s]).ToArray();
        var parity = Enumerable.Range(0, g.ParityColumns).Select(_ => new byte[s]).ToArray();
        var dataMem = data.Select(d => (Memory<byte>)d).ToArray();
        var parityMem = parity.Select(p => (Memory<byte>)p).ToArray();
        var dataErased = new bool[g.DataColumns];
        var parityErased = new bool[g.ParityColumns];
        var hash = new byte[32];
        foreach (int r in rows)
        {
            for (int c = 0; c < g.DataColumns; c++)
            {
                bool read = await ParityGroupBuilder.AssembleAsync(_store, byColumn[c], r, s, data[c], ct).ConfigureAwait(false);
                ParityGroup.HashStripe(data[c], hash);
                dataErased[c] = !read || !hash.AsSpan(0, ParityGroup.StripeHashLength).SequenceEqual(g.StripeHash(c, r));
            }
            for (int j = 0; j < g.ParityColumns; j++)
            {
                bool read = true;
                try
                {
                    await _store.ReadAtAsync(FileKind.Parity, loaded.Name, g.HeaderLength + (j * g.ColumnLength) + ((long)r * s), parity[j], ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is KintsugiException or IOException)
                {
                    read = false;
                }
                ParityGroup.HashStripe(parity[j], hash);
                parityErased[j] = !read || !hash.AsSpan(0, ParityGroup.StripeHashLength).SequenceEqual(g.StripeHash(g.DataColumns + j, r));
            }
            bool ok = rs.Reconstruct(dataMem, dataErased, parityMem, parityErased);
            long start = (long)r * s;
            foreach (var m in damaged)
            {
                long from = Math.Max(start, m.Offset), to = Math.Min(start + s, m.End);
                if (from >= to)
                {
                    continue;
                }
                if (ok)
                {
                    data[m.Column].AsSpan((int)(from - start), (int)(to - from)).CopyTo(content[m].AsSpan((int)(from - m.Offset)));
                }
                else
                {
                    lost[m] += to - from;
                }
            }
        }
        return damaged.ToDictionary(m => m, m => (lost[m] == 0 ? content[m] : null, lost[m]));
    }

    // ----- listing -----

    private async Task<List<(FileKind Kind, StoredFile File)>> ListProtectedAsync(CancellationToken ct)
    {
        var result = new List<(FileKind Kind, StoredFile File)>();
        foreach (var kind in ParityFile.ProtectedKinds)
        {
            result.AddRange((await _store.ListAsync(kind, ct).ConfigureAwait(false)).Select(f => (kind, f)));
        }
        return result;
    }

    private async Task<(List<LoadedGroup> Groups, List<(string Name, string Problem)> Damaged)> LoadGroupsAsync(CancellationToken ct)
    {
        var groups = new List<LoadedGroup>();
        var damaged = new List<(string, string)>();
        foreach (var f in await _store.ListAsync(FileKind.Parity, ct).ConfigureAwait(false))
        {
            string what = $"parity group {f.Name}";
            try
            {
                if (f.Size < ParityGroup.FixedHeader)
                {
                    throw KintsugiException.Corrupt(what, "it is shorter than a header");
                }
                var fixedPart = new byte[ParityGroup.FixedHeader];
                await _store.ReadAtAsync(FileKind.Parity, f.Name, 0, fixedPart, ct).ConfigureAwait(false);
                long headerLength = ParityGroup.ReadHeaderLength(fixedPart, f.Size, what);
                var header = new byte[headerLength];
                await _store.ReadAtAsync(FileKind.Parity, f.Name, 0, header, ct).ConfigureAwait(false);
                groups.Add(new LoadedGroup(f.Name, ParityGroup.Parse(header, what)));
            }
            catch (Exception e) when (e is KintsugiException or IOException)
            {
                // A group replaced by a concurrent parity pass since the listing is gone, not damaged.
                if (await _store.ExistsAsync(FileKind.Parity, f.Name, ct).ConfigureAwait(false))
                {
                    damaged.Add((f.Name, e.Message));
                }
            }
        }
        Debug.Assert(groups.Select(g => g.Name).Distinct().Count() == groups.Count);
        return (groups, damaged);
    }
}
