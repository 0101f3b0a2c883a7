#!/usr/bin/env bash
# The quick start: a real PyTorch training job supervised by Kintsugi on the embedded default
# (a local repository and a SQLite journal under examples/train/.kintsugi/).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "installing Debian's python3-torch (once)..." >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch >/dev/null
fi
rm -rf "$root/examples/train/ckpt"
dotnet run --project "$root/src/Kintsugi.Cli" -c Release -- run --config "$root/examples/train/kintsugi.yaml" "$@"
dotnet run --project "$root/src/Kintsugi.Cli" -c Release --no-build -- status --journal "$root/examples/train/.kintsugi/journal.db"
