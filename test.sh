#!/usr/bin/env bash
# Runs every test. On a fresh machine it first installs what the tests need from Debian:
# python3-torch, for the real PyTorch training job the supervisor's end-to-end tests run, and
# prometheus, for promtool, which checks the metrics endpoint's page (`promtool check metrics`).
set -euo pipefail
cd "$(dirname "$0")"
missing=()
/usr/bin/python3 -c "import torch" 2>/dev/null || missing+=(python3-torch)
command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing Debian's ${missing[*]}..." >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  /usr/bin/python3 -c "import torch" || { echo "test.sh: python3-torch could not be installed" >&2; exit 1; }
  command -v promtool >/dev/null || { echo "test.sh: promtool (Debian's prometheus) could not be installed" >&2; exit 1; }
fi
dotnet test Kintsugi.slnx "$@"
