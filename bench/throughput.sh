#!/usr/bin/env bash
# Backup and restore speed of Kintsugi against restic and borg (when installed, or with --install)
# on the same model-directory corpus, side by side (issue 5: "at the speed of the machine, >= 3x restic").
#
#   bench/throughput.sh [--size-mb N] [--rounds N] [--tools kintsugi,restic,borg] [--install] [--keep]
#                       [--memory-corpus-gb G] [--default-kdf] [--build installed|r2r|jit]
#
# The corpus (~N MB, default 512; generated once, untimed, seeded) is a model folder: an fp32
# safetensors file (bench/ai_corpus.py frozen-finetune, ~210 MB at N=512) with config/tokenizer JSON,
# a large tree of small text/JSON files (2000 of 4-64 KiB at N=512) and 1-8 MiB binaries (half random,
# half compressible int16 samples) making up the rest. Each round uses fresh repositories, warms the
# page cache (cat of every file), then times, tool after tool (A B C, B C A, C A B, ...; `sync` before each):
#   first         first backup into an empty repository
#   unchanged     a second backup, nothing changed
#   small-change  one small file edited and 1 MiB appended to the largest binary (undone after the round)
#   restore       restore of the newest snapshot into an empty folder (compared byte for byte, untimed)
#   check         full verification of all data (check --read-data / check --read-data / check --verify-data)
#   open          list snapshots: the fixed cost of a command (startup, key derivation, index load)
# and two ceilings: tar | tee | sha256 + fsync (read, hash, write) and sha256 FILES (read, hash).
# Reported: the median wall seconds of --rounds N (default 3), MB/s (corpus MB / s; MB = 10^6 bytes),
# peak RSS (max over rounds, /usr/bin/time -v), repository MB after the first backup, speed ratios.
# Kintsugi runs as it is installed (README, "Install"; --build installed, the default): published
# self-contained, the .NET libraries trimmed, and the framework and Kintsugi precompiled together
# (ReadyToRun composite), run as `kintsugi`. --build r2r: framework-dependent ReadyToRun (`dotnet kintsugi.dll`); --build jit: a plain
# Release build. Its times include .NET startup. Its repositories use a fast
# KDF (Argon2id 8 MiB, 1 iteration) unless --default-kdf; restic and borg use their defaults.
# --memory-corpus-gb G (default 0: off) also backs up G GiB of random 256 MiB files with each tool
# and reports peak RSS next to the main corpus (needs 2.5 x G GiB free). --keep keeps the work folder
# (/tmp/kintsugi-throughput.*: corpus, repositories, logs).
set -euo pipefail
size_mb=512 rounds=3 install=0 keep=0 tools_opt=kintsugi,restic,borg mem_gb=0 default_kdf=0 build=installed
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) size_mb=${2:?--size-mb needs a value}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --tools) tools_opt=${2:?--tools needs a value}; shift 2 ;;
    --memory-corpus-gb) mem_gb=${2:?--memory-corpus-gb needs a value}; shift 2 ;;
    --default-kdf) default_kdf=1; shift ;;
    --build) build=${2:?--build needs installed, r2r or jit}; shift 2 ;;
    --jit) build=jit; shift ;;
    --install) install=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $size_mb =~ ^[1-9][0-9]*$ ]] && [ "$size_mb" -ge 50 ] || { echo "--size-mb must be an integer >= 50" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be a positive integer" >&2; exit 2; }
case "$build" in installed|r2r|jit) ;; *) echo "--build must be installed, r2r or jit" >&2; exit 2 ;; esac
[[ $mem_gb =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "--memory-corpus-gb must be a number >= 0" >&2; exit 2; }
IFS=, read -r -a wanted <<< "$tools_opt"
[ ${#wanted[@]} -gt 0 ] || { echo "--tools needs at least one of kintsugi,restic,borg" >&2; exit 2; }
for t in "${wanted[@]}"; do
  case "$t" in kintsugi|restic|borg) ;; *) echo "unknown tool $t (kintsugi, restic or borg)" >&2; exit 2 ;; esac
done
wants() { local t; for t in "${wanted[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
t_start=$(date +%s)

# Disk: the corpus, a repository per tool and a restore per tool and round (x 1.3 for slack); the memory corpus
# (G GiB) with one repository at a time and the tools' caches: 2.5 x G GiB.
free_b=$(df -B1 --output=avail /tmp | tail -1 | tr -d ' ')
need_b=$(awk -v s="$size_mb" -v n="${#wanted[@]}" -v r="$rounds" 'BEGIN { printf "%.0f", s * 1e6 * (2 + n + n * r) * 1.3 }')
mem_bytes=$(awk -v g="$mem_gb" 'BEGIN { printf "%.0f", g * 1073741824 }')
if [ "$mem_bytes" -gt 0 ]; then
  mem_need=$(awk -v g="$mem_bytes" 'BEGIN { printf "%.0f", g * 2.5 }')
  if [ "$free_b" -lt "$mem_need" ]; then
    echo "--memory-corpus-gb $mem_gb needs 2.5 x $mem_gb GiB = $(awk -v b="$mem_need" 'BEGIN { printf "%.1f", b / 1073741824 }') GiB free in /tmp; only $(awk -v b="$free_b" 'BEGIN { printf "%.1f", b / 1073741824 }') GiB free. Use a smaller G." >&2
    exit 1
  fi
  need_b=$((need_b + mem_need))
fi
if [ "$free_b" -lt "$need_b" ]; then
  echo "not enough free space in /tmp: about $((need_b / 1000000)) MB needed, $((free_b / 1000000)) MB free" >&2
  exit 1
fi

if [ "$install" = 1 ]; then
  missing=()
  wants restic && ! command -v restic >/dev/null && missing+=(restic)
  wants borg && ! command -v borg >/dev/null && missing+=(borgbackup)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

work=$(mktemp -d /tmp/kintsugi-throughput.XXXXXX)
cleanup() { if [ "$keep" = 1 ]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
mkdir -p "$work/logs" "$work/orig"
corpus="$work/corpus"

tools=() notes=() K=() kinit=()
if wants kintsugi; then
  # Built as --build says into a private folder the bench alone uses (default: as it is installed,
  # README "Install": precompiled with the framework, so a command spends no time in the JIT for
  # what it runs once). The publishes of one RID share obj/…/linux-x64, and a composite publish
  # leaves precompiled images there that a later plain one would reuse (and crash at start-up):
  # each publish starts from clean intermediates.
  publish() {
    rm -rf "$root"/src/*/obj/Release/net10.0/linux-x64
    dotnet publish "$root/src/Kintsugi.Cli" -c Release -r linux-x64 "$@" -o "$work/kintsugi-bin" -v q -nologo \
      > "$work/logs/build.log" 2>&1 \
      || { cat "$work/logs/build.log" >&2; echo "publish of Kintsugi failed (try --build jit)" >&2; exit 1; }
  }
  case "$build" in
    installed)
      publish --self-contained true -p:PublishTrimmed=true -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=true
      K=("$work/kintsugi-bin/kintsugi") ;;
    r2r)
      publish --self-contained false -p:PublishReadyToRun=true
      K=(dotnet "$work/kintsugi-bin/kintsugi.dll") ;;
    jit)
      dotnet build -c Release "$root/src/Kintsugi.Cli" -v q -nologo > "$work/logs/build.log" 2>&1 \
        || { cat "$work/logs/build.log" >&2; echo "Release build of Kintsugi failed" >&2; exit 1; }
      cp -a "$root/src/Kintsugi.Cli/bin/Release/net10.0" "$work/kintsugi-bin"
      rm -rf "$work/kintsugi-bin/linux-x64" # what an earlier publish left beside the build
      K=(dotnet "$work/kintsugi-bin/kintsugi.dll") ;;
  esac
  kinit=()
  if [ "$default_kdf" = 0 ]; then
    "${K[@]}" init --help 2>/dev/null | grep -- --kdf-memory >/dev/null && kinit=(--kdf-memory 8 --kdf-iterations 1)
  fi
fi
for t in "${wanted[@]}"; do
  if [ "$t" = kintsugi ] || command -v "$t" >/dev/null; then tools+=("$t")
  else notes+=("$t is not installed: its rows are skipped (--install installs it from Debian)"); fi
done
[ ${#tools[@]} -gt 0 ] || { printf '%s\n' "${notes[@]}" >&2; echo "no tool to run" >&2; exit 1; }
has() { local t; for t in "${tools[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }
restic_init=()
has restic && restic init --help 2>/dev/null | grep -- --repository-version >/dev/null && restic_init=(--repository-version 2)

echo "bench-password" > "$work/pass"
export KINTSUGI_PASSWORD_FILE="$work/pass" RESTIC_PASSWORD_FILE="$work/pass"
export BORG_PASSPHRASE="bench-password" BORG_BASE_DIR="$work/borg-base" BORG_DISPLAY_PASSPHRASE=n \
  BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export XDG_CACHE_HOME="$work/cache"
unset BORG_REPO RESTIC_REPOSITORY KINTSUGI_REPOSITORY KINTSUGI_PASSWORD

# SHA-256 for the ceilings and the corpus fingerprint: openssl (uses SHA-NI where the CPU has it)
# when installed, else coreutils sha256sum (much slower on such CPUs).
if command -v openssl >/dev/null; then sha=(openssl dgst -sha256 -r); sha_name="openssl sha256"
else sha=(sha256sum); sha_name=sha256sum; fi

# ---------------------------------------------------------------------------------------------
# The corpus.
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
bytes_of() { find "$@" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }'; }
files_of() { find "$@" -type f | wc -l; }
fingerprint() { (cd "$corpus" && find . -type f -print0 | sort -z | xargs -0 "${sha[@]}") | "${sha[@]}" | cut -c1-16; }

gs=$(date +%s.%N)
mkdir -p "$corpus/model"
model_scale=$(awk -v s="$size_mb" 'BEGIN { f = 0.41 * s * 1e6 / 210158160; if (f > 1) f = 1; printf "%.4f", f }')
"$PY" "$root/bench/ai_corpus.py" frozen-finetune "$corpus/model" 1 --scale "$model_scale" --seed 1
n_small=$(awk -v s="$size_mb" 'BEGIN { n = int(2000 * s / 512 + 0.5); if (n < 50) n = 50; print n }')
"$PY" - "$corpus" "$n_small" "$((size_mb * 1000000))" <<'PY'
import json, os, sys
import numpy as np
out, n_small, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(20250505)
letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
p = np.linspace(2.0, 0.2, len(letters)); p /= p.sum()
vocab = ["".join(rng.choice(letters, size=int(rng.integers(2, 11)), p=p)) for _ in range(5000)]
cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1)); cdf /= cdf[-1]

def words(n):  # Zipf-distributed
    return [vocab[i] for i in np.minimum(np.searchsorted(cdf, rng.random(n)), len(vocab) - 1)]

def text(size):
    ws = words(size // 4)
    lens = rng.integers(6, 18, size=len(ws) // 6 + 1)
    parts, at, s = [], 0, 0
    for n in lens:
        if s >= size or at >= len(ws):
            break
        line = " ".join(ws[at:at + n]).capitalize() + ".\n"
        parts.append(line); s += len(line); at += n
    return "".join(parts)[:size].encode()

def records(size):  # a JSON array of records, one a line
    n = size // 120 + 2
    ids, scores, toks = rng.integers(1 << 40, size=n), rng.random(n), rng.integers(0, 50000, (n, 8))
    ws, split = words(3 * n), rng.random(n) < 0.9
    parts, s = [], 2
    for k in range(n):
        if s >= size:
            break
        r = '{"id": %d, "label": "%s", "score": %.6f, "tokens": [%s], "split": "%s"}' % (
            ids[k], " ".join(ws[3 * k:3 * k + 3]), scores[k], ", ".join(map(str, toks[k])),
            "train" if split[k] else "eval")
        parts.append(r); s += len(r) + 3
    return ("[\n " + ",\n ".join(parts) + "\n]\n").encode()

m = os.path.join(out, "model")
with open(os.path.join(m, "config.json"), "w") as f:
    json.dump({"architectures": ["BenchForCausalLM"], "hidden_size": 416, "num_hidden_layers": 24,
               "vocab_size": 6144, "torch_dtype": "float32"}, f, indent=2)
with open(os.path.join(m, "tokenizer.json"), "w") as f:
    json.dump({"version": "1.0", "model": {"type": "BPE", "vocab": {w + str(i): i for i, w in enumerate(vocab)}}}, f)

for i in range(n_small):
    d = os.path.join(out, "tree", "d%03d" % (i // 50))
    os.makedirs(d, exist_ok=True)
    size = int(rng.integers(4 << 10, (64 << 10) + 1))
    name, data = (("doc-%05d.txt" % i, text(size)) if i % 2 == 0 else ("meta-%05d.json" % i, records(size)))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

have = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(out) for fn in fns)
left, i = total - have, 0
b = os.path.join(out, "blobs")
os.makedirs(b, exist_ok=True)
while left > 0:
    size = min(left, int(rng.integers(1 << 20, (8 << 20) + 1)))
    if i % 2 == 0:  # incompressible: like compressed images or archives
        data, name = rng.bytes(size), "part-%03d.bin" % i
    else:           # compressible: 16-bit samples, sigma 300 (~10 bits of entropy in 16)
        data, name = rng.normal(0, 300, size // 2 + 1).astype("<i2").tobytes()[:size], "samples-%03d.raw" % i
    with open(os.path.join(b, name), "wb") as f:
        f.write(data)
    left -= size; i += 1
PY
gsecs=$(awk -v s="$gs" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
corpus_b=$(bytes_of "$corpus")
corpus_files=$(files_of "$corpus")
corpus_mb=$(mb "$corpus_b")
fp0=$(fingerprint)
# (awk 'NR == 1' rather than head: with pipefail, a writer cut off by head would stop the bench.)
small_file=$(find "$corpus/tree" -type f -name 'doc-*.txt' | sort | awk 'NR == 1')
big_file=$(find "$corpus/blobs" -type f -printf '%s %p\n' | sort -k1,1nr -k2 | awk 'NR == 1' | cut -d' ' -f2-)
[ -n "$big_file" ] || big_file="$corpus/model/model.safetensors"
head -c 1048576 /dev/urandom > "$work/append.bin"

# ---------------------------------------------------------------------------------------------
# Timing.
# timed LOG CMD...: syncs, runs CMD (output to LOG); sets secs (wall) and rss_kb (peak RSS, "" without
# /usr/bin/time); returns CMD's exit status.
timed() {
  local log=$1; shift
  local s e rc=0 tv=() tf="$log.time"
  rm -f "$tf"
  [ -x /usr/bin/time ] && tv=(/usr/bin/time -v -o "$tf")
  sync
  s=$(date +%s.%N)
  "${tv[@]}" "$@" > "$log" 2>&1 || rc=$?
  e=$(date +%s.%N)
  secs=$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }')
  rss_kb=""
  [ -f "$tf" ] && rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tf")
  return $rc
}
declare -A SECS=() RSS=() FAILS=() REPO=() BROKEN=() VERIFY=()
line=""
# step SCENARIO TOOL LOG CMD...: timed, the result recorded; returns 1 when CMD failed.
step() {
  local sc=$1 t=$2 log=$3; shift 3
  if timed "$log" "$@"; then
    SECS[$sc,$t]="${SECS[$sc,$t]:-} $secs"
    if [ -n "$rss_kb" ] && [ "$rss_kb" -gt "${RSS[$sc,$t]:-0}" ]; then RSS[$sc,$t]=$rss_kb; fi
    line="$line | $t $(printf '%.2f' "$secs") s"
  else
    local rc=$?
    FAILS[$sc,$t]=$(( ${FAILS[$sc,$t]:-0} + 1 ))
    line="$line | $t FAILED"
    echo "$t $sc failed (exit $rc), log $log:" >&2
    tail -5 "$log" >&2
    return 1
  fi
}
rcache="$work/restic-cache"
tool_init() { # tool repo log
  case "$1" in
    kintsugi) "${K[@]}" init -r "$2" "${kinit[@]}" ;;
    restic) restic -r "$2" --cache-dir "$rcache" init "${restic_init[@]}" ;;
    borg) borg init -e repokey "$2" ;;
  esac > "$3" 2>&1
}
tool_backup() { # scenario tool repo data log
  case "$2" in
    kintsugi) step "$1" kintsugi "$5" "${K[@]}" backup -q -r "$3" "$4" ;;
    restic) step "$1" restic "$5" restic -r "$3" --cache-dir "$rcache" backup -q "$4" ;;
    borg) step "$1" borg "$5" borg create "$3::$1" "$4" ;;
  esac
}
tool_restore() { # tool repo target log
  mkdir -p "$3"
  case "$1" in
    kintsugi) step restore kintsugi "$4" "${K[@]}" restore latest -q -r "$2" --target "$3" ;;
    restic) step restore restic "$4" restic -r "$2" --cache-dir "$rcache" restore latest -q --target "$3" ;;
    borg) step restore borg "$4" env -C "$3" borg extract "$2::small-change" ;;
  esac
}
tool_check() { # tool repo log
  case "$1" in
    kintsugi) step check kintsugi "$3" "${K[@]}" check -q --read-data -r "$2" ;;
    restic) step check restic "$3" restic -r "$2" --cache-dir "$rcache" check -q --read-data ;;
    borg) step check borg "$3" borg check --verify-data "$2" ;;
  esac
}
tool_open() { # tool repo log
  case "$1" in
    kintsugi) step open kintsugi "$3" "${K[@]}" snapshots -q -r "$2" ;;
    restic) step open restic "$3" restic -r "$2" --cache-dir "$rcache" snapshots -q ;;
    borg) step open borg "$3" borg list "$2" ;;
  esac
}
warm() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }

# ---------------------------------------------------------------------------------------------
# Header.
kver=""; has kintsugi && kver=$("${K[@]}" --version 2>/dev/null | awk 'NR == 1')
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain -- src 2>/dev/null | wc -l)
[ "$dirty" -gt 0 ] && commit="$commit + uncommitted changes in $dirty file(s) under src/"
echo "# Kintsugi throughput bench"
echo
echo "machine: $(nproc) cores ($(lscpu 2>/dev/null | awk -F': *' '/^Model name/ && !n++ { print $2 }')), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM (free -g total), kernel $(uname -r), /tmp on $(df -T /tmp | awk 'NR == 2 { print $2 }'), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: kintsugi ${kver:-(not run)} (git $commit), dotnet $(dotnet --version 2>/dev/null || echo '?'); $(has restic && restic version | cut -d' ' -f1-2 || echo 'restic: not run'); $(has borg && borg --version || echo 'borg: not run')"
repos=()
has kintsugi && repos+=("kintsugi: $([ ${#kinit[@]} -gt 0 ] && echo "fast KDF (${kinit[*]})" || echo "default KDF")")
has restic && repos+=("restic: $([ ${#restic_init[@]} -gt 0 ] && echo "repository version 2, compression auto" || echo "default init"), scrypt as calibrated by init")
has borg && repos+=("borg: repokey, default compression (lz4)")
echo "repositories: $(printf '%s; ' "${repos[@]}" | sed 's/; $//')"
echo "corpus: $corpus_files files, $corpus_mb MB (generated in $gsecs s, fingerprint $fp0):"
echo "  model/  $(files_of "$corpus/model") files, $(mb "$(bytes_of "$corpus/model")") MB: fp32 safetensors (frozen-finetune v1, scale $model_scale) + config.json + tokenizer.json"
echo "  tree/   $(files_of "$corpus/tree") files in $(find "$corpus/tree" -mindepth 1 -type d | wc -l) folders, $(mb "$(bytes_of "$corpus/tree")") MB: text and JSON, 4-64 KiB each"
echo "  blobs/  $(files_of "$corpus/blobs") files, $(mb "$(bytes_of "$corpus/blobs")") MB: 1-8 MiB, half random bytes, half int16 samples (compressible)"
echo "small change: ${small_file#"$corpus"/} edited, 1 MiB appended to ${big_file#"$corpus"/} ($(mb "$(stat -c %s "$big_file")") MB)"
echo "tools in turn: ${tools[*]}, rotated each round; rounds: $rounds; work folder $work"
for n in ${notes[@]+"${notes[@]}"}; do echo "note: $n"; done
echo

# ---------------------------------------------------------------------------------------------
# Rounds.
scenarios=(first unchanged small-change restore check open)
# Each round runs the tools in a rotated order (A B C, B C A, C A B), so none always goes first.
# Restored trees are kept until every round is done: deleting thousands of files slows the next
# creation of files on ext4 for a while (it skips recently freed inodes, reading their inode table
# blocks), and a restore right after another tool's deleted restore measured up to 3x slower.
restored="$work/restored"
mkdir -p "$restored"
for r in $(seq 1 "$rounds"); do
  rd="$work/r$r"
  mkdir -p "$rd"
  k=$(( (r - 1) % ${#tools[@]} ))
  order=("${tools[@]:k}" "${tools[@]:0:k}")
  BROKEN=()
  for t in "${tools[@]}"; do
    tool_init "$t" "$rd/$t-repo" "$work/logs/r$r-init-$t.log" \
      || { echo "$t init failed:" >&2; tail -5 "$work/logs/r$r-init-$t.log" >&2; BROKEN[$t]=1; }
  done
  warm "$corpus"

  line="round $r ceiling"
  step ceiling pipeline "$work/logs/r$r-ceiling-write.log" bash -c \
    'set -o pipefail; tar -cf - -C "$1" . | tee "$2" | "${@:3}" > /dev/null && sync "$2"' _ "$corpus" "$work/ceiling.tar" "${sha[@]}" || true
  rm -f "$work/ceiling.tar"
  step ceiling-read hash "$work/logs/r$r-ceiling-read.log" bash -c \
    'set -o pipefail; find "$1" -type f -print0 | xargs -0 "${@:2}" > /dev/null' _ "$corpus" "${sha[@]}" || true
  echo "$line"

  for sc in first unchanged small-change; do
    if [ "$sc" = small-change ]; then
      cp -p "$small_file" "$work/orig/small"
      big_size=$(stat -c %s "$big_file")
      printf 'Edited in round %d: a new line at the end of a small file.\n' "$r" >> "$small_file"
      cat "$work/append.bin" >> "$big_file"
    fi
    line="round $r $sc"
    for t in "${order[@]}"; do
      [ -z "${BROKEN[$t]:-}" ] || { line="$line | $t skipped"; continue; }
      tool_backup "$sc" "$t" "$rd/$t-repo" "$corpus" "$work/logs/r$r-$sc-$t.log" || BROKEN[$t]=1
      if [ "$sc" = first ] && [ "$r" = 1 ] && [ -z "${BROKEN[$t]:-}" ]; then
        REPO[$t]=$(du -sb "$rd/$t-repo" | cut -f1)
      fi
    done
    echo "$line"
  done

  line="round $r restore"
  for t in "${order[@]}"; do
    [ -z "${BROKEN[$t]:-}" ] || { line="$line | $t skipped"; continue; }
    target="$restored/r$r-$t"
    if tool_restore "$t" "$rd/$t-repo" "$target" "$work/logs/r$r-restore-$t.log"; then
      if diff -r "$corpus" "$target$corpus" > "$work/logs/r$r-restore-diff-$t.log" 2>&1; then
        VERIFY[$t]="${VERIFY[$t]:-OK}"
      else
        VERIFY[$t]=DIFFERS
        echo "$t: the restored files differ from the corpus (round $r):" >&2
        head -5 "$work/logs/r$r-restore-diff-$t.log" >&2
      fi
    fi
  done
  echo "$line"

  # Undo the small change: every round backs up the same corpus.
  cp -p "$work/orig/small" "$small_file"
  truncate -s "$big_size" "$big_file"

  for sc in check open; do
    line="round $r $sc"
    for t in "${order[@]}"; do
      [ -z "${BROKEN[$t]:-}" ] || { line="$line | $t skipped"; continue; }
      if [ "$sc" = check ]; then tool_check "$t" "$rd/$t-repo" "$work/logs/r$r-check-$t.log" || true
      else tool_open "$t" "$rd/$t-repo" "$work/logs/r$r-open-$t.log" || true; fi
    done
    echo "$line"
  done

  fp=$(fingerprint)
  [ "$fp" = "$fp0" ] || { echo "the corpus changed during round $r (fingerprint $fp, was $fp0): bench bug" >&2; exit 1; }
  [ "$keep" = 1 ] || rm -rf "$rd"
done
[ "$keep" = 1 ] || rm -rf "$restored"

# ---------------------------------------------------------------------------------------------
# Memory bound: a G GiB corpus of random 256 MiB files, one first backup per tool.
mem_rows=()
if [ "$mem_bytes" -gt 0 ]; then
  mc="$work/memcorpus"
  mkdir -p "$mc"
  left=$mem_bytes i=0
  while [ "$left" -gt 0 ]; do
    n=$((left < 268435456 ? left : 268435456))
    head -c "$n" /dev/urandom > "$mc/random-$(printf %03d $i).bin"
    left=$((left - n)) i=$((i + 1))
  done
  echo
  echo "memory corpus: $i files, $(mb "$mem_bytes") MB of random bytes"
  for t in "${tools[@]}"; do
    repo="$work/mem-$t-repo"
    tool_init "$t" "$repo" "$work/logs/mem-init-$t.log" || { echo "$t init failed" >&2; continue; }
    line="memory corpus first"
    if tool_backup mem "$t" "$repo" "$mc" "$work/logs/mem-first-$t.log"; then
      mem_rows+=("| $(mb "$mem_bytes") MB random | $t | $(printf '%.2f' "$secs") | $(awk -v b="$mem_bytes" -v s="$secs" 'BEGIN { printf "%.0f", b / 1e6 / s }') | $([ -n "$rss_kb" ] && awk -v k="$rss_kb" 'BEGIN { printf "%.0f", k / 1024 }' || echo -) | $(mb "$(du -sb "$repo" | cut -f1)") |")
    else
      mem_rows+=("| $(mb "$mem_bytes") MB random | $t | FAILED | - | - | - |")
    fi
    echo "$line"
    rm -rf "$repo" "$rcache" "$BORG_BASE_DIR"
  done
  [ "$keep" = 1 ] || rm -rf "$mc"
fi

# ---------------------------------------------------------------------------------------------
# Tables.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { # scenario tool -> median seconds, or "" when no round succeeded
  local v=${SECS[$1,$2]:-}
  [ -n "$v" ] || { echo ""; return; }
  # shellcheck disable=SC2086
  median $v
}
speed() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "×%.2f", b / a; else printf "-" }'; }
row() { # scenario tool throughput(0/1) [scenario label] [tool label]
  local sc=$1 t=$2 m n f all mbs rss repo
  m=$(med "$sc" "$t")
  # shellcheck disable=SC2086
  n=$(set -- ${SECS[$sc,$t]:-}; echo $#)
  f=${FAILS[$sc,$t]:-0}
  all=$(printf '%s\n' ${SECS[$sc,$t]:-} | awk 'NF { printf "%s%.2f", (n++ ? " / " : ""), $1 }')
  if [ -z "$m" ]; then m="FAILED"; elif [ "$f" -gt 0 ]; then m="$m ($n of $((n + f)) ok)"; fi
  mbs=-
  [ "$3" = 1 ] && [ -n "$(med "$sc" "$t")" ] && mbs=$(awk -v b="$corpus_b" -v s="$(med "$sc" "$t")" 'BEGIN { printf "%.0f", b / 1e6 / s }')
  rss=-
  [ -n "${RSS[$sc,$t]:-}" ] && rss=$(awk -v k="${RSS[$sc,$t]}" 'BEGIN { printf "%.0f", k / 1024 }')
  repo=-
  [ "$sc" = first ] && [ -n "${REPO[$t]:-}" ] && repo=$(mb "${REPO[$t]}")
  echo "| ${4:-$sc} | ${5:-$t} | $m | $mbs | $rss | $repo | ${all:--} |"
}

echo
echo "## Results: median wall seconds of $rounds round(s), page cache warm, corpus $corpus_mb MB in $corpus_files files"
echo
echo "| scenario | tool | seconds (median of $rounds) | MB/s | peak RSS MiB | repo MB | all rounds (s) |"
echo "|---|---|---:|---:|---:|---:|---|"
for sc in "${scenarios[@]}"; do
  case "$sc" in first|restore|check) thr=1 ;; *) thr=0 ;; esac
  for t in "${tools[@]}"; do
    if [ -n "${SECS[$sc,$t]:-}${FAILS[$sc,$t]:-}" ]; then row "$sc" "$t" "$thr"; fi
  done
done
row ceiling pipeline 1 "ceiling: read + SHA-256 + write + fsync" "tar \\| tee \\| sha256; sync"
row ceiling-read hash 1 "ceiling: read + SHA-256" "$sha_name FILES"

if has kintsugi; then
echo
echo "Speed ratios (other tool's median seconds / kintsugi's: ×2.00 = kintsugi twice as fast; issue 5 asks for ≥ ×3 against restic)."
echo "\"of ceiling\" = ceiling seconds / kintsugi seconds (first and restore against read + SHA-256 + write + fsync, check against read + SHA-256)."
echo
echo "| scenario | kintsugi/restic speed | kintsugi/borg speed | kintsugi, of ceiling |"
echo "|---|---:|---:|---:|"
  for sc in "${scenarios[@]}"; do
    k=$(med "$sc" kintsugi)
    rs=-; has restic && rs=$(speed "$k" "$(med "$sc" restic)")
    bs=-; has borg && bs=$(speed "$k" "$(med "$sc" borg)")
    cs=-
    case "$sc" in
      first|restore) cs=$(awk -v a="$k" -v b="$(med ceiling pipeline)" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", b / a; else printf "-" }') ;;
      check) cs=$(awk -v a="$k" -v b="$(med ceiling-read hash)" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", b / a; else printf "-" }') ;;
    esac
    echo "| $sc | $rs | $bs | $cs |"
  done
fi

if [ ${#mem_rows[@]} -gt 0 ]; then
  echo
  echo "Memory bound: first backup of the memory corpus (one run per tool) next to the main corpus's first backup."
  echo
  echo "| corpus | tool | seconds | MB/s | peak RSS MiB | repo MB |"
  echo "|---|---|---:|---:|---:|---:|"
  for t in "${tools[@]}"; do
    m=$(med first "$t")
    [ -n "$m" ] || continue
    echo "| $corpus_mb MB main (median, max RSS) | $t | $m | $(awk -v b="$corpus_b" -v s="$m" 'BEGIN { printf "%.0f", b / 1e6 / s }') | $([ -n "${RSS[first,$t]:-}" ] && awk -v k="${RSS[first,$t]}" 'BEGIN { printf "%.0f", k / 1024 }' || echo -) | $([ -n "${REPO[$t]:-}" ] && mb "${REPO[$t]}" || echo -) |"
  done
  printf '%s\n' "${mem_rows[@]}"
fi

echo
ver=""
for t in "${tools[@]}"; do [ -n "${VERIFY[$t]:-}" ] && ver="$ver $t ${VERIFY[$t]},"; done
echo "restores compared byte for byte with the corpus (diff -r, untimed):${ver%,}"
echo "notes: kintsugi (--build $build: ${K[*]##*/}) times include .NET startup; \`open\` (list snapshots) is each tool's fixed cost per command."
echo "  MB/s = corpus MB / median seconds (check reads the repository: 3 snapshots of the corpus). \`sync\` runs before every timed command; caches are not dropped."
echo "  SHA-256 in the ceilings: $sha_name; the first ceiling is a pipeline of single-threaded processes (tar, tee, hash; then fsync), the second one process."
echo "load average at end $(cut -d' ' -f1-3 /proc/loadavg); total run time $(( $(date +%s) - t_start )) s"
fails=0
for k in "${!FAILS[@]}"; do fails=$((fails + FAILS[$k])); done
bad=0
for t in "${tools[@]}"; do [ "${VERIFY[$t]:-}" = DIFFERS ] && bad=1; done
[ "$fails" = 0 ] && [ "$bad" = 0 ] || { echo "FAIL: $fails timed command(s) failed$([ "$bad" = 1 ] && echo ', a restore differs from the corpus')" >&2; exit 1; }
