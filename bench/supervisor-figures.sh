#!/usr/bin/env bash
# Measures the supervisor's own figures on this machine:
#   1. time from a process dying to its replacement starting (backoff 0, so none is excluded by hand), p50/p99;
#   2. hang detection time against the configured heartbeat staleness;
#   3. the supervisor's own CPU and memory with 10 idle workloads.
#   bench/supervisor-figures.sh [--restarts N] [--idle-seconds S]
set -euo pipefail
restarts=200 idle=60
while [ $# -gt 0 ]; do
  case "$1" in
    --restarts) restarts=$2; shift 2 ;;
    --idle-seconds) idle=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
dotnet build -c Release "$root/src/Kintsugi.Cli" -v q -nologo --no-incremental >/dev/null
K=(dotnet "$root/src/Kintsugi.Cli/bin/Release/net10.0/kintsugi.dll")
work=$(mktemp -d /tmp/kintsugi-sup.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. restart latency: a process that exits at once, restarted with no backoff until the budget runs out.
mkdir -p "$work/restart"
cat > "$work/restart/kintsugi.yaml" <<YAML
workloads:
  crasher:
    command: [/bin/sh, -c, "exit 1"]
    restart: { backoff: { initial: 0, max: 0, factor: 1, jitter: 0 }, budget: { restarts: $restarts, within: 1h } }
YAML
"${K[@]}" run -q --config "$work/restart/kintsugi.yaml" || true
python3 - "$work/restart/.kintsugi/journal.db" <<'PY'
import sqlite3, sys, statistics
rows = sqlite3.connect(sys.argv[1]).execute("select type, time_us from events where type in ('process.exited','process.started') order by id").fetchall()
gaps, last_exit = [], None
for t, us in rows:
    if t == 'process.exited': last_exit = us
    elif last_exit is not None: gaps.append((us - last_exit) / 1000.0); last_exit = None
gaps.sort()
p = lambda q: gaps[min(len(gaps) - 1, int(round(q * (len(gaps) - 1))))]
print(f"1. death -> replacement start: {len(gaps)} restarts, p50 {p(0.5):.1f} ms, p90 {p(0.9):.1f} ms, p99 {p(0.99):.1f} ms, max {gaps[-1]:.1f} ms (backoff 0)")
PY

# 2. hang detection: a process that touches its heartbeat for 1.5 s, notes the time, then hangs.
mkdir -p "$work/hang"
cat > "$work/hang/hang.sh" <<'SH'
for i in $(seq 15); do touch "$KINTSUGI_HEARTBEAT_FILE"; sleep 0.1; done
date +%s%6N >> "$(dirname "$KINTSUGI_HEARTBEAT_FILE")/hung-at"
exec sleep 1000
SH
for stale in 1 2 5; do
  cat > "$work/hang/kintsugi.yaml" <<YAML
journal: .kintsugi/journal-$stale.db
workloads:
  hanger:
    command: [/bin/sh, hang.sh]
    restart: { backoff: { initial: 0, max: 0, factor: 1, jitter: 0 }, budget: { restarts: 4, within: 1h } }
    stop: { grace: 1s }
    probes:
      - heartbeat: { file: hb/beat, stale-after: ${stale}s }
YAML
  rm -rf "$work/hang/hb"; mkdir -p "$work/hang/hb"
  "${K[@]}" run -q --config "$work/hang/kintsugi.yaml" || true
  python3 - "$work/hang/.kintsugi/journal-$stale.db" "$work/hang/hb/hung-at" "$stale" <<'PY'
import sqlite3, sys
hung = [int(l) for l in open(sys.argv[2])]
unhealthy = [us for (us,) in sqlite3.connect(sys.argv[1]).execute("select time_us from events where type='replica.unhealthy' order by id")]
stale = float(sys.argv[3])
# The heartbeat's last touch was 0.1 s before the "hung-at" note.
d = [(u - (h - 100_000)) / 1e6 for h, u in zip(hung, unhealthy)]
print(f"2. hang detection, stale-after {stale:g} s: {len(d)} hangs, detected after {min(d):.2f}..{max(d):.2f} s (mean {sum(d)/len(d):.2f} s) from the last heartbeat")
PY
done

# 3. supervisor CPU and memory with 10 idle workloads, each with an exec probe every 10 s.
mkdir -p "$work/idle"
{
  echo "workloads:"
  for i in $(seq 10); do
    printf '  idle%d:\n    command: [sleep, "3600"]\n    stop: { grace: 1s }\n    probes:\n      - exec: [/bin/true]\n' "$i"
  done
} > "$work/idle/kintsugi.yaml"
"${K[@]}" run -q --config "$work/idle/kintsugi.yaml" & sup=$!
sleep 5
t0=$(awk '{print $14+$15}' /proc/$sup/stat)
sleep "$idle"
t1=$(awk '{print $14+$15}' /proc/$sup/stat)
rss=$(awk '/VmRSS/ {print $2}' /proc/$sup/status)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$sup/status)
kill -TERM $sup; wait $sup || true
tck=$(getconf CLK_TCK)
python3 -c "print(f'3. 10 idle workloads over $idle s: supervisor CPU {($t1-$t0)/$tck/$idle*100:.2f}% of one core, RSS {$rss/1024:.0f} MiB (peak {$hwm/1024:.0f} MiB)')"
echo "machine: $(nproc) cores; $(dotnet --version) SDK"
