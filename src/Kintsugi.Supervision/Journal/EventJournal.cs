using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Kintsugi.Backup;
using Microsoft.Data.Sqlite;

namespace Kintsugi.Supervision.Journal;

/// <summary>
/// The one journal of everything that happens under supervision: an append-only SQLite table of
/// <see cref="JournalEvent"/>s in WAL mode, so the CLI reads while the supervisor writes.
/// Every figure is computed from it (see docs/METRICS.md). One instance is safe to share between threads.
/// <para>
/// Writing never fails the caller: a supervisor must keep its workloads supervised when the disk
/// fills or the journal's file goes bad. An event that cannot be written is held in memory (at most
/// <see cref="MaxHeld"/>, the oldest dropped beyond that) and written, with its own time, as soon as
/// writing works again, followed by a <see cref="EventTypes.JournalRecovered"/> event; meanwhile
/// <see cref="Warning"/> tells whoever runs it. A journal file deleted while open is noticed and made
/// again from the open copy.
/// </para>
/// </summary>
public sealed class EventJournal : IDisposable
{
    /// <summary>The schema version this code writes and reads, kept in the <c>meta</c> table.</summary>
    public const int SchemaVersion = 1;

    // Anonymous objects and dictionaries are written with their names as given: callers spell the
    // snake_case field names of EventTypes themselves.
    private static readonly JsonSerializerOptions DataOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private const string Columns = "id, time_us, type, workload, replica, data";

    // Appends and reads go through connections of their own, each used by one thread at a time: in
    // WAL mode a long read (a metrics scrape over the whole journal) then never holds up an append.
    private readonly Lock _writeGate = new();
    private readonly Lock _readGate = new();
    private SqliteConnection? _writer;
    private SqliteConnection _reader;
    private readonly TimeProvider _time;
    private bool _disposed;

    private readonly Queue<HeldEvent> _held = new();
    private long _dropped;
    private string? _trouble;
    private DateTimeOffset _troubleSince, _lastWarning;
    private (ulong Device, ulong Inode)? _identity;
    private ITimer? _maintenance;

    private sealed record HeldEvent(DateTimeOffset Time, string Type, string? Workload, int? Replica, string Data);

    /// <summary>Events held in memory while the journal cannot be written: at most this many, the oldest dropped beyond.</summary>
    public const int MaxHeld = 10_000;

    /// <summary>How often a writer retries held events and checks that its file is still there.</summary>
    public static TimeSpan MaintenanceInterval { get; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Raised (on the writing thread or a timer's) when events cannot be written and are held, every
    /// minute while that lasts, when they are written again, and when the file was deleted and made
    /// again: a message for the operator, since the journal itself cannot carry it.
    /// </summary>
    public event Action<string>? Warning;

    /// <summary>How many events are held in memory, waiting to be written.</summary>
    public int HeldCount
    {
        get
        {
            lock (_writeGate)
            {
                return _held.Count;
            }
        }
    }

    private EventJournal(string path, SqliteConnection? writer, SqliteConnection reader, TimeProvider time)
    {
        Path = path;
        _writer = writer;
        _reader = reader;
        _time = time;
        if (writer is not null)
        {
            _identity = Identify(path);
            _maintenance = time.CreateTimer(_ => Maintain(), null, MaintenanceInterval, MaintenanceInterval);
        }
    }

    /// <summary>The database file (absolute).</summary>
    public string Path { get; }

    public bool IsReadOnly => _writer is null;

    /// <summary>
    /// Opens the journal for writing, creating its folder and database when they do not exist.
    /// Events are stamped with the time of <paramref name="time"/>.
    /// </summary>
    public static EventJournal Open(string path, TimeProvider time)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(time);
        string full = System.IO.Path.GetFullPath(path);
        string? folder = System.IO.Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(folder))
        {
            Directory.CreateDirectory(folder);
        }
        SqliteConnection connection;
        try
        {
            connection = Connect(full, SqliteOpenMode.ReadWriteCreate);
        }
        catch (SqliteException e)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"cannot open the journal {full}: {e.Message}", e);
        }
        SqliteConnection? reader = null;
        try
        {
            Execute(connection, "PRAGMA journal_mode=WAL;");
            Execute(connection, "PRAGMA synchronous=NORMAL;");
            using (var tx = connection.BeginTransaction())
            {
                Execute(connection, """
                    CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS events(
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        time_us INTEGER NOT NULL,
                        type TEXT NOT NULL,
                        workload TEXT,
                        replica INTEGER,
                        data TEXT NOT NULL);
                    CREATE INDEX IF NOT EXISTS events_time ON events(time_us);
                    CREATE INDEX IF NOT EXISTS events_workload_type ON events(workload, type);
                    """, tx);
                Execute(connection, $"INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '{SchemaVersion}');", tx);
                tx.Commit();
            }
            CheckSchema(connection, full);
            reader = Connect(full, SqliteOpenMode.ReadOnly);
            return new EventJournal(full, connection, reader, time);
        }
        catch (SqliteException e)
        {
            reader?.Dispose();
            connection.Dispose();
            string why = e.SqliteErrorCode == 26 ? "it is not a SQLite database" : e.Message;
            throw new KintsugiException(ErrorKind.InvalidInput, $"cannot use the journal {full}: {why}; move it away or set 'journal' in the config", e);
        }
        catch
        {
            reader?.Dispose();
            connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens an existing journal for reading only, as the CLI does while a supervisor may be writing it.
    /// Throws <see cref="KintsugiException"/> (<see cref="ErrorKind.NotFound"/>) when there is no file,
    /// and (<see cref="ErrorKind.InvalidInput"/>) when the file is not a journal this version reads.
    /// </summary>
    public static EventJournal OpenReadOnly(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new KintsugiException(ErrorKind.NotFound, $"there is no journal at {full}; start the supervisor with `kintsugi run` first");
        }
        SqliteConnection? connection = null;
        try
        {
            connection = Connect(full, SqliteOpenMode.ReadOnly);
            CheckSchema(connection, full);
            return new EventJournal(full, writer: null, connection, TimeProvider.System);
        }
        catch (SqliteException e)
        {
            connection?.Dispose();
            // SQLITE_NOTADB (26) is what a file of anything else gives.
            string why = e.SqliteErrorCode == 26 ? "it is not a SQLite database" : e.Message;
            throw new KintsugiException(ErrorKind.InvalidInput, $"cannot read the journal {full}: {why}", e);
        }
        catch
        {
            connection?.Dispose();
            throw;
        }
    }

    /// <summary>Appends an event stamped with the current time; returns its id.</summary>
    /// <param name="data">An anonymous object, a dictionary or a <see cref="JsonElement"/> object; property names are written as given.</param>
    public long Append(string type, string? workload, int? replica, object? data = null) =>
        Append(_time.GetUtcNow(), type, workload, replica, data);

    /// <summary>Appends an event with an explicit time (tests, imports); returns its id.</summary>
    public long Append(DateTimeOffset time, string type, string? workload, int? replica, object? data = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(type);
        string json = SerializeData(data);
        if (_writer is null)
        {
            throw new InvalidOperationException($"the journal {Path} was opened read-only");
        }
        var held = new HeldEvent(time, type, workload, replica, json);
        string? warning = null;
        long id;
        lock (_writeGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // While events are held, later ones queue behind them (the journal keeps the order things
            // happened in); the timer writes them, so no append waits on a disk in trouble.
            if (_held.Count > 0)
            {
                Hold(held);
                id = -1;
            }
            else
            {
                try
                {
                    id = Insert(held);
                }
                catch (SqliteException e)
                {
                    warning = BeginTrouble(e);
                    Hold(held);
                    id = -1;
                }
            }
        }
        Warn(warning);
        return id;
    }

    /// <summary>Writes held events if it can now, and makes the file again if it was deleted; run by a timer every <see cref="MaintenanceInterval"/>.</summary>
    public void Maintain()
    {
        string? warning = null;
        lock (_writeGate)
        {
            if (_disposed || _writer is null)
            {
                return;
            }
            try
            {
                warning = RecreateIfDeleted();
                if (_held.Count > 0)
                {
                    warning = TryWriteHeld(out string? w) ? w ?? warning : w ?? StillTroubled() ?? warning;
                }
            }
            catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // On a timer's thread: whatever goes wrong is a warning, never the end of the supervisor.
                warning = $"journal {Path}: {e.Message}";
            }
        }
        Warn(warning);
    }

    private void Warn(string? message)
    {
        if (message is not null)
        {
            Warning?.Invoke(message);
        }
    }

    private long Insert(HeldEvent e, SqliteTransaction? transaction = null)
    {
        using var command = _writer!.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "INSERT INTO events(time_us, type, workload, replica, data) VALUES ($time, $type, $workload, $replica, $data) RETURNING id;";
        command.Parameters.AddWithValue("$time", ToUnixMicroseconds(e.Time));
        command.Parameters.AddWithValue("$type", e.Type);
        command.Parameters.AddWithValue("$workload", (object?)e.Workload ?? DBNull.Value);
        command.Parameters.AddWithValue("$replica", (object?)e.Replica ?? DBNull.Value);
        command.Parameters.AddWithValue("$data", e.Data);
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private void Hold(HeldEvent e)
    {
        _held.Enqueue(e);
        while (_held.Count > MaxHeld)
        {
            _held.Dequeue();
            _dropped++;
        }
    }

    private string BeginTrouble(SqliteException e)
    {
        var now = _time.GetUtcNow();
        if (_trouble is null)
        {
            _troubleSince = now;
        }
        _trouble = e.Message;
        _lastWarning = now;
        return $"cannot write the journal {Path}: {e.Message}; the workloads stay supervised, and events are held in memory (up to {MaxHeld}) and written when it works again";
    }

    private string? StillTroubled()
    {
        var now = _time.GetUtcNow();
        if (now - _lastWarning < TimeSpan.FromMinutes(1))
        {
            return null;
        }
        _lastWarning = now;
        return $"still cannot write the journal {Path} ({_trouble}): {_held.Count} events held in memory" + (_dropped > 0 ? $", {_dropped} of the oldest dropped" : "");
    }

    /// <summary>Writes every held event, oldest first, then a journal.recovered; false (the rest still held) at the first failure.</summary>
    private bool TryWriteHeld(out string? warning)
    {
        warning = null;
        try
        {
            // The write-ahead log only grows until a checkpoint; folding it into the database first
            // gives back the space a full disk needs most.
            try
            {
                Execute(_writer!, "PRAGMA wal_checkpoint(TRUNCATE);");
            }
            catch (SqliteException)
            {
            }
            using (var tx = _writer!.BeginTransaction())
            {
                foreach (var e in _held)
                {
                    Insert(e, tx);
                }
                tx.Commit();
            }
            int written = _held.Count;
            long dropped = _dropped;
            string reason = _trouble ?? "unknown";
            _held.Clear();
            _dropped = 0;
            _trouble = null;
            Insert(new HeldEvent(_time.GetUtcNow(), EventTypes.JournalRecovered, null, null, SerializeData(new
            {
                reason,
                since = _troubleSince.ToString("O", CultureInfo.InvariantCulture),
                held = written,
                dropped,
            })));
            warning = $"the journal {Path} is written again: {written} events held since {_troubleSince.ToLocalTime():HH:mm:ss} written" + (dropped > 0 ? $", {dropped} dropped" : "");
            return true;
        }
        catch (Exception e) when (e is SqliteException or InvalidOperationException)
        {
            // Any failure (also a ROLLBACK of a transaction SQLite already rolled back): still held.
            _trouble = e.Message;
            return false;
        }
    }

    private static (ulong, ulong)? Identify(string path)
    {
        try
        {
            var status = Kintsugi.Backup.Platform.Posix.LStat(path);
            return (status.Device, status.Inode);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The journal's file was deleted (its folder perhaps too) while this writer kept it open: what was
    /// written so far is in the open copy, so the file is made again from it. A file that another
    /// replaced it with is left alone; that is only reported.
    /// </summary>
    private string? RecreateIfDeleted()
    {
        if (_identity is null)
        {
            return null;
        }
        var now = Identify(Path);
        if (now == _identity)
        {
            return null;
        }
        if (now is not null)
        {
            // Another file at the path: write on into it when it is a journal; else keep the open copy.
            try
            {
                var writer = Connect(Path, SqliteOpenMode.ReadWrite);
                try
                {
                    CheckSchema(writer, Path);
                    var reader = Connect(Path, SqliteOpenMode.ReadOnly);
                    lock (_readGate)
                    {
                        _reader.Dispose();
                        _reader = reader;
                    }
                    _writer!.Dispose();
                    _writer = writer;
                    _identity = now;
                    return $"the journal {Path} was replaced by another journal file while this supervisor wrote it; its events go on into that file";
                }
                catch
                {
                    writer.Dispose();
                    throw;
                }
            }
            catch (Exception e) when (e is SqliteException or KintsugiException or IOException)
            {
                return StillDeleted($"another file is there now, not a journal: {e.Message}");
            }
        }
        SqliteConnection? fresh = null;
        try
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
            fresh = Connect(Path, SqliteOpenMode.ReadWriteCreate);
            _writer!.BackupDatabase(fresh);
            Execute(fresh, "PRAGMA journal_mode=WAL;");
            Execute(fresh, "PRAGMA synchronous=NORMAL;");
            var reader = Connect(Path, SqliteOpenMode.ReadOnly);
            lock (_readGate)
            {
                _reader.Dispose();
                _reader = reader;
            }
            _writer.Dispose();
            _writer = fresh;
            fresh = null;
            _identity = Identify(Path);
            Insert(new HeldEvent(_time.GetUtcNow(), EventTypes.JournalRecovered, null, null, SerializeData(new
            {
                reason = "the journal file was deleted while the supervisor ran; made again from its open copy",
                since = _time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture),
                held = 0,
                dropped = 0,
            })));
            return $"the journal {Path} was deleted while in use; it was made again with every event so far";
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            if (fresh is not null)
            {
                fresh.Dispose();
                // A half-made copy would look like a file put there by someone else next round.
                foreach (var suffix in new[] { "", "-wal", "-shm" })
                {
                    try
                    {
                        File.Delete(Path + suffix);
                    }
                    catch (Exception d) when (d is IOException or UnauthorizedAccessException)
                    {
                    }
                }
            }
            // Writing goes on into the deleted file's open copy; the next round tries again.
            return StillDeleted(e.Message);
        }
    }

    private string? StillDeleted(string why)
    {
        var now = _time.GetUtcNow();
        if (now - _lastWarning < TimeSpan.FromMinutes(1))
        {
            return null;
        }
        _lastWarning = now;
        return $"the journal {Path} was deleted while in use and cannot be made again ({why}); events go on into its open copy, which is lost when the supervisor stops";
    }

    /// <summary>
    /// Events in id order (the order they were appended), oldest first.
    /// </summary>
    /// <param name="afterId">Only events with a greater id: pass the last id seen to follow the journal.</param>
    /// <param name="since">Only events at or after this time.</param>
    /// <param name="until">Only events at or before this time.</param>
    /// <param name="workload">Only events of this workload.</param>
    /// <param name="type">Only events of this type, or of a family when it ends in ".*" (for example "action.*").</param>
    /// <param name="limit">At most this many: the oldest that match.</param>
    public IReadOnlyList<JournalEvent> Read(long afterId = 0, DateTimeOffset? since = null, DateTimeOffset? until = null, string? workload = null, string? type = null, int limit = int.MaxValue) =>
        Query(afterId, since, until, workload, type, limit, newest: false);

    /// <summary>The newest <paramref name="count"/> events that match, in id order (oldest first), as `tail` shows a log.</summary>
    public IReadOnlyList<JournalEvent> Tail(int count, DateTimeOffset? since = null, DateTimeOffset? until = null, string? workload = null, string? type = null) =>
        Query(0, since, until, workload, type, count, newest: true);

    /// <summary>The newest event of a type, of one workload or of any.</summary>
    public JournalEvent? Last(string type, string? workload = null)
    {
        var last = Query(0, null, null, workload, type, 1, newest: true);
        return last.Count == 0 ? null : last[0];
    }

    public void Dispose()
    {
        lock (_writeGate)
        {
            lock (_readGate)
            {
                if (_disposed)
                {
                    return;
                }
                _disposed = true;
                _maintenance?.Dispose();
                if (_held.Count > 0)
                {
                    // A last try: what is still held after it is lost with this process.
                    _ = TryWriteHeld(out _);
                }
                _reader.Dispose();
                _writer?.Dispose();
            }
        }
    }

    /// <summary>Unix time in microseconds, as the journal stores it.</summary>
    public static long ToUnixMicroseconds(DateTimeOffset time) => (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond;

    public static DateTimeOffset FromUnixMicroseconds(long microseconds) => DateTimeOffset.UnixEpoch.AddTicks(microseconds * TimeSpan.TicksPerMicrosecond);

    private IReadOnlyList<JournalEvent> Query(long afterId, DateTimeOffset? since, DateTimeOffset? until, string? workload, string? type, int limit, bool newest)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        var sql = new StringBuilder($"SELECT {Columns} FROM events WHERE id > $after");
        lock (_readGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var command = _reader.CreateCommand();
            command.Parameters.AddWithValue("$after", afterId);
            if (since is { } s)
            {
                sql.Append(" AND time_us >= $since");
                command.Parameters.AddWithValue("$since", ToUnixMicroseconds(s));
            }
            if (until is { } u)
            {
                sql.Append(" AND time_us <= $until");
                command.Parameters.AddWithValue("$until", ToUnixMicroseconds(u));
            }
            if (workload is not null)
            {
                sql.Append(" AND workload = $workload");
                command.Parameters.AddWithValue("$workload", workload);
            }
            if (type is not null && type.EndsWith(".*", StringComparison.Ordinal))
            {
                // A prefix compared with substr, not LIKE: type names hold '_', a LIKE wildcard.
                string prefix = type[..^1];
                sql.Append(" AND substr(type, 1, $prefixLength) = $prefix");
                command.Parameters.AddWithValue("$prefixLength", prefix.Length);
                command.Parameters.AddWithValue("$prefix", prefix);
            }
            else if (type is not null)
            {
                sql.Append(" AND type = $type");
                command.Parameters.AddWithValue("$type", type);
            }
            sql.Append(newest ? " ORDER BY id DESC" : " ORDER BY id");
            sql.Append(" LIMIT $limit;");
            command.Parameters.AddWithValue("$limit", limit);
            command.CommandText = sql.ToString();

            var events = new List<JournalEvent>();
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                events.Add(new JournalEvent(
                    reader.GetInt64(0),
                    FromUnixMicroseconds(reader.GetInt64(1)),
                    reader.GetString(2),
                    reader.IsDBNull(3) ? null : reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetInt32(4),
                    ParseData(reader.GetString(5))));
            }
            if (newest)
            {
                events.Reverse();
            }
            return events;
        }
    }

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Kintsugi's own types, in assemblies the trimmer keeps whole (TrimMode partial); the .NET types they hold are written by System.Text.Json's built-in converters, which reflection mode keeps.")]
    private static string SerializeData(object? data)
    {
        if (data is null)
        {
            return "{}";
        }
        string json = data is JsonElement element ? element.GetRawText() : JsonSerializer.Serialize(data, data.GetType(), DataOptions);
        if (!json.StartsWith('{'))
        {
            throw new ArgumentException($"event data must serialise to a JSON object, not {json}", nameof(data));
        }
        return json;
    }

    private static JsonElement ParseData(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            // A damaged row should not hide the rest of the journal; its data reads as empty.
            using var empty = JsonDocument.Parse("{}");
            return empty.RootElement.Clone();
        }
    }

    private static SqliteConnection Connect(string path, SqliteOpenMode mode)
    {
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = mode,
            // One long-lived connection per journal: a pooled one would keep the file open after Dispose.
            Pooling = false,
            DefaultTimeout = 30,
        };
        var connection = new SqliteConnection(builder.ToString());
        try
        {
            connection.Open();
            // Wait for a writer's lock instead of failing at once with SQLITE_BUSY.
            Execute(connection, "PRAGMA busy_timeout=5000;");
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    private static void CheckSchema(SqliteConnection connection, string path)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'events');";
        if (Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture) != 2)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"{path} is not a Kintsugi journal (it has no events table)");
        }
        command.CommandText = "SELECT value FROM meta WHERE key = 'schema_version';";
        string? text = command.ExecuteScalar() as string;
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int version))
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"{path} is not a Kintsugi journal (it has no schema version)");
        }
        if (version > SchemaVersion)
        {
            throw new KintsugiException(ErrorKind.InvalidInput, $"the journal {path} has schema version {version}, newer than this kintsugi reads ({SchemaVersion}); upgrade kintsugi");
        }
    }

    private static void Execute(SqliteConnection connection, string sql, SqliteTransaction? transaction = null)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
