#!/usr/bin/env bash
# Whole-command speed of Kintsugi against restic (issue 13): each command timed from process start to
# exit, Kintsugi as it is installed, restic 0.14 in the same run, the two taking turns.
#
#   bench/speed.sh [--rounds N] [--only snapshots,checkpoint,embedding,dataset] [--fast-kdf] [--key-files]
#                  [--kintsugi PATH] [--install] [--json FILE] [--keep] [-h|--help]
#
# --key-files: Kintsugi opens the corpus rows' repositories with a key file (`key add --new-key-file`,
# `--key-file`) instead of the password: what automation that opens repositories in a loop pays.
#
# Rows, each with the issue's target as a speed ratio (restic seconds / Kintsugi seconds):
#   snapshots   `snapshots` on a small repository (3 snapshots of 20 small files): idle, and with both
#               cores busy (two `sh -c 'while :; do :; done'` burners, started for those rows and
#               killed after them). Target >= x2 (at most half of restic's time). A third row opens
#               Kintsugi's repository with a key file (`key add --new-key-file`), restic's with its
#               password as before: what a script that opens the repository in a loop pays.
#   checkpoint  a ~210 MB fp32 checkpoint folder (bench/ai_corpus.py frozen-finetune v1, scale 1,
#               + config.json): first backup (>= x3), unchanged re-backup (>= x3), restore into an
#               empty folder (>= x2).
#   embedding   a ~270 MB sparse-embedding table (ai_corpus.py sparse-embedding v1, scale 1: 2^20 x 64
#               fp32 + a dense tower): the same three rows and targets.
#   dataset     40,000 files of 1-8 KB (uniform random sizes, seeded) in 100 folders, each a slice of
#               Zipf-word text followed by 0-60% random bytes: first backup and restore (>= x2, and
#               peak RSS no higher than restic's).
# Every round uses fresh repositories; before each timed command the page cache is warmed (cat of the
# files the command reads) and `sync` runs. The tools alternate which goes first (K R, R K, ...).
# Restores are compared byte for byte with the corpus (diff -r, untimed) and kept until the corpus is
# done (deleting many files slows the next file creations on ext4).
# Reported: median wall seconds of --rounds N (default 3), median CPU seconds (user + sys), peak RSS
# (max over rounds; /usr/bin/time -v), ratio, target, PASS/MISS; a Markdown table and, with
# --json FILE, the same as JSON.
# Kintsugi is published as the README installs it (self-contained, trimmed, ReadyToRun composite)
# into the work folder, or --kintsugi PATH runs an already published binary. Its repositories use the
# default key derivation (what users pay) unless --fast-kdf (Argon2id 8 MiB, 1 iteration); restic
# uses its scrypt as calibrated by `init`. Passwords come from KINTSUGI_PASSWORD_FILE and
# RESTIC_PASSWORD_FILE; the caches (XDG_CACHE_HOME, restic --cache-dir) are private to the run.
# --install installs restic from Debian (apt-get) when missing. --keep keeps the work folder
# (/tmp/kintsugi-speed.*: corpora, repositories, logs). Exit status 1 when a command fails or a
# restore differs (MISS rows do not change it), 2 on bad options.
set -euo pipefail
rounds=3 only=snapshots,checkpoint,embedding,dataset keep=0 kbin="" install=0 fast_kdf=0 key_files=0 json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) [ $# -ge 2 ] || { echo "--rounds needs a value" >&2; exit 2; }; rounds=$2; shift 2 ;;
    --only) [ $# -ge 2 ] || { echo "--only needs a value" >&2; exit 2; }; only=$2; shift 2 ;;
    --kintsugi) [ $# -ge 2 ] || { echo "--kintsugi needs a path" >&2; exit 2; }; kbin=$2; shift 2 ;;
    --json) [ $# -ge 2 ] || { echo "--json needs a file" >&2; exit 2; }; json=$2; shift 2 ;;
    --fast-kdf) fast_kdf=1; shift ;;
    --key-files) key_files=1; shift ;;
    --install) install=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be a positive integer" >&2; exit 2; }
IFS=, read -r -a parts <<< "$only"
[ ${#parts[@]} -gt 0 ] || { echo "--only needs at least one of snapshots,checkpoint,embedding,dataset" >&2; exit 2; }
for p in "${parts[@]}"; do
  case "$p" in snapshots|checkpoint|embedding|dataset) ;;
    *) echo "--only: unknown part '$p' (snapshots, checkpoint, embedding or dataset)" >&2; exit 2 ;; esac
done
wants() { local p; for p in "${parts[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }
if [ -n "$kbin" ]; then
  [ -f "$kbin" ] && [ -x "$kbin" ] || { echo "--kintsugi $kbin is not an executable file" >&2; exit 2; }
  kbin=$(cd "$(dirname "$kbin")" && pwd)/$(basename "$kbin")
fi
if [ -n "$json" ]; then
  jd=$(dirname "$json")
  [ -d "$jd" ] && [ -w "$jd" ] || { echo "--json $json: folder $jd does not exist or is not writable" >&2; exit 2; }
  json=$(cd "$jd" && pwd)/$(basename "$json")
fi

root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
t_start=$(date +%s)
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time): peak RSS needs it" >&2; exit 1; }
"$PY" -c 'import numpy' 2>/dev/null || { echo "$PY lacks numpy (apt-get install python3-numpy), which bench/ai_corpus.py needs" >&2; exit 1; }

# Disk: per part its corpus, the two repositories of one round and the restores of all rounds (x 1.3);
# parts run one after the other and are removed after, so the largest counts (with --keep, the sum).
declare -A PART_MB=([snapshots]=5 [checkpoint]=215 [embedding]=275 [dataset]=250)
need_mb=200 # the published Kintsugi
for p in "${parts[@]}"; do
  if [ "$keep" = 1 ]; then n=$((PART_MB[$p] * (1 + 4 * rounds) * 13 / 10)); need_mb=$((need_mb + n))
  else n=$((PART_MB[$p] * (3 + 2 * rounds) * 13 / 10)); [ $((n + 200)) -gt "$need_mb" ] && need_mb=$((n + 200)); fi
done
free_mb=$(( $(df -B1 --output=avail /tmp | tail -1 | tr -d ' ') / 1000000 ))
[ "$free_mb" -ge "$need_mb" ] || { echo "not enough free space in /tmp: about $need_mb MB needed, $free_mb MB free" >&2; exit 1; }

if [ "$install" = 1 ] && ! command -v restic >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null; } \
    || { echo "apt-get install restic failed" >&2; exit 1; }
fi
command -v restic >/dev/null || { echo "restic is not installed (--install installs it from Debian)" >&2; exit 1; }

work=$(mktemp -d /tmp/kintsugi-speed.XXXXXX)
burners=()
stop_burners() { local b; for b in ${burners[@]+"${burners[@]}"}; do kill "$b" 2>/dev/null || true; wait "$b" 2>/dev/null || true; done; burners=(); }
cleanup() {
  stop_burners
  if [ "$keep" = 1 ]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/logs"

if [ -z "$kbin" ]; then
  # As the README installs it. The publishes of one RID share obj/…/linux-x64 and a composite publish
  # leaves precompiled images there that a later publish of another kind would reuse: start clean.
  echo "publishing Kintsugi (self-contained, trimmed, ReadyToRun composite) ..." >&2
  rm -rf "$root"/src/*/obj/Release/net10.0/linux-x64
  dotnet publish "$root/src/Kintsugi.Cli" -c Release -r linux-x64 --self-contained true -p:PublishTrimmed=true \
    -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=true -o "$work/kintsugi-bin" -v q -nologo \
    > "$work/logs/build.log" 2>&1 \
    || { cat "$work/logs/build.log" >&2; echo "publish of Kintsugi failed" >&2; exit 1; }
  kbin="$work/kintsugi-bin/kintsugi"
  kdesc="published by this run"
else
  kdesc="--kintsugi $kbin"
fi
K=("$kbin")
kinit=()
[ "$fast_kdf" = 1 ] && kinit=(--kdf-memory 8 --kdf-iterations 1)
restic_init=()
restic init --help 2>/dev/null | grep -q -- --repository-version && restic_init=(--repository-version 2)

echo "bench-password" > "$work/pass"
export KINTSUGI_PASSWORD_FILE="$work/pass" RESTIC_PASSWORD_FILE="$work/pass" XDG_CACHE_HOME="$work/cache"
unset RESTIC_REPOSITORY RESTIC_PASSWORD RESTIC_PASSWORD_COMMAND KINTSUGI_REPOSITORY KINTSUGI_PASSWORD RESTIC_CACHE_DIR
rcache="$work/restic-cache"

# ---------------------------------------------------------------------------------------------
# Timing.
# timed LOG CMD...: syncs, runs CMD (output to LOG); sets secs (wall), cpu (user + sys) and rss_kb
# (peak RSS); returns CMD's exit status.
timed() {
  local log=$1; shift
  local s e rc=0 tf="$log.time"
  rm -f "$tf"
  sync
  s=$(date +%s.%N)
  /usr/bin/time -v -o "$tf" "$@" > "$log" 2>&1 || rc=$?
  e=$(date +%s.%N)
  secs=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
  cpu=$(awk -F': ' '/User time \(seconds\)|System time \(seconds\)/ { c += $2 } END { printf "%.2f", c }' "$tf")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
  return $rc
}
declare -A SECS=() CPU=() RSS=() FAILS=() VERIFY=() RKDF=()
line=""
# step ROW TOOL LOG CMD...: timed, the result recorded; returns 1 when CMD failed.
step() {
  local row=$1 t=$2 log=$3; shift 3
  if timed "$log" "$@"; then
    SECS[$row,$t]="${SECS[$row,$t]:-} $secs"
    CPU[$row,$t]="${CPU[$row,$t]:-} $cpu"
    if [ -n "$rss_kb" ] && [ "$rss_kb" -gt "${RSS[$row,$t]:-0}" ]; then RSS[$row,$t]=$rss_kb; fi
    line="$line | $t $(printf '%.2f' "$secs") s"
  else
    local rc=$?
    FAILS[$row,$t]=$(( ${FAILS[$row,$t]:-0} + 1 ))
    line="$line | $t FAILED"
    echo "$t $row failed (exit $rc), log $log:" >&2
    tail -5 "$log" >&2
    return 1
  fi
}
warm() { find "$@" -type f -print0 | xargs -0 -r cat > /dev/null; }
tool_init() { # tool repo log
  case "$1" in
    kintsugi) "${K[@]}" init -r "$2" ${kinit[@]+"${kinit[@]}"} \
      && { [ "$key_files" = 0 ] || "${K[@]}" key add -q -r "$2" --new-key-file "$2.key"; } ;;
    restic) restic -r "$2" --cache-dir "$rcache" init ${restic_init[@]+"${restic_init[@]}"} ;;
  esac > "$3" 2>&1 || { echo "$1 init failed:" >&2; tail -5 "$3" >&2; return 1; }
  # restic calibrates scrypt at init from how fast the machine is at that moment (a busy machine gets
  # cheaper parameters and faster opens): the parameters each repository got are reported.
  if [ "$1" = restic ]; then
    local k
    k=$(cat "$2"/keys/* 2>/dev/null | grep -o '"N":[0-9]*,"r":[0-9]*,"p":[0-9]*' | tr -d '"' | head -1)
    RKDF[${k:-unknown}]=$(( ${RKDF[${k:-unknown}]:-0} + 1 ))
  fi
}
kopen() { [ "$key_files" = 1 ] && echo "--key-file $1.key"; true; } # how Kintsugi opens repository $1 (no spaces in work paths)
tool_backup() { # row tool repo data log
  warm "$4"
  case "$2" in
    kintsugi) step "$1" kintsugi "$5" "${K[@]}" backup -q -r "$3" $(kopen "$3") "$4" ;;
    restic) step "$1" restic "$5" restic -r "$3" --cache-dir "$rcache" backup -q "$4" ;;
  esac
}
tool_restore() { # row tool repo target log
  mkdir -p "$4"
  warm "$3"
  case "$2" in
    kintsugi) step "$1" kintsugi "$5" "${K[@]}" restore latest -q -r "$3" $(kopen "$3") --target "$4" ;;
    restic) step "$1" restic "$5" restic -r "$3" --cache-dir "$rcache" restore latest -q --target "$4" ;;
  esac
}
tool_snapshots() { # row tool repo log [kintsugi options...]
  local row=$1 tool=$2 repo=$3 log=$4
  shift 4
  warm "$repo"
  case "$tool" in
    kintsugi) step "$row" kintsugi "$log" "${K[@]}" snapshots -q -r "$repo" "$@" ;;
    restic) step "$row" restic "$log" restic -r "$repo" --cache-dir "$rcache" snapshots -q ;;
  esac
}
order_of() { if [ $(( $1 % 2 )) = 1 ]; then echo kintsugi restic; else echo restic kintsugi; fi; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
bytes_of() { find "$@" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }'; }
files_of() { find "$@" -type f | wc -l; }

# ---------------------------------------------------------------------------------------------
# Header.
kver=$("${K[@]}" --version 2>/dev/null | awk 'NR == 1' || true)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain -- src 2>/dev/null | wc -l)
[ "$dirty" -gt 0 ] && commit="$commit + uncommitted changes in $dirty file(s) under src/"
load_start=$(uptime | sed 's/.*load average: //')
machine="$(nproc) cores ($(lscpu 2>/dev/null | awk -F': *' '/^Model name/ && !n++ { print $2 }')), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM, kernel $(uname -r), /tmp on $(df -T /tmp | awk 'NR == 2 { print $2 }')"
rver=$(restic version | cut -d' ' -f1-2)
kdf_desc=$([ "$fast_kdf" = 1 ] && echo "fast KDF (--kdf-memory 8 --kdf-iterations 1)" || echo "default key derivation")
[ "$key_files" = 1 ] && kdf_desc="opened with key files (key add --new-key-file; no key derivation) in the corpus rows, $kdf_desc for init and the first snapshots rows"
echo "# Kintsugi whole-command speed (bench/speed.sh, issue 13)"
echo
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $machine"
echo "load average at start (uptime): $load_start"
echo "versions: kintsugi ${kver:-?} ($kdesc; checkout at git $commit), $rver"
echo "repositories: kintsugi $kdf_desc; restic $([ ${#restic_init[@]} -gt 0 ] && echo "repository version 2, " )scrypt as calibrated by init"
echo "rounds: $rounds (tools alternate which goes first); parts: ${parts[*]}; work folder $work"
echo

declare -A CORPUS_DESC=()
ROWS=()
add_row() { ROWS+=("$1"); }

# ---------------------------------------------------------------------------------------------
# snapshots on a small repository, idle and with both cores busy.
if wants snapshots; then
  sd="$work/snap"
  mkdir -p "$sd/data"
  for i in $(seq 1 20); do head -c $((1000 + i * 300)) /dev/urandom > "$sd/data/file-$i.bin"; done
  for t in kintsugi restic; do
    tool_init "$t" "$sd/$t-repo" "$work/logs/snap-init-$t.log" || { FAILS[snapshots-idle,$t]=1; continue; }
    for v in 1 2 3; do
      echo "version $v" > "$sd/data/version.txt"
      case "$t" in
        kintsugi) "${K[@]}" backup -q -r "$sd/$t-repo" "$sd/data" ;;
        restic) restic -r "$sd/$t-repo" --cache-dir "$rcache" backup -q "$sd/data" ;;
      esac > "$work/logs/snap-backup-$t-$v.log" 2>&1 || { echo "$t backup for the snapshots repository failed" >&2; FAILS[snapshots-idle,$t]=1; }
      echo "version $v changed" >> "$sd/data/file-$v.bin"
    done
    if [ "$t" = kintsugi ]; then
      # A key file (kintsugi key add --new-key-file): how scripts open a repository without the derivation.
      "${K[@]}" key add -q -r "$sd/$t-repo" --new-key-file "$sd/kintsugi.key" > "$work/logs/snap-keyfile.log" 2>&1 \
        || { echo "kintsugi key add --new-key-file failed" >&2; FAILS[snapshots-keyfile,$t]=1; }
    fi
  done
  CORPUS_DESC[snapshots]="a repository of 3 snapshots of 20 small files ($(mb "$(bytes_of "$sd/data")") MB)"
  busy_note="both cores busy: $(nproc) \`sh -c 'while :; do :; done'\` burners run during these rows, killed after"
  echo "snapshots: ${CORPUS_DESC[snapshots]}; $busy_note"
  for r in $(seq 1 "$rounds"); do
    line="round $r snapshots idle"
    for t in $(order_of "$r"); do
      tool_snapshots snapshots-idle "$t" "$sd/$t-repo" "$work/logs/r$r-snap-idle-$t.log" || true
    done
    echo "$line"
    line="round $r snapshots idle, kintsugi with a key file"
    for t in $(order_of "$r"); do
      tool_snapshots snapshots-keyfile "$t" "$sd/$t-repo" "$work/logs/r$r-snap-keyfile-$t.log" --key-file "$sd/kintsugi.key" || true
    done
    echo "$line"
    for _ in $(seq 1 "$(nproc)"); do sh -c 'while :; do :; done' & burners+=($!); done
    sleep 0.5
    line="round $r snapshots busy ($(nproc) burners)"
    for t in $(order_of "$r"); do
      tool_snapshots snapshots-busy "$t" "$sd/$t-repo" "$work/logs/r$r-snap-busy-$t.log" || true
    done
    stop_burners
    echo "$line (burners killed)"
  done
  add_row "snapshots-idle|\`snapshots\`, small repository, idle|2|0"
  add_row "snapshots-busy|\`snapshots\`, small repository, both cores busy|2|0"
  add_row "snapshots-keyfile|\`snapshots\`, idle, Kintsugi opening with a key file (restic: its password)|2|0"
  [ "$keep" = 1 ] || rm -rf "$sd" "$rcache" "$XDG_CACHE_HOME"
  echo
fi

# ---------------------------------------------------------------------------------------------
# A corpus: first backup, unchanged re-backup (unless no_unchanged), restore; NAME CORPUS ROWS...
run_corpus() {
  local name=$1 corpus=$2; shift 2
  local r t rd target restored="$work/$name-restored"
  mkdir -p "$restored"
  for r in $(seq 1 "$rounds"); do
    rd="$work/$name-r$r"
    mkdir -p "$rd"
    declare -A broken=()
    for t in kintsugi restic; do tool_init "$t" "$rd/$t-repo" "$work/logs/r$r-$name-init-$t.log" || broken[$t]=1; done
    local sc
    for sc in "$@"; do
      line="round $r $name $sc"
      for t in $(order_of "$r"); do
        [ -z "${broken[$t]:-}" ] || { line="$line | $t skipped"; continue; }
        case "$sc" in
          first|unchanged) tool_backup "$name-$sc" "$t" "$rd/$t-repo" "$corpus" "$work/logs/r$r-$name-$sc-$t.log" || broken[$t]=1 ;;
          restore)
            target="$restored/r$r-$t"
            if tool_restore "$name-restore" "$t" "$rd/$t-repo" "$target" "$work/logs/r$r-$name-restore-$t.log"; then
              if diff -r "$corpus" "$target$corpus" > "$work/logs/r$r-$name-restore-diff-$t.log" 2>&1; then
                VERIFY[$name,$t]="${VERIFY[$name,$t]:-OK}"
              else
                VERIFY[$name,$t]=DIFFERS
                echo "$t: the restored $name differs from the corpus (round $r):" >&2
                head -5 "$work/logs/r$r-$name-restore-diff-$t.log" >&2
              fi
            fi ;;
        esac
      done
      echo "$line"
    done
    [ "$keep" = 1 ] || rm -rf "$rd" "$rcache" "$XDG_CACHE_HOME"
  done
  [ "$keep" = 1 ] || rm -rf "$restored" "$corpus"
  echo
}

if wants checkpoint; then
  c="$work/checkpoint"
  mkdir -p "$c/model"
  "$PY" "$root/bench/ai_corpus.py" frozen-finetune "$c/model" 1 --scale 1 --seed 1
  printf '{\n  "architectures": ["BenchForCausalLM"],\n  "hidden_size": 416,\n  "num_hidden_layers": 24,\n  "vocab_size": 6144,\n  "torch_dtype": "float32"\n}\n' > "$c/model/config.json"
  CORPUS_DESC[checkpoint]="$(files_of "$c") files, $(mb "$(bytes_of "$c")") MB: fp32 safetensors (ai_corpus.py frozen-finetune v1, scale 1) + config.json"
  echo "checkpoint: ${CORPUS_DESC[checkpoint]}"
  run_corpus checkpoint "$c" first unchanged restore
  add_row "checkpoint-first|checkpoint first backup|3|0"
  add_row "checkpoint-unchanged|checkpoint unchanged re-backup|3|0"
  add_row "checkpoint-restore|checkpoint restore|2|0"
fi

if wants embedding; then
  c="$work/embedding"
  mkdir -p "$c/model"
  "$PY" "$root/bench/ai_corpus.py" sparse-embedding "$c/model" 1 --scale 1 --seed 1
  CORPUS_DESC[embedding]="$(files_of "$c") file, $(mb "$(bytes_of "$c")") MB: fp32 sparse-embedding table 1,048,576 x 64 + dense tower (ai_corpus.py sparse-embedding v1, scale 1)"
  echo "embedding: ${CORPUS_DESC[embedding]}"
  run_corpus embedding "$c" first unchanged restore
  add_row "embedding-first|embedding first backup|3|0"
  add_row "embedding-unchanged|embedding unchanged re-backup|3|0"
  add_row "embedding-restore|embedding restore|2|0"
fi

if wants dataset; then
  c="$work/dataset"
  "$PY" - "$c" <<'PY'
import os, sys
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(13)
# A pool of Zipf-distributed words (a 5,000-word vocabulary): each file starts with a slice of it.
letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
p = np.linspace(2.0, 0.2, len(letters)); p /= p.sum()
vocab = np.array(["".join(rng.choice(letters, size=int(rng.integers(2, 11)), p=p)) for _ in range(5000)])
cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1)); cdf /= cdf[-1]
ws = vocab[np.minimum(np.searchsorted(cdf, rng.random(2_000_000)), len(vocab) - 1)]
pool = (" ".join(ws)).encode()
sizes = rng.integers(1000, 8001, size=40000)
random_share = rng.uniform(0.0, 0.6, size=40000)
starts = rng.integers(0, len(pool) - 8001, size=40000)
for d in range(100):
    os.makedirs(os.path.join(out, "part-%03d" % d))
for i in range(40000):
    n = int(sizes[i]); nr = int(n * random_share[i])
    body = pool[starts[i]:starts[i] + n - nr] + rng.bytes(nr)
    with open(os.path.join(out, "part-%03d" % (i % 100), "sample-%05d.bin" % i), "wb") as f:
        f.write(body)
PY
  CORPUS_DESC[dataset]="$(files_of "$c") files in $(find "$c" -mindepth 1 -type d | wc -l) folders, $(mb "$(bytes_of "$c")") MB ($(du -sm "$c" | cut -f1) MiB on disk): 1-8 KB each, Zipf-word text then 0-60% random bytes"
  echo "dataset: ${CORPUS_DESC[dataset]}"
  run_corpus dataset "$c" first restore
  add_row "dataset-first|dataset first backup|2|1"
  add_row "dataset-restore|dataset restore|2|1"
fi

# ---------------------------------------------------------------------------------------------
# Tables.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { local v=${SECS[$1,$2]:-}; [ -n "$v" ] || { echo ""; return; }; median $v; }     # row tool -> median wall s
medcpu() { local v=${CPU[$1,$2]:-}; [ -n "$v" ] || { echo ""; return; }; median $v; }  # row tool -> median CPU s
rss_mib() { [ -n "${RSS[$1,$2]:-}" ] && awk -v k="${RSS[$1,$2]}" 'BEGIN { printf "%.0f", k / 1024 }' || echo ""; }
load_end=$(uptime | sed 's/.*load average: //')
echo "## Results: median of $rounds round(s), whole commands (start-up included), page cache warm"
echo
echo "| row | Kintsugi s | restic s | speed (restic s / Kintsugi s) | target | result | peak RSS MiB, Kintsugi / restic | CPU s, Kintsugi / restic |"
echo "|---|---:|---:|---:|---|---|---:|---:|"
tsv="$work/rows.tsv"
: > "$tsv"
misses=0
for spec in ${ROWS[@]+"${ROWS[@]}"}; do
  IFS='|' read -r id label target rssrule <<< "$spec"
  k=$(med "$id" kintsugi) r=$(med "$id" restic)
  kc=$(medcpu "$id" kintsugi) rc=$(medcpu "$id" restic)
  kr=$(rss_mib "$id" kintsugi) rr=$(rss_mib "$id" restic)
  ratio="" result=""
  if [ -n "$k" ] && [ -n "$r" ] && [ "${FAILS[$id,kintsugi]:-0}" = 0 ] && [ "${FAILS[$id,restic]:-0}" = 0 ]; then
    ratio=$(awk -v a="$k" -v b="$r" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "" }')
    why=()
    awk -v x="$ratio" -v t="$target" 'BEGIN { exit !(x != "" && x + 0 >= t) }' || why+=(speed)
    [ "$rssrule" = 1 ] && { [ -n "$kr" ] && [ -n "$rr" ] && [ "${RSS[$id,kintsugi]}" -le "${RSS[$id,restic]}" ] || why+=(RSS); }
    if [ ${#why[@]} = 0 ]; then result=PASS; else result="MISS ($(IFS=,; echo "${why[*]}" | sed 's/,/, /g'))"; misses=$((misses + 1)); fi
  else
    result="FAILED"
  fi
  ttxt="≥ ×$target"
  [ "$rssrule" = 1 ] && ttxt="$ttxt, RSS ≤ restic's"
  echo "| $label | ${k:-FAILED} | ${r:-FAILED} | $([ -n "$ratio" ] && echo "×$ratio" || echo -) | $ttxt | $result | ${kr:--} / ${rr:--} | ${kc:--} / ${rc:--} |"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$label" "$target" "$rssrule" \
    "$ratio" "$result" "${SECS[$id,kintsugi]:-}" "${SECS[$id,restic]:-}" "${CPU[$id,kintsugi]:-}" "${CPU[$id,restic]:-}" \
    "${RSS[$id,kintsugi]:-}" "${RSS[$id,restic]:-}" "${FAILS[$id,kintsugi]:-0}" "${FAILS[$id,restic]:-0}" "" >> "$tsv"
done
echo
echo "Per round (Kintsugi / restic, wall s):"
for spec in ${ROWS[@]+"${ROWS[@]}"}; do
  IFS='|' read -r id label _ _ <<< "$spec"
  read -r -a ks <<< "${SECS[$id,kintsugi]:-}"; read -r -a rs <<< "${SECS[$id,restic]:-}"
  out="" i=0
  while [ $i -lt "$rounds" ]; do
    out="$out${out:+, }${ks[$i]:-?} / ${rs[$i]:-?}"; i=$((i + 1))
  done
  echo "- $label: $out"
done
echo
for p in snapshots checkpoint embedding dataset; do
  [ -n "${CORPUS_DESC[$p]:-}" ] && echo "- $p: ${CORPUS_DESC[$p]}"
done
wants snapshots && echo "- ${busy_note:-}"
ver=""
for p in checkpoint embedding dataset; do
  for t in kintsugi restic; do [ -n "${VERIFY[$p,$t]:-}" ] && ver="$ver $p/$t ${VERIFY[$p,$t]},"; done
done
[ -n "$ver" ] && echo "- restores compared byte for byte with the corpus (diff -r, untimed):${ver%,}"
rk=""
for k in "${!RKDF[@]}"; do rk="$rk${rk:+; }scrypt $k (×${RKDF[$k]})"; done
echo "- restic's key derivation as its init calibrated it: ${rk:-none}"
echo "- speed = restic's median wall seconds / Kintsugi's (×2 = Kintsugi takes half the time); peak RSS is the max over rounds; CPU = user + sys (median)"
echo "- load average (uptime): at start $load_start; at end $load_end; total run time $(( $(date +%s) - t_start )) s"

if [ -n "$json" ]; then
  KVER="${kver:-}" KDESC="$kdesc" COMMIT="$commit" MACHINE="$machine" RVER="$rver" KDF="$kdf_desc" ROUNDS="$rounds" \
  LOAD_START="$load_start" LOAD_END="$load_end" BUSY="${busy_note:-}" RKDF="${rk:-}" \
  DESC_SNAPSHOTS="${CORPUS_DESC[snapshots]:-}" DESC_CHECKPOINT="${CORPUS_DESC[checkpoint]:-}" \
  DESC_EMBEDDING="${CORPUS_DESC[embedding]:-}" DESC_DATASET="${CORPUS_DESC[dataset]:-}" \
  "$PY" - "$tsv" "$json" <<'PY'
import json, os, statistics, sys, time
rows = []
def nums(s): return [float(x) for x in s.split()]
def tool(secs, cpu, rss, fails):
    s, c = nums(secs), nums(cpu)
    return {"median_s": round(statistics.median(s), 3) if s else None, "rounds_s": s,
            "median_cpu_s": round(statistics.median(c), 3) if c else None, "cpu_rounds_s": c,
            "peak_rss_mib": round(int(rss) / 1024, 1) if rss else None, "failures": int(fails)}
with open(sys.argv[1]) as f:
    for ln in f:
        c = ln.rstrip("\n").split("\t")
        rows.append({"id": c[0], "label": c[1], "target_speed_ratio": float(c[2]),
                     "rss_at_most_restic": c[3] == "1", "speed_ratio": float(c[4]) if c[4] else None,
                     "result": c[5], "kintsugi": tool(c[6], c[8], c[10], c[12]), "restic": tool(c[7], c[9], c[11], c[13])})
e = os.environ
doc = {"bench": "bench/speed.sh", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "machine": e["MACHINE"], "load_average_start": e["LOAD_START"], "load_average_end": e["LOAD_END"],
       "kintsugi": {"version": e["KVER"], "binary": e["KDESC"], "git": e["COMMIT"], "kdf": e["KDF"]},
       "restic": {"version": e["RVER"], "kdf": e["RKDF"]}, "rounds": int(e["ROUNDS"]), "busy_rows": e["BUSY"],
       "corpora": {k: e["DESC_" + k.upper()] for k in ("snapshots", "checkpoint", "embedding", "dataset") if e["DESC_" + k.upper()]},
       "rows": rows}
with open(sys.argv[2], "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
PY
  echo "- JSON written to $json"
fi

fails=0
for k in "${!FAILS[@]}"; do fails=$((fails + FAILS[$k])); done
bad=0
for k in "${!VERIFY[@]}"; do [ "${VERIFY[$k]}" = DIFFERS ] && bad=1; done
[ "$fails" = 0 ] && [ "$bad" = 0 ] || { echo "FAIL: $fails timed command(s) failed$([ "$bad" = 1 ] && echo ', a restore differs from the corpus')" >&2; exit 1; }
