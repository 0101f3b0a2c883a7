using System.Security.Cryptography;
using System.Text.Json;
using Kintsugi.EndToEnd.Tests.Harness;
using Xunit.Abstractions;

namespace Kintsugi.EndToEnd.Tests.Supervisor;

/// <summary>
/// A supervised PyTorch job whose checkpoints are protected in a local repository and copied to a
/// second one ('copies:'): each copy is journaled, `kintsugi status` shows the RPO of both, and when
/// the local repository and the checkpoint folder are both lost, a rollback restores from the copy.
/// </summary>
[Collection(SupervisorCollection.Name)]
public sealed class SupervisorCopiesTests(ITestOutputHelper output) : SupervisorTestBase(output)
{
    /// <summary>
    /// Attempt 1 trains a small model for 30 steps, saving checkpoints at steps 10, 20 and 30, and
    /// waits for the file GO; then it reports a NaN loss at step 30 and waits. An attempt that resumes
    /// loads the checkpoint it resumed from (so a restored file must be a real checkpoint), writes its
    /// step into RESUMED and exits 0.
    /// </summary>
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

    [Fact]
    public async Task Checkpoints_are_copied_and_a_rollback_restores_from_the_copy_when_the_local_repository_and_checkpoints_are_gone()
    {
        RequireTorch();
        string local = Ws.PathOf("local-repo");
        string offsite = Ws.PathOf("offsite-repo");
        File.WriteAllText(Ws.PathOf("trainer.py"), Trainer);
        WriteConfig($$"""
            repository: ./local-repo
            copies: [./offsite-repo]
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
        var s = StartSupervisor();
        bool Copied(IEnumerable<JournalEntry> ev, int step) =>
            ev.Any(e => e.Is("checkpoint.copied", "trainer") && e.Str("path") == Ckpt(step) && e.Str("repository") == offsite);
        var before = await s.WaitForAsync(ev => Copied(ev, 10) && Copied(ev, 20) && Copied(ev, 30)
            && ev.Count(e => e.Is("checkpoint.protected", "trainer")) >= 3, "the checkpoints of steps 10, 20 and 30 protected and copied");

        // The journal: each copy names the copy repository, its snapshot there, the bytes and the time it took.
        foreach (var copied in OfType(before, "checkpoint.copied", "trainer"))
        {
            Check(copied.Str("snapshot") is { Length: 64 } && copied.Str("source_snapshot") is { Length: 64 } && copied.Long("bytes") is >= 0 && copied.Double("duration_s") is >= 0,
                $"checkpoint.copied #{copied.Id} lacks its snapshot, source_snapshot, bytes or duration_s", before, s);
        }
        Check(OfType(before, "checkpoint.protected", "trainer").All(e => e.Str("repository") == local), $"expected every checkpoint.protected to name the repository {local}", before, s);
        Check(!OfType(before, "checkpoint.copy-failed").Any(), "expected no failed copy", before, s);

        // `kintsugi status --json`: the RPO of the primary and of the copy.
        var status = (await Ws.RunAsync("status", "--journal", JournalPath, "--json")).ShouldSucceed().Json();
        var repositories = status.GetProperty("workloads").EnumerateArray().Single(w => w.GetProperty("workload").GetString() == "trainer").GetProperty("repositories").EnumerateArray().ToList();
        string shown = string.Join(", ", repositories.Select(r => JsonSerializer.Serialize(r)));
        Check(repositories.Count == 2, $"expected 2 repositories in status --json, got: {shown}", before, s);
        Check(repositories[0].GetProperty("repository").GetString() == local && repositories[0].GetProperty("role").GetString() == "primary"
            && repositories[1].GetProperty("repository").GetString() == offsite && repositories[1].GetProperty("role").GetString() == "copy"
            && repositories.All(r => r.GetProperty("rpo_seconds").GetDouble() >= 0 && r.TryGetProperty("last_checkpoint", out _)),
            $"expected the primary {local} and the copy {offsite}, each with rpo_seconds and last_checkpoint; got: {shown}", before, s);
        var text = (await Ws.RunAsync("status", "--journal", JournalPath)).ShouldSucceed();
        Check(text.StdOut.Contains("copy " + offsite, StringComparison.Ordinal), $"expected `kintsugi status` to show the copy's RPO; got:\n{text.StdOut}", before, s);

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
            $"expected the rollback to restore {Ckpt(20)} from the copy {offsite}; it restored {rollback.Str("checkpoint") ?? "nothing"} from {rollback.Str("repository") ?? "null"}", events, s);
        Check(events.Any(e => e.Is("error", "trainer") && e.Str("message") is { } m && m.StartsWith($"checkpoint {Ckpt(20)} could not be restored from the repository", StringComparison.Ordinal)),
            $"expected an error event saying the local repository could not restore {Ckpt(20)}", events, s);
        var starts = OfType(events, "process.started", "trainer", 0);
        Check(starts.Count == 2 && starts[1].Str("resume_from") == Ckpt(20), $"expected attempt 2 to resume from {Ckpt(20)}", events, s);
        Check(File.Exists(Ckpt(20)) && SHA256.HashData(File.ReadAllBytes(Ckpt(20))).AsSpan().SequenceEqual(good),
            $"expected {Ckpt(20)} restored bit-exact from the copy", events, s);
        Check(File.Exists(Ws.PathOf("resumed")) && File.ReadAllText(Ws.PathOf("resumed")) == "20",
            "expected attempt 2 to load the restored checkpoint with torch.load and find step 20 in it", events, s);
        Check(OfType(events, "checkpoint.bad", "trainer").Select(e => e.Str("path")).SequenceEqual([Ckpt(30)]), $"expected {Ckpt(30)} marked bad, and only it", events, s);
    }
}
