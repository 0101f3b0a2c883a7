using System.Globalization;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Policies;

/// <summary>Applies adjustments to a command line and environment before a restart, and checks them before a start.</summary>
public static class Adjuster
{
    /// <summary>
    /// Applies <paramref name="adjustments"/> in order (each sees the previous ones' result); the inputs are not changed.
    /// Env: Set sets the variable to Value; Halve, Double and Multiply(Value) need its current value
    /// to be a number: its value in <paramref name="environment"/> (the workload's own and earlier
    /// adjustments), else in <paramref name="inherited"/> (the environment the workload inherits); the
    /// result goes into the returned environment. Arg: the option Name (e.g. "--batch-size"; a name without a leading dash
    /// means "--name") in <paramref name="command"/> after the program, before any "--", in
    /// either form "--batch-size 64" or "--batch-size=64" (every occurrence is changed); Set replaces
    /// its value, or appends "--name value" when absent. Numbers: integers stay integers (Halve and
    /// Multiply round down, and never take a value of at least 1 below 1); decimals keep decimals
    /// (trailing zeros dropped, "6.0" not "6"). An adjustment that cannot be applied (a numeric
    /// operation on a missing or non-numeric value, a Set or Multiply without a (numeric) value, an
    /// overflow) changes nothing — not even one occurrence of an option — and is returned among the
    /// failures with its reason; the others are applied. Changes are descriptions like "env BATCH_SIZE 64 -> 32".
    /// </summary>
    public static AdjustmentResult Apply(
        IReadOnlyList<string> command,
        IReadOnlyDictionary<string, string> environment,
        IReadOnlyList<Adjustment> adjustments,
        IReadOnlyDictionary<string, string>? inherited = null)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(adjustments);
        var args = command.ToList();
        var env = new Dictionary<string, string>(environment, StringComparer.Ordinal);
        var changes = new List<string>();
        var failures = new List<AdjustmentFailure>();
        foreach (var adjustment in adjustments)
        {
            ArgumentNullException.ThrowIfNull(adjustment);
            try
            {
                if (adjustment.Target == AdjustTarget.Env)
                {
                    AdjustEnv(env, inherited, adjustment, changes);
                }
                else
                {
                    // On a copy: an option written twice is changed in both places or in neither.
                    var trial = args.ToList();
                    var described = new List<string>();
                    AdjustArg(trial, adjustment, described);
                    args = trial;
                    changes.AddRange(described);
                }
            }
            catch (AdjustmentException e)
            {
                failures.Add(new AdjustmentFailure(adjustment, e.Problem, e.Message));
            }
        }
        return new AdjustmentResult(args, env, changes, failures);
    }

    /// <summary>
    /// The adjustments of <paramref name="adjustments"/> that could not be applied to the command and
    /// environment a workload starts with (in order, as <see cref="Apply"/> would on a first restart).
    /// </summary>
    public static IReadOnlyList<AdjustmentFailure> Check(
        IReadOnlyList<string> command,
        IReadOnlyDictionary<string, string> environment,
        IReadOnlyList<Adjustment> adjustments,
        IReadOnlyDictionary<string, string>? inherited = null) =>
        Apply(command, environment, adjustments, inherited).Failures;

    /// <summary>
    /// Every adjustment of the workload's restart actions (of its monitors and probes) that could not be
    /// applied to the command and environment the workload starts with, <paramref name="inherited"/>
    /// being the environment it inherits (null: unknown, so an env variable missing from the workload's
    /// own is reported as <see cref="AdjustmentProblem.Missing"/>). A numeric operation on a variable or
    /// option that another adjustment of the workload sets to a number is not reported: that one may
    /// have run first.
    /// </summary>
    public static IReadOnlyList<AdjustmentFailure> Check(WorkloadSpec workload, IReadOnlyDictionary<string, string>? inherited)
    {
        ArgumentNullException.ThrowIfNull(workload);
        var actions = workload.Monitors.Select(m => m.Then).Concat(workload.Probes.Select(p => p.Then)).OfType<RestartActionSpec>()
            .Where(a => a.Adjustments.Count > 0).ToList();
        var setToNumbers = actions.SelectMany(a => a.Adjustments)
            .Where(a => a.Op == AdjustOp.Set && IsNumber(a.Value))
            .Select(a => (a.Target, Name: OptionName(a))).ToHashSet();
        var failures = new List<AdjustmentFailure>();
        foreach (var action in actions)
        {
            foreach (var failure in Check(workload.Command, workload.Environment, action.Adjustments, inherited))
            {
                if (failure.Problem is AdjustmentProblem.Missing or AdjustmentProblem.NotANumber
                    && setToNumbers.Contains((failure.Adjustment.Target, OptionName(failure.Adjustment))))
                {
                    continue;
                }
                failures.Add(failure);
            }
        }
        return failures;
    }

    private static string OptionName(Adjustment a) =>
        a.Target == AdjustTarget.Env || a.Name.StartsWith('-') ? a.Name : "--" + a.Name;

    private static bool IsNumber(string? value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d);

    private static void AdjustEnv(Dictionary<string, string> env, IReadOnlyDictionary<string, string>? inherited, Adjustment adjustment, List<string> changes)
    {
        string subject = $"env {adjustment.Name}";
        string? current = env.GetValueOrDefault(adjustment.Name) ?? inherited?.GetValueOrDefault(adjustment.Name);
        string next = NewValue(subject, current, adjustment, missing: "is not set");
        env[adjustment.Name] = next;
        changes.Add($"{subject} {current ?? "(unset)"} -> {next}");
    }

    private static void AdjustArg(List<string> args, Adjustment adjustment, List<string> changes)
    {
        string name = OptionName(adjustment);
        string subject = $"arg {name}";
        string prefix = name + "=";
        int end = args.IndexOf("--", Math.Min(1, args.Count));
        if (end < 0)
        {
            end = args.Count;
        }
        bool found = false;
        for (int i = 1; i < end; i++)
        {
            if (args[i] == name)
            {
                found = true;
                if (i + 1 >= end)
                {
                    // "--name" last, without a value: Set gives it one.
                    string added = NewValue(subject, null, adjustment, missing: "has no value");
                    args.Insert(i + 1, added);
                    changes.Add($"{subject} (no value) -> {added}");
                    end++;
                }
                else
                {
                    string next = NewValue(subject, args[i + 1], adjustment, missing: "has no value");
                    changes.Add($"{subject} {args[i + 1]} -> {next}");
                    args[i + 1] = next;
                }
                i++;
            }
            else if (args[i].StartsWith(prefix, StringComparison.Ordinal))
            {
                found = true;
                string current = args[i][prefix.Length..];
                string next = NewValue(subject, current, adjustment, missing: "has no value");
                args[i] = prefix + next;
                changes.Add($"{subject} {current} -> {next}");
            }
        }
        if (!found)
        {
            string value = NewValue(subject, null, adjustment, missing: "is not in the command");
            args.InsertRange(Math.Max(end, Math.Min(1, args.Count)), [name, value]);
            changes.Add($"{subject} (absent) -> {value}");
        }
    }

    private static string NewValue(string subject, string? current, Adjustment adjustment, string missing)
    {
        if (adjustment.Op == AdjustOp.Set)
        {
            return adjustment.Value ?? throw new AdjustmentException(AdjustmentProblem.BadValue, $"{subject}: set needs a value");
        }
        string verb = adjustment.Op.ToString().ToLowerInvariant();
        decimal factor = adjustment.Op switch
        {
            AdjustOp.Halve => 0.5m,
            AdjustOp.Double => 2m,
            _ => TryFactor(adjustment.Value, out decimal f)
                ? f
                : throw new AdjustmentException(AdjustmentProblem.BadValue, $"{subject}: multiply needs a positive numeric factor, got '{adjustment.Value}'"),
        };
        if (current is null)
        {
            throw new AdjustmentException(AdjustmentProblem.Missing, $"{subject} {missing}, so it cannot {verb}");
        }
        try
        {
            if (long.TryParse(current, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long whole))
            {
                decimal product = Math.Floor(whole * factor);
                if (adjustment.Op != AdjustOp.Double && whole >= 1 && factor > 0)
                {
                    // A count such as a batch size or a worker number must stay usable.
                    product = Math.Max(1, product);
                }
                return ((long)product).ToString(CultureInfo.InvariantCulture);
            }
            if (decimal.TryParse(current, NumberStyles.Float, CultureInfo.InvariantCulture, out decimal fraction))
            {
                return DecimalText(fraction * factor);
            }
        }
        catch (OverflowException)
        {
            throw new AdjustmentException(AdjustmentProblem.Overflow, $"{subject}: {current} cannot {verb} without overflowing");
        }
        if (double.TryParse(current, NumberStyles.Float, CultureInfo.InvariantCulture, out double big) && double.IsFinite(big))
        {
            // Beyond decimal's range (e.g. 1e40): still a decimal number, in double precision.
            double result = big * (double)factor;
            string text = result.ToString("R", CultureInfo.InvariantCulture);
            return double.IsFinite(result) ? text : throw new AdjustmentException(AdjustmentProblem.Overflow, $"{subject}: {current} cannot {verb} without overflowing");
        }
        throw new AdjustmentException(AdjustmentProblem.NotANumber, $"{subject} is '{current}', not a number, so it cannot {verb}");
    }

    /// <summary>A multiply factor: a positive decimal number ("0.5", "1e-1").</summary>
    internal static bool TryFactor(string? text, out decimal factor) =>
        decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out factor) && factor > 0;

    /// <summary>Shortest exact text that still reads as a decimal: 0.0005, 6.0, -1.25.</summary>
    private static string DecimalText(decimal value)
    {
        string text = value.ToString("0.############################", CultureInfo.InvariantCulture);
        return text.Contains('.', StringComparison.Ordinal) ? text : text + ".0";
    }
}
