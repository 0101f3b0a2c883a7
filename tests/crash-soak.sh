#!/usr/bin/env bash
# The long run of the crash-consistency test: kintsugi backup and forget --prune killed with SIGKILL
# at N random moments (default 200), each followed by check --read-data, a bit-exact restore of every
# snapshot and a further backup; prune at the end must leave no leftovers. Prints the seed; replay
# one with KINTSUGI_TEST_SEED=S.
#
#   tests/crash-soak.sh [RUNS]
set -euo pipefail
runs=${1:-200}
case "$runs" in -h|--help) sed -n '2,7p' "$0"; exit 0 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
KINTSUGI_CRASH_RUNS=$runs dotnet test "$root/tests/Kintsugi.EndToEnd.Tests" \
  --filter "FullyQualifiedName~CrashConsistencyTests" --logger "console;verbosity=detailed"
