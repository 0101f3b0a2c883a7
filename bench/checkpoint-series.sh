#!/usr/bin/env bash
# A checkpoint series backed up after every checkpoint, by Kintsugi and (when installed, or with
# --install) restic, side by side on the same files in the same run. Prints, per backup, the time
# and the repository size, then the time to restore the newest snapshot.
#
#   bench/checkpoint-series.sh [--checkpoints N] [--size-mib M] [--changed-pct P] [--install]
#
# Each checkpoint is a new file; compared with the previous one, P% of its bytes (the tail: a
# fine-tuned head) are new random bytes, the rest equal. Page cache warm, as in a training job
# that has just written its checkpoint.
set -euo pipefail
checkpoints=4 size_mib=256 changed_pct=10 install=0
while [ $# -gt 0 ]; do
  case "$1" in
    --checkpoints) checkpoints=$2; shift 2 ;;
    --size-mib) size_mib=$2; shift 2 ;;
    --changed-pct) changed_pct=$2; shift 2 ;;
    --install) install=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$install" = 1 ] && ! command -v restic >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
fi
dotnet build -c Release "$root/src/Kintsugi.Cli" -v q -nologo >/dev/null
K=(dotnet "$root/src/Kintsugi.Cli/bin/Release/net10.0/kintsugi.dll")
work=$(mktemp -d /tmp/kintsugi-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ckpt"
echo "bench-password" > "$work/pass"
export KINTSUGI_REPOSITORY="$work/kintsugi-repo" KINTSUGI_PASSWORD_FILE="$work/pass"
export RESTIC_REPOSITORY="$work/restic-repo" RESTIC_PASSWORD_FILE="$work/pass"
"${K[@]}" init >/dev/null
have_restic=0
if command -v restic >/dev/null; then have_restic=1; restic init -q >/dev/null; fi

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l | xargs printf '%.2f'; }
mib() { du -sb "$1" | awk '{printf "%.1f", $1/1048576}'; }

size=$((size_mib * 1048576))
changed=$((size * changed_pct / 100))
head -c "$size" /dev/urandom > "$work/model.bin"
printf '%-6s %-14s %10s %12s' "ckpt" "data MiB" "kintsugi s" "kintsugi MiB"
[ $have_restic = 1 ] && printf ' %10s %12s' "restic s" "restic MiB"
echo
for i in $(seq 1 "$checkpoints"); do
  if [ "$i" -gt 1 ]; then
    head -c "$changed" /dev/urandom | dd of="$work/model.bin" bs=1M seek=$(( (size - changed) )) oflag=seek_bytes conv=notrunc status=none
  fi
  cp "$work/model.bin" "$work/ckpt/step-$(printf %06d $((i * 1000))).ckpt"
  ks=$(seconds "${K[@]}" backup "$work/ckpt")
  printf '%-6s %-14s %10s %12s' "$i" "$(mib "$work/ckpt")" "$ks" "$(mib "$KINTSUGI_REPOSITORY")"
  if [ $have_restic = 1 ]; then
    rs=$(seconds restic backup -q "$work/ckpt")
    printf ' %10s %12s' "$rs" "$(mib "$RESTIC_REPOSITORY")"
  fi
  echo
done
kr=$(seconds "${K[@]}" restore latest --target "$work/restore-k")
cmp -s "$work/model.bin" "$work/restore-k$work/ckpt/step-$(printf %06d $((checkpoints * 1000))).ckpt" || { echo "kintsugi restore differs!" >&2; exit 1; }
line="restore of the newest snapshot ($(mib "$work/ckpt") MiB): kintsugi ${kr} s"
if [ $have_restic = 1 ]; then
  rr=$(seconds restic restore latest --target "$work/restore-r")
  line="$line, restic ${rr} s"
fi
echo "$line"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(restic version 2>/dev/null | head -1 || echo 'restic not installed')"
