#!/usr/bin/env bash
# Runs every test. On a fresh machine it first installs what the tests need: Debian's
# python3-torch, for the real PyTorch training job the supervisor's end-to-end tests run.
set -euo pipefail
cd "$(dirname "$0")"
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "test.sh: installing Debian's python3-torch..." >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch >/dev/null
  /usr/bin/python3 -c "import torch" || { echo "test.sh: python3-torch could not be installed" >&2; exit 1; }
fi
dotnet test Kintsugi.slnx "$@"
