#!/usr/bin/env bash
# Set up, then run the offline demo: a progressive DrNAS search on the embedded digits data (about 1 minute
# on 2 CPU cores). Extra arguments go to `drnas search`, e.g. scripts/demo.sh --epochs 4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/drnas search --preset demo --out "runs/demo-$(date +%Y%m%d-%H%M%S)" "$@"
