using Spectre.Console;

namespace Kintsugi.Cli.Rendering;

/// <summary>A progress bar with rate and ETA on stderr while work runs; nothing when stderr is not a terminal.</summary>
internal static class ProgressDisplay
{
    public static async Task<T> RunAsync<T>(CliContext ctx, string description, Func<(long Done, long Total)> poll, Task<T> work)
    {
        if (!ctx.ShowProgress)
        {
            return await work.ConfigureAwait(false);
        }
        await ctx.ErrorConsole.Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async progress =>
            {
                var task = progress.AddTask(description, maxValue: 1);
                while (!work.IsCompleted)
                {
                    var (done, total) = poll();
                    task.MaxValue = Math.Max(1, Math.Max(total, done));
                    task.Value = done;
                    await Task.WhenAny(work, Task.Delay(150)).ConfigureAwait(false);
                }
                task.Value = task.MaxValue;
            }).ConfigureAwait(false);
        return await work.ConfigureAwait(false);
    }
}
