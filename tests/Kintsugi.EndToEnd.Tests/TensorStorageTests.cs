using System.Diagnostics;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>Real PyTorch checkpoints through backup, stats and restore, with and without the tensor-aware path.</summary>
public sealed class TensorStorageTests(ITestOutputHelper output)
{
    private const string Python = "/usr/bin/python3";

    /// <summary>A small MLP trained a few Adam steps per checkpoint; every checkpoint is a new file, as a training job writes them.</summary>
    private const string Trainer = """
        import sys, torch
        torch.manual_seed(0)
        out, count = sys.argv[1], int(sys.argv[2])
        model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
        for k in range(count):
            for _ in range(5):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, f"{out}/step-{k:03d}.pt")
        """;

    private static async Task TrainAsync(string dir, int checkpoints)
    {
        if (!File.Exists(Python))
        {
            throw new Xunit.Sdk.XunitException($"{Python} does not exist: this test needs Debian's python3-torch (./test.sh installs it)");
        }
        Directory.CreateDirectory(dir);
        var psi = new ProcessStartInfo(Python) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-c", Trainer, dir, checkpoints.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        string err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"the PyTorch trainer failed: {err}");
    }

    private static Dictionary<string, (long In, long Stored)> Codecs(JsonElement stats) =>
        stats.GetProperty("codecs").EnumerateArray().ToDictionary(
            c => c.GetProperty("codec").GetString()!,
            c => (c.GetProperty("bytes_in").GetInt64(), c.GetProperty("bytes_stored").GetInt64()));

    [Fact]
    public async Task Pytorch_checkpoints_are_split_by_tensor_stored_as_deltas_and_restored_bit_exact()
    {
        using var ws = new Workspace();
        string ckpt = ws.PathOf("ckpt");
        await ws.InitAsync();
        await TrainAsync(ckpt, 1);
        var first = await ws.BackupAsync(ckpt);
        File.Move(Path.Combine(ckpt, "step-000.pt"), ws.PathOf("step-000.pt.kept"));
        await TrainAsync(ckpt, 2);
        File.Move(ws.PathOf("step-000.pt.kept"), Path.Combine(ckpt, "step-000.pt"), overwrite: true);
        var second = await ws.BackupAsync(ckpt);

        var stats = (await ws.RepoAsync("stats", "latest", "--json")).ShouldSucceed().Json();
        var files = stats.GetProperty("files").EnumerateArray().ToDictionary(f => Path.GetFileName(f.GetProperty("path").GetString()!), f => f);
        Assert.Equal("pytorch-zip", files["step-001.pt"].GetProperty("layout").GetString());
        var codecs = Codecs(stats);
        output.WriteLine(string.Join("\n", codecs.Select(c => $"{c.Key}: {c.Value.In} -> {c.Value.Stored}")));
        Assert.True(codecs.Keys.Any(k => k.StartsWith("delta ", StringComparison.Ordinal)), "step-001.pt's tensors are stored as deltas against step-000.pt's");
        long firstStored = first.GetProperty("summary").GetProperty("bytes_added_stored").GetInt64();
        long secondStored = second.GetProperty("summary").GetProperty("bytes_added_stored").GetInt64();
        output.WriteLine($"first checkpoint stored {firstStored} bytes, second {secondStored}");
        Assert.True(secondStored < firstStored, "the second checkpoint costs less than the first");

        string target = ws.PathOf("restored");
        (await ws.RepoAsync("restore", "latest", "--target", target)).ShouldSucceed();
        FileTree.AssertSameTree(ckpt, target + ckpt);
        (await ws.RepoAsync("check", "--read-data")).ShouldSucceed();
        var table = (await ws.RepoAsync("stats", "latest")).ShouldSucceed();
        table.StdOutShouldContain("pytorch-zip").StdOutShouldContain("delta");
    }

    [Fact]
    public async Task No_tensors_stores_tensor_files_as_opaque_chunks_and_a_bad_delta_chain_is_a_usage_error()
    {
        using var ws = new Workspace();
        string ckpt = ws.PathOf("ckpt");
        await ws.InitAsync();
        await TrainAsync(ckpt, 1);
        await ws.BackupAsync(ckpt, "--no-tensors");
        var stats = (await ws.RepoAsync("stats", "latest", "--json")).ShouldSucceed().Json();
        Assert.All(Codecs(stats).Keys, k => Assert.True(k.StartsWith("data ", StringComparison.Ordinal) || k.StartsWith("tree ", StringComparison.Ordinal), $"--no-tensors stored a {k} blob"));
        Assert.False(stats.GetProperty("files")[0].TryGetProperty("layout", out var layout) && layout.ValueKind != JsonValueKind.Null, "a file stored as opaque bytes has no layout");

        (await ws.RepoAsync("backup", ckpt, "--delta-chain", "0")).ShouldFailCleanly(2);
        (await ws.RepoAsync("stats", "nonexistent")).ShouldFailCleanly(1);
    }
}
