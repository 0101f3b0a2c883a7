using System.Runtime.InteropServices;

namespace Kintsugi.Supervision.Processes;

/// <summary>Signals to a process group (or a process) and what /proc says of a pid.</summary>
internal static partial class ProcessGroup
{
    public const int SIGKILL = 9;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    /// <summary>Signals the group led by <paramref name="pid"/>, or the process alone when it leads none.</summary>
    public static void Signal(int pid, int signal)
    {
        if (kill(-pid, signal) != 0)
        {
            _ = kill(pid, signal);
        }
    }

    /// <summary>
    /// SIGKILL to what is left of the group a finished leader led. Only the group: while any member
    /// lives the kernel keeps its id from being reused, and once none does there is nothing to kill
    /// (the leader's own pid may already belong to someone else).
    /// </summary>
    public static void KillGroup(int leaderPid) => _ = kill(-leaderPid, SIGKILL);

    /// <summary>The start time of a process in clock ticks since boot, or null when it is gone or a zombie.</summary>
    public static long? StartTicks(int pid) => Kintsugi.Backup.Platform.Posix.ProcessStartTicks(pid) is long t and >= 0 ? t : null;

    /// <summary>Whether <paramref name="pid"/> is still the process that started at <paramref name="startTicks"/> (any live process when that is unknown).</summary>
    public static bool IsSame(int pid, long? startTicks) =>
        StartTicks(pid) is long now && (startTicks is null || now == startTicks);
}
