namespace Kintsugi.Cli;

/// <summary>The process exit codes, documented in --help and the README.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;
    public const int Partial = 3;
    public const int Interrupted = 130;

    public const string Help = "Exit codes: 0 ok, 1 failed (error on one line on stderr), 2 bad usage, 3 finished but some files could not be read, 130 interrupted.";
}
