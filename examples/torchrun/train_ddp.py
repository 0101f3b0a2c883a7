#!/usr/bin/env python3
"""A small data-parallel PyTorch job (DistributedDataParallel, gloo, CPU) for `torchrun` under
`kintsugi run`, following the Kintsugi workload protocol.

Every rank trains the same MLP (32 -> 64 -> 1) on its own shard of synthetic regression data; the
gradients are averaged by DDP's allreduce every step, so a rank that dies or freezes stops the others
at the next step. Rank 0 alone prints `KINTSUGI {...}` metric lines, writes checkpoints atomically
and touches the heartbeat file; every rank resumes from the checkpoint the supervisor names.

Uses only the standard library and torch. See README.md next to this file.
"""

import argparse
import json
import math
import os
import pickle
import re
import signal
import socket
import sys
import time

IN_FEATURES = 32
HIDDEN = 64
TEACHER_HIDDEN = 8
CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.pt$")


def env_int(name, default):
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        print(f"train_ddp.py: {name}={value!r} is not an integer", file=sys.stderr, flush=True)
        sys.exit(2)


def parse_args():
    p = argparse.ArgumentParser(description="Tiny DDP training job (gloo, CPU) for torchrun under kintsugi run.")
    p.add_argument("--steps", type=int, default=500, help="total number of steps (default 500)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="rank 0 saves a checkpoint every N steps, 0 = never (default 50)")
    p.add_argument("--keep", type=int, default=3, help="keep at most N newest checkpoint files (default 3)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size per rank (default 32)")
    p.add_argument("--step-time", type=float, default=0.0, help="sleep this many seconds per step (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model init and the data (default 0)")
    p.add_argument("--log-every", type=int, default=1, help="print a metric line every N steps (default 1); the last step always")
    a = p.parse_args()
    for name in ("steps", "checkpoint_every"):
        if getattr(a, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    for name in ("keep", "batch_size", "log_every"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if a.step_time < 0:
        p.error("--step-time must be >= 0")
    return a


def checkpoint_files(directory):
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
    """torch.load with weights_only where it can read these files (torch 2.x); torch 1.13's restricted
    unpickler rejects the optimizer's floats, so fall back to a full load there (files this job wrote)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:
        return torch.load(path, map_location="cpu")
    except pickle.UnpicklingError:
        return torch.load(path, map_location="cpu", weights_only=False)


def touch(path):
    if not path:
        return
    try:
        os.utime(path, None)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(path, "a"):
            pass


def main():
    args = parse_args()

    # Set by torchrun. Without it the job runs alone (world size 1), for a try by hand.
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    rank = env_int("RANK", 0)
    world = env_int("WORLD_SIZE", 1)
    attempt = env_int("KINTSUGI_ATTEMPT", 1)
    ckpt_dir = os.path.abspath(os.environ.get("KINTSUGI_CHECKPOINT_DIR") or "ckpt")
    resume_from = os.environ.get("KINTSUGI_RESUME_FROM") or None
    heartbeat = os.environ.get("KINTSUGI_HEARTBEAT_FILE") if rank == 0 else None

    fault_rank = env_int("FAULT_RANK", 1)
    fault_kill = env_int("FAULT_KILL_AT_STEP", None)
    fault_kill_attempt = env_int("FAULT_KILL_ATTEMPT", 1)
    fault_stop = env_int("FAULT_STOP_AT_STEP", None)
    fault_stop_attempt = env_int("FAULT_STOP_ATTEMPT", 1)

    def say(message):  # human-readable lines: rank 0 only, so the job's output reads as one job's
        if rank == 0:
            print(message, flush=True)

    t0 = time.monotonic()
    import torch  # noqa: E402
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    dist.init_process_group("gloo")
    startup_s = time.monotonic() - t0
    say(f"start: {world} ranks (gloo, cpu), attempt {attempt}, steps {args.steps}, torch {torch.__version__}, "
        f"import + init {startup_s:.2f} s, checkpoints {ckpt_dir} "
        + (f"every {args.checkpoint_every}" if args.checkpoint_every else "off"))

    # The task: regress a fixed random "teacher". Rank r's batch of step i comes from seed + i * world + r
    # alone, so a resumed run sees the data an uninterrupted one would, and ranks see different shards.
    g = torch.Generator().manual_seed(args.seed)
    teacher_w1 = torch.randn(IN_FEATURES, TEACHER_HIDDEN, generator=g) / math.sqrt(IN_FEATURES)
    teacher_w2 = torch.randn(TEACHER_HIDDEN, 1, generator=g) / math.sqrt(TEACHER_HIDDEN)

    def batch(step):
        gen = torch.Generator().manual_seed(args.seed + step * world + rank)
        x = torch.randn(args.batch_size, IN_FEATURES, generator=gen)
        y = torch.tanh(x @ teacher_w1) @ teacher_w2 + 0.01 * torch.randn(args.batch_size, 1, generator=gen)
        return x, y

    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(IN_FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step = 0
    if resume_from:  # every rank loads the same file (rank 0 wrote it)
        try:
            ckpt = load_checkpoint(torch, resume_from)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            step = int(ckpt["step"])
        except Exception as e:  # a missing, truncated or foreign file
            print(f"train_ddp.py: rank {rank}: cannot resume from {resume_from}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            sys.exit(1)
        say(f"resumed from {resume_from} at step {step}")
    ddp = DistributedDataParallel(model)
    loss_fn = nn.MSELoss()

    if rank == 0:
        os.makedirs(ckpt_dir, exist_ok=True)
        for name in os.listdir(ckpt_dir):  # left by an attempt killed while saving
            if name.startswith("step-") and name.endswith(".pt.tmp"):
                try:
                    os.remove(os.path.join(ckpt_dir, name))
                except OSError:
                    pass

    def save_checkpoint(at_step, loss):
        final = os.path.join(ckpt_dir, f"step-{at_step:06d}.pt")
        tmp = final + ".tmp"
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": at_step,
                 "loss": loss, "world_size": world, "seed": args.seed}
        with open(tmp, "wb") as f:  # complete and on disk before it takes the final name
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        steps = sorted(checkpoint_files(ckpt_dir))
        # Files of a later step belong to a history that was abandoned; the rest: the newest --keep.
        for old in [s for s in steps if s > at_step] + [s for s in steps if s <= at_step][:-args.keep]:
            try:
                os.remove(os.path.join(ckpt_dir, f"step-{old:06d}.pt"))
            except OSError:
                pass

    t_train = time.monotonic()
    start_step = step
    loss_value = None
    while step < args.steps:
        step += 1
        # The first touch comes with the first step: the import and the rendezvous before it are the
        # probe's startup budget, not a hang (see README.md).
        touch(heartbeat)
        if rank == fault_rank:
            if fault_kill == step and attempt == fault_kill_attempt:
                print(f"train_ddp.py: fault injection: rank {rank} SIGKILLs itself at step {step}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            if fault_stop == step and attempt == fault_stop_attempt:
                print(f"train_ddp.py: fault injection: rank {rank} SIGSTOPs itself at step {step}", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGSTOP)

        x, y = batch(step)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(ddp(x), y)
        loss.backward()  # DDP averages the gradients over the ranks here (allreduce)
        optimizer.step()

        log_now = step % args.log_every == 0 or step == args.steps
        if log_now:  # the same condition on every rank: all of them join the allreduce of the loss
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            loss_value = mean.item() / world
            if rank == 0:
                print("KINTSUGI " + json.dumps({"step": step, "loss": float(f"{loss_value:.6g}")}), flush=True)
        if rank == 0 and (args.checkpoint_every and step % args.checkpoint_every == 0 or step == args.steps):
            save_checkpoint(step, loss_value)
        if args.step_time:
            time.sleep(args.step_time)

    touch(heartbeat)
    dist.destroy_process_group()
    say(f"time: import + init {startup_s:.2f} s, {step - start_step} steps {time.monotonic() - t_train:.2f} s")
    say(f"done: step {step}, loss " + ("nan" if loss_value is None else f"{loss_value:.6f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
