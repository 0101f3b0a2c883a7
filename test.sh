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
# The object-storage emulators the remote-repository tests run against (README, "Repositories"):
# s3rver for S3 and Azurite for Azure Blob, from npm into the git-ignored .servers/ folder.
if [ ! -x .servers/node_modules/.bin/s3rver ] || [ ! -x .servers/node_modules/.bin/azurite-blob ]; then
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
  fi
  echo "test.sh: installing s3rver and azurite into .servers/..." >&2
  npm install --prefix .servers --no-audit --no-fund --loglevel=error s3rver@3.7.1 azurite@3.37.0 >/dev/null
fi
dotnet test Kintsugi.slnx "$@"
