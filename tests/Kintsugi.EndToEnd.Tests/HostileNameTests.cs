using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// A file name is whatever bytes someone put in a shared folder, or in a repository they wrote:
/// printed raw, control characters in it would drive the terminal of whoever lists it.
/// </summary>
public sealed class HostileNameTests
{
    [Fact]
    public async Task Control_characters_in_file_names_are_printed_escaped_by_ls_and_diff()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        FileTree.WriteRandom(Path.Combine(src, "plain.txt"), 100);
        await ws.InitAsync();
        await ws.BackupAsync(src);
        // Sets the terminal's title, rings its bell and starts a line of its own.
        string name = "title\u001b]0;owned\u0007\nforged line";
        FileTree.WriteRandom(Path.Combine(src, name), 100);
        await ws.BackupAsync(src);
        var ids = (await ws.SnapshotsAsync()).Select(s => s.GetProperty("id").GetString()!).ToList();

        var runs = new[]
        {
            (await ws.RepoAsync("ls", "latest")).ShouldSucceed(),
            (await ws.RepoAsync("ls", "--long", "latest")).ShouldSucceed(),
            (await ws.RepoAsync("diff", ids[0], ids[1])).ShouldSucceed(),
        };

        foreach (var run in runs)
        {
            Assert.False(run.StdOut.Any(c => char.IsControl(c) && c != '\n'), $"raw control characters in the output\n{run}");
            Assert.Single(run.StdOutLines, l => l.EndsWith(@"title\x1b]0;owned\x07\x0aforged line", StringComparison.Ordinal));
            Assert.DoesNotContain(run.StdOutLines, l => l.StartsWith("forged line", StringComparison.Ordinal));
        }
    }
}
