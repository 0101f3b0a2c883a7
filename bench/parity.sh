#!/usr/bin/env bash
# Parity (issue 6, "Redundancy inside the repository"): what it costs and what it repairs.
#
#   bench/parity.sh [--size-mb N] [--scheme K+M] [--keep]
#
# Builds Kintsugi (Release), writes a corpus of ~N MB (default 640; random 16 MiB "weights" files,
# so that packs are full and incompressible, plus 500 small text files), then:
#   1. backs it up without parity and, into a second repository, with `init --parity K+M` (default
#      8+2): the time parity adds to a first backup, and the space it takes (parity / other files);
#   2. on a copy of the parity repository each time, injects damage and runs `kintsugi repair`:
#        one-pack       one pack deleted
#        m-packs        m packs of one group deleted (the most a group survives)
#        bitrot         one random byte flipped in every pack and every index/snapshot/key file
#        metadata       the config, the key slot, every index file and every snapshot damaged
#        beyond         m + 1 packs of one group deleted (more than it survives: reported, exit 1)
#      and reports: files damaged, repaired, not repaired, repair seconds and MB/s (bytes of the
#      repository read), and whether `check --read-data` then passes and the newest snapshot restores
#      byte for byte.
# The work folder is /tmp/kintsugi-parity.* (removed unless --keep).
set -euo pipefail
size_mb=640 scheme=8+2 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) size_mb=${2:?--size-mb needs a value}; shift 2 ;;
    --scheme) scheme=${2:?--scheme needs a value}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $size_mb =~ ^[1-9][0-9]*$ ]] && [ "$size_mb" -ge 64 ] || { echo "--size-mb must be an integer >= 64" >&2; exit 2; }
[[ $scheme =~ ^[1-9][0-9]*\+[1-9][0-9]*$ ]] || { echo "--scheme must be DATA+PARITY, e.g. 8+2" >&2; exit 2; }
m=${scheme#*+}

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/kintsugi-parity.XXXXXX)
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
dotnet build "$root/src/Kintsugi.Cli" -c Release -nologo -v quiet >/dev/null
k() { dotnet "$root/src/Kintsugi.Cli/bin/Release/net10.0/kintsugi.dll" "$@"; }
echo "bench-password" > "$work/pass"
export KINTSUGI_PASSWORD_FILE="$work/pass"
kdf=(--kdf-memory 8 --kdf-iterations 1)

corpus="$work/corpus"
mkdir -p "$corpus/text"
/usr/bin/python3 - "$corpus" "$size_mb" <<'EOF'
import os, random, sys
root, size_mb = sys.argv[1], int(sys.argv[2])
rng = random.Random(6)
for i in range(max(1, size_mb // 16)):
    with open(os.path.join(root, f"weights-{i:03d}.bin"), "wb") as f:
        f.write(rng.randbytes(16 << 20))
for i in range(500):
    with open(os.path.join(root, "text", f"doc-{i:03d}.txt"), "w") as f:
        f.write(" ".join(rng.choice(["loss", "step", "lr", "eval", "grad", "0.1", "0.01"]) for _ in range(rng.randint(200, 4000))))
EOF
corpus_mb=$(du -sb "$corpus" | awk '{ printf "%.0f", $1 / 1e6 }')
sync

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

k --repo "$work/plain" init "${kdf[@]}" >/dev/null
t0=$(now); k --repo "$work/plain" backup -q "$corpus" >/dev/null; t1=$(now)
plain_s=$(secs "$t0" "$t1")
k --repo "$work/par" init "${kdf[@]}" --parity "$scheme" >/dev/null
t0=$(now); k --repo "$work/par" backup -q "$corpus" >/dev/null; t1=$(now)
par_s=$(secs "$t0" "$t1")
status=$(k --repo "$work/par" parity --json)
echo "corpus ${corpus_mb} MB; scheme $scheme"
echo "first backup: ${plain_s} s without parity, ${par_s} s with"
echo "$status" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
print("parity: %d groups over %d files (%.1f MB), %.1f MB of parity = %.1f%% of the repository" % (s["groups"], s["protected_files"], s["protected_bytes"] / 1e6, s["parity_bytes"] / 1e6, s["overhead"] * 100))'
t0=$(now); k --repo "$work/par" repair --json >/dev/null; t1=$(now)
echo "repair of an undamaged repository: $(secs "$t0" "$t1") s"

# Members of the parity groups, from their headers (docs/FORMAT.md §15.3): group -> pack names.
groups_of() {
  /usr/bin/python3 - "$1" <<'EOF'
import os, struct, sys
d = os.path.join(sys.argv[1], "parity")
for name in sorted(os.listdir(d)):
    if len(name) != 64: continue
    b = open(os.path.join(d, name), "rb").read(1 << 20)
    n, = struct.unpack_from("<I", b, 32); at = 40; packs = []
    for _ in range(n):
        kind = b[at]; ln = b[at + 1]; nm = b[at + 2:at + 2 + ln].decode(); at += 2 + ln + 1 + 8 + 8 + 32
        if kind == 3: packs.append(nm)
    print(name, " ".join(packs))
EOF
}

printf '\n%-10s %8s %9s %13s %8s %8s %8s  %s\n' scenario damaged repaired "not repaired" "repair s" "MB/s" exit "check + restore"
for scenario in one-pack m-packs bitrot metadata beyond; do
  rm -rf "$work/copy" "$work/out"
  cp -a "$work/par" "$work/copy"
  r="$work/copy"
  pack_path() { echo "$r/data/${1:0:2}/$1"; }
  # The group with the most packs.
  read -r -a grp <<< "$(groups_of "$r" | awk '{ print NF - 1, $0 }' | sort -rn | head -1 | cut -d' ' -f3-)"
  case $scenario in
    one-pack) rm "$(pack_path "${grp[0]}")" ;;
    m-packs) for p in "${grp[@]:0:$m}"; do rm "$(pack_path "$p")"; done ;;
    beyond) for p in "${grp[@]:0:$((m + 1))}"; do rm "$(pack_path "$p")"; done ;;
    bitrot|metadata)
      /usr/bin/python3 - "$r" "$scenario" <<'EOF'
import os, random, sys
r, scenario = sys.argv[1], sys.argv[2]
rng = random.Random(7)
files = []
for top in (["data", "index", "snapshots", "keys"] if scenario == "bitrot" else ["index", "snapshots", "keys"]):
    for dp, _, fs in os.walk(os.path.join(r, top)):
        files += [os.path.join(dp, f) for f in fs]
if scenario == "metadata":
    files.append(os.path.join(r, "config"))
for f in files:
    b = bytearray(open(f, "rb").read())
    i = rng.randrange(len(b)); b[i] ^= 1 << rng.randrange(8)
    open(f, "wb").write(b)
EOF
      ;;
  esac
  t0=$(now)
  set +e; out=$(k --repo "$r" repair --json 2>/dev/null); rc=$?; set -e
  t1=$(now)
  s=$(secs "$t0" "$t1")
    read -r damaged repaired notrep mbps <<< "$(echo "$out" | /usr/bin/python3 -c '
import json, sys
j = json.load(sys.stdin)
print(len(j["files"]), j["repaired"], j["not_repaired"], "%.0f" % (j["bytes_checked"] / 1e6 / max(j["seconds"], 1e-9)))')"
  verdict="-"
  if [ "$rc" = 0 ]; then
    if k --repo "$r" check --read-data -q >/dev/null 2>&1 && k --repo "$r" restore latest --target "$work/out" -q >/dev/null 2>&1 && diff -r -q "$corpus" "$work/out$corpus" >/dev/null; then
      verdict="check passes, restore identical"
    else
      verdict="FAILED"
    fi
  else
    verdict="(not all repairable, as expected)"
    [ "$scenario" = beyond ] || verdict="UNEXPECTED: not all repaired"
  fi
  printf '%-10s %8s %9s %13s %8s %8s %8s  %s\n' "$scenario" "$damaged" "$repaired" "$notrep" "$s" "$mbps" "$rc" "$verdict"
done
