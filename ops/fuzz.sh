#!/usr/bin/env bash
# The long fuzz run: the tests in tests/fuzz/ with many more inputs than CI gives them (random
# each run, not derandomized). CI runs the same tests short (FUZZ_PROFILE=ci, the default).
# Extra arguments go to pytest, e.g. `ops/fuzz.sh -k sealed` or `ops/fuzz.sh -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec env FUZZ_PROFILE=long .venv/bin/pytest -p no:cacheprovider tests/fuzz "$@"
