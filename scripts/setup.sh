#!/usr/bin/env bash
# Create .venv (if missing) and install drnas with pinned dependencies. Usage: scripts/setup.sh [test]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
reqs=requirements/pinned.txt
[ "${1:-}" = "test" ] && reqs=requirements/test.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$reqs"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
