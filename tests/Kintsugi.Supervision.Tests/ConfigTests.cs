using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Tests;

/// <summary>kintsugi.yaml: what parses into what, and every mistake named with file, line and field.</summary>
public sealed class ConfigTests
{
    private const string Source = "/etc/app/kintsugi.yaml";

    private static SupervisorConfig Parse(string yaml) => ConfigLoader.Parse(yaml, Source);

    private static string Refused(string yaml) => Assert.Throws<ConfigException>(() => Parse(yaml)).Message;

    [Fact]
    public void The_issue_example_parses_into_the_specs_it_describes()
    {
        var config = Parse("""
            repository: .kintsugi/repository
            workloads:
              trainer:
                command: [python3, train.py, --epochs, "10"]
                checkpoints: { dir: ckpt, backup: on-change, keep-last: 5 }
                restart: { when: on-failure, backoff: { initial: 1s, max: 5m, factor: 2, jitter: 0.2, reset-after: 10m }, budget: { restarts: 10, within: 1h } }
                stop: { signal: SIGTERM, grace: 30s }
                probes:
                  - heartbeat: { file: ckpt/heartbeat, stale-after: 60s }
                  - progress: { metric: step, stalls-after: 5m }
                monitors:
                  - log: "CUDA out of memory"
                    then: { restart: { adjust: { env: { BATCH_SIZE: halve } } } }
                  - metric: { name: loss, is: nan-or-inf }
                    then: { rollback: { skip-steps: 200 } }
                  - metric: { name: loss, above: 10x-running-max }
                    then: rollback
                  - exit: { codes: [2] }
                    then: give-up
              server:
                command: [dotnet, serve.dll]
                replicas: 3
                port: 8100
                probes: [ { http: { url: "http://127.0.0.1:{port}/health" }, every: 5s, timeout: 1s, failures: 3 } ]
            strategy: one-for-one
            """);

        Assert.Equal("/etc/app/.kintsugi/repository", config.Repository);
        Assert.Equal("/etc/app/.kintsugi/journal.db", config.Journal);
        var trainer = config.Workloads[0];
        Assert.Equal(["python3", "train.py", "--epochs", "10"], trainer.Command);
        Assert.Equal("/etc/app/ckpt", trainer.Checkpoints!.Directory);
        Assert.Equal(TimeSpan.FromMinutes(5), trainer.Restart.Backoff.Max);
        Assert.Equal(0.2, trainer.Restart.Backoff.Jitter);
        Assert.Equal(10, trainer.Restart.Budget.Restarts);
        Assert.Equal(15, trainer.Stop.Signal);
        var heartbeat = Assert.IsType<HeartbeatProbeSpec>(trainer.Probes[0]);
        Assert.Equal("/etc/app/ckpt/heartbeat", heartbeat.File);
        Assert.Equal(TimeSpan.FromSeconds(60), heartbeat.StaleAfter);
        var oom = Assert.IsType<LogMonitorSpec>(trainer.Monitors[0]);
        var adjust = Assert.Single(Assert.IsType<RestartActionSpec>(oom.Then).Adjustments);
        Assert.Equal(new Adjustment(AdjustTarget.Env, "BATCH_SIZE", AdjustOp.Halve, null), adjust);
        Assert.Equal(200, Assert.IsType<RollbackActionSpec>(trainer.Monitors[1].Then).SkipSteps);
        var runningMax = Assert.IsType<MetricMonitorSpec>(trainer.Monitors[2]);
        Assert.Equal((MetricRuleKind.AboveRunningMax, 10.0), (runningMax.Rule, runningMax.Value));
        Assert.IsType<GiveUpActionSpec>(trainer.Monitors[3].Then);
        var server = config.Workloads[1];
        Assert.Equal((3, 8100), (server.Replicas, server.Port));
        var http = Assert.IsType<HttpProbeSpec>(server.Probes[0]);
        Assert.Equal((TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1), 3), (http.Every, http.Timeout, http.FailureThreshold));
    }

    [Theory]
    [InlineData("workloads:\n  t:\n    command: [a]\n    restrat: {}\n", "kintsugi.yaml:4:5: workloads.t: unknown field 'restrat'")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    replicas: many\n", "kintsugi.yaml:4:15: workloads.t.replicas: expected a whole number")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    restart: { backoff: { initial: soon } }\n", "workloads.t.restart.backoff.initial: expected a duration")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    port: 80\n    probes:\n      - http: { url: \"not a url {port}\" }\n", "kintsugi.yaml:6:22: workloads.t.probes[0].http.url: 'not a url {port}' is not an http:// or https:// URL")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    probes:\n      - http: { url: \"http://127.0.0.1:{port}/\" }\n", "uses {port} but the workload has no 'port'")]
    [InlineData("workloads:\n  t:\n    env: {}\n", "missing field 'command'")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    monitors:\n      - log: \"(unclosed\"\n        then: restart\n", "is not a valid regular expression")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    monitors:\n      - metric: { name: loss, is: nan-or-inf }\n        then: rollback\n", "a rollback needs checkpoints")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    monitors:\n      - log: x\n        then: reboot\n", "expected an action: restart, rollback, failover, give-up or record, got 'reboot'")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    stop: { signal: SIGNOPE }\n", "workloads.t.stop.signal: expected a signal name")]
    [InlineData("strategy: all-for-one\nworkloads:\n  t:\n    command: [a]\n", "kintsugi.yaml:1:11: strategy: expected one-for-one or one-for-all")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    monitors:\n      - metric: { name: loss, above: 0.5x-running-max }\n        then: restart\n", "kintsugi.yaml:5:38: workloads.t.monitors[0].metric.above: expected a factor of at least 1 before x-running-max (e.g. 10x-running-max), got '0.5x-running-max'")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    monitors:\n      - metric: { name: loss, above: tenx-running-max }\n        then: restart\n", "expected a factor of at least 1 before x-running-max")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    env: { MODE: fast }\n    monitors:\n      - log: x\n        then: { restart: { adjust: { env: { MODE: halve } } } }\n", "kintsugi.yaml:7:51: workloads.t.monitors[0].then.restart.adjust.env.MODE: env MODE is 'fast', not a number, so it cannot halve (as the workload's 'env' sets it)")]
    [InlineData("workloads:\n  t:\n    monitors:\n      - log: x\n        then: { restart: { adjust: { args: { --size: x0.5 } } } }\n    command: [a, --size, big]\n", "kintsugi.yaml:5:54: workloads.t.monitors[0].then.restart.adjust.args.--size: arg --size is 'big', not a number, so it cannot multiply (in 'command')")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    monitors:\n      - log: x\n        then: { restart: { adjust: { args: { --epochs: halve } } } }\n", "arg --epochs is not in the command, so it cannot halve")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    monitors:\n      - log: x\n        then: { restart: { adjust: { env: { LR: x0 } } } }\n", "kintsugi.yaml:6:49: workloads.t.monitors[0].then.restart.adjust.env.LR: 'x0': a factor must be a positive number (e.g. x0.5)")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    monitors:\n      - log: x\n        then: { restart: { adjust: { env: { LR: x-2 } } } }\n", "'x-2': a factor must be a positive number")]
    [InlineData("workloads: {}\n", "no workloads")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    checkpoints:\n      dir: c\n      exclude: [\"*.pt\", \"a[b\"]\n", "kintsugi.yaml:6:25: workloads.t.checkpoints.exclude[1]: pattern \"a[b\" is malformed: a '[' is not closed by ']'")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    checkpoints:\n      dir: c\n      exclude: [\"[z-a]\"]\n", "kintsugi.yaml:6:17: workloads.t.checkpoints.exclude[0]: pattern \"[z-a]\" is malformed: the range z-a in [...] runs backwards")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    checkpoints:\n      dir: c\n      exclude: { a: b }\n", "workloads.t.checkpoints.exclude: expected a list")]
    [InlineData("workloads:\n  t:\n    command: [a\n", "kintsugi.yaml:")]
    [InlineData("workloads:\n  a:\n    command: [a]\n    port: 9000\n    replicas: 2\n  b:\n    command: [b]\n    port: 9001\n", "port 9001 is given to more than one replica")]
    public void A_bad_config_is_refused_naming_file_line_and_field(string yaml, string expected)
    {
        Assert.Contains(expected, Refused(yaml), StringComparison.Ordinal);
    }

    [Fact]
    public void Adjustments_that_may_work_at_start_are_accepted_with_their_positions()
    {
        // NEWVAR may come from the environment kintsugi runs in (checked at start); MODE is set to a number by another restart first.
        var w = Parse("""
            workloads:
              t:
                command: [a, --lr, "0.1"]
                env: { MODE: auto }
                monitors:
                  - log: x
                    then: { restart: { adjust: { env: { NEWVAR: halve, MODE: double }, args: { --lr: x0.5 } } } }
                  - log: y
                    then: { restart: { adjust: { env: { MODE: "8", NAME: xformers } } } }
            """).Workloads[0];
        var adjustments = Assert.IsType<RestartActionSpec>(w.Monitors[0].Then).Adjustments;
        Assert.Equal("kintsugi.yaml:7:53", adjustments[0].At);
        Assert.Equal("workloads.t.monitors[0].then.restart.adjust.env.NEWVAR", adjustments[0].Field);
        Assert.Equal(new Adjustment(AdjustTarget.Env, "NAME", AdjustOp.Set, "xformers"), Assert.IsType<RestartActionSpec>(w.Monitors[1].Then).Adjustments[1]);
    }

    [Fact]
    public void Defaults_are_those_docs_CONFIG_md_gives()
    {
        var w = Parse("workloads:\n  t:\n    command: [a]\n").Workloads[0];
        Assert.Equal(RestartWhen.OnFailure, w.Restart.When);
        Assert.Equal((TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5), 2.0, 0.2, TimeSpan.FromMinutes(10)),
            (w.Restart.Backoff.Initial, w.Restart.Backoff.Max, w.Restart.Backoff.Factor, w.Restart.Backoff.Jitter, w.Restart.Backoff.ResetAfter));
        Assert.Equal((10, TimeSpan.FromHours(1)), (w.Restart.Budget.Restarts, w.Restart.Budget.Within));
        Assert.Equal((15, TimeSpan.FromSeconds(30)), (w.Stop.Signal, w.Stop.Grace));
        Assert.Equal(1, w.Replicas);
        Assert.Equal("/etc/app", w.WorkingDirectory);
    }

    [Fact]
    public void Adjustments_set_halve_double_and_multiply_env_and_args()
    {
        var w = Parse("""
            workloads:
              t:
                command: [a, --lr, "0.01"]
                monitors:
                  - log: x
                    then: { restart: { adjust: { env: { A: halve, B: double, C: x0.5, D: "7" }, args: { --lr: x0.1 } } } }
            """).Workloads[0];
        var adjustments = Assert.IsType<RestartActionSpec>(w.Monitors[0].Then).Adjustments;
        Assert.Equal(
            [
                new Adjustment(AdjustTarget.Env, "A", AdjustOp.Halve, null),
                new Adjustment(AdjustTarget.Env, "B", AdjustOp.Double, null),
                new Adjustment(AdjustTarget.Env, "C", AdjustOp.Multiply, "0.5"),
                new Adjustment(AdjustTarget.Env, "D", AdjustOp.Set, "7"),
                new Adjustment(AdjustTarget.Arg, "--lr", AdjustOp.Multiply, "0.1"),
            ],
            adjustments);
    }

    [Fact]
    public void A_missing_file_is_refused_with_what_to_do()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("/nonexistent/kintsugi.yaml"));
        Assert.Contains("no such file", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    // An unclosed '[' or '{' with more lines after it: YamlDotNet throws InvalidOperationException, without a position.
    [InlineData("workloads:\n  t:\n    command: [a, b\n    cwd: x\n", "kintsugi.yaml:3:14: not valid YAML: this '[' is not closed")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    env: {A: b\n    cwd: x\n", "kintsugi.yaml:4:10: not valid YAML: this '{' is not closed")]
    [InlineData("workloads:\n  t:\n    command: [a\n", "kintsugi.yaml:4:1: not valid YAML: While parsing a flow sequence, did not find expected ',' or ']' (the '[' at line 3, column 14 is not closed)")]
    [InlineData("workloads:\n  t:\n    command: [a]\n   cwd: x\n", "kintsugi.yaml:4:4: not valid YAML:")]
    [InlineData("workloads:\n  t:\n    command: [a]\n      cwd: x\n", "kintsugi.yaml:4:7: not valid YAML:")]
    [InlineData("workloads:\n\tt:\n\t\tcommand: [a]\n", "kintsugi.yaml:2:1: not valid YAML: a tab in the indentation; YAML indents with spaces only")]
    [InlineData("workloads:\n  t:\n    command: [\"a]\n", "kintsugi.yaml:3:15: not valid YAML:")]
    [InlineData("workloads:\n  t:\n    command: ['a, b]\n    cwd: x\n", "kintsugi.yaml:3:15: not valid YAML:")]
    [InlineData("workloads:\n  t:\n    command: *nope\n", "kintsugi.yaml:3:14: not valid YAML: *nope refers to no anchor; define '&nope' on the value it stands for")]
    [InlineData("workloads:\n  t:\n    command: *later\n    cwd: &later x\n    env: { A: *nope }\n", "kintsugi.yaml:5:15: not valid YAML: *nope refers to no anchor")]
    public void Broken_YAML_is_refused_with_its_position(string yaml, string expected)
    {
        Assert.StartsWith(expected, Refused(yaml), StringComparison.Ordinal);
    }

    [Fact]
    public void Broken_YAML_never_escapes_as_another_exception()
    {
        // Random damage to a real config: every outcome is a config or a ConfigException naming file:line:column.
        string good = File.ReadAllText(Path.Combine(RepositoryRoot(), "examples", "train", "kintsugi.yaml"));
        const string Damage = "[]{}:,-'\"\t\n #&*!|>?%@`<~";
        int seed = Environment.TickCount;
        var random = new Random(seed);
        for (int i = 0; i < 3000; i++)
        {
            var text = new System.Text.StringBuilder(good);
            for (int j = random.Next(1, 4); j > 0; j--)
            {
                int at = random.Next(text.Length);
                _ = random.Next(3) switch
                {
                    0 => text.Insert(at, Damage[random.Next(Damage.Length)]),
                    1 => text.Remove(at, 1),
                    _ => text.Remove(at, 1).Insert(at, Damage[random.Next(Damage.Length)]),
                };
            }
            try
            {
                Parse(text.ToString());
            }
            catch (ConfigException e)
            {
                Assert.Matches(@"^kintsugi\.yaml(:\d+:\d+)?: ", e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"seed {seed}, case {i}: {e.GetType().Name}: {e.Message}\n{text}");
            }
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Kintsugi.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("no Kintsugi.slnx above the test's folder");
    }

    [Theory]
    [InlineData("workloads:\n  t:\n    command: [a]\n---\nworkloads:\n  u:\n    command: [b]\n", "kintsugi.yaml:4:1: a second YAML document starts here")]
    [InlineData("---\nworkloads:\n  t:\n    command: [a]\n---\n", "kintsugi.yaml:5:1: a second YAML document starts here")]
    public void A_second_document_is_refused_not_ignored(string yaml, string expected)
    {
        Assert.StartsWith(expected, Refused(yaml), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("    env:\n      FOO:\n", "kintsugi.yaml:5:11: workloads.t.env.FOO: no value; give one, or write '' for an empty string")]
    [InlineData("    env: { FOO: ~ }\n", "kintsugi.yaml:4:17: workloads.t.env.FOO: no value")]
    [InlineData("    env: { FOO: null }\n", "workloads.t.env.FOO: no value")]
    [InlineData("    env: { FOO: NULL }\n", "workloads.t.env.FOO: no value")]
    [InlineData("    env: { FOO: !!null x }\n", "workloads.t.env.FOO: no value")]
    [InlineData("    env:\n", "kintsugi.yaml:4:9: workloads.t.env: no value; give a mapping (key: value), or {} for none")]
    [InlineData("    probes:\n", "workloads.t.probes: no value; give a list, or [] for none")]
    [InlineData("    restart: { backoff: { initial: } }\n", "workloads.t.restart.backoff.initial: no value")]
    [InlineData("    monitors:\n      - log: x\n        then: { restart: { adjust: { env: { BATCH: ~ } } } }\n", "adjust.env.BATCH: no value")]
    [InlineData("    monitors:\n      - log: x\n        then:\n", "workloads.t.monitors[0].then: no value")]
    public void A_null_value_is_refused_not_turned_into_text(string fields, string expected)
    {
        Assert.Contains(expected, Refused("workloads:\n  t:\n    command: [a]\n" + fields), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("[python, ~]", "workloads.t.command[1]: no value")]
    [InlineData("[python, null]", "workloads.t.command[1]: no value")]
    [InlineData("[~]", "workloads.t.command[0]: no value")]
    [InlineData("~", "workloads.t.command: no value")]
    [InlineData("python train.py", "kintsugi.yaml:3:14: workloads.t.command: command must be a list of the program and its arguments, e.g. [python, train.py] (no shell)")]
    [InlineData("/bin/true", "workloads.t.command: command must be a list of the program and its arguments, e.g. [/bin/true]")]
    public void A_command_is_a_list_of_values(string command, string expected)
    {
        Assert.Contains(expected, Refused($"workloads:\n  t:\n    command: {command}\n"), StringComparison.Ordinal);
    }

    [Fact]
    public void Quoted_null_and_empty_strings_stay_strings_and_an_empty_action_body_is_allowed()
    {
        var w = Parse("""
            workloads:
              t:
                command: [a, "null", '', "~"]
                env: { A: "null", B: '', C: 'NULL', D: !!str }
                monitors:
                  - log: x
                    then: { restart: }
                  - log: y
                    then: { rollback: }
                checkpoints: { dir: c }
            """).Workloads[0];
        Assert.Equal(["a", "null", "", "~"], w.Command);
        Assert.Equal(new Dictionary<string, string> { ["A"] = "null", ["B"] = "", ["C"] = "NULL", ["D"] = "" }, w.Environment);
        Assert.Empty(Assert.IsType<RestartActionSpec>(w.Monitors[0].Then).Adjustments);
        Assert.Equal(0, Assert.IsType<RollbackActionSpec>(w.Monitors[1].Then).SkipSteps);
    }

    [Fact]
    public void Merge_keys_and_top_level_extension_fields_work_as_in_docker_compose()
    {
        var config = Parse("""
            x-restart: &restart
              when: always
              backoff: { initial: 2s, max: 1m }
            x-env: &env { A: "1", B: "2" }
            x-more-env: &more { B: "3", C: "4" }
            workloads:
              base: &base
                command: [python3, train.py]
                cwd: jobs
                restart: *restart
                env: { <<: [*env, *more], D: "5" }
              second:
                <<: *base
                command: [python3, eval.py]
                restart: { <<: *restart, when: never }
            """);
        var (first, second) = (config.Workloads[0], config.Workloads[1]);
        Assert.Equal(["base", "second"], config.Workloads.Select(w => w.Name));
        Assert.Equal(["python3", "eval.py"], second.Command);
        Assert.Equal("/etc/app/jobs", second.WorkingDirectory);
        // The first mapping merged wins over later ones; keys written beside the merge win over all.
        Assert.Equal(new Dictionary<string, string> { ["A"] = "1", ["B"] = "2", ["C"] = "4", ["D"] = "5" }, second.Environment);
        Assert.Equal(first.Environment, second.Environment);
        Assert.Equal((RestartWhen.Always, TimeSpan.FromSeconds(2)), (first.Restart.When, first.Restart.Backoff.Initial));
        Assert.Equal((RestartWhen.Never, TimeSpan.FromMinutes(1)), (second.Restart.When, second.Restart.Backoff.Max));
    }

    [Fact]
    public void A_mapping_merged_into_a_mapping_is_overridden_by_its_own_keys_at_every_level()
    {
        var w = Parse("""
            x-a: &a { A: a, B: a }
            x-b: &b { <<: *a, B: b }
            workloads:
              t:
                command: [x]
                env: { <<: *b, C: c }
            """).Workloads[0];
        Assert.Equal(new Dictionary<string, string> { ["A"] = "a", ["B"] = "b", ["C"] = "c" }, w.Environment);
    }

    [Theory]
    [InlineData("x-base: &b { command: [a], restrat: {} }\nworkloads:\n  t:\n    <<: *b\n", "kintsugi.yaml:1:28: workloads.t: unknown field 'restrat'")]
    [InlineData("workloads:\n  t:\n    command: [a]\n    <<: [a, b]\n", "kintsugi.yaml:4:9: workloads.t.<<: a merge key takes a mapping (<<: *base) or a list of them (<<: [*a, *b])")]
    [InlineData("workloads:\n  t: &t\n    command: [a]\n    env: { <<: *t }\n", "kintsugi.yaml:3:14: workloads.t.env.command: expected a single value")]
    [InlineData("x: &x { <<: *x }\nworkloads:\n  t:\n    command: [a]\n", "unknown field 'x'")]
    [InlineData("x-loop: &x { A: a }\nworkloads:\n  t:\n    command: [a]\n    x-note: hi\n", "kintsugi.yaml:5:5: workloads.t: unknown field 'x-note'")]
    [InlineData("workloads:\n  t:\n    command: [a]\nrepositry: r\n", "kintsugi.yaml:4:1: unknown field 'repositry' (expected one of: repository, password-file, key-file, journal, strategy, copies, protection, workloads; or x-NAME for an extension field, which is ignored)")]
    public void Merges_and_extension_fields_are_checked_like_the_rest(string yaml, string expected)
    {
        Assert.Contains(expected, Refused(yaml), StringComparison.Ordinal);
    }

    [Fact]
    public void A_key_file_is_read_relative_to_the_config_and_not_beside_a_password_file()
    {
        Assert.Equal("/etc/app/keys/ci.key", Parse("key-file: keys/ci.key\nworkloads:\n  t:\n    command: [a]\n").KeyFile);
        Assert.Null(Parse("workloads:\n  t:\n    command: [a]\n").KeyFile);
        Assert.Contains("kintsugi.yaml:2:11: key-file: this and 'password-file' each open the repository; keep one",
            Refused("password-file: p\nkey-file: k\nworkloads:\n  t:\n    command: [a]\n"), StringComparison.Ordinal);
    }

    [Fact]
    public void A_mapping_that_merges_itself_is_refused()
    {
        Assert.Contains("merges a mapping into itself", Refused("x-loop: &x { A: a, <<: *x }\nworkloads:\n  t:\n    command: [a]\n    env: *x\n"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("restart: { backoff: { initial: 1m, max: 10s } }", "max (10s) is smaller than initial (1m)")]
    [InlineData("restart: { backoff: { initial: 1h30m, max: 1.5s } }", "max (1s500ms) is smaller than initial (1h30m)")]
    [InlineData("probes: [ { exec: [a], every: 500ms, timeout: 2s } ]", "timeout (2s) is longer than the period 'every' (500ms)")]
    public void Durations_in_messages_are_written_as_in_the_config(string field, string expected)
    {
        Assert.Contains(expected, Refused($"workloads:\n  t:\n    command: [a]\n    {field}\n"), StringComparison.Ordinal);
    }

    [Fact]
    public void Positions_of_command_cwd_and_checkpoint_dir_are_recorded_for_later_checks()
    {
        var w = Parse("workloads:\n  t:\n    command:\n      - python3\n      - x.py\n    cwd: jobs\n    checkpoints: { dir: ckpt }\n").Workloads[0];
        Assert.Equal(("kintsugi.yaml:4:9", "kintsugi.yaml:6:10", "kintsugi.yaml:7:25"), (w.CommandAt, w.WorkingDirectoryAt, w.Checkpoints!.DirectoryAt));
    }

    [Fact]
    public void Checkpoint_excludes_are_read_in_order_with_their_negations()
    {
        var spec = Parse("workloads:\n  t:\n    command: [a]\n    checkpoints:\n      dir: c\n      exclude:\n        - \"*.tmp\"\n        - optimizer/\n        - \"!keep.tmp\"\n").Workloads[0].Checkpoints!;
        Assert.Equal(["*.tmp", "optimizer/", "!keep.tmp"], spec.Exclude.Select(p => p.Text));
        var filter = new Kintsugi.Backup.Engine.PathFilter(spec.Exclude);
        Assert.True(filter.IsExcluded("/c/step-1/x.tmp", isDirectory: false));
        Assert.False(filter.IsExcluded("/c/step-1/keep.tmp", isDirectory: false));
        Assert.True(filter.IsExcluded("/c/step-1/optimizer", isDirectory: true));
        Assert.Empty(Parse("workloads:\n  t:\n    command: [a]\n    checkpoints: { dir: c }\n").Workloads[0].Checkpoints!.Exclude);
    }
}
