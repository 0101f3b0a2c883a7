using System.Globalization;
using System.Runtime.InteropServices;
using Kintsugi.Supervision.Config;

namespace Kintsugi.Supervision.Processes;

/// <summary>
/// Lowers this process's CPU and I/O priority, as <c>nice -n 10 ionice -c 2 -n 7</c> would have
/// (<c>nice -n 19 ionice -c 3</c> for idle). On Linux both are per thread: every thread running now
/// is lowered, and the threads started later inherit it from the thread that starts them. The I/O
/// priority is honoured by the BFQ and CFQ disk schedulers, not by mq-deadline or none.
/// </summary>
public static partial class ProcessPriority
{
    private const int PrioProcess = 0;
    private const int IoprioWhoProcess = 1;
    private const int IoprioClassShift = 13;
    private const int IoprioClassBestEffort = 2;
    private const int IoprioClassIdle = 3;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setpriority(int which, int who, int prio);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, long which, long who, long ioprio);

    /// <summary>ioprio_set's system call number, or -1 where it is not known.</summary>
    private static long IoprioSet => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 251,
        Architecture.Arm64 => 30,
        _ => -1,
    };

    public static int NiceOf(ProtectionPriority priority) => priority == ProtectionPriority.Idle ? 19 : 10;

    public static string IoClassOf(ProtectionPriority priority) => priority == ProtectionPriority.Idle ? "idle" : "best-effort/7";

    /// <summary>Lowers every thread of this process; what could not be done comes back as a warning (null when all went well).</summary>
    public static string? Lower(ProtectionPriority priority)
    {
        if (priority == ProtectionPriority.Normal || !OperatingSystem.IsLinux())
        {
            return null;
        }
        int nice = NiceOf(priority);
        long ioprio = priority == ProtectionPriority.Idle ? (long)IoprioClassIdle << IoprioClassShift : ((long)IoprioClassBestEffort << IoprioClassShift) | 7;
        string? warning = null;
        // Twice: a thread started while the first pass ran may have copied its starter's old priority.
        for (int pass = 0; pass < 2; pass++)
        {
            string[] tasks;
            try
            {
                tasks = Directory.GetDirectories("/proc/self/task");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return $"cannot list this process's threads ({e.Message}); it runs at normal priority";
            }
            foreach (var task in tasks)
            {
                if (!int.TryParse(Path.GetFileName(task), NumberStyles.None, CultureInfo.InvariantCulture, out int tid))
                {
                    continue;
                }
                if (setpriority(PrioProcess, tid, nice) != 0 && Marshal.GetLastPInvokeError() != 3 /* ESRCH: the thread ended */)
                {
                    warning ??= $"cannot lower the CPU priority (setpriority: error {Marshal.GetLastPInvokeError()})";
                }
                if (IoprioSet < 0)
                {
                    warning ??= $"the I/O priority cannot be set on {RuntimeInformation.ProcessArchitecture}";
                }
                else if (syscall(IoprioSet, IoprioWhoProcess, tid, ioprio) != 0 && Marshal.GetLastPInvokeError() != 3)
                {
                    warning ??= $"cannot lower the I/O priority (ioprio_set: error {Marshal.GetLastPInvokeError()})";
                }
            }
        }
        return warning;
    }
}
