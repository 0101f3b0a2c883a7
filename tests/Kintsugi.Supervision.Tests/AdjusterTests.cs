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
        var (_, env, _) = Adjuster.Apply(Train, new Dictionary<string, string> { [adjustment.Name] = current }, [adjustment]);
        return env[adjustment.Name];
    }

    [Fact]
    public void Env_halve_of_an_integer_stays_an_integer()
    {
        var (command, env, changes) = Adjuster.Apply(Train, new Dictionary<string, string> { ["BATCH_SIZE"] = "64", ["OTHER"] = "x" }, [Env("BATCH_SIZE", AdjustOp.Halve)]);
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
        var (_, env, changes) = Adjuster.Apply(Train, new Dictionary<string, string>(), [Env("NCCL_P2P_DISABLE", AdjustOp.Set, "1")]);
        Assert.Equal("1", env["NCCL_P2P_DISABLE"]);
        Assert.Equal(["env NCCL_P2P_DISABLE (unset) -> 1"], changes);
    }

    [Fact]
    public void Arg_in_both_forms()
    {
        var (command, _, changes) = Adjuster.Apply(Train, new Dictionary<string, string>(), [Arg("--batch-size", AdjustOp.Halve), Arg("--lr", AdjustOp.Multiply, "0.5")]);
        Assert.Equal(["python", "train.py", "--batch-size", "32", "--lr=0.0005"], command);
        Assert.Equal(["arg --batch-size 64 -> 32", "arg --lr 0.001 -> 0.0005"], changes);
    }

    [Fact]
    public void Arg_set_replaces_the_value_or_appends_the_option()
    {
        var (command, _, changes) = Adjuster.Apply(Train, new Dictionary<string, string>(), [Arg("--lr", AdjustOp.Set, "0.01"), Arg("--workers", AdjustOp.Set, "2")]);
        Assert.Equal(["python", "train.py", "--batch-size", "64", "--lr=0.01", "--workers", "2"], command);
        Assert.Equal(["arg --lr 0.001 -> 0.01", "arg --workers (absent) -> 2"], changes);
    }

    [Fact]
    public void Arg_after_double_dash_is_not_an_option_and_appending_goes_before_it()
    {
        string[] command = ["torchrun", "--nproc", "8", "--", "--batch-size", "64"];
        var (result, _, _) = Adjuster.Apply(command, new Dictionary<string, string>(), [Arg("--nproc", AdjustOp.Halve), Arg("--batch-size", AdjustOp.Set, "1")]);
        Assert.Equal(["torchrun", "--nproc", "4", "--batch-size", "1", "--", "--batch-size", "64"], result);
    }

    [Fact]
    public void Adjustments_apply_in_order_and_inputs_stay_unchanged()
    {
        var env = new Dictionary<string, string> { ["B"] = "64" };
        var (_, result, changes) = Adjuster.Apply(Train, env, [Env("B", AdjustOp.Halve), Env("B", AdjustOp.Halve)]);
        Assert.Equal("16", result["B"]);
        Assert.Equal(["env B 64 -> 32", "env B 32 -> 16"], changes);
        Assert.Equal("64", env["B"]);
        Assert.Equal("64", Train[3]);
    }

    [Fact]
    public void Numeric_operations_on_missing_or_non_numeric_values_fail_naming_them()
    {
        var env = new Dictionary<string, string> { ["MODE"] = "fast" };
        var e = Assert.Throws<AdjustmentException>(() => Adjuster.Apply(Train, env, [Env("MODE", AdjustOp.Halve)]));
        Assert.Contains("MODE", e.Message, StringComparison.Ordinal);
        Assert.Contains("'fast', not a number", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<AdjustmentException>(() => Adjuster.Apply(Train, env, [Env("BATCH", AdjustOp.Double)]));
        Assert.Equal("env BATCH is not set, so it cannot double", e.Message);

        e = Assert.Throws<AdjustmentException>(() => Adjuster.Apply(Train, env, [Arg("--epochs", AdjustOp.Halve)]));
        Assert.Equal("arg --epochs is not in the command, so it cannot halve", e.Message);

        e = Assert.Throws<AdjustmentException>(() => Adjuster.Apply(["run", "--size=big"], env, [Arg("--size", AdjustOp.Multiply, "2")]));
        Assert.Contains("--size", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<AdjustmentException>(() => Adjuster.Apply(Train, env, [Env("MODE", AdjustOp.Multiply, "half")]));
        Assert.Contains("factor", e.Message, StringComparison.Ordinal);
    }
}
