using System.Runtime.InteropServices;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>Hard links, non-ASCII names, empty files and folders survive a round trip through the CLI.</summary>
public sealed partial class SpecialFileTests
{
    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string newPath);

    private static void HardLink(string existing, string newPath)
    {
        if (Link(existing, newPath) != 0)
        {
            throw new IOException($"link({existing}, {newPath}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [Fact]
    public async Task Hard_links_unicode_names_and_empty_files_survive_backup_and_restore()
    {
        using var ws = new Workspace();
        string src = ws.PathOf("src");
        string weights = Path.Combine(src, "weights.bin");
        string weightsLink = Path.Combine(src, "linked", "weights-hardlink.bin");
        string unicode = Path.Combine(src, "données été", "модель-日本語-🙂.txt");
        string empty = Path.Combine(src, "empty.txt");
        string emptyDir = Path.Combine(src, "empty-folder");
        FileTree.WriteRandom(weights, 50_000);
        Directory.CreateDirectory(Path.GetDirectoryName(weightsLink)!);
        HardLink(weights, weightsLink);
        Directory.CreateDirectory(Path.GetDirectoryName(unicode)!);
        File.WriteAllText(unicode, "ünïcödé content ✓\n");
        File.WriteAllBytes(empty, []);
        Directory.CreateDirectory(emptyDir);
        await ws.InitAsync();

        var backup = await ws.BackupAsync(src);
        Assert.Empty(backup.GetProperty("issues").EnumerateArray());

        var ls = (await ws.RepoAsync("ls", "latest")).ShouldSucceed();
        foreach (var path in new[] { weights, weightsLink, unicode, Path.GetDirectoryName(unicode)!, empty, emptyDir })
        {
            Assert.True(ls.StdOutLines.Contains(path), $"ls latest should list {path}\n{ls}");
        }

        string target = ws.PathOf("restored");
        (await ws.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        FileTree.AssertSameTree(src, target + src);
        Assert.Equal(0, new FileInfo(target + empty).Length);

        // The two names of the hard link are one file again: a write through one shows through the other.
        File.AppendAllText(target + weights, "x");
        Assert.Equal(File.ReadAllBytes(target + weights), File.ReadAllBytes(target + weightsLink));

        // Restoring only the unicode file by its path works too.
        string partial = ws.PathOf("partial");
        (await ws.RepoAsync("restore", "latest", "--target", partial, "--include", unicode)).ShouldSucceed();
        Assert.Equal(File.ReadAllBytes(unicode), File.ReadAllBytes(partial + unicode));
    }
}
