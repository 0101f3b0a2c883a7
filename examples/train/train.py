#!/usr/bin/env python3
"""A small but real PyTorch training job that follows the Kintsugi workload protocol.

It trains an MLP (32 -> 64 -> 1) on synthetic regression data, prints metrics, writes
checkpoints atomically, resumes from the checkpoint the supervisor names, skips the steps the
supervisor tells it to skip, touches a heartbeat file, and can inject the faults Kintsugi is meant
to recover from (crash, SIGKILL, hang, NaN loss, CUDA out of memory, a chosen exit code).

Uses only the standard library and torch. See README.md next to this file.
"""

import argparse
import json
import math
import os
import pickle
import random
import re
import signal
import sys
import time

IN_FEATURES = 32
HIDDEN = 64
TEACHER_HIDDEN = 8
CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.pt$")


def log(message):
    """A human-readable line on stdout (metric lines are the ones starting with KINTSUGI)."""
    print(message, flush=True)


def fail(message, code=1):
    print(f"train.py: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def env_int(name, default):
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        fail(f"{name}={value!r} is not an integer", 2)


def env_fault(name):
    """An integer fault switch, or None when unset or empty."""
    return env_int(name, None)


class Heartbeat:
    """Touches a file (creating it if needed); a no-op without a path."""

    def __init__(self, path):
        self.path = path or None
        self.warned = False

    def touch(self):
        if self.path is None:
            return
        try:
            try:
                os.utime(self.path, None)
            except FileNotFoundError:
                parent = os.path.dirname(self.path)
                if parent:
                    os.makedirs(parent, exist_ok=True)
                with open(self.path, "a"):
                    pass
        except OSError as e:
            if not self.warned:
                print(f"train.py: cannot touch heartbeat file {self.path}: {e}", file=sys.stderr, flush=True)
                self.warned = True

    def sleep(self, seconds):
        """Sleep, touching the heartbeat at least every 0.1 s."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.1, left))
            self.touch()


def parse_args():
    p = argparse.ArgumentParser(
        description="Tiny PyTorch training job for the Kintsugi supervisor (MLP on synthetic data).")
    p.add_argument("--steps", type=int, default=500, help="total number of steps (default 500)")
    p.add_argument("--checkpoint-every", type=int, default=100,
                   help="save a checkpoint every N steps, 0 = never (default 100)")
    p.add_argument("--keep", type=int, default=3, help="keep at most N newest checkpoint files (default 3)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003)")
    p.add_argument("--step-time", type=float, default=0.0,
                   help="sleep this many seconds per step, to make runs observable (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model init and the data (default 0)")
    p.add_argument("--log-every", type=int, default=1,
                   help="print a metric line every N steps (default 1); the first NaN and the last step always")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1... (default auto)")
    a = p.parse_args()
    if a.steps < 0:
        p.error("--steps must be >= 0")
    if a.checkpoint_every < 0:
        p.error("--checkpoint-every must be >= 0")
    if a.keep < 1:
        p.error("--keep must be >= 1")
    if a.log_every < 1:
        p.error("--log-every must be >= 1")
    if a.step_time < 0:
        p.error("--step-time must be >= 0")
    return a


def checkpoint_files(directory):
    """{step: path} of the complete checkpoint files in the directory."""
    found = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return found
    for name in names:
        m = CHECKPOINT_NAME.match(name)
        if m:
            found[int(m.group(1))] = os.path.join(directory, name)
    return found


def load_checkpoint(torch, path):
    """torch.load with weights_only where this torch can read our checkpoints that way (2.x); torch
    1.13's restricted unpickler rejects the optimizer's floats, so fall back to a full load there
    (these are files this script wrote)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch older than 1.13: no weights_only
        return torch.load(path, map_location="cpu")
    except pickle.UnpicklingError:
        return torch.load(path, map_location="cpu", weights_only=False)


def main():
    args = parse_args()

    # Everything that needs no torch comes first, so faults and heartbeats do not wait for the
    # ~1 s import.
    workload = os.environ.get("KINTSUGI_WORKLOAD") or "train"
    replica = env_int("KINTSUGI_REPLICA", 0)
    attempt = env_int("KINTSUGI_ATTEMPT", 1)
    ckpt_dir = os.path.abspath(os.environ.get("KINTSUGI_CHECKPOINT_DIR") or "ckpt")
    resume_from = os.environ.get("KINTSUGI_RESUME_FROM") or None
    skip_steps = env_int("KINTSUGI_SKIP_STEPS", 0)
    heartbeat = Heartbeat(os.environ.get("KINTSUGI_HEARTBEAT_FILE"))
    batch_size = env_int("BATCH_SIZE", 64)
    if batch_size < 1:
        fail(f"BATCH_SIZE={batch_size} must be >= 1", 2)
    if skip_steps < 0:
        fail(f"KINTSUGI_SKIP_STEPS={skip_steps} must be >= 0", 2)

    fault_exit = env_fault("FAULT_EXIT_CODE")
    fault_crash = env_fault("FAULT_CRASH_AT_STEP")
    fault_kill = env_fault("FAULT_KILL_AT_STEP")
    fault_hang = env_fault("FAULT_HANG_AT_STEP")
    fault_nan = env_fault("FAULT_NAN_AT_STEP")
    fault_oom = env_fault("FAULT_OOM_IF_BATCH_ABOVE")

    heartbeat.touch()
    if fault_exit is not None:
        print(f"train.py: fault injection: FAULT_EXIT_CODE={fault_exit}, exiting", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(fault_exit)

    t_start = time.monotonic()
    import torch  # noqa: E402  (deliberately late, see above)
    from torch import nn

    heartbeat.touch()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # a tiny model: threads only add overhead, and replicas share the CPUs
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    import_s = time.monotonic() - t_start

    log(f"start: workload {workload}, replica {replica}, attempt {attempt}, batch_size {batch_size}, "
        f"steps {args.steps}, device {device}, torch {torch.__version__} (import {import_s:.2f} s), "
        f"checkpoints {ckpt_dir} " + (f"every {args.checkpoint_every} (keep {args.keep})" if args.checkpoint_every else "off"))

    # The task: regress a fixed random "teacher" network. Batch i is drawn from seed + i alone, so a
    # resumed run sees exactly the data an uninterrupted one would, and skipping steps is meaningful.
    g = torch.Generator().manual_seed(args.seed)
    teacher_w1 = torch.randn(IN_FEATURES, TEACHER_HIDDEN, generator=g) / math.sqrt(IN_FEATURES)
    teacher_w2 = torch.randn(TEACHER_HIDDEN, 1, generator=g) / math.sqrt(TEACHER_HIDDEN)

    def batch(step):
        gen = torch.Generator().manual_seed(args.seed + step)
        x = torch.randn(batch_size, IN_FEATURES, generator=gen)
        y = torch.tanh(x @ teacher_w1) @ teacher_w2 + 0.01 * torch.randn(batch_size, 1, generator=gen)
        return x, y

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model = nn.Sequential(nn.Linear(IN_FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()

    step = 0  # the last step done (trained or skipped)
    last_loss = None
    skipped = []  # [first, last] ranges of steps skipped so far, carried through checkpoints
    if resume_from:
        try:
            ckpt = load_checkpoint(torch, resume_from)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            step = int(ckpt["step"])
            rng = ckpt.get("rng") or {}
        except Exception as e:  # a missing, truncated or foreign file
            fail(f"cannot resume from {resume_from}: {type(e).__name__}: {e}")
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state_all(list(rng["cuda"]))
        if "python" in rng:
            state = rng["python"]
            random.setstate((state[0], tuple(state[1]), state[2]))
        last_loss = ckpt.get("loss")
        skipped = [list(r) for r in ckpt.get("skipped", [])]
        if ckpt.get("seed", args.seed) != args.seed:
            print(f"train.py: warning: checkpoint was made with --seed {ckpt['seed']}, now --seed {args.seed}",
                  file=sys.stderr, flush=True)
        log(f"resumed from {resume_from} at step {step}, skipping {skip_steps} steps")
    elif skip_steps:
        log(f"fresh start, skipping {skip_steps} steps")
    skip_until = step + skip_steps  # steps step+1 .. skip_until are skipped
    if skip_steps:
        skipped.append([step + 1, skip_until])

    os.makedirs(ckpt_dir, exist_ok=True)
    for name in os.listdir(ckpt_dir):  # left by an attempt killed while saving
        if name.startswith("step-") and name.endswith(".pt.tmp"):
            try:
                os.remove(os.path.join(ckpt_dir, name))
            except OSError:
                pass

    def save_checkpoint(at_step):
        final = os.path.join(ckpt_dir, f"step-{at_step:06d}.pt")
        tmp = final + ".tmp"
        rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": at_step,
            "rng": rng,
            "loss": last_loss,
            "batch_size": batch_size,
            "seed": args.seed,
            "skipped": skipped,
        }
        with open(tmp, "wb") as f:  # complete and on disk before it takes the final name
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        # Keep the newest --keep checkpoints of this run's history. Files of a later step than this
        # one come from a run that was rolled back (NaN) or started over: they are removed, so that
        # they can neither push out the good ones nor be mistaken for the newest.
        steps = sorted(checkpoint_files(ckpt_dir))
        doomed = [s for s in steps if s > at_step] + [s for s in steps if s <= at_step][:-args.keep]
        for old in doomed:
            try:
                os.remove(os.path.join(ckpt_dir, f"step-{old:06d}.pt"))
            except OSError:
                pass

    def metric(at_step, loss):
        print("KINTSUGI " + json.dumps({"step": at_step, "loss": float(f"{loss:.6g}"), "batch_size": batch_size}), flush=True)

    t_train = time.monotonic()
    start_step = step
    oom_checked = False
    while step < args.steps:
        step += 1
        heartbeat.touch()

        if attempt == 1:
            if fault_crash == step:
                print(f"train.py: fault injection: crashing at step {step}", file=sys.stderr, flush=True)
                os._exit(1)
            if fault_kill == step:
                print(f"train.py: fault injection: SIGKILL at step {step}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            if fault_hang == step:
                print(f"train.py: fault injection: hanging at step {step} (no more heartbeats)",
                      file=sys.stderr, flush=True)
                while True:
                    time.sleep(3600)

        if step <= skip_until:
            # Skip the batch: the data stream advances (batch i depends only on seed + i), no training.
            if args.checkpoint_every and step % args.checkpoint_every == 0:
                save_checkpoint(step)
            continue

        if not oom_checked:
            oom_checked = True
            if fault_oom is not None and batch_size > fault_oom:
                print(f"train.py: fault injection: BATCH_SIZE {batch_size} > FAULT_OOM_IF_BATCH_ABOVE={fault_oom}",
                      file=sys.stderr)
                print("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr, flush=True)
                sys.stdout.flush()
                os._exit(1)

        x, y = batch(step)
        if fault_nan == step:
            x = x * float("nan")  # a poisoned batch: the loss, the gradients and then the weights go NaN
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        previous = last_loss
        last_loss = loss.item()

        finite = math.isfinite(last_loss)
        first_bad = not finite and (previous is None or math.isfinite(previous))
        if step % args.log_every == 0 or step == args.steps or first_bad:
            metric(step, last_loss)
        if args.checkpoint_every and step % args.checkpoint_every == 0:
            save_checkpoint(step)
        if args.step_time:
            heartbeat.sleep(args.step_time)

    if args.checkpoint_every and step > start_step and step % args.checkpoint_every != 0:
        save_checkpoint(step)  # the final state, when the last step is not on the schedule
    heartbeat.touch()
    train_s = time.monotonic() - t_train
    log(f"time: import {import_s:.2f} s, {step - start_step} steps {train_s:.2f} s")
    shown = "nan" if last_loss is None else f"{last_loss:.6f}"
    log(f"done: step {step}, loss {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
