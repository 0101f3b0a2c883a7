using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.Backup;
using Kintsugi.Supervision.Journal;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;

namespace Kintsugi.Supervision.Tests;

/// <summary>The journal: one SQLite file in WAL mode that the supervisor appends to and the CLI reads.</summary>
public sealed class JournalTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly string _root = Path.Combine(Path.GetTempPath(), "kintsugi-journal-tests-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));

    private string DbPath => Path.Combine(_root, "state", ".kintsugi", "journal.db");

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public void Open_creates_the_folder_and_a_WAL_database_with_schema_version_1()
    {
        using var journal = EventJournal.Open(DbPath, new FakeTimeProvider(T0));

        Assert.True(File.Exists(DbPath));
        Assert.Equal(DbPath, journal.Path);
        using var db = new SqliteConnection($"Data Source={DbPath};Pooling=False");
        db.Open();
        Assert.Equal("wal", Scalar(db, "PRAGMA journal_mode;"));
        Assert.Equal("1", Scalar(db, "SELECT value FROM meta WHERE key = 'schema_version';"));
        Assert.Equal(2L, Scalar(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('events_time', 'events_workload_type');"));
    }

    [Fact]
    public void An_appended_event_reads_back_with_its_time_type_workload_replica_and_data_names_as_written()
    {
        var clock = new FakeTimeProvider(T0.AddTicks(1234567));
        using var journal = EventJournal.Open(DbPath, clock);

        long id = journal.Append(EventTypes.ProcessStarted, "train", 1, new { pid = 4242, attempt = 2, command = new[] { "python", "train.py" }, resume_from = (string?)null, skip_steps = 0 });

        var e = Assert.Single(journal.Read());
        Assert.Equal(id, e.Id);
        Assert.Equal(T0.AddTicks(1234560), e.Time); // microseconds: the tenth of a microsecond is dropped
        Assert.Equal(TimeSpan.Zero, e.Time.Offset);
        Assert.Equal(EventTypes.ProcessStarted, e.Type);
        Assert.Equal("train", e.Workload);
        Assert.Equal(1, e.Replica);
        Assert.Equal(4242, e.GetInt64("pid"));
        Assert.Equal(2, e.GetInt64("attempt"));
        Assert.Equal(JsonValueKind.Null, e.Data.GetProperty("resume_from").ValueKind);
        Assert.Equal(["python", "train.py"], e.Data.GetProperty("command").EnumerateArray().Select(x => x.GetString()));
    }

    [Fact]
    public void Data_may_be_a_dictionary_a_JSON_object_or_nothing_but_not_a_scalar()
    {
        using var journal = EventJournal.Open(DbPath, new FakeTimeProvider(T0));

        journal.Append(EventTypes.Signal, "serve", 0, new Dictionary<string, object?> { ["source"] = "probe", ["kind"] = "http", ["detail"] = "503 «unavailable»" });
        journal.Append(EventTypes.SupervisorStopped, null, null);
        journal.Append(EventTypes.Error, null, null, JsonSerializer.SerializeToElement(new { message = "disk full" }));

        var events = journal.Read();
        Assert.Equal("503 «unavailable»", events[0].GetString("detail"));
        Assert.Null(events[1].Workload);
        Assert.Null(events[1].Replica);
        Assert.Equal(JsonValueKind.Object, events[1].Data.ValueKind);
        Assert.Equal("disk full", events[2].GetString("message"));
        Assert.Throws<ArgumentException>(() => journal.Append(EventTypes.Error, null, null, "just a string"));
    }

    [Fact]
    public void Append_stamps_the_time_of_the_time_provider()
    {
        var clock = new FakeTimeProvider(T0);
        using var journal = EventJournal.Open(DbPath, clock);

        journal.Append(EventTypes.SupervisorStarted, null, null, new { pid = 1 });
        clock.Advance(TimeSpan.FromMinutes(5));
        journal.Append(EventTypes.SupervisorStopped, null, null, new { reason = "signal" });

        Assert.Equal([T0, T0.AddMinutes(5)], journal.Read().Select(e => e.Time));
    }

    [Fact]
    public void Read_filters_by_id_time_workload_type_and_family_in_id_order()
    {
        using var journal = EventJournal.Open(DbPath, new FakeTimeProvider(T0));
        long first = journal.Append(T0, EventTypes.ProcessStarted, "train", 0, new { pid = 1, attempt = 1 });
        journal.Append(T0.AddMinutes(1), EventTypes.ProcessStarted, "serve", 0, new { pid = 2, attempt = 1 });
        journal.Append(T0.AddMinutes(2), EventTypes.Restart, "train", 0, new { attempt = 2, delay_s = 1.0 });
        journal.Append(T0.AddMinutes(3), EventTypes.GiveUp, "train", null, new { reason = "budget" });
        long last = journal.Append(T0.AddMinutes(4), EventTypes.WorkloadFailed, "train", null, new { reason = "budget" });

        Assert.Equal(5, journal.Read().Count);
        Assert.Equal(4, journal.Read(afterId: first).Count);
        Assert.Equal(3, journal.Read(since: T0.AddMinutes(2)).Count);
        Assert.Equal(2, journal.Read(until: T0.AddMinutes(1)).Count);
        Assert.Equal(2, journal.Read(since: T0.AddMinutes(1), until: T0.AddMinutes(2)).Count);
        Assert.Equal(4, journal.Read(workload: "train").Count);
        Assert.Equal([EventTypes.Restart, EventTypes.GiveUp], journal.Read(type: "action.*").Select(e => e.Type));
        Assert.Single(journal.Read(type: EventTypes.GiveUp));
        Assert.Empty(journal.Read(type: "action.give"));
        Assert.Equal(["train", "serve"], journal.Read(limit: 2).Select(e => e.Workload));
        Assert.Equal([EventTypes.GiveUp, EventTypes.WorkloadFailed], journal.Tail(2).Select(e => e.Type));
        Assert.Equal(last, journal.Last(EventTypes.WorkloadFailed)!.Id);
        Assert.Equal("serve", journal.Last(EventTypes.ProcessStarted)!.Workload);
        Assert.Equal(first, journal.Last(EventTypes.ProcessStarted, "train")!.Id);
        Assert.Null(journal.Last(EventTypes.Rollback));
    }

    [Fact]
    public void Events_persist_across_reopening()
    {
        using (var journal = EventJournal.Open(DbPath, new FakeTimeProvider(T0)))
        {
            journal.Append(EventTypes.SupervisorStarted, null, null, new { pid = 1 });
        }
        using (var again = EventJournal.Open(DbPath, new FakeTimeProvider(T0)))
        {
            again.Append(EventTypes.SupervisorStarted, null, null, new { pid = 2, resumed = true });
            Assert.Equal([1L, 2L], again.Read().Select(e => e.GetInt64("pid")!.Value));
        }
        using var reader = EventJournal.OpenReadOnly(DbPath);
        Assert.Equal(2, reader.Read().Count);
    }

    [Fact]
    public void Appends_from_several_threads_all_land_with_distinct_ids_in_each_threads_order()
    {
        const int threads = 8, each = 200;
        using var journal = EventJournal.Open(DbPath, new FakeTimeProvider(T0));

        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            for (int i = 0; i < each; i++)
            {
                journal.Append(EventTypes.Evaluations, $"w{t}", 0, new { count = i, triggered = 0 });
            }
        });

        var events = journal.Read();
        Assert.Equal(threads * each, events.Count);
        Assert.Equal(events.Count, events.Select(e => e.Id).Distinct().Count());
        foreach (var group in events.GroupBy(e => e.Workload))
        {
            Assert.Equal(Enumerable.Range(0, each).Select(i => (long)i), group.Select(e => e.GetInt64("count")!.Value));
        }
    }

    [Fact]
    public async Task A_read_only_connection_reads_while_another_connection_writes()
    {
        const int total = 400;
        using var writer = EventJournal.Open(DbPath, new FakeTimeProvider(T0));
        writer.Append(EventTypes.SupervisorStarted, null, null, new { pid = 1 });
        using var reader = EventJournal.OpenReadOnly(DbPath);

        var writing = Task.Run(() =>
        {
            for (int i = 0; i < total; i++)
            {
                writer.Append(EventTypes.Evaluations, "train", 0, new { count = 1, triggered = 0 });
            }
        });
        int seen = 0, reads = 0;
        while (!writing.IsCompleted || seen < total + 1)
        {
            int now = reader.Read().Count;
            Assert.True(now >= seen, $"a read saw {now} events after an earlier one saw {seen}");
            seen = now;
            reads++;
        }
        await writing;

        Assert.Equal(total + 1, reader.Read().Count);
        Assert.True(reads > 1);
    }

    [Fact]
    public void A_journal_closed_by_its_writer_opens_read_only()
    {
        using (var journal = EventJournal.Open(DbPath, new FakeTimeProvider(T0)))
        {
            journal.Append(EventTypes.SupervisorStarted, null, null, new { pid = 1 });
        }

        using var reader = EventJournal.OpenReadOnly(DbPath);

        Assert.Single(reader.Read());
        Assert.Throws<InvalidOperationException>(() => reader.Append(EventTypes.Error, null, null, new { message = "no" }));
    }

    [Fact]
    public void Opening_a_missing_journal_read_only_says_to_run_the_supervisor_first()
    {
        var e = Assert.Throws<KintsugiException>(() => EventJournal.OpenReadOnly(DbPath));

        Assert.Equal(ErrorKind.NotFound, e.Kind);
        Assert.Contains("kintsugi run", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(DbPath));
    }

    [Fact]
    public void A_file_that_is_not_a_journal_is_refused_with_its_name()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(DbPath)!);
        File.WriteAllText(DbPath, "these are not the events you are looking for, not by a long way at all");

        var e = Assert.Throws<KintsugiException>(() => EventJournal.OpenReadOnly(DbPath));

        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains(DbPath, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_disposed_journal_refuses_to_append()
    {
        var journal = EventJournal.Open(DbPath, new FakeTimeProvider(T0));
        journal.Dispose();

        Assert.Throws<ObjectDisposedException>(() => journal.Append(EventTypes.Error, null, null));
    }

    private static object? Scalar(SqliteConnection db, string sql)
    {
        using var command = db.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}
