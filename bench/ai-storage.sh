#!/usr/bin/env bash
# Storage and backup time of AI artifact series (bench/ai_corpus.py): Kintsugi, Kintsugi with
# --no-tensors (the generic path; when the CLI has that option), restic and borg (when installed,
# or with --install), side by side on the same files, each tool in its own repository.
#
#   bench/ai-storage.sh [--scale F] [--rounds N] [--scenarios a,b,c] [--seed S] [--install] [--keep]
#
# Per scenario, each version is generated once (untimed) into a data folder, then backed up by
# each tool in turn (timed, wall seconds, page cache warm). After the series: the size of each
# repository (du -sb, MB = 10^6 bytes), total backup seconds per tool (the median over --rounds N
# series in fresh repositories), the series' raw bytes (sum over versions of the data folder's
# file sizes: what a tool without dedup would store), and ratios to restic. The newest Kintsugi
# snapshot (both columns) is restored and compared byte for byte; exit 1 on a difference.
# --scale shrinks the artifacts (0.1 for a quick run); --scenarios picks from sparse-embedding,
# bf16-training, frozen-finetune, dataset-shards, pytorch-real (default all); --keep keeps the
# work folder (/tmp/kintsugi-ai-bench.*, with `kintsugi stats --json` output when that exists).
set -euo pipefail
scale=1.0 rounds=1 scenarios="" seed=1 install=0 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=${2:?--scale needs a value}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --scenarios) scenarios=${2:?--scenarios needs a value}; shift 2 ;;
    --seed) seed=${2:?--seed needs a value}; shift 2 ;;
    --install) install=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be a positive integer" >&2; exit 2; }
[[ $seed =~ ^[0-9]+$ ]] || { echo "--seed must be an integer >= 0" >&2; exit 2; }
awk -v s="$scale" 'BEGIN { exit !(s ~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$/ && s + 0 > 0) }' \
  || { echo "--scale must be a number > 0" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
gen="$root/bench/ai_corpus.py"
declare -A nversions=()
while read -r name n; do nversions[$name]=$n; done < <("$PY" "$gen" --list)
all=$("$PY" "$gen" --list | awk '{print $1}' | paste -sd, -)
IFS=, read -r -a picked <<< "${scenarios:-$all}"
for sc in "${picked[@]}"; do
  [ -n "${nversions[$sc]:-}" ] || { echo "unknown scenario $sc (one of $all)" >&2; exit 2; }
done

if [ "$install" = 1 ]; then
  missing=()
  command -v restic >/dev/null || missing+=(restic)
  command -v borg >/dev/null || missing+=(borgbackup)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

work=$(mktemp -d /tmp/kintsugi-ai-bench.XXXXXX)
cleanup() { if [ "$keep" = 1 ]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

dotnet build -c Release "$root/src/Kintsugi.Cli" -v q -nologo > "$work/build.log" 2>&1 \
  || { cat "$work/build.log" >&2; echo "Release build of Kintsugi failed" >&2; exit 1; }
K=(dotnet "$root/src/Kintsugi.Cli/bin/Release/net10.0/kintsugi.dll")

# What this build of Kintsugi offers.
kinit=()
"${K[@]}" init --help 2>/dev/null | grep -- --kdf-memory >/dev/null && kinit=(--kdf-memory 8 --kdf-iterations 1)
tools=(kintsugi)
"${K[@]}" backup --help 2>/dev/null | grep -- --no-tensors >/dev/null && tools+=(kintsugi-nt)
have_stats=0
"${K[@]}" --help 2>/dev/null | grep -E '^ +stats( |$)' >/dev/null && have_stats=1
if command -v restic >/dev/null; then tools+=(restic); else echo "restic not installed: its columns are empty (--install installs it)" >&2; fi
if command -v borg >/dev/null; then tools+=(borg); else echo "borg not installed: its columns are empty (--install installs it)" >&2; fi
has() { local t; for t in "${tools[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }
restic_init=()
has restic && restic init --help 2>/dev/null | grep -- --repository-version >/dev/null && restic_init=(--repository-version 2)

echo "bench-password" > "$work/pass"
export KINTSUGI_PASSWORD_FILE="$work/pass" RESTIC_PASSWORD_FILE="$work/pass"
export BORG_PASSPHRASE="bench-password" BORG_BASE_DIR="$work/borg-base" BORG_DISPLAY_PASSPHRASE=n \
  BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
unset BORG_REPO RESTIC_REPOSITORY KINTSUGI_REPOSITORY

# Runs "$@" (output to $log); on failure prints the log and stops the bench.
quiet() {
  local log=$1; shift
  "$@" > "$log" 2>&1 || { local rc=$?; echo "failed (exit $rc): $*" >&2; tail -20 "$log" >&2; exit 1; }
}
# timed LOG CMD...: sets secs (wall) and rss_kb (peak RSS, "" without /usr/bin/time).
timed() {
  local log=$1; shift
  local s e tv=() tf="$log.time"
  [ -x /usr/bin/time ] && tv=(/usr/bin/time -v -o "$tf")
  s=$(date +%s.%N)
  "${tv[@]}" "$@" > "$log" 2>&1 || { local rc=$?; echo "failed (exit $rc): $*" >&2; tail -20 "$log" >&2; exit 1; }
  e=$(date +%s.%N)
  secs=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
  rss_kb=""
  [ -f "$tf" ] && rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
  return 0
}
repo_init() { # tool repo log
  case "$1" in
    kintsugi|kintsugi-nt) quiet "$3" env KINTSUGI_REPOSITORY="$2" "${K[@]}" init "${kinit[@]}" ;;
    restic) quiet "$3" restic -r "$2" --cache-dir "$work/restic-cache" init "${restic_init[@]}" ;;
    borg) quiet "$3" borg init -e repokey "$2" ;;
  esac
}
repo_backup() { # tool repo data version log
  case "$1" in
    kintsugi) timed "$5" env KINTSUGI_REPOSITORY="$2" "${K[@]}" backup -q "$3" ;;
    kintsugi-nt) timed "$5" env KINTSUGI_REPOSITORY="$2" "${K[@]}" backup -q --no-tensors "$3" ;;
    restic) timed "$5" restic -r "$2" --cache-dir "$work/restic-cache" backup -q "$3" ;;
    borg) timed "$5" borg create "$2::v$4" "$3" ;;
  esac
}
bytes_of_files() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "scale $scale, seed $seed, rounds $rounds; tools: ${tools[*]}; work folder $work"
rows=() rss_rows=() failed=0
for sc in "${picked[@]}"; do
  nv=${nversions[$sc]}
  d="$work/$sc"
  data="$d/data"
  mkdir -p "$data" "$d/logs"
  declare -A total=() peak=()
  for r in $(seq 1 "$rounds"); do
    for t in "${tools[@]}"; do
      repo_init "$t" "$d/r$r-$t" "$d/logs/init-r$r-$t.log"
      total[$t,$r]=0
    done
  done
  raw=0
  for v in $(seq 1 "$nv"); do
    gs=$(date +%s.%N)
    "$PY" "$gen" "$sc" "$data" "$v" --seed "$seed" --scale "$scale"
    gsecs=$(awk -v s="$gs" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    vb=$(bytes_of_files "$data")
    raw=$((raw + vb))
    for r in $(seq 1 "$rounds"); do
      line=$(printf '%-17s v%d/%d  data %9s MB (generated in %5s s)' "$sc" "$v" "$nv" "$(mb "$vb")" "$gsecs")
      [ "$rounds" -gt 1 ] && line="$line round $r"
      for t in "${tools[@]}"; do
        repo_backup "$t" "$d/r$r-$t" "$data" "$v" "$d/logs/backup-r$r-v$v-$t.log"
        total[$t,$r]=$(awk -v a="${total[$t,$r]}" -v b="$secs" 'BEGIN { printf "%.3f", a + b }')
        if [ -n "$rss_kb" ] && [ "$rss_kb" -gt "${peak[$t]:-0}" ]; then peak[$t]=$rss_kb; fi
        line="$line | $t $(printf '%.2f' "$secs") s"
      done
      echo "$line"
    done
  done

  # Sizes (round 1: they do not depend on the round), times (medians over rounds).
  declare -A size=() secs_med=()
  for t in "${tools[@]}"; do
    size[$t]=$(du -sb "$d/r1-$t" | cut -f1)
    ts=()
    for r in $(seq 1 "$rounds"); do ts+=("${total[$t,$r]}"); done
    secs_med[$t]=$(median "${ts[@]}")
  done

  # Restore the newest Kintsugi snapshot(s) and compare with the data folder byte for byte.
  check=OK
  for t in kintsugi kintsugi-nt; do
    has "$t" || continue
    rdir="$d/restore-$t"
    quiet "$d/logs/restore-$t.log" env KINTSUGI_REPOSITORY="$d/r1-$t" "${K[@]}" restore latest --target "$rdir"
    if ! diff -r "$data" "$rdir$data" > "$d/logs/diff-$t.log" 2>&1; then
      check=FAIL failed=1
      echo "$sc: the restore of the newest $t snapshot differs from the data folder:" >&2
      head -5 "$d/logs/diff-$t.log" >&2
    fi
    rm -rf "$rdir"
    if [ "$have_stats" = 1 ]; then
      env KINTSUGI_REPOSITORY="$d/r1-$t" "${K[@]}" stats --json > "$d/$t-stats.json" 2> "$d/logs/stats-$t.log" || true
    fi
  done
  echo "$sc: restore check $check"

  col() { if has "$1"; then "${@:2}"; else printf -- '-'; fi; }
  ks=${size[kintsugi]} rs=${size[restic]:-0} bs=${size[borg]:-0}
  rows+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' \
    "$sc" "$(mb "$raw")" "$(mb "$ks")" "$(col restic ratio "$ks" "$rs")" "$(col restic mb "$rs")" \
    "$(col borg mb "$bs")" "$(if has borg && has restic; then ratio "$bs" "$rs"; else printf -- '-'; fi)" \
    "${secs_med[kintsugi]}" "${secs_med[kintsugi-nt]:--}" \
    "$(col kintsugi-nt ratio "${secs_med[kintsugi]}" "${secs_med[kintsugi-nt]:-0}")" \
    "${secs_med[restic]:--}" "${secs_med[borg]:--}" "$check")")
  rr="| $sc"
  for t in kintsugi kintsugi-nt restic borg; do
    if has "$t" && [ -n "${peak[$t]:-}" ]; then rr="$rr | $(awk -v k="${peak[$t]}" 'BEGIN { printf "%.0f", k / 1024 }')"; else rr="$rr | -"; fi
  done
  rss_rows+=("$rr |")
  unset total peak size secs_med
  # Free the disk for the next scenario (logs and stats stay in the work folder).
  [ "$keep" = 1 ] || rm -rf "$data" "$d"/r[0-9]*-*
done

echo
echo "Sizes in MB (10^6 bytes; repositories: du -sb). Seconds: sum of the series' backups (wall)$([ "$rounds" -gt 1 ] && echo ", median of $rounds rounds")."
echo "time ratio = kintsugi s / kintsugi --no-tensors s. series MB = sum over versions of the data folder (no dedup)."
echo
echo "| scenario | series MB | kintsugi MB | kintsugi/restic | restic MB | borg MB | borg/restic | kintsugi s | kintsugi --no-tensors s | time ratio | restic s | borg s | restore check |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
if [ -x /usr/bin/time ]; then
  echo
  echo "Peak RSS of each tool's largest backup in the series (MiB, /usr/bin/time -v):"
  echo
  echo "| scenario | kintsugi | kintsugi --no-tensors | restic | borg |"
  echo "|---|---:|---:|---:|---:|"
  printf '%s\n' "${rss_rows[@]}"
fi
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $("${K[@]}" --version 2>/dev/null | head -1 | sed 's/^/kintsugi /'); $(has restic && restic version | head -1 | cut -d' ' -f1-2 || echo 'no restic'); $(has borg && borg --version || echo 'no borg')"
[ "$have_stats" = 1 ] && [ "$keep" = 1 ] && echo "kintsugi stats --json of each scenario: $work/<scenario>/kintsugi*-stats.json"
[ "$failed" = 0 ] || { echo "FAIL: a Kintsugi restore differs from its data (see above)" >&2; exit 1; }
