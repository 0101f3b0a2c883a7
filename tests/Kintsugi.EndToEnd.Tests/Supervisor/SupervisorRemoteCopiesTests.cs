using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// A supervised PyTorch job whose checkpoints are protected in a local repository and copied off-site to
/// S3 (s3rver; credentials only in the supervisor's environment): each copy is journaled, `kintsugi status`
/// shows the RPO of both, and when the local repository and the checkpoint folder are both lost, a NaN's
/// rollback restores the checkpoint from S3.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class SupervisorRemoteCopiesTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    /// <summary>The process environment is shared: one test at a time sets variables for the supervisor it starts.</summary>
    private static readonly Lock EnvironmentGate = new();

    /// <summary>As in <see cref="SupervisorCopiesTests"/>: checkpoints at steps 10, 20, 30; a NaN at 30 after GO; a resumed attempt loads its checkpoint and writes its step into RESUMED.</summary>
    private const string Trainer = """
        import json, os, time, torch
        attempt = int(os.environ["KINTSUGI_ATTEMPT"])
        ckpt = os.environ["KINTSUGI_CHECKPOINT_DIR"]
        resume = os.environ.get("KINTSUGI_RESUME_FROM") or ""
        if attempt > 1:
            step = torch.load(resume)["step"] if resume else 0
            with open(os.environ["RESUMED"], "w") as f:
                f.write(str(step))
            raise SystemExit(0)
        torch.manual_seed(0)
        model = torch.nn.Linear(16, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        x = torch.randn(256, 16)
        y = x.sum(1, keepdim=True)
        for step in range(1, 31):
            loss = ((model(x) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 10 == 0:
                path = os.path.join(ckpt, f"step-{step:06d}.pt")
                torch.save({"step": step, "model": model.state_dict(), "opt": opt.state_dict()}, path + ".tmp")
                os.replace(path + ".tmp", path)
                if step < 30:
                    print("KINTSUGI " + json.dumps({"step": step, "loss": loss.item()}), flush=True)
                time.sleep(0.3)
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.05)
        print("KINTSUGI " + json.dumps({"step": 30, "loss": float("nan")}), flush=True)
        time.sleep(60)
        """;

    private string Ckpt(int step) => Path.Combine(CheckpointDir, $"step-{step:D6}.pt");

    /// <summary>
    /// Starts the supervisor with <paramref name="environment"/> added to what it inherits. SupervisorProcess.Start
    /// takes no environment, so the variables are set in this process just while it copies its own.
    /// </summary>
    private SupervisorProcess StartSupervisorWith(IReadOnlyDictionary<string, string> environment)
    {
        lock (EnvironmentGate)
        {
            var saved = environment.Keys.ToDictionary(k => k, System.Environment.GetEnvironmentVariable);
            try
            {
                foreach (var (name, value) in environment)
                {
                    System.Environment.SetEnvironmentVariable(name, value);
                }
                return StartSupervisor();
            }
            finally
            {
                foreach (var (name, value) in saved)
                {
                    System.Environment.SetEnvironmentVariable(name, value);
                }
            }
        }
    }

    [Fact]
    public async Task Checkpoints_are_copied_to_s3_and_a_rollback_restores_from_s3_when_the_local_repository_and_checkpoints_are_gone()
    {
        RequireTorch();
        await using var s3 = await S3rverServer.StartAsync();
        string local = Ws.PathOf("local-repo");
        string offsite = s3.Url("supervised-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
        File.WriteAllText(Ws.PathOf("trainer.py"), Trainer);
        WriteConfig($$"""
            repository: ./local-repo
            copies: [{{Quote(offsite)}}]
            workloads:
              trainer:
                command: {{YamlList(Python, Ws.PathOf("trainer.py"))}}
                env: { GO: {{Quote(Ws.PathOf("go"))}}, RESUMED: {{Quote(Ws.PathOf("resumed"))}} }
                checkpoints: { dir: ckpt, settle: 100ms }
                restart:
                  backoff: { initial: 100ms }
                stop: { signal: SIGTERM, grace: 2s }
                monitors:
                  - metric: { name: loss, is: nan-or-inf }
                    then: rollback
            """);
        var s = StartSupervisorWith(new Dictionary<string, string>
        {
            ["AWS_ACCESS_KEY_ID"] = S3rverServer.AccessKey,
            ["AWS_SECRET_ACCESS_KEY"] = S3rverServer.SecretKey,
            ["AWS_REGION"] = "us-east-1",
            ["XDG_CACHE_HOME"] = Ws.PathOf("cache"),
        });
        bool Copied(IEnumerable<JournalEntry> ev, int step) =>
            ev.Any(e => e.Is("checkpoint.copied", "trainer") && e.Str("path") == Ckpt(step) && e.Str("repository") == offsite);
        var before = await s.WaitForAsync(ev => (Copied(ev, 10) && Copied(ev, 20) && Copied(ev, 30) && ev.Count(e => e.Is("checkpoint.protected", "trainer")) >= 3)
            || ev.Any(e => e.Is("checkpoint.copy-failed")), "the checkpoints of steps 10, 20 and 30 protected and copied to S3");
        Check(!OfType(before, "checkpoint.copy-failed").Any(), "expected no failed copy to S3", before, s);

        foreach (var copied in OfType(before, "checkpoint.copied", "trainer"))
        {
            Check(copied.Str("snapshot") is { Length: 64 } && copied.Str("source_snapshot") is { Length: 64 } && copied.Long("bytes") is > 0 && copied.Double("duration_s") is >= 0,
                $"checkpoint.copied #{copied.Id} lacks its snapshot, source_snapshot, bytes or duration_s", before, s);
        }
        Check(OfType(before, "checkpoint.protected", "trainer").All(e => e.Str("repository") == local), $"expected every checkpoint.protected to name the repository {local}", before, s);

        // `kintsugi status --json` (no credentials needed: it reads the journal): the RPO of the primary and of S3.
        var status = (await Ws.RunAsync("status", "--journal", JournalPath, "--json")).ShouldSucceed().Json();
        var repositories = status.GetProperty("workloads").EnumerateArray().Single(w => w.GetProperty("workload").GetString() == "trainer").GetProperty("repositories").EnumerateArray().ToList();
        string shown = string.Join(", ", repositories.Select(r => JsonSerializer.Serialize(r)));
        Check(repositories.Count == 2
            && repositories[0].GetProperty("repository").GetString() == local && repositories[0].GetProperty("role").GetString() == "primary"
            && repositories[1].GetProperty("repository").GetString() == offsite && repositories[1].GetProperty("role").GetString() == "copy"
            && repositories.All(r => r.GetProperty("rpo_seconds").GetDouble() >= 0 && r.TryGetProperty("last_checkpoint", out _)),
            $"expected the primary {local} and the copy {offsite}, each with rpo_seconds and last_checkpoint; got: {shown}", before, s);

        // The disaster: the local repository and every checkpoint on disk are gone. Then a NaN at step 30.
        byte[] good = SHA256.HashData(File.ReadAllBytes(Ckpt(20)));
        Directory.Delete(local, recursive: true);
        Directory.Delete(CheckpointDir, recursive: true);
        File.WriteAllText(Ws.PathOf("go"), "");

        int code = await s.WaitForExitAsync();
        var events = await s.EventsAsync();
        Output.WriteLine(Dump(events));
        Check(code == 0, $"expected exit code 0, got {code}", events, s);
        var rollback = OfType(events, "action.rollback", "trainer", 0).Single();
        Check(rollback.Str("checkpoint") == Ckpt(20) && rollback.Str("repository") == offsite,
            $"expected the rollback to restore {Ckpt(20)} from S3 ({offsite}); it restored {rollback.Str("checkpoint") ?? "nothing"} from {rollback.Str("repository") ?? "null"}", events, s);
        Check(File.Exists(Ckpt(20)) && SHA256.HashData(File.ReadAllBytes(Ckpt(20))).AsSpan().SequenceEqual(good),
            $"expected {Ckpt(20)} restored bit-exact from S3", events, s);
        Check(File.Exists(Ws.PathOf("resumed")) && File.ReadAllText(Ws.PathOf("resumed")) == "20",
            "expected attempt 2 to load the restored checkpoint with torch.load and find step 20 in it", events, s);
        string journal = JournalReader.Dump(events) + s.StdOut + s.StdErr;
        Check(!journal.Contains(S3rverServer.SecretKey, StringComparison.Ordinal), "the journal or the supervisor's output holds the S3 secret key", events, s);
    }
}
