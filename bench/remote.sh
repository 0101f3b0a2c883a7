#!/usr/bin/env bash
# A checkpoint series backed up to object storage after every checkpoint, then the newest snapshot
# restored: Kintsugi to s3rver (S3) and to Azurite (Azure Blob), restic to s3rver, side by side in
# one run. Prints a Markdown table per tool and store: backup seconds (first, median incremental),
# restore seconds, requests (total and per GiB of checkpoint data), MiB up and down, and whether
# the restored files equal the originals (cmp).
#
#   bench/remote.sh [--checkpoints N] [--size-mib M] [--changed-pct P] [--kintsugi PATH] [--json FILE] [--keep]
#
#   --checkpoints N   checkpoints in the series (default 4); each one a new file in the backed-up folder
#   --size-mib M      size of a checkpoint (default 64)
#   --changed-pct P   percent of a checkpoint's bytes (its tail) new at each step (default 10)
#   --kintsugi PATH   a published kintsugi binary (or a kintsugi.dll, run with dotnet); default: build
#                     src/Kintsugi.Cli in Release and run its dll
#   --json FILE       also write the figures as JSON
#   --keep            keep the work folder (repositories, server logs) and print where it is
#
# Requests: Kintsugi's are the "requests" object of --json (s3rver's log is counted too, as a check);
# restic's are the request lines in s3rver's log. Bytes: Kintsugi's from --json; restic's upload is
# what its backups added to s3rver's folder, its download the response sizes s3rver logged.
# Both tools use a fresh metadata cache in the work folder ($XDG_CACHE_HOME).
# s3rver runs over https with a self-signed certificate: restic 0.14's S3 client sends aws-chunked
# bodies over plain http, which s3rver stores with their framing (restic then fails with "Unmarshal:
# invalid character 'b'"); over https it sends plain bodies. Kintsugi trusts the certificate through
# SSL_CERT_FILE. restic 0.14 cannot reach Azurite: its azure backend only builds
# https://ACCOUNT.blob.core.windows.net URLs (AZURE_ACCOUNT_NAME/KEY/SAS; no endpoint variable).
# The emulators come from KINTSUGI_SERVERS_DIR or <repo>/.servers (test.sh installs them).
set -euo pipefail
checkpoints=4 size_mib=64 changed_pct=10 kintsugi="" json_out="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --checkpoints) checkpoints=$2; shift 2 ;;
    --size-mib) size_mib=$2; shift 2 ;;
    --changed-pct) changed_pct=$2; shift 2 ;;
    --kintsugi) kintsugi=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$checkpoints" -ge 1 ] && [ "$size_mib" -ge 1 ] && [ "$changed_pct" -ge 0 ] && [ "$changed_pct" -le 100 ] \
  || { echo "--checkpoints and --size-mib must be at least 1, --changed-pct 0 to 100" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
servers=${KINTSUGI_SERVERS_DIR:-$root/.servers}
S3RVER=$servers/node_modules/.bin/s3rver AZURITE=$servers/node_modules/.bin/azurite-blob
for x in "$S3RVER" "$AZURITE"; do
  [ -x "$x" ] || { echo "$x is missing: run ./test.sh once (it installs the emulators), or set KINTSUGI_SERVERS_DIR" >&2; exit 2; }
done
for x in openssl python3 bc; do command -v $x >/dev/null || { echo "$x is needed" >&2; exit 2; }; done
have_restic=0; command -v restic >/dev/null && have_restic=1

if [ -n "$kintsugi" ]; then
  kintsugi=$(realpath "$kintsugi")
  case "$kintsugi" in
    *.dll) K=(dotnet "$kintsugi"); kdesc="dotnet $kintsugi" ;;
    *) K=("$kintsugi"); kdesc="$kintsugi (published binary)" ;;
  esac
else
  dotnet build -c Release "$root/src/Kintsugi.Cli" -v q -nologo >/dev/null
  K=(dotnet "$root/src/Kintsugi.Cli/bin/Release/net10.0/kintsugi.dll")
  kdesc="dotnet src/Kintsugi.Cli/bin/Release/net10.0/kintsugi.dll (built in Release)"
fi

work=$(mktemp -d /tmp/kintsugi-remote-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "work folder kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done; echo "server on port $1 did not start; see $work/*.log" >&2; exit 1; }

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
s3port=$(free_port); mkdir -p "$work/s3"
"$S3RVER" -d "$work/s3" -a 127.0.0.1 -p "$s3port" --configure-bucket bench --key "$work/key.pem" --cert "$work/cert.pem" > "$work/s3rver.log" 2>&1 &
pids+=($!)
azport=$(free_port); mkdir -p "$work/az"
"$AZURITE" --blobHost 127.0.0.1 --blobPort "$azport" -l "$work/az" --skipApiVersionCheck --silent > "$work/azurite.log" 2>&1 &
pids+=($!)
wait_port "$s3port"; wait_port "$azport"

export XDG_CACHE_HOME="$work/cache" SSL_CERT_FILE="$work/cert.pem"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$azport/devstoreaccount1;"
echo "bench-password" > "$work/pass"
export KINTSUGI_PASSWORD_FILE="$work/pass" RESTIC_PASSWORD_FILE="$work/pass"
KS3="s3:https://127.0.0.1:$s3port/bench/kintsugi" KAZ="azure:bench:/kintsugi"
RS3="s3:https://127.0.0.1:$s3port/bench/restic"
R=(restic -r "$RS3" --cacert "$work/cert.pem")

# One figure line per command: tool store phase seconds requests bytes_up bytes_down log_requests
results="$work/results.tsv"; : > "$results"
# s3rver logs response sizes as the npm "bytes" package writes them: 612b, 3.03mb, 8mb (powers of 1024).
log_down_since() {
  tail -n +"$(( $1 + 1 ))" "$work/s3rver.log" | sed -nE 's/^\S*info\S*: \S+ [0-9]{3} [0-9,]+ms ([0-9.]+)([kmgt]?b)\s*$/\1 \2/p' \
    | awk '{m = $2 == "kb" ? 1024 : $2 == "mb" ? 1048576 : $2 == "gb" ? 1073741824 : $2 == "tb" ? 1099511627776 : 1; s += $1 * m} END {printf "%.0f\n", s}'
}
stored_bytes() { find "$work/s3/bench/$1" -name '*._S3rver_object' -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
now() { date +%s.%N; }

# Kintsugi: KIND (s3rver|azurite) PHASE REPO ARGS…; the figures from --json's "requests".
kintsugi_step() {
  local store=$1 phase=$2 repo=$3; shift 3
  local before s e out
  before=$(awk 'END {print NR}' "$work/s3rver.log")
  s=$(now)
  "${K[@]}" --repo "$repo" "$@" --json > "$work/out.json" 2> "$work/err.txt" \
    || { echo "kintsugi $* ($store) failed:" >&2; cat "$work/err.txt" >&2; exit 1; }
  e=$(now); sleep 0.5
  local logged=""
  [ "$store" = s3rver ] && logged=$(tail -n +"$(( before + 1 ))" "$work/s3rver.log" | grep -cE '^\S*info\S*: \S+ [0-9]{3} [0-9,]+ms ' || true)
  out=$(jq -r '.requests | "\(.total) \(.bytes_up) \(.bytes_down)"' "$work/out.json")
  echo "kintsugi $store $phase $(echo "$e - $s" | bc -l) $out ${logged:--}" >> "$results"
}

# restic: PHASE ARGS…; requests and bytes down from s3rver's log, bytes up from s3rver's folder.
restic_step() {
  local phase=$1; shift
  local before stored0 s e
  before=$(awk 'END {print NR}' "$work/s3rver.log"); stored0=$(stored_bytes restic)
  s=$(now)
  "${R[@]}" "$@" > "$work/out.txt" 2>&1 || { echo "restic $* failed:" >&2; cat "$work/out.txt" >&2; exit 1; }
  e=$(now); sleep 0.5
  local n down up
  n=$(tail -n +"$(( before + 1 ))" "$work/s3rver.log" | grep -cE '^\S*info\S*: \S+ [0-9]{3} [0-9,]+ms ' || true)
  down=$(log_down_since "$before"); up=$(( $(stored_bytes restic) - stored0 ))
  echo "restic s3rver $phase $(echo "$e - $s" | bc -l) $n $up $down $n" >> "$results"
}

"${K[@]}" --repo "$KS3" init >/dev/null
"${K[@]}" --repo "$KAZ" init >/dev/null
[ $have_restic = 1 ] && "${R[@]}" init -q >/dev/null

mkdir -p "$work/ckpt"
size=$((size_mib * 1048576)) changed=$((size_mib * 1048576 * changed_pct / 100))
head -c "$size" /dev/urandom > "$work/model.bin"
for i in $(seq 1 "$checkpoints"); do
  if [ "$i" -gt 1 ] && [ "$changed" -gt 0 ]; then
    head -c "$changed" /dev/urandom | dd of="$work/model.bin" bs=1M seek=$((size - changed)) oflag=seek_bytes conv=notrunc status=none
  fi
  cp "$work/model.bin" "$work/ckpt/step-$(printf %06d $((i * 1000))).ckpt"
  kintsugi_step s3rver "backup$i" "$KS3" backup "$work/ckpt"
  kintsugi_step azurite "backup$i" "$KAZ" backup "$work/ckpt"
  [ $have_restic = 1 ] && restic_step "backup$i" backup -q "$work/ckpt"
  echo "checkpoint $i of $checkpoints backed up" >&2
done

verify() { # TARGET: every checkpoint restored equal to the original
  local f
  for f in "$work"/ckpt/*.ckpt; do cmp -s "$f" "$1$f" || { echo no; return; }; done
  echo yes
}
kintsugi_step s3rver restore "$KS3" restore latest --target "$work/restore-k-s3"
echo "kintsugi s3rver verified $(verify "$work/restore-k-s3")" >> "$results"
kintsugi_step azurite restore "$KAZ" restore latest --target "$work/restore-k-az"
echo "kintsugi azurite verified $(verify "$work/restore-k-az")" >> "$results"
if [ $have_restic = 1 ]; then
  restic_step restore restore latest --target "$work/restore-r-s3"
  echo "restic s3rver verified $(verify "$work/restore-r-s3")" >> "$results"
fi
# What listing snapshots costs (a cold cache: a fresh cache folder).
XDG_CACHE_HOME="$work/cache-cold" "${K[@]}" --repo "$KS3" snapshots --json > /dev/null 2> "$work/snap.err" || true
snap_requests=$(grep -o '"total": *[0-9]*' "$work/snap.err" | grep -o '[0-9]*$' || echo "?")
"${K[@]}" --repo "$KS3" snapshots --json > /dev/null 2> "$work/snap.err" || true
snap_warm=$(grep -o '"total": *[0-9]*' "$work/snap.err" | grep -o '[0-9]*$' || echo "?")

restic_line="restic not installed"
[ $have_restic = 1 ] && restic_line=$(restic version | head -1)
python3 - "$results" "$checkpoints" "$size_mib" "$changed_pct" "$kdesc" "$restic_line" "$json_out" "$snap_requests" "$snap_warm" <<'EOF'
import json, statistics, sys, os
path, n, mib, pct, kdesc, restic, json_out, snap_cold, snap_warm = sys.argv[1:]
n, mib = int(n), int(mib)
rows = {}
for line in open(path):
    f = line.split()
    key = (f[0], f[1])
    r = rows.setdefault(key, {"backups": [], "restore": None, "verified": None})
    if f[2] == "verified":
        r["verified"] = f[3]; continue
    rec = {"seconds": float(f[3]), "requests": int(f[4]), "bytes_up": int(f[5]), "bytes_down": int(f[6]),
           "log_requests": None if f[7] == "-" else int(f[7])}
    (r["backups"].append(rec) if f[2].startswith("backup") else r.__setitem__("restore", rec))
gib_backed = n * mib / 1024          # checkpoint data written over the series
gib_restored = n * mib / 1024        # the newest snapshot holds every checkpoint
print(f"\n{n} checkpoints of {mib} MiB, {pct}% new per step; restore: the newest snapshot ({n * mib} MiB)\n")
print("| tool | store | backup s (first) | backup s (incr. median) | restore s | backup requests (per GiB) | restore requests (per GiB) | MiB up | MiB down | restore = original |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
out = []
for (tool, store), r in rows.items():
    b = r["backups"]; rs = r["restore"]
    incr = statistics.median([x["seconds"] for x in b[1:]]) if len(b) > 1 else None
    breq = sum(x["requests"] for x in b); rreq = rs["requests"]
    up = sum(x["bytes_up"] for x in b) + rs["bytes_up"]; down = sum(x["bytes_down"] for x in b) + rs["bytes_down"]
    print(f"| {tool} | {store} | {b[0]['seconds']:.2f} | {'' if incr is None else f'{incr:.2f}'} | {rs['seconds']:.2f} | "
          f"{breq} ({breq / gib_backed:.0f}) | {rreq} ({rreq / gib_restored:.0f}) | {up / 2**20:.1f} | {down / 2**20:.1f} | {r['verified']} |")
    out.append({"tool": tool, "store": store, "backups": b, "restore": rs, "verified": r["verified"] == "yes",
                "backup_requests": breq, "restore_requests": rreq, "bytes_up": up, "bytes_down": down})
print("| restic | Azurite | – | – | – | – | – | – | – | not possible: restic 0.14's azure backend has no endpoint setting (only https://ACCOUNT.blob.core.windows.net) |")
print()
for o in out:
    if o["tool"] == "kintsugi" and o["store"] == "s3rver":
        logged = sum(x["log_requests"] or 0 for x in o["backups"]) + (o["restore"]["log_requests"] or 0)
        print(f"check: Kintsugi's --json counted {o['backup_requests'] + o['restore_requests']} requests to s3rver; s3rver logged {logged}.")
print(f"`kintsugi snapshots` ({n} snapshots): {snap_cold} requests with an empty cache, {snap_warm} with a warm one.")
print(f"kintsugi: {kdesc}; {restic}; s3rver over https (self-signed, SSL_CERT_FILE / --cacert), Azurite over http;"
      f" machine: {os.cpu_count()} cores, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB.")
if json_out:
    with open(json_out, "w") as fh:
        json.dump({"checkpoints": n, "size_mib": mib, "changed_pct": int(pct), "kintsugi": kdesc, "restic": restic,
                   "snapshots_requests_cold": snap_cold, "snapshots_requests_warm": snap_warm, "results": out}, fh, indent=2)
EOF
