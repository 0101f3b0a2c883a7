#!/usr/bin/env bash
# A repository of >= 10,000 packs and ~300,000 index entries, built in about two minutes, and the
# whole-command cost of `snapshots` and of restoring one small file from it, beside restic 0.14.
#
#   bench/large-index.sh KINTSUGI_BINARY [WORKDIR] [FOLDERS] [FILES_PER_FOLDER]
#
# The corpus is FOLDERS x FILES_PER_FOLDER files of 64-256 random bytes (default 300 x 1000). The
# Kintsugi repository is made by Kintsugi.Bench init-small-packs with 4 KiB packs (the format allows
# 1 KiB and up), so one backup gives ~13,600 packs and 7 index files: the pack and entry counts of a
# repository of ~200 GB of 16 MiB packs, on a few hundred MB of disk. restic (whose packs are at
# least 4 MiB) backs up the same folder: the same ~300,000 index entries in fewer packs.
# Prints, per command: wall seconds, CPU seconds (user + sys) and peak RSS, from /usr/bin/time.
set -euo pipefail
bin=${1:?usage: bench/large-index.sh KINTSUGI_BINARY [WORKDIR] [FOLDERS] [FILES_PER_FOLDER]}
work=${2:-/tmp/kintsugi-large-index}
folders=${3:-300}
per=${4:-1000}
here=$(cd "$(dirname "$0")" && pwd)
export KINTSUGI_PASSWORD=${KINTSUGI_PASSWORD:-bench} RESTIC_PASSWORD=${RESTIC_PASSWORD:-bench}
mkdir -p "$work"
src=$work/src
if [ ! -d "$src" ]; then
  python3 - "$src" "$folders" "$per" <<'EOF'
import os, random, sys
root, folders, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1)
for d in range(folders):
    p = os.path.join(root, f"d{d:04d}")
    os.makedirs(p, exist_ok=True)
    for f in range(per):
        with open(os.path.join(p, f"f{f:05d}.bin"), "wb") as fh:
            fh.write(rng.randbytes(rng.randint(64, 256)))
EOF
fi
src=$(readlink -f "$src")
measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
  read -r wall user sys rss < "$work/time"
  printf '%-40s %6.2f s wall %6.2f s CPU %6d MB peak RSS\n' "$label" "$wall" "$(echo "$user + $sys" | bc)" $((rss / 1024))
}
if [ ! -f "$work/kintsugi/config" ]; then
  dotnet run -c Release --project "$here/Kintsugi.Bench" -- init-small-packs "$work/kintsugi" 4096
  measure "kintsugi backup (first)" "$bin" backup -q -r "$work/kintsugi" "$src"
fi
if [ ! -f "$work/restic/config" ]; then
  restic init -q -r "$work/restic"
  measure "restic backup (first)" restic -q -r "$work/restic" backup "$src"
fi
echo "kintsugi: $(find "$work/kintsugi/data" -type f | wc -l) packs, $(ls "$work/kintsugi/index" | wc -l) index files;" \
  "restic: $(find "$work/restic/data" -type f | wc -l) packs, $(ls "$work/restic/index" | wc -l) index files"
one="$src/d0123/f00042.bin"
for round in 1 2 3; do
  measure "kintsugi snapshots" "$bin" snapshots -r "$work/kintsugi"
  measure "restic snapshots" restic -r "$work/restic" snapshots
  rm -rf "$work/out"
  measure "kintsugi restore --include one file" "$bin" restore latest -r "$work/kintsugi" --target "$work/out" --include "$one"
  rm -rf "$work/out"
  measure "restic restore --include one file" restic -r "$work/restic" restore latest --target "$work/out" --include "$one"
done
