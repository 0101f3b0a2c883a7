using System.Text;
using Kintsugi.EndToEnd.Tests.Harness;

namespace Kintsugi.EndToEnd.Tests;

/// <summary>
/// <c>kintsugi run</c> and <c>kintsugi run --check</c> with configurations they must refuse: exit 2 and one
/// line naming file:line:column and the field, never an internal error; and <c>--check</c> on a good one:
/// a summary, exit 0, and nothing created.
/// </summary>
public sealed class RunConfigTests : IDisposable
{
    private readonly Workspace _ws = new();

    private string ConfigPath => _ws.PathOf("kintsugi.yaml");

    private string StateDir => _ws.PathOf(".kintsugi");

    public void Dispose() => _ws.Dispose();

    private void WriteConfig(string yaml) => File.WriteAllText(ConfigPath, yaml, new UTF8Encoding(false));

    private Task<CliResult> RunAsync(params string[] options) => _ws.RunAsync(["run", "--config", ConfigPath, "-q", .. options]);

    [Theory]
    [InlineData("workloads:\n  job:\n    command: [/bin/true,\n    cwd: .\n", "kintsugi.yaml:3:14: not valid YAML: this '[' is not closed")]
    [InlineData("workloads:\n  job:\n    command: [/bin/true]\n    env: { A: b\n    cwd: .\n", "kintsugi.yaml:4:10: not valid YAML: this '{' is not closed")]
    [InlineData("workloads:\n  job:\n    command: [/bin/true]\n   cwd: .\n", "kintsugi.yaml:4:4: not valid YAML:")]
    [InlineData("workloads:\n\tjob:\n\t\tcommand: [/bin/true]\n", "kintsugi.yaml:2:1: not valid YAML: a tab in the indentation")]
    [InlineData("workloads:\n  job:\n    command: [\"/bin/true]\n", "kintsugi.yaml:3:15: not valid YAML:")]
    [InlineData("workloads:\n  job:\n    command: [/bin/true]\n---\nworkloads: {}\n", "kintsugi.yaml:4:1: a second YAML document starts here")]
    [InlineData("workloads:\n  job:\n    command: [/bin/true]\n    env:\n      FOO:\n", "workloads.job.env.FOO: no value; give one, or write '' for an empty string")]
    [InlineData("workloads:\n  job:\n    command: [/bin/echo, ~]\n", "kintsugi.yaml:3:26: workloads.job.command[1]: no value")]
    [InlineData("workloads:\n  job:\n    command: python3 train.py\n", "kintsugi.yaml:3:14: workloads.job.command: command must be a list of the program and its arguments, e.g. [python3, train.py]")]
    [InlineData("workloads:\n  job:\n    command: [/bin/true]\n    restart: { backoff: { initial: 1m, max: 10s } }\n", "max (10s) is smaller than initial (1m)")]
    [InlineData("workloads:\n  job:\n    command: [no-such-program-kintsugi]\n", "kintsugi.yaml:3:15: workloads.job.command: program 'no-such-program-kintsugi' not found on PATH")]
    [InlineData("workloads:\n  job:\n    command: [./missing.sh]\n", "kintsugi.yaml:3:15: workloads.job.command: program './missing.sh' not found:")]
    [InlineData("workloads:\n  job:\n    command: [/bin/true]\n    cwd: no/such/folder\n", "kintsugi.yaml:4:10: workloads.job.cwd: folder ")]
    [InlineData("workloads:\n  job:\n    command: [/bin/true, --size, big]\n    monitors:\n      - log: x\n        then: { restart: { adjust: { args: { --size: halve } } } }\n", "kintsugi.yaml:6:54: workloads.job.monitors[0].then.restart.adjust.args.--size: arg --size is 'big', not a number, so it cannot halve")]
    public async Task A_refused_config_exits_2_with_one_line_naming_its_position_with_and_without_check(string yaml, string expected)
    {
        WriteConfig(yaml);
        foreach (var options in new[] { [], new[] { "--check" } })
        {
            // A refused run records the error in the journal; --check must not, so it starts without one.
            if (Directory.Exists(StateDir))
            {
                Directory.Delete(StateDir, recursive: true);
            }
            var run = await RunAsync(options);
            string line = run.ShouldFailCleanly(2);
            Assert.StartsWith("kintsugi: ", line, StringComparison.Ordinal);
            Assert.Contains(expected, line, StringComparison.Ordinal);
            if (options.Length > 0)
            {
                Assert.False(Directory.Exists(StateDir), $"--check created {StateDir}\n{run}");
            }
        }
    }

    [Fact]
    public async Task Halving_a_variable_set_neither_in_env_nor_in_the_inherited_environment_is_refused_at_start()
    {
        WriteConfig("workloads:\n  job:\n    command: [/bin/true]\n    monitors:\n      - log: x\n        then: { restart: { adjust: { env: { ADJUST_TEST_NEWVAR: halve } } } }\n");
        var unset = new Dictionary<string, string?> { ["ADJUST_TEST_NEWVAR"] = null };
        foreach (var options in new[] { new[] { "run", "--config", ConfigPath, "-q" }, ["run", "--config", ConfigPath, "-q", "--check"] })
        {
            var run = await _ws.RunWithAsync(unset, options);
            string line = run.ShouldFailCleanly(2);
            Assert.Equal("kintsugi: kintsugi.yaml:6:65: workloads.job.monitors[0].then.restart.adjust.env.ADJUST_TEST_NEWVAR: env ADJUST_TEST_NEWVAR is not set, so it cannot halve; set it in the workload's 'env', or in the environment kintsugi runs in", line);
        }

        // Inherited, it can be halved: the check passes.
        var set = await _ws.RunWithAsync(new Dictionary<string, string?> { ["ADJUST_TEST_NEWVAR"] = "8" }, "run", "--config", ConfigPath, "-q", "--check");
        Assert.True(set.ExitCode == 0, set.ToString());
    }

    [Fact]
    public async Task Check_validates_a_good_config_prints_a_summary_and_creates_nothing()
    {
        Directory.CreateDirectory(_ws.PathOf("jobs"));
        WriteConfig("""
            x-job: &job
              command: [/bin/sleep, "3600"]
              cwd: jobs
              restart: { when: always, backoff: { initial: 1s } }
            workloads:
              trainer:
                <<: *job
                checkpoints: { dir: ckpt/deep/er }
              server:
                <<: *job
                replicas: 3
                port: 18100
            """);
        var before = Directory.GetFileSystemEntries(_ws.Root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();

        var run = (await _ws.RunAsync("run", "--config", ConfigPath, "--check")).ShouldSucceed();
        Assert.Equal(
            $"{ConfigPath}: ok: 2 workloads (trainer, server ×3); journal {Path.Combine(StateDir, "journal.db")}; repository {Path.Combine(StateDir, "repository")}",
            Assert.Single(run.StdOutLines));
        Assert.Empty(run.StdErrLines);

        var json = (await _ws.RunAsync("run", "--config", ConfigPath, "--check", "--json")).ShouldSucceed().Json();
        Assert.True(json.GetProperty("ok").GetBoolean());
        Assert.Equal(Path.Combine(StateDir, "journal.db"), json.GetProperty("journal").GetString());
        var workloads = json.GetProperty("workloads").EnumerateArray().ToList();
        Assert.Equal(["trainer", "server"], workloads.Select(w => w.GetProperty("name").GetString()));
        Assert.Equal(3, workloads[1].GetProperty("replicas").GetInt32());
        Assert.Equal(_ws.PathOf("jobs/ckpt/deep/er"), workloads[0].GetProperty("checkpoint_dir").GetString());
        Assert.Equal("low", json.GetProperty("protection").GetProperty("priority").GetString());

        // No journal, no repository, and the checkpoint folder made to test it is gone again.
        var after = Directory.GetFileSystemEntries(_ws.Root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task Check_refuses_a_checkpoint_folder_that_cannot_be_made_naming_its_position()
    {
        // Root ignores permissions; a folder below a regular file cannot be created by anyone.
        File.WriteAllText(_ws.PathOf("blocker"), "a file, not a folder\n");
        WriteConfig("workloads:\n  job:\n    command: [/bin/true]\n    checkpoints: { dir: blocker/ckpt }\n");
        var run = await RunAsync("--check");
        string line = run.ShouldFailCleanly(2);
        Assert.Contains($"kintsugi.yaml:4:25: workloads.job.checkpoints.dir: folder {_ws.PathOf("blocker/ckpt")} cannot be written", line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(StateDir), $"--check created {StateDir}\n{run}");
    }
}
