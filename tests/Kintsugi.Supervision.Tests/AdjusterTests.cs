using Kintsugi.Supervision.Config;
using Kintsugi.Supervision.Policies;

namespace Kintsugi.Supervision.Tests;

public sealed class AdjusterTests
{
    private static readonly string[] Train = ["python", "train.py", "--batch-size", "64", "--lr=0.001"];

    private static Adjustment Env(string name, AdjustOp op, string? value = null) => new(AdjustTarget.Env, name, op, value);

    private static Adjustment Arg(string name, AdjustOp op, string? value = null) => new(AdjustTarget.Arg, name, op, value);

    private static string EnvAfter(string current, Adjustment adjustment)
    {
        var (_, env, _, _) = Adjuster.Apply(Train, new Dictionary<string, string> { [adjustment.Name] = current }, [adjustment]);
        return env[adjustment.Name];
    }

    [Fact]
    public void Env_halve_of_an_integer_stays_an_integer()
    {
        var (command, env, changes, _) = Adjuster.Apply(Train, new Dictionary<string, string> { ["BATCH_SIZE"] = "64", ["OTHER"] = "x" }, [Env("BATCH_SIZE", AdjustOp.Halve)]);
        Assert.Equal("32", env["BATCH_SIZE"]);
        Assert.Equal("x", env["OTHER"]);
        Assert.Equal(Train, command);
        Assert.Equal(["env BATCH_SIZE 64 -> 32"], changes);
    }

    [Theory]
    [InlineData("1", "1")]
    [InlineData("7", "3")]
    [InlineData("0", "0")]
    public void Env_halve_rounds_down_but_never_below_1(string current, string expected)
    {
        Assert.Equal(expected, EnvAfter(current, Env("N", AdjustOp.Halve)));
    }

    [Theory]
    [InlineData("8", AdjustOp.Double, null, "16")]
    [InlineData("0.25", AdjustOp.Double, null, "0.5")]
    [InlineData("3.0", AdjustOp.Double, null, "6.0")]
    [InlineData("0.001", AdjustOp.Multiply, "0.5", "0.0005")]
    [InlineData("1e-3", AdjustOp.Halve, null, "0.0005")]
    [InlineData("64", AdjustOp.Multiply, "0.5", "32")]
    [InlineData("10", AdjustOp.Multiply, "0.3", "3")]
    [InlineData("1", AdjustOp.Multiply, "0.1", "1")]
    [InlineData("-4", AdjustOp.Double, null, "-8")]
    public void Env_numeric_operations(string current, AdjustOp op, string? value, string expected)
    {
        Assert.Equal(expected, EnvAfter(current, Env("V", op, value)));
    }

    [Fact]
    public void Env_set_sets_even_when_unset()
    {
        var (_, env, changes, _) = Adjuster.Apply(Train, new Dictionary<string, string>(), [Env("NCCL_P2P_DISABLE", AdjustOp.Set, "1")]);
        Assert.Equal("1", env["NCCL_P2P_DISABLE"]);
        Assert.Equal(["env NCCL_P2P_DISABLE (unset) -> 1"], changes);
    }

    [Fact]
    public void Arg_in_both_forms()
    {
        var (command, _, changes, _) = Adjuster.Apply(Train, new Dictionary<string, string>(), [Arg("--batch-size", AdjustOp.Halve), Arg("--lr", AdjustOp.Multiply, "0.5")]);
        Assert.Equal(["python", "train.py", "--batch-size", "32", "--lr=0.0005"], command);
        Assert.Equal(["arg --batch-size 64 -> 32", "arg --lr 0.001 -> 0.0005"], changes);
    }

    [Fact]
    public void Arg_set_replaces_the_value_or_appends_the_option()
    {
        var (command, _, changes, _) = Adjuster.Apply(Train, new Dictionary<string, string>(), [Arg("--lr", AdjustOp.Set, "0.01"), Arg("--workers", AdjustOp.Set, "2")]);
        Assert.Equal(["python", "train.py", "--batch-size", "64", "--lr=0.01", "--workers", "2"], command);
        Assert.Equal(["arg --lr 0.001 -> 0.01", "arg --workers (absent) -> 2"], changes);
    }

    [Fact]
    public void Arg_after_double_dash_is_not_an_option_and_appending_goes_before_it()
    {
        string[] command = ["torchrun", "--nproc", "8", "--", "--batch-size", "64"];
        var (result, _, _, _) = Adjuster.Apply(command, new Dictionary<string, string>(), [Arg("--nproc", AdjustOp.Halve), Arg("--batch-size", AdjustOp.Set, "1")]);
        Assert.Equal(["torchrun", "--nproc", "4", "--batch-size", "1", "--", "--batch-size", "64"], result);
    }

    [Fact]
    public void Adjustments_apply_in_order_and_inputs_stay_unchanged()
    {
        var env = new Dictionary<string, string> { ["B"] = "64" };
        var (_, result, changes, _) = Adjuster.Apply(Train, env, [Env("B", AdjustOp.Halve), Env("B", AdjustOp.Halve)]);
        Assert.Equal("16", result["B"]);
        Assert.Equal(["env B 64 -> 32", "env B 32 -> 16"], changes);
        Assert.Equal("64", env["B"]);
        Assert.Equal("64", Train[3]);
    }

    private static AdjustmentFailure FailureOf(IReadOnlyList<string> command, IReadOnlyDictionary<string, string> env, Adjustment adjustment) =>
        Assert.Single(Adjuster.Apply(command, env, [adjustment]).Failures);

    [Fact]
    public void Numeric_operations_on_missing_or_non_numeric_values_fail_naming_them()
    {
        var env = new Dictionary<string, string> { ["MODE"] = "fast" };
        var f = FailureOf(Train, env, Env("MODE", AdjustOp.Halve));
        Assert.Equal(AdjustmentProblem.NotANumber, f.Problem);
        Assert.Equal("env MODE is 'fast', not a number, so it cannot halve", f.Reason);

        f = FailureOf(Train, env, Env("BATCH", AdjustOp.Double));
        Assert.Equal((AdjustmentProblem.Missing, "env BATCH is not set, so it cannot double"), (f.Problem, f.Reason));

        f = FailureOf(Train, env, Arg("--epochs", AdjustOp.Halve));
        Assert.Equal((AdjustmentProblem.Missing, "arg --epochs is not in the command, so it cannot halve"), (f.Problem, f.Reason));

        f = FailureOf(["run", "--size=big"], env, Arg("--size", AdjustOp.Multiply, "2"));
        Assert.Equal((AdjustmentProblem.NotANumber, "arg --size is 'big', not a number, so it cannot multiply"), (f.Problem, f.Reason));

        f = FailureOf(Train, env, Env("MODE", AdjustOp.Multiply, "half"));
        Assert.Equal(AdjustmentProblem.BadValue, f.Problem);
        Assert.Contains("factor", f.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void One_adjustment_that_cannot_apply_leaves_the_others_applied()
    {
        // Before, the unset NEWVAR threw at once and neither --lr nor BATCH_SIZE changed.
        var env = new Dictionary<string, string> { ["BATCH_SIZE"] = "64" };
        Adjustment newVar = Env("NEWVAR", AdjustOp.Halve);
        var result = Adjuster.Apply(Train, env, [newVar, Arg("--lr", AdjustOp.Multiply, "0.5"), Env("BATCH_SIZE", AdjustOp.Halve)]);

        Assert.Equal(["python", "train.py", "--batch-size", "64", "--lr=0.0005"], result.Command);
        Assert.Equal("32", result.Environment["BATCH_SIZE"]);
        Assert.False(result.Environment.ContainsKey("NEWVAR"));
        Assert.Equal(["arg --lr 0.001 -> 0.0005", "env BATCH_SIZE 64 -> 32"], result.Changes);
        Assert.Equal([new AdjustmentFailure(newVar, AdjustmentProblem.Missing, "env NEWVAR is not set, so it cannot halve")], result.Failures);
    }

    [Fact]
    public void An_option_written_twice_is_changed_in_both_places_or_in_neither()
    {
        string[] command = ["run", "--size", "4", "--size=big"];
        var result = Adjuster.Apply(command, new Dictionary<string, string>(), [Arg("--size", AdjustOp.Double), Arg("--n", AdjustOp.Set, "1")]);

        Assert.Equal(["run", "--size", "4", "--size=big", "--n", "1"], result.Command);
        Assert.Equal(["arg --n (absent) -> 1"], result.Changes);
        Assert.Single(result.Failures);
    }

    [Fact]
    public void An_inherited_variable_is_adjusted_into_the_workloads_environment()
    {
        var inherited = new Dictionary<string, string> { ["BATCH_SIZE"] = "64", ["HOME"] = "/root" };
        var result = Adjuster.Apply(Train, new Dictionary<string, string>(), [Env("BATCH_SIZE", AdjustOp.Halve)], inherited);

        Assert.Empty(result.Failures);
        Assert.Equal(new Dictionary<string, string> { ["BATCH_SIZE"] = "32" }, result.Environment);
        Assert.Equal(["env BATCH_SIZE 64 -> 32"], result.Changes);
        // The workload's own value comes first.
        result = Adjuster.Apply(Train, new Dictionary<string, string> { ["BATCH_SIZE"] = "8" }, [Env("BATCH_SIZE", AdjustOp.Halve)], inherited);
        Assert.Equal("4", result.Environment["BATCH_SIZE"]);
    }

    [Fact]
    public void Check_reports_every_adjustment_of_a_workload_that_cannot_apply_at_start()
    {
        Adjustment missing = Env("NEWVAR", AdjustOp.Halve);
        Adjustment setElsewhere = Env("WORKERS", AdjustOp.Double);
        var workload = new WorkloadSpec
        {
            Name = "train",
            Command = Train,
            WorkingDirectory = "/work",
            Environment = new Dictionary<string, string> { ["MODE"] = "fast" },
            Monitors =
            [
                new LogMonitorSpec("OOM", LogSource.Output, null) { Then = new RestartActionSpec { Adjustments = [missing, Env("PATHLIKE", AdjustOp.Double), Arg("--lr", AdjustOp.Halve)] } },
                new LogMonitorSpec("slow", LogSource.Output, null) { Then = new RestartActionSpec { Adjustments = [setElsewhere, Env("MODE", AdjustOp.Halve)] } },
                new LogMonitorSpec("init", LogSource.Output, null) { Then = new RestartActionSpec { Adjustments = [Env("WORKERS", AdjustOp.Set, "4")] } },
            ],
        };
        var inherited = new Dictionary<string, string> { ["PATHLIKE"] = "3" };

        var failures = Adjuster.Check(workload, inherited);

        // NEWVAR is set nowhere; MODE is not a number; PATHLIKE comes from the inherited environment;
        // WORKERS may have been set to 4 by the third monitor's restart first.
        Assert.Equal(["env NEWVAR is not set, so it cannot halve", "env MODE is 'fast', not a number, so it cannot halve"], failures.Select(f => f.Reason));
        Assert.Empty(Adjuster.Check(Train, new Dictionary<string, string>(), [Env("PATHLIKE", AdjustOp.Double)], inherited));
    }
}
