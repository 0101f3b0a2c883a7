using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Policies;

/// <summary>Why an adjustment could not be applied.</summary>
public enum AdjustmentProblem
{
    /// <summary>A numeric operation on a variable that is not set, or an option that is not in the command or has no value.</summary>
    Missing,

    /// <summary>A numeric operation on a value that is not a number.</summary>
    NotANumber,

    /// <summary>The adjustment itself is unusable: a set without a value, a factor that is not a positive number.</summary>
    BadValue,

    /// <summary>The result would overflow.</summary>
    Overflow,
}

/// <summary>An adjustment that was not applied, and why ("env BATCH is not set, so it cannot halve").</summary>
public sealed record AdjustmentFailure(Adjustment Adjustment, AdjustmentProblem Problem, string Reason);

/// <summary>
/// What <see cref="Adjuster.Apply"/> made: the command and environment with every adjustment that could
/// be applied, descriptions of those changes, and the adjustments that could not be, each with its reason.
/// </summary>
public sealed record AdjustmentResult(
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string> Environment,
    IReadOnlyList<string> Changes,
    IReadOnlyList<AdjustmentFailure> Failures);
