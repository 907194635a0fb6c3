"""Kill benchmark: SIGKILL a real relay at random points of upload, authorization, redemption
and download, many times, and check after each restart that every acknowledged fact holds and
every study arrives intact (the harness is tests/kill_harness.py; CI runs 50 iterations of it
in tests/e2e/test_kill_harness.py).

    .venv/bin/python ops/bench_kill.py [--iterations 1000] [--seed N] [--only I ...]

Each iteration's phase and kill point come from the seed and its number, so a failure is
replayed with `--seed N --only I`. Prints one line per failed iteration as it happens, and a
summary: iterations, kills (and how many landed with a request in flight), failures, and the
same per phase. Exits 1 if any iteration failed. Everything runs on loopback in a temporary
folder (kept with --keep) and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from kill_harness import Outcome, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seed", type=int, help="random when not given (it is printed)")
    parser.add_argument("--only", type=int, nargs="+", default=[], help="replay these iterations")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument("--stop", action="store_true", help="stop at the first failure")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"seed {seed}", flush=True)
    seen = [0]

    def progress(o: Outcome) -> None:
        seen[0] += 1
        if o.failure:
            print(f"iteration {o.iteration} FAILED ({o.point.describe()}): {o.failure}", flush=True)
        elif seen[0] % 50 == 0:
            print(f"{seen[0]} iterations", flush=True)

    async def go(root: Path) -> int:
        summary = await run(
            root,
            args.iterations,
            seed,
            only=args.only,
            on_outcome=progress,
            stop_at_first_failure=args.stop,
        )
        print(summary.describe())
        return 1 if summary.failures else 0

    if args.keep:
        args.keep.mkdir(parents=True)
        return asyncio.run(go(args.keep))
    with tempfile.TemporaryDirectory(prefix="bench-kill-") as tmp:
        return asyncio.run(go(Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
