using System.Diagnostics;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Sdk;

namespace Kintsugi.EndToEnd.Tests.Remote;

/// <summary>Data and figures the remote tests share: a small source tree, PyTorch checkpoints, and the "requests" counts.</summary>
internal static class RemoteTestData
{
    private const string Python = "/usr/bin/python3";

    /// <summary>A small MLP trained a few Adam steps per checkpoint; every checkpoint is a new file (as in TensorStorageTests).</summary>
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

    /// <summary>Writes <paramref name="checkpoints"/> PyTorch checkpoints (about 1.2 MB each) into <paramref name="dir"/>.</summary>
    public static async Task TrainAsync(string dir, int checkpoints)
    {
        if (!File.Exists(Python))
        {
            throw new XunitException($"{Python} does not exist: this test needs Debian's python3-torch (./test.sh installs it)");
        }
        Directory.CreateDirectory(dir);
        var psi = new ProcessStartInfo(Python) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-c", Trainer, dir, checkpoints.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = await p.StandardError.ReadToEndAsync();
        await stdout;
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"the PyTorch trainer failed: {err}");
    }

    /// <summary>A few MiB: a model file, a config, a note in a subfolder and a symlink.</summary>
    public static void WriteSource(string src, int modelBytes = 2 << 20)
    {
        FileTree.WriteRandom(Path.Combine(src, "model.bin"), modelBytes);
        FileTree.WriteRandom(Path.Combine(src, "optimizer.bin"), 700_000);
        File.WriteAllText(Path.Combine(src, "config.json"), "{\"lr\": 0.001}\n");
        Directory.CreateDirectory(Path.Combine(src, "sub"));
        File.WriteAllText(Path.Combine(src, "sub", "notes.txt"), "epoch 1\n");
        File.CreateSymbolicLink(Path.Combine(src, "latest"), "model.bin");
    }

    public static long Summary(JsonElement snapshotOrBackup, string field) =>
        snapshotOrBackup.GetProperty("summary").GetProperty(field).GetInt64();

    /// <summary>The "requests" object of an object-shaped --json output.</summary>
    public static JsonElement Requests(CliResult run)
    {
        var json = run.Json();
        if (!json.TryGetProperty("requests", out var requests) || requests.ValueKind != JsonValueKind.Object)
        {
            throw new XunitException($"the --json output has no \"requests\" object\n{run}");
        }
        return requests;
    }

    /// <summary>The requests a list-shaped --json output (snapshots, ls, key list) reports on stderr: one JSON line {"requests":{…}}.</summary>
    public static JsonElement RequestsOnStdErr(CliResult run)
    {
        var lines = run.StdErrLines.Where(l => l.StartsWith("{\"requests\"", StringComparison.Ordinal)).ToList();
        if (lines.Count != 1)
        {
            throw new XunitException($"expected one {{\"requests\":…}} line on stderr, found {lines.Count}\n{run}");
        }
        using var doc = JsonDocument.Parse(lines[0]);
        return doc.RootElement.GetProperty("requests").Clone();
    }

    /// <summary>One figure of a "requests" object ("get", "list", "put", "bytes_down", …).</summary>
    public static long Figure(JsonElement requests, string name) =>
        requests.TryGetProperty(name, out var v) ? v.GetInt64() : throw new XunitException($"\"requests\" has no \"{name}\": {requests}");

    /// <summary>All requests of every kind.</summary>
    public static long Total(JsonElement requests) =>
        new[] { "list", "get", "get_range", "head", "put", "delete" }.Sum(k => requests.TryGetProperty(k, out var v) ? v.GetInt64() : 0);
}
