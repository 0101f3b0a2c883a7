#!/usr/bin/env bash
# The long run of the corruption campaign: a repository that keeps parity has one random file (pack,
# index, snapshot, key slot, config or parity group) bit-flipped, overwritten, truncated, extended or
# deleted, N times (default 500; the default suite runs 12). Each time the damage must be detected,
# every file check does not name must restore bit-exact, and repair must make the repository whole.
# Prints the seed and the figures; replay with KINTSUGI_TEST_SEED=S tests/corruption-soak.sh N.
#
#   tests/corruption-soak.sh [TRIALS]
set -euo pipefail
trials=${1:-500}
case "$trials" in -h|--help) sed -n '2,8p' "$0"; exit 0 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
KINTSUGI_CORRUPTION_TRIALS=$trials dotnet test "$root/tests/Kintsugi.Backup.Tests" \
  --filter "FullyQualifiedName~CorruptionCampaignTests" --logger "console;verbosity=detailed"
