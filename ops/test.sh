#!/usr/bin/env bash
# Sets up the virtual environment (if needed) and runs lint, type checks and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
