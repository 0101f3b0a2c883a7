namespace Kintsugi.Supervision.Policies;

/// <summary>An adjustment that cannot be applied; the message names the variable or option and the reason.</summary>
public sealed class AdjustmentException : Exception
{
    public AdjustmentException(AdjustmentProblem problem, string message) : base(message) => Problem = problem;

    public AdjustmentException(string message) : base(message) { }

    public AdjustmentException() { }

    public AdjustmentException(string message, Exception inner) : base(message, inner) { }

    /// <summary>What kind of problem it is.</summary>
    public AdjustmentProblem Problem { get; } = AdjustmentProblem.BadValue;
}
