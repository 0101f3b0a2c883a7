#!/usr/bin/env bash
# A small PyTorch training job under `kintsugi run` whose checkpoints are protected in a local
# repository and copied to an S3 store (s3rver) by `copies:`, run five times: checkpoints not backed
# up at all; protected without copies; protected and copied with `protection: { priority: normal }`
# (inside the supervisor, at its priority); the same at the default `priority: low` (a helper
# process at nice 10, I/O best-effort 7); and low with the copy's limit-upload. Prints the job's
# median and 90th-percentile step time per run: what protecting and copying checkpoints costs the job.
#
#   bench/step-time.sh [--steps N] [--checkpoint-every K] [--width W] [--threads T] [--limit RATE] [--kintsugi PATH] [--keep]
#
#   --steps N             training steps per run (default 200)
#   --checkpoint-every K  a checkpoint every K steps (default 25)
#   --width W             the model: 4 linear layers W×W (default 1024: 4.2 M parameters, a 16 MiB checkpoint), batch 16
#   --threads T           torch threads of the job (default: the number of cores, so the job wants every core, as training does)
#   --limit RATE          limit-upload of the copy in the last run (default 2M)
#   --kintsugi PATH       a published kintsugi binary or kintsugi.dll; default: build src/Kintsugi.Cli in Release
#
# The step time is measured by the job itself (time.perf_counter around forward, backward and the
# optimizer step; the checkpoint save is excluded) and written to a file per run. The main
# repository is a local folder; the copy goes to s3rver over https (self-signed). CPU only, so what
# protecting and copying cost is CPU and memory bandwidth taken from the job. Emulators as for
# bench/remote.sh (KINTSUGI_SERVERS_DIR or <repo>/.servers).
set -euo pipefail
steps=200 every=25 width=1024 threads=$(nproc) limit=2M kintsugi="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --checkpoint-every) every=$2; shift 2 ;;
    --width) width=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --kintsugi) kintsugi=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
servers=${KINTSUGI_SERVERS_DIR:-$root/.servers}
S3RVER=$servers/node_modules/.bin/s3rver
[ -x "$S3RVER" ] || { echo "$S3RVER is missing: run ./test.sh once, or set KINTSUGI_SERVERS_DIR" >&2; exit 2; }
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "/usr/bin/python3 has no torch (apt-get install python3-torch)" >&2; exit 2; }
if [ -n "$kintsugi" ]; then
  kintsugi=$(realpath "$kintsugi")
  case "$kintsugi" in *.dll) K=(dotnet "$kintsugi") ;; *) K=("$kintsugi") ;; esac
else
  dotnet build -c Release "$root/src/Kintsugi.Cli" -v q -nologo >/dev/null
  K=(dotnet "$root/src/Kintsugi.Cli/bin/Release/net10.0/kintsugi.dll")
fi

work=$(mktemp -d /tmp/kintsugi-step-time.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/s3"
# https: over plain http the S3 client reads each body once unthrottled to sign it, and
# limit-upload does not bind (seen at commit 4729f9f); over https the body is not signed.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
"$S3RVER" -d "$work/s3" -a 127.0.0.1 -p "$port" --configure-bucket bench --key "$work/key.pem" --cert "$work/cert.pem" --silent > "$work/s3rver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER XDG_CACHE_HOME="$work/cache" SSL_CERT_FILE="$work/cert.pem"
echo "bench-password" > "$work/pass"

cat > "$work/job.py" <<'PY'
import json, os, sys, time, torch
steps, every, width, out, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(4)])
opt = torch.optim.SGD(model.parameters(), lr=1e-4)
x, y = torch.randn(16, width), torch.randn(16, width)
ckpt = os.environ.get("KINTSUGI_CHECKPOINT_DIR", "ckpt")
os.makedirs(ckpt, exist_ok=True)
with open(out, "w") as f:
    for step in range(1, steps + 1):
        t = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        dt = time.perf_counter() - t
        f.write(f"{dt:.6f}\n")
        print("KINTSUGI " + json.dumps({"step": step, "loss": loss.item(), "step_time_s": round(dt, 6)}), flush=True)
        if step % every == 0:
            tmp = os.path.join(ckpt, f"step-{step:06d}.pt.tmp")
            torch.save(model.state_dict(), tmp)
            os.replace(tmp, os.path.join(ckpt, f"step-{step:06d}.pt"))
PY

run_case() { # ID NAME EXTRA-YAML [BACKUP]
  local name=$2 copies=$3 backup=${4:-on-change} dir="$work/$1"
  mkdir -p "$dir"
  cat > "$dir/kintsugi.yaml" <<YAML
repository: $dir/repo
password-file: $work/pass
journal: $dir/journal.db
$copies
workloads:
  trainer:
    command: [/usr/bin/python3, $work/job.py, "$steps", "$every", "$width", "$dir/steps.txt", "$threads"]
    checkpoints: { dir: ckpt, backup: $backup, keep-last: 3, settle: 200ms }
YAML
  local s e
  s=$(date +%s.%N)
  (cd "$dir" && "${K[@]}" run --config "$dir/kintsugi.yaml" > "$dir/run.out" 2>&1) || { echo "kintsugi run ($name) failed:" >&2; tail -20 "$dir/run.out" >&2; exit 1; }
  e=$(date +%s.%N)
  local copied
  copied=$("${K[@]}" events --journal "$dir/journal.db" --type checkpoint.copied --limit 0 --json 2>/dev/null \
    | jq -r 'if length == 0 then "0" else "\(length): \(map(.data.bytes) | add / 1048576 * 10 | round / 10) MiB, \(map(.data.duration_s) | sort | .[length / 2 | floor]) s median" end' || echo "?")
  local protected
  protected=$("${K[@]}" events --journal "$dir/journal.db" --type checkpoint.protected --limit 0 --json 2>/dev/null \
    | jq -r 'if length == 0 then "0" else "\(length), \(map(.data.duration_s) | sort | .[length / 2 | floor]) s median" end' || echo "?")
  /usr/bin/python3 - "$dir/steps.txt" "$name" "$(echo "$e - $s" | bc -l)" "$protected" "$copied" <<'PY'
import statistics, sys
t = sorted(float(l) for l in open(sys.argv[1]))
p90 = t[int(0.9 * (len(t) - 1))]
print(f"| {sys.argv[2]} | {len(t)} | {statistics.median(t) * 1000:.1f} | {p90 * 1000:.1f} | {float(sys.argv[3]):.1f} | {sys.argv[4]} | {sys.argv[5]} |")
PY
}
echo "$steps steps, a checkpoint every $every steps ($(( 4 * width * (width + 1) * 4 / 1048576 )) MiB), $threads torch threads, $(nproc) cores"
echo
echo "| run | steps | step ms (median) | step ms (p90) | run s | protected (median duration) | copies journaled (uploaded, median duration) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
run_case off "checkpoints not backed up" "" off
run_case none "protected, no copies (low)" ""
run_case normal "copy to s3rver, priority normal" "protection: { priority: normal }
copies: [ \"s3:https://127.0.0.1:$port/bench/copy0\" ]"
run_case copy "copy to s3rver, priority low" "copies: [ \"s3:https://127.0.0.1:$port/bench/copy1\" ]"
run_case limited "copy, priority low, limit-upload $limit" "copies:
  - { repository: \"s3:https://127.0.0.1:$port/bench/copy2\", limit-upload: $limit }"
