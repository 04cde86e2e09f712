#!/usr/bin/env bash
# Set up with the test dependencies, then run the whole test suite. Extra arguments go to pytest.
# CI runs this (.ci/run). The suite includes tests/test_packaging.py (a wheel built, installed into a folder of
# its own and the demo run from it) and tests/test_readme.py (every command of README.md and docs/).
# pytest-xdist runs it on the 2 cores: 2 workers of one thread each (tests/conftest.py splits the cores, and keeps
# the tests that start several processes together on one worker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -q -n 2 "$@"
