namespace Kintsugi.Cli;

/// <summary>The process exit codes, documented in --help and the README.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;
    public const int Partial = 3;

    /// <summary><c>kintsugi status</c>: a workload is failed (docs/METRICS.md, "State"), as <c>systemctl status</c> exits non-zero for a failed unit.</summary>
    public const int WorkloadFailed = 4;
    public const int Interrupted = 130;

    public const string Help = "Exit codes: 0 ok, 1 failed (error on one line on stderr), 2 bad usage, 3 finished but some files could not be read, 4 (status) a workload has failed, 130 interrupted.";
}
