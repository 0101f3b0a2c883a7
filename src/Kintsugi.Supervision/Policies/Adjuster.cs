using System.Globalization;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Policies;

/// <summary>Applies adjustments to a command line and environment before a restart.</summary>
public static class Adjuster
{
    /// <summary>
    /// Applies <paramref name="adjustments"/> in order (each sees the previous ones' result); the inputs are not changed.
    /// Env: Set sets the variable to Value; Halve, Double and Multiply(Value) need its current value
    /// to be a number. Arg: the option Name (e.g. "--batch-size"; a name without a leading dash
    /// means "--name") in <paramref name="command"/> after the program, before any "--", in
    /// either form "--batch-size 64" or "--batch-size=64" (every occurrence is changed); Set replaces
    /// its value, or appends "--name value" when absent. Numbers: integers stay integers (Halve and
    /// Multiply round down, and never take a value of at least 1 below 1); decimals keep decimals
    /// (trailing zeros dropped, "6.0" not "6"). Returns the new command, the new environment and
    /// descriptions like "env BATCH_SIZE 64 -> 32". Throws <see cref="AdjustmentException"/> when a
    /// numeric operation meets a missing or non-numeric value, or a Set or Multiply has no (numeric) value.
    /// </summary>
    public static (IReadOnlyList<string> Command, IReadOnlyDictionary<string, string> Environment, IReadOnlyList<string> Changes) Apply(
        IReadOnlyList<string> command,
        IReadOnlyDictionary<string, string> environment,
        IReadOnlyList<Adjustment> adjustments)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(adjustments);
        var args = command.ToList();
        var env = new Dictionary<string, string>(environment, StringComparer.Ordinal);
        var changes = new List<string>();
        foreach (var adjustment in adjustments)
        {
            ArgumentNullException.ThrowIfNull(adjustment);
            if (adjustment.Target == AdjustTarget.Env)
            {
                AdjustEnv(env, adjustment, changes);
            }
            else
            {
                AdjustArg(args, adjustment, changes);
            }
        }
        return (args, env, changes);
    }

    private static void AdjustEnv(Dictionary<string, string> env, Adjustment adjustment, List<string> changes)
    {
        string subject = $"env {adjustment.Name}";
        string? current = env.GetValueOrDefault(adjustment.Name);
        string next = NewValue(subject, current, adjustment, missing: "is not set");
        env[adjustment.Name] = next;
        changes.Add($"{subject} {current ?? "(unset)"} -> {next}");
    }

    private static void AdjustArg(List<string> args, Adjustment adjustment, List<string> changes)
    {
        string name = adjustment.Name.StartsWith('-') ? adjustment.Name : "--" + adjustment.Name;
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
            return adjustment.Value ?? throw new AdjustmentException($"{subject}: set needs a value");
        }
        string verb = adjustment.Op.ToString().ToLowerInvariant();
        if (current is null)
        {
            throw new AdjustmentException($"{subject} {missing}, so it cannot {verb}");
        }
        decimal factor = adjustment.Op switch
        {
            AdjustOp.Halve => 0.5m,
            AdjustOp.Double => 2m,
            _ => decimal.TryParse(adjustment.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out decimal f)
                ? f
                : throw new AdjustmentException($"{subject}: multiply needs a numeric factor, got '{adjustment.Value}'"),
        };
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
            throw new AdjustmentException($"{subject}: {current} cannot {verb} without overflowing");
        }
        if (double.TryParse(current, NumberStyles.Float, CultureInfo.InvariantCulture, out double big) && double.IsFinite(big))
        {
            // Beyond decimal's range (e.g. 1e40): still a decimal number, in double precision.
            double result = big * (double)factor;
            string text = result.ToString("R", CultureInfo.InvariantCulture);
            return double.IsFinite(result) ? text : throw new AdjustmentException($"{subject}: {current} cannot {verb} without overflowing");
        }
        throw new AdjustmentException($"{subject} is '{current}', not a number, so it cannot {verb}");
    }

    /// <summary>Shortest exact text that still reads as a decimal: 0.0005, 6.0, -1.25.</summary>
    private static string DecimalText(decimal value)
    {
        string text = value.ToString("0.############################", CultureInfo.InvariantCulture);
        return text.Contains('.', StringComparison.Ordinal) ? text : text + ".0";
    }
}
