namespace Kintsugi.Supervision.Config;

/// <summary>A configuration that cannot be used: the message names the file, line, column and field.</summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string message) : base(message) { }

    public ConfigException() { }

    public ConfigException(string message, Exception inner) : base(message, inner) { }
}
