#!/usr/bin/env bash
# Sets up the test peers and the virtual environment (if needed), then runs lint, type checks
# and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/peers.sh
ops/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
