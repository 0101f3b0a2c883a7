#!/usr/bin/env bash
# torchrun (2 ranks, DDP on the CPU) supervised by Kintsugi on the embedded default (a local
# repository and a SQLite journal under examples/torchrun/.kintsugi/).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! /usr/bin/python3 -c "import torch" 2>/dev/null || [ ! -x /usr/bin/torchrun ]; then
  echo "installing Debian's python3-torch (once; it provides /usr/bin/torchrun)..." >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch >/dev/null
fi
rm -rf "$root/examples/torchrun/ckpt" "$root/examples/torchrun/logs"
dotnet run --project "$root/src/Kintsugi.Cli" -c Release -- run --config "$root/examples/torchrun/kintsugi.yaml" "$@"
dotnet run --project "$root/src/Kintsugi.Cli" -c Release --no-build -- status --journal "$root/examples/torchrun/.kintsugi/journal.db"
