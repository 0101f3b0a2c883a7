namespace Kintsugi.Supervision.Policies;

/// <summary>An adjustment that cannot be applied; the message names the variable or option and the reason.</summary>
public sealed class AdjustmentException : Exception
{
    public AdjustmentException(string message) : base(message) { }

    public AdjustmentException() { }

    public AdjustmentException(string message, Exception inner) : base(message, inner) { }
}
