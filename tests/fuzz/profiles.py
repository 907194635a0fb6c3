"""How long the fuzz tests run: `FUZZ_PROFILE=ci` (the default: a short, deterministic run
that CI affords) or `FUZZ_PROFILE=long` (many more inputs, random each time, for a run by
hand or overnight: `ops/fuzz.sh`). Applied per test with `@FUZZ`, so no other test's
Hypothesis settings change."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("FUZZ_PROFILE", "ci")

settings.register_profile(
    "fuzz-ci",
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz-long",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
if PROFILE not in ("ci", "long"):
    raise RuntimeError(f"FUZZ_PROFILE must be 'ci' or 'long', not {PROFILE!r}")

FUZZ = settings(settings.get_profile(f"fuzz-{PROFILE}"))
LONG = PROFILE == "long"


def scaled(ci: int) -> int:
    """A count of inputs for the CI run, multiplied in the long run."""
    return ci * 50 if LONG else ci
