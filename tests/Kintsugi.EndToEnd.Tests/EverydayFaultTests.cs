using System.Diagnostics;
using Xunit.Abstractions;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// Faults every user meets: a file the backup may not read, a disk that fills up. Both need root to
/// arrange (another user's ids; a small tmpfs), which the test machines and CI have.
/// </summary>
public sealed class EverydayFaultTests(ITestOutputHelper output) : IDisposable
{
    private readonly Workspace _ws = new();

    public void Dispose() => _ws.Dispose();

    private static bool CanArrange(ITestOutputHelper output, string what)
    {
        if (Environment.UserName == "root")
        {
            return true;
        }
        output.WriteLine($"not run: arranging {what} needs root");
        return false;
    }

    [Fact]
    public async Task An_unreadable_file_is_reported_by_name_with_exit_3_and_the_rest_is_backed_up()
    {
        if (!CanArrange(output, "a file another user cannot read"))
        {
            return;
        }
        // "nobody" (uid 65534) cannot read a file of mode 000; root could.
        string src = _ws.PathOf("src");
        Directory.CreateDirectory(src);
        File.WriteAllText(Path.Combine(src, "readable.txt"), "weights");
        File.WriteAllText(Path.Combine(src, "secret.txt"), "not for nobody");
        File.SetUnixFileMode(_ws.Root, (UnixFileMode)0x1FF);
        File.SetUnixFileMode(_ws.PasswordFile, (UnixFileMode)0x1A4);
        File.SetUnixFileMode(Path.Combine(src, "secret.txt"), UnixFileMode.None);
        var env = new Dictionary<string, string?> { ["HOME"] = _ws.Root, ["DOTNET_CLI_HOME"] = _ws.Root };
        string[] repo = ["--repo", _ws.Repo, "--password-file", _ws.PasswordFile];
        (await Cli.RunAsync(_ws.Root, env, [.. repo, "init", .. Workspace.CheapKdf], asUser: "65534")).ShouldSucceed();

        var backup = await Cli.RunAsync(_ws.Root, env, [.. repo, "backup", src], asUser: "65534");

        backup.ShouldExit(3).ShouldHaveNoStackTrace().StdErrShouldContain(Path.Combine(src, "secret.txt"));
        var listing = (await Cli.RunAsync(_ws.Root, env, [.. repo, "ls", "latest"], asUser: "65534")).ShouldSucceed();
        Assert.Contains(Path.Combine(src, "readable.txt"), listing.StdOutLines);
        Assert.DoesNotContain(Path.Combine(src, "secret.txt"), listing.StdOutLines);
    }

    [Fact]
    public async Task A_full_disk_fails_the_backup_with_one_line_and_leaves_the_repository_valid()
    {
        if (!CanArrange(output, "a full file system"))
        {
            return;
        }
        string mount = _ws.PathOf("small-disk");
        Directory.CreateDirectory(mount);
        if (!Run("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mount))
        {
            output.WriteLine("not run: this machine does not allow mounting a tmpfs");
            return;
        }
        try
        {
            string repo = Path.Combine(mount, "repo");
            string first = _ws.PathOf("first");
            Directory.CreateDirectory(first);
            File.WriteAllBytes(Path.Combine(first, "small.bin"), RandomBytes(100_000));
            string big = _ws.PathOf("big");
            Directory.CreateDirectory(big);
            File.WriteAllBytes(Path.Combine(big, "checkpoint.bin"), RandomBytes(12 << 20));
            string[] r = ["--repo", repo, "--password-file", _ws.PasswordFile];
            (await _ws.RunAsync([.. r, "init", .. Workspace.CheapKdf])).ShouldSucceed();
            (await _ws.RunAsync([.. r, "backup", first])).ShouldSucceed();

            var full = await _ws.RunAsync([.. r, "backup", big]);

            string line = full.ShouldFailCleanly(1);
            Assert.Contains("no space left", line, StringComparison.Ordinal);
            var check = (await _ws.RunAsync([.. r, "check", "--read-data"])).ShouldSucceed();
            check.StdOutShouldContain("no errors found");
            Assert.Single((await _ws.RunAsync([.. r, "snapshots", "--json"])).ShouldSucceed().Json().EnumerateArray());
            string target = _ws.PathOf("restored");
            (await _ws.RunAsync([.. r, "restore", "latest", "--target", target])).ShouldSucceed();
            Assert.Equal(File.ReadAllBytes(Path.Combine(first, "small.bin")), File.ReadAllBytes(target + Path.Combine(first, "small.bin")));
        }
        finally
        {
            Run("umount", "-l", mount);
        }
    }

    private static byte[] RandomBytes(int n)
    {
        var bytes = new byte[n];
        System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
        return bytes;
    }

    private static bool Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        return p.ExitCode == 0;
    }
}
