using System.Text.Json;
using Kintsugi.Supervision.Journal;
using Kintsugi.Supervision.Metrics;

namespace Kintsugi.Supervision.Tests;

/// <summary>The figures of docs/METRICS.md, computed from hand-written event sequences with explicit times.</summary>
public sealed class FiguresTests
{
    private static readonly DateTimeOffset T0 = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private static DateTimeOffset Min(double minutes) => T0.AddMinutes(minutes);

    /// <summary>A journal written by hand: each event at a minute offset from <see cref="T0"/>.</summary>
    private sealed class Script
    {
        public List<JournalEvent> Events { get; } = [];

        public Script At(double minute, string type, string? workload = null, int? replica = null, object? data = null)
        {
            Events.Add(new JournalEvent(Events.Count + 1, Min(minute), type, workload, replica, JsonSerializer.SerializeToElement(data ?? new { })));
            return this;
        }

        public Script Supervisor(double minute, int pid = 1000) => At(minute, EventTypes.SupervisorStarted, data: new { pid, config = "/work/kintsugi.yaml", resumed = false });

        public Script Started(double minute, string workload, int replica = 0, int pid = 100, int attempt = 1, string? resumeFrom = null) =>
            At(minute, EventTypes.ProcessStarted, workload, replica, new { pid, attempt, command = new[] { "python", "train.py" }, resume_from = resumeFrom, skip_steps = 0 });

        public Script Healthy(double minute, string workload, int replica = 0) => At(minute, EventTypes.ReplicaHealthy, workload, replica, new { after_s = 1.0 });

        public Script Unhealthy(double minute, string workload, int replica = 0, string source = "exit") => At(minute, EventTypes.ReplicaUnhealthy, workload, replica, new { source, detail = "code 1" });

        public Script Exited(double minute, string workload, int replica = 0, int? code = 1, bool expected = false, int? pid = null) =>
            At(minute, EventTypes.ProcessExited, workload, replica, new { pid, code, signal = (int?)null, uptime_s = 1.0, expected });

        public Script Protected(double minute, string workload, double checkpointMinute, long bytes = 100, string? path = null) =>
            At(minute, EventTypes.CheckpointProtected, workload, null, new { path = path ?? $"/ckpt/step-{checkpointMinute}", bytes, snapshot = "abcd", duration_s = 1.0, checkpoint_time = Min(checkpointMinute).ToString("O") });

        public Script Written(double minute, string workload, long bytes) =>
            At(minute, EventTypes.CheckpointWritten, workload, null, new { path = $"/ckpt/step-{minute}", bytes, step = (long?)null });

        /// <summary>A checkpoint.written at <paramref name="minute"/> of a checkpoint written at <paramref name="checkpointMinute"/>.</summary>
        public Script Written(double minute, string workload, double checkpointMinute, string path) =>
            At(minute, EventTypes.CheckpointWritten, workload, null, new { path, bytes = 100L, step = (long?)null, checkpoint_time = Min(checkpointMinute).ToString("O") });

        public WorkloadFigures Figures(string workload, double fromMinute = 0, double toMinute = 60, bool alive = true) =>
            Metrics.Figures.Compute(Events, Min(fromMinute), Min(toMinute), alive).Single(f => f.Workload == workload);
    }

    [Fact]
    public void Healthy_50_minutes_then_unhealthy_10_gives_availability_five_sixths()
    {
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train").Unhealthy(50, "train").Figures("train");

        Assert.Equal(5.0 / 6, f.Availability!.Value, 9);
        Assert.Equal(3000, f.HealthySeconds, 6);
        Assert.Equal(3600, f.ObservedSeconds, 6);
        Assert.Equal(1, f.Failures);
        Assert.Equal(3000, f.MtbfSeconds!.Value, 6);
        Assert.Null(f.MttrSeconds);
        Assert.Equal(WorkloadState.Unhealthy, f.State);
    }

    [Fact]
    public void Without_failures_MTBF_MTTR_and_RTO_are_null()
    {
        var f = new Script().Supervisor(0).Started(0, "serve").Healthy(1, "serve").Figures("serve");

        Assert.Equal(59.0 / 60, f.Availability!.Value, 9);
        Assert.Equal(0, f.Failures);
        Assert.Null(f.MtbfSeconds);
        Assert.Null(f.MttrSeconds);
        Assert.Null(f.RtoLastSeconds);
        Assert.Equal(WorkloadState.Healthy, f.State);
    }

    [Fact]
    public void MTTR_and_RTO_come_from_each_incident_from_unhealthy_to_healthy_again()
    {
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Unhealthy(10, "train").Exited(10, "train").Started(11, "train", attempt: 2).Healthy(12, "train")
            .Unhealthy(30, "train").Exited(30, "train").Started(33, "train", attempt: 3).Healthy(35, "train")
            .Figures("train");

        Assert.Equal(2, f.Failures);
        Assert.Equal(2, f.Recoveries);
        Assert.Equal(210, f.MttrSeconds!.Value, 6);
        Assert.Equal(300, f.RtoLastSeconds!.Value, 6);
        Assert.Equal(300, f.RtoMaxSeconds!.Value, 6);
        Assert.Equal(53.0 / 60, f.Availability!.Value, 9);
        Assert.Equal(53 * 60 / 2.0, f.MtbfSeconds!.Value, 6);
        Assert.Equal(3, f.Replicas.Single().Attempt);
    }

    [Fact]
    public void A_crash_loop_is_one_incident_but_every_crash_is_a_failure()
    {
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Unhealthy(10, "train").Started(11, "train", attempt: 2)
            .Unhealthy(12, "train").Started(14, "train", attempt: 3).Healthy(15, "train")
            .Figures("train");

        Assert.Equal(2, f.Failures);
        Assert.Equal(1, f.Recoveries);
        Assert.Equal(300, f.MttrSeconds!.Value, 6);
    }

    [Fact]
    public void Only_incidents_that_ended_in_the_window_count_towards_MTTR()
    {
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Unhealthy(10, "train").Healthy(12, "train")
            .Unhealthy(40, "train").Healthy(50, "train")
            .Figures("train", fromMinute: 30);

        Assert.Equal(1, f.Recoveries);
        Assert.Equal(600, f.MttrSeconds!.Value, 6);
        Assert.Equal(20.0 / 30, f.Availability!.Value, 9);
    }

    [Fact]
    public void RPO_is_the_age_at_the_window_end_of_the_newest_good_protected_checkpoint()
    {
        var script = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Protected(41, "train", checkpointMinute: 40)
            .Protected(56, "train", checkpointMinute: 55);

        Assert.Equal(300, script.Figures("train").RpoSeconds!.Value, 6);
        Assert.Equal(Min(55), script.Figures("train").LastProtectedCheckpoint);
        // At 50 the second was not protected yet.
        Assert.Equal(600, script.Figures("train", toMinute: 50).RpoSeconds!.Value, 6);
        // A checkpoint marked bad protects nothing.
        script.At(57, EventTypes.CheckpointBad, "train", null, new { path = "/ckpt/step-55" });
        Assert.Equal(1200, script.Figures("train").RpoSeconds!.Value, 6);
    }

    [Fact]
    public void RPO_per_repository_is_the_age_of_the_newest_good_checkpoint_each_repository_holds()
    {
        object Copied(double checkpointMinute) => new { path = $"/ckpt/step-{checkpointMinute}", repository = "s3:https://h/b", snapshot = "ef01", source_snapshot = "abcd", bytes = 100L, duration_s = 1.0, checkpoint_time = Min(checkpointMinute).ToString("O") };
        var script = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .At(41, EventTypes.CheckpointProtected, "train", null, new { path = "/ckpt/step-40", bytes = 100L, snapshot = "abcd", duration_s = 1.0, checkpoint_time = Min(40).ToString("O"), repository = "/srv/local" })
            .At(45, EventTypes.CheckpointCopied, "train", null, Copied(40))
            .At(56, EventTypes.CheckpointProtected, "train", null, new { path = "/ckpt/step-55", bytes = 100L, snapshot = "bcde", duration_s = 1.0, checkpoint_time = Min(55).ToString("O"), repository = "/srv/local" })
            .At(57, EventTypes.CheckpointCopyFailed, "train", null, new { path = "/ckpt/step-55", repository = "s3:https://h/b", source_snapshot = "bcde", message = "503", duration_s = 1.0 });

        var repositories = script.Figures("train").Repositories;
        Assert.Equal([("/srv/local", "primary", 300.0), ("s3:https://h/b", "copy", 1200.0)], repositories.Select(r => (r.Repository, r.Role, Math.Round(r.RpoSeconds, 6))));
        Assert.Equal(Min(40), repositories[1].LastCheckpoint);
        // Before the copy was made, only the primary holds a checkpoint.
        Assert.Equal(["/srv/local"], script.Figures("train", toMinute: 44).Repositories.Select(r => r.Repository));
        // The retry after the next checkpoint brings the copy up to date.
        script.At(58, EventTypes.CheckpointCopied, "train", null, Copied(55));
        Assert.Equal(300, script.Figures("train").Repositories[1].RpoSeconds, 6);
        // A checkpoint marked bad protects nothing, in any repository.
        script.At(59, EventTypes.CheckpointBad, "train", null, new { path = "/ckpt/step-55" });
        Assert.All(script.Figures("train").Repositories, r => Assert.Equal(1200, r.RpoSeconds, 6));
    }

    [Fact]
    public void Without_a_protected_checkpoint_RPO_is_null()
    {
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train").Written(10, "train", 100).Figures("train");

        Assert.Null(f.RpoSeconds);
    }

    [Fact]
    public void ETTR_takes_off_the_work_since_the_newest_protected_checkpoint_before_each_failure()
    {
        // Healthy 0–30 and 32–60 (58 min); the failure at 30 loses the 10 min since the checkpoint written at 20.
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Protected(21, "train", checkpointMinute: 20)
            .Unhealthy(30, "train").Exited(30, "train").Started(31, "train", attempt: 2, resumeFrom: "/ckpt/step-20").Healthy(32, "train")
            .Figures("train");

        Assert.Equal(58 * 60, f.HealthySeconds, 6);
        Assert.Equal(10 * 60, f.LostSeconds, 6);
        Assert.Equal(48 * 60, f.ProductiveSeconds, 6);
        Assert.Equal(0.8, f.Ettr!.Value, 9);
    }

    [Fact]
    public void ETTR_loses_no_more_than_the_healthy_time_since_the_failed_process_started()
    {
        // Checkpoint at 10. Failure at 20 loses 10–20. The restart at 21 resumes from 10; the failure at 40
        // loses 21–40 (19 min, not 30: 10–20 was already lost). The restart at 41 runs to 60.
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Protected(11, "train", checkpointMinute: 10)
            .Unhealthy(20, "train").Started(21, "train", attempt: 2, resumeFrom: "/ckpt/step-10").Healthy(21, "train")
            .Unhealthy(40, "train").Started(41, "train", attempt: 3, resumeFrom: "/ckpt/step-10").Healthy(41, "train")
            .Figures("train");

        Assert.Equal(58 * 60, f.HealthySeconds, 6);
        Assert.Equal(29 * 60, f.LostSeconds, 6);
        Assert.Equal(29.0 / 60, f.Ettr!.Value, 9);
    }

    [Fact]
    public void ETTR_after_a_rollback_counts_lost_work_back_to_the_checkpoint_restored()
    {
        // Checkpoints at 10 and 25; the fault at 30 is found to predate the second, which is marked bad.
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Protected(11, "train", checkpointMinute: 10)
            .Protected(26, "train", checkpointMinute: 25, path: "/ckpt/step-25")
            .Unhealthy(30, "train", source: "metric")
            .At(31, EventTypes.CheckpointBad, "train", null, new { path = "/ckpt/step-25" })
            .At(31, EventTypes.Rollback, "train", 0, new { checkpoint = "/ckpt/step-10", snapshot = "abcd", skip_steps = 100, marked_bad = new[] { "/ckpt/step-25" } })
            .Exited(31, "train", expected: true).Started(31, "train", attempt: 2, resumeFrom: "/ckpt/step-10").Healthy(32, "train")
            .Figures("train");

        Assert.Equal(20 * 60, f.LostSeconds, 6);
        Assert.Equal(1, f.Rollbacks);
        Assert.Equal(50 * 60, f.RpoSeconds!.Value, 6);
    }

    [Fact]
    public void ETTR_loses_only_the_work_since_the_unprotected_checkpoint_a_restart_resumed_from()
    {
        // Healthy from 0. Protected checkpoint written at 10; a checkpoint written at 29:50 whose backup
        // is still running when the process is killed at 30:00. The restart at 30:30 resumes from it:
        // the kill lost 10 s, not the 20 min since the protected one (as it did before).
        double kill = 30;
        double written = kill - (10.0 / 60);
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Written(10, "train", checkpointMinute: 10, path: "/ckpt/step-10")
            .Protected(11, "train", checkpointMinute: 10, path: "/ckpt/step-10")
            .Written(29.9, "train", checkpointMinute: written, path: "/ckpt/step-29")
            .Unhealthy(kill, "train").Exited(kill, "train")
            .Started(30.5, "train", attempt: 2, resumeFrom: "/ckpt/step-29").Healthy(30.5, "train")
            .Figures("train");

        Assert.Equal(10, f.LostSeconds, 6);
        Assert.Equal(59.5 * 60 - 10, f.ProductiveSeconds, 6);
        // RPO is still about protection: the newest protected checkpoint is the one written at 10.
        Assert.Equal(50 * 60, f.RpoSeconds!.Value, 6);
    }

    [Fact]
    public void ETTR_counts_a_checkpoint_seen_only_after_the_kill_by_when_it_was_written()
    {
        // The checkpoint written at 29:50 settles and is journaled at 30:05, after the kill at 30:00;
        // the restart resumes from it. Its checkpoint_time, not the event's time, bounds the loss.
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Protected(11, "train", checkpointMinute: 10, path: "/ckpt/step-10")
            .Unhealthy(30, "train").Exited(30, "train")
            .Written(30 + (5.0 / 60), "train", checkpointMinute: 30 - (10.0 / 60), path: "/ckpt/step-29")
            .Started(30.5, "train", attempt: 2, resumeFrom: "/ckpt/step-29").Healthy(30.5, "train")
            .Figures("train");

        Assert.Equal(10, f.LostSeconds, 6);
    }

    [Fact]
    public void ETTR_after_a_fresh_restart_loses_all_work_since_the_fresh_start_whatever_was_protected()
    {
        // Fresh start at 0, protected checkpoint at 10, failure at 20; the restart at 21 resumes from it;
        // the failure at 40 is followed by a start from nothing (the checkpoints were gone): everything
        // since 0 is lost, 0–40, of which 0–20 and 21–40 were healthy (39 min, where 10 + 19 were counted before).
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Written(10, "train", checkpointMinute: 10, path: "/ckpt/step-10")
            .Protected(11, "train", checkpointMinute: 10, path: "/ckpt/step-10")
            .Unhealthy(20, "train").Started(21, "train", attempt: 2, resumeFrom: "/ckpt/step-10").Healthy(21, "train")
            .Unhealthy(40, "train").Started(41, "train", attempt: 3).Healthy(41, "train")
            .Unhealthy(50, "train").Started(51, "train", attempt: 4).Healthy(51, "train")
            .Figures("train");

        // And the failure at 50, after the fresh start at 41, loses 41–50: 48 min in all.
        Assert.Equal(48 * 60, f.LostSeconds, 6);
    }

    [Fact]
    public void ETTR_keeps_the_protected_checkpoint_when_the_restart_is_not_known_yet_or_resumed_from_a_bad_one()
    {
        // Resumed from step-25, but a rollback marked it bad afterwards: it saved nothing; back to 10.
        var bad = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Protected(11, "train", checkpointMinute: 10, path: "/ckpt/step-10")
            .Written(25, "train", checkpointMinute: 25, path: "/ckpt/step-25")
            .Unhealthy(30, "train").Started(31, "train", attempt: 2, resumeFrom: "/ckpt/step-25").Healthy(31, "train")
            .At(45, EventTypes.CheckpointBad, "train", null, new { path = "/ckpt/step-25" });
        Assert.Equal(5 * 60, bad.Figures("train", toMinute: 40).LostSeconds, 6);
        Assert.Equal(20 * 60, bad.Figures("train", toMinute: 50).LostSeconds, 6);

        // No restart yet at the window's end: the newest protected checkpoint is the presumed resume point.
        var pending = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Protected(11, "train", checkpointMinute: 10, path: "/ckpt/step-10")
            .Written(25, "train", checkpointMinute: 25, path: "/ckpt/step-25")
            .Unhealthy(30, "train")
            .Figures("train");
        Assert.Equal(20 * 60, pending.LostSeconds, 6);
    }

    [Fact]
    public void ETTR_is_null_for_a_workload_that_never_checkpoints()
    {
        var f = new Script().Supervisor(0).Started(0, "serve").Healthy(0, "serve").Unhealthy(30, "serve").Figures("serve");

        Assert.Null(f.Ettr);
    }

    [Fact]
    public void Recovery_rate_is_bytes_protected_over_bytes_written_in_the_window()
    {
        var script = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .Written(5, "train", 500)
            .Written(20, "train", 100).Written(40, "train", 100)
            .Protected(22, "train", checkpointMinute: 20, bytes: 100).Protected(45, "train", checkpointMinute: 40, bytes: 50);

        var f = script.Figures("train", fromMinute: 10);

        Assert.Equal(150, f.ProtectedBytes);
        Assert.Equal(200, f.WrittenBytes);
        Assert.Equal(0.75, f.RecoveryRate!.Value, 9);
        Assert.Null(script.Figures("train", fromMinute: 50).RecoveryRate);
    }

    [Fact]
    public void Adaptation_rate_is_adjusting_decisions_over_evaluations_in_the_window()
    {
        var script = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .At(5, EventTypes.Evaluations, "train", null, new { count = 1000, triggered = 9 })
            .At(20, EventTypes.Evaluations, "train", null, new { count = 100, triggered = 1 })
            .At(30, EventTypes.Evaluations, "train", null, new { count = 300, triggered = 2 })
            .At(31, EventTypes.Decision, "train", 0, new { action = "restart", reason = "exit 1", delay_s = 1.0, adjusts = true })
            .At(32, EventTypes.Decision, "train", 0, new { action = "adjust", reason = "OOM", delay_s = 0.0, adjusts = true })
            .At(33, EventTypes.Decision, "train", 0, new { action = "record", reason = "slow step", delay_s = 0.0, adjusts = false });

        var f = script.Figures("train", fromMinute: 10);

        Assert.Equal(400, f.Evaluations);
        Assert.Equal(2, f.Adjustments);
        Assert.Equal(0.005, f.AdaptationRate!.Value, 12);
        Assert.Null(script.Figures("train", fromMinute: 40).AdaptationRate);
    }

    [Fact]
    public void Evaluations_counted_for_the_whole_supervisor_are_every_workloads_N()
    {
        var events = new Script().Supervisor(0).Started(0, "train").Started(0, "serve")
            .At(10, EventTypes.Evaluations, data: new { count = 1000, triggered = 4 })
            .At(11, EventTypes.Decision, "train", 0, new { action = "restart", reason = "exit 1", delay_s = 1.0, adjusts = true })
            .At(12, EventTypes.Decision, "serve", 1, new { action = "failover", reason = "503", delay_s = 0.0, adjusts = true })
            .At(13, EventTypes.Decision, "serve", 0, new { action = "failover", reason = "503", delay_s = 0.0, adjusts = true })
            .Events;

        var figures = Figures.Compute(events, Min(0), Min(60));

        Assert.Equal([1000L, 1000L], figures.Select(f => f.Evaluations));
        Assert.Equal([0.001, 0.002], figures.Select(f => f.AdaptationRate!.Value));
    }

    [Fact]
    public void A_failed_workload_stays_failed_when_a_supervisor_carries_on_after_one_that_died_but_not_after_a_clean_stop()
    {
        var script = new Script().Supervisor(0).Started(0, "train").Unhealthy(5, "train")
            .At(5, EventTypes.WorkloadFailed, "train", null, new { reason = "restart budget exhausted" })
            .Supervisor(10, pid: 2000);
        Assert.Equal(WorkloadState.Failed, script.Figures("train").State);

        script.At(20, EventTypes.SupervisorStopped, data: new { reason = "stopped" }).Supervisor(30, pid: 3000);
        Assert.Equal(WorkloadState.Stopped, script.Figures("train").State);
    }

    [Fact]
    public void Restarts_rollbacks_and_failovers_are_counted_within_the_window()
    {
        var f = new Script().Supervisor(0)
            .At(5, EventTypes.Restart, "train", 0, new { attempt = 2, delay_s = 1.0, adjustments = Array.Empty<string>() })
            .At(15, EventTypes.Restart, "train", 0, new { attempt = 3, delay_s = 2.0, adjustments = new[] { "env BATCH_SIZE 64 -> 32" } })
            .At(16, EventTypes.Rollback, "train", 0, new { checkpoint = "/c", snapshot = "s", skip_steps = 0, marked_bad = Array.Empty<string>() })
            .At(17, EventTypes.Failover, "train", 1, new { old_pid = 7 })
            .Figures("train", fromMinute: 10);

        Assert.Equal(1, f.Restarts);
        Assert.Equal(1, f.Rollbacks);
        Assert.Equal(1, f.Failovers);
    }

    [Fact]
    public void The_exit_of_a_replaced_process_does_not_stop_the_replica_that_replaced_it()
    {
        // A rollback starts the next process; the old one's exit may be journaled after that start.
        var script = new Script().Supervisor(0).Started(0, "train", 0, pid: 100).Healthy(0, "train", 0)
            .Started(5, "train", 0, pid: 101, attempt: 2).Healthy(5, "train", 0)
            .Exited(5.5, "train", 0, code: null, expected: true, pid: 100);

        var figures = script.Figures("train", toMinute: 10);

        Assert.Equal(ReplicaState.Healthy, Assert.Single(figures.Replicas).State);
        Assert.Equal(101, figures.Replicas[0].Pid);
        Assert.Equal(1.0, figures.Availability!.Value, 9);
    }

    [Fact]
    public void The_state_follows_the_newest_events_of_each_replica()
    {
        var script = new Script().Supervisor(0).Started(0, "serve", 0, pid: 100).Started(0, "serve", 1, pid: 101);
        Assert.Equal(WorkloadState.Running, script.Figures("serve", toMinute: 1).State);

        script.Healthy(1, "serve", 0).Healthy(1, "serve", 1);
        Assert.Equal(WorkloadState.Healthy, script.Figures("serve", toMinute: 2).State);

        script.Unhealthy(10, "serve", 1, source: "http").Exited(10, "serve", 1, code: null, expected: true);
        var degraded = script.Figures("serve", toMinute: 11);
        Assert.Equal(WorkloadState.Degraded, degraded.State);
        Assert.Equal([ReplicaState.Healthy, ReplicaState.Unhealthy], degraded.Replicas.Select(r => r.State));
        Assert.Equal([100, (int?)null], degraded.Replicas.Select(r => r.Pid));
        Assert.Equal(10.0 / 11, degraded.Availability!.Value, 9); // one healthy replica is enough: healthy 1–11 of 0–11

        script.Started(11, "serve", 1, pid: 102, attempt: 2);
        var restarting = script.Figures("serve", toMinute: 12);
        Assert.Equal(WorkloadState.Degraded, restarting.State);
        Assert.Equal([1, 2], restarting.Replicas.Select(r => r.Attempt!.Value));

        script.Unhealthy(20, "serve", 0).Unhealthy(20, "serve", 1);
        Assert.Equal(WorkloadState.Unhealthy, script.Figures("serve", toMinute: 21).State);

        script.At(22, EventTypes.GiveUp, "serve", null, new { reason = "budget" }).At(22, EventTypes.WorkloadFailed, "serve", null, new { reason = "restart budget exhausted" });
        Assert.Equal(WorkloadState.Failed, script.Figures("serve", toMinute: 23).State);

        script.At(30, EventTypes.SupervisorStopped, data: new { reason = "signal" });
        var stopped = script.Figures("serve");
        Assert.Equal(WorkloadState.Failed, stopped.State);
        Assert.Equal(19.0 / 30, stopped.Availability!.Value, 9); // healthy 1–20 of the run 0–30
    }

    [Fact]
    public void A_process_that_ends_cleanly_leaves_the_workload_stopped()
    {
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train").Exited(40, "train", code: 0).Figures("train");

        Assert.Equal(WorkloadState.Stopped, f.State);
        Assert.Equal(ReplicaState.Stopped, f.Replicas.Single().State);
        Assert.Null(f.Replicas.Single().Pid);
        Assert.Equal(0, f.Failures);
        Assert.Equal(40.0 / 60, f.Availability!.Value, 9);
    }

    [Fact]
    public void A_stopped_supervisor_stops_every_workload_and_the_time_after_it_is_not_observed()
    {
        var f = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .At(30, EventTypes.SupervisorStopped, data: new { reason = "signal" })
            .Figures("train");

        Assert.Equal(WorkloadState.Stopped, f.State);
        Assert.Equal(30 * 60, f.ObservedSeconds, 6);
        Assert.Equal(1.0, f.Availability!.Value, 9);
    }

    [Fact]
    public void A_supervisor_that_died_ends_its_run_at_its_last_event()
    {
        var script = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train")
            .At(30, EventTypes.Evaluations, "train", null, new { count = 10, triggered = 0 });

        var dead = script.Figures("train", alive: false);
        Assert.Equal(30 * 60, dead.ObservedSeconds, 6);
        Assert.Equal(30 * 60, dead.HealthySeconds, 6);
        var alive = script.Figures("train", alive: true);
        Assert.Equal(60 * 60, alive.HealthySeconds, 6);

        var supervisor = Figures.Supervisor(script.Events);
        Assert.True(supervisor.Running);
        Assert.Equal(1000, supervisor.Pid);
        Assert.Equal(Min(0), supervisor.Started);
        Assert.Equal(Min(30), supervisor.LastEvent);
    }

    [Fact]
    public void A_new_supervisor_after_one_that_died_starts_a_new_run()
    {
        // Run 1: 0–20 (died after its event at 20). Run 2: from 40, healthy from 41.
        var script = new Script().Supervisor(0, pid: 1000).Started(0, "train").Healthy(0, "train")
            .At(20, EventTypes.Evaluations, "train", null, new { count = 10, triggered = 0 })
            .Supervisor(40, pid: 2000).Started(40, "train", attempt: 1).Healthy(41, "train");

        var f = script.Figures("train");

        Assert.Equal(40 * 60, f.ObservedSeconds, 6);
        Assert.Equal(39 * 60, f.HealthySeconds, 6);
        Assert.Equal(0, f.Failures);
        Assert.Equal(WorkloadState.Healthy, f.State);
        var supervisor = Figures.Supervisor(script.Events);
        Assert.Equal(2000, supervisor.Pid);
        Assert.Equal(2, supervisor.Runs);
    }

    [Fact]
    public void A_window_that_begins_while_healthy_counts_from_its_start_and_ignores_later_events()
    {
        var script = new Script().Supervisor(0).Started(0, "train").Healthy(0, "train").Unhealthy(50, "train");

        var f = script.Figures("train", fromMinute: 20, toMinute: 40);

        Assert.Equal(1.0, f.Availability!.Value, 9);
        Assert.Equal(0, f.Failures);
        Assert.Equal(WorkloadState.Healthy, f.State);
    }

    [Fact]
    public void Several_healthy_replicas_count_once_for_availability_and_each_for_MTBF()
    {
        var f = new Script().Supervisor(0)
            .Started(0, "serve", 0).Started(0, "serve", 1).Healthy(0, "serve", 0).Healthy(0, "serve", 1)
            .Unhealthy(30, "serve", 0)
            .Figures("serve");

        Assert.Equal(1.0, f.Availability!.Value, 9);
        Assert.Equal(90 * 60, f.ReplicaHealthySeconds, 6);
        Assert.Equal(90 * 60, f.MtbfSeconds!.Value, 6);
    }

    [Fact]
    public void Workloads_come_in_the_order_they_first_appear_and_the_supervisor_is_none_of_them()
    {
        var figures = Figures.Compute(
            new Script().Supervisor(0).Started(0, "train").Started(1, "serve").At(2, EventTypes.Error, data: new { message = "probe could not run" }).Events,
            Min(0), Min(60));

        Assert.Equal(["train", "serve"], figures.Select(f => f.Workload));
        Assert.Equal(EventTypes.ProcessStarted, figures[1].LastEvent!.Type);
    }

    [Fact]
    public void A_window_that_ends_before_it_begins_is_refused()
    {
        Assert.Throws<ArgumentException>(() => Figures.Compute([], Min(10), Min(0)));
    }

    [Fact]
    public void Figures_read_the_same_from_a_real_journal()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kintsugi-figures-{Guid.NewGuid():N}", "journal.db");
        try
        {
            using (var journal = EventJournal.Open(path, TimeProvider.System))
            {
                journal.Append(Min(0), EventTypes.SupervisorStarted, null, null, new { pid = 1, config = "k.yaml", resumed = false });
                journal.Append(Min(0), EventTypes.ProcessStarted, "train", 0, new { pid = 2, attempt = 1 });
                journal.Append(Min(0), EventTypes.ReplicaHealthy, "train", 0, new { after_s = 0.5 });
                journal.Append(Min(50), EventTypes.ReplicaUnhealthy, "train", 0, new { source = "heartbeat", detail = "stale for 60 s" });
            }
            using var reader = EventJournal.OpenReadOnly(path);

            var f = Figures.Compute(reader.Read(), Min(0), Min(60)).Single();

            Assert.Equal(5.0 / 6, f.Availability!.Value, 9);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }
}
