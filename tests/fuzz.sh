#!/usr/bin/env bash
# The long run of the repository fuzz tests: every parser of repository data (sealed files, index
# payloads, pack headers, sealed blobs, trees, snapshots, config, key slots, lock files) is fed N
# mutated inputs (default 200000 each; the default suite runs 2000). Prints the seed, the inputs
# tried per parser and in total; replay a failure with KINTSUGI_TEST_SEED=S tests/fuzz.sh N.
#
#   tests/fuzz.sh [INPUTS_PER_PARSER]
set -euo pipefail
inputs=${1:-200000}
case "$inputs" in -h|--help) sed -n '2,7p' "$0"; exit 0 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
seed=${KINTSUGI_TEST_SEED:-$(( (RANDOM << 15) | RANDOM ))}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "fuzz.sh: $inputs inputs per parser, seed $seed (replay with KINTSUGI_TEST_SEED=$seed $0 $inputs)"
status=0
KINTSUGI_TEST_SEED=$seed KINTSUGI_FUZZ_INPUTS=$inputs dotnet test "$root/tests/Kintsugi.Backup.Tests" \
  --filter "FullyQualifiedName~RepositoryFuzzTests" --logger "console;verbosity=detailed" | tee "$log" || status=$?
# Each test prints "fuzz PARSER: N inputs, A accepted, R refused (...), F failed; ..." (twice when it fails).
grep -a -o 'fuzz [a-z ]*: [0-9]* inputs, [0-9]* accepted, [0-9]* refused[^;]*, [0-9]* failed' "$log" | sort -u | awk '
  { sub(/^fuzz /, ""); split($0, part, ": "); split(part[2], n, " ");
    printf "  %-14s %10d inputs %10d accepted %10d refused %6d failed\n", part[1], n[1], n[3], n[5], n[length(n) - 1];
    inputs += n[1]; failed += n[length(n) - 1]; parsers++ }
  END { printf "fuzz.sh: %d parsers, %d inputs in total, %d failed\n", parsers, inputs, failed }'
echo "fuzz.sh: seed $seed"
exit "$status"
