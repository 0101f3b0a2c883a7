using Kintsugi.Supervision.Monitors;
using Microsoft.Extensions.Time.Testing;

namespace Kintsugi.Supervision.Tests;

public sealed class LogFileFollowerTests : IAsyncDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    private readonly string _dir = Directory.CreateTempSubdirectory("kintsugi-follow-").FullName;
    private readonly FakeTimeProvider _time = new();
    private readonly List<string> _lines = [];
    private readonly LogFileFollower _follower;
    private TaskCompletionSource? _polled;

    public LogFileFollowerTests()
    {
        _follower = new LogFileFollower(LogPath, Poll, _time, line =>
        {
            lock (_lines)
            {
                _lines.Add(line);
            }
        });
        _follower.Polled += () => Volatile.Read(ref _polled)?.TrySetResult();
    }

    private string LogPath => Path.Combine(_dir, "train.log");

    private IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _follower.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Advances one poll interval and waits until the follower has polled.</summary>
    private async Task PollAsync()
    {
        var polled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _polled, polled);
        _time.Advance(Poll);
        await polled.Task.Bounded();
    }

    private void Append(string text) => File.AppendAllText(LogPath, text);

    [Fact]
    public async Task Delivers_appended_complete_lines_but_not_what_was_there_before_start()
    {
        Append("from an earlier run\n");
        _follower.Start();
        Append("first\nsec");
        await PollAsync();
        Assert.Equal(["first"], Lines);
        Append("ond\r\nthird\n");
        await PollAsync();
        Assert.Equal(["first", "second", "third"], Lines);
        await PollAsync();
        Assert.Equal(["first", "second", "third"], Lines);
    }

    [Fact]
    public async Task A_file_that_appears_later_is_read_from_its_beginning()
    {
        _follower.Start();
        await PollAsync();
        Assert.Empty(Lines);
        Append("hello\n\nworld\n");
        await PollAsync();
        Assert.Equal(["hello", "", "world"], Lines);
    }

    [Fact]
    public async Task After_truncation_reading_starts_over()
    {
        Append("");
        _follower.Start();
        Append("a long first line\n");
        await PollAsync();
        File.WriteAllText(LogPath, "b\n");
        await PollAsync();
        Assert.Equal(["a long first line", "b"], Lines);
    }

    [Fact]
    public async Task After_rotation_the_rest_of_the_old_file_then_the_new_file()
    {
        Append("");
        _follower.Start();
        Append("one\n");
        await PollAsync();
        Append("two\nunfinished");
        File.Move(LogPath, LogPath + ".1");
        await PollAsync(); // no file at the path: keeps the old one
        Append("three\n");
        await PollAsync();
        Assert.Equal(["one", "two", "unfinished", "three"], Lines);
    }

    [Fact]
    public async Task Stop_ends_polling()
    {
        _follower.Start();
        await _follower.StopAsync().Bounded();
        Append("late\n");
        _time.Advance(Poll * 3);
        Assert.Empty(Lines);
    }
}
