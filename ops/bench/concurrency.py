"""Figure 6: `count` transfers of ~20 MB at once through one relay (each a `push` and a
`redeem --out` running together), against one such transfer alone through the same relay:
every one must complete, and the aggregate throughput be at least that of the one alone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from processes import Measured
from sites import BenchRelay, redeemed_instances
from studies import Study

RUN_TIMEOUT = 3600.0


@dataclass
class ConcurrencyRun:
    alone_mb_s: float
    together_mb_s: float
    transfers: int
    completed: int
    relay_peak_rss_mb: float | None


def _transfers(relay: BenchRelay, studies: list[Study], folder: Path) -> tuple[float, int]:
    """Seconds for all of them, and how many delivered every image."""
    pushes: list[Measured] = []
    redeems: list[Measured] = []
    try:
        start = time.perf_counter()
        for i, study in enumerate(studies):
            pushes.append(relay.push(f"push{i}", [study.dicom], folder))
        for i, push in enumerate(pushes):
            code = relay.authorized_code(push, timeout=RUN_TIMEOUT)
            redeems.append(relay.redeem(f"redeem{i}", code, folder, out=folder / f"out{i}"))
        for proc in pushes + redeems:
            proc.wait(RUN_TIMEOUT)
        end = max(r.ended or 0.0 for r in redeems)
        completed = sum(
            1
            for r, s in zip(redeems, studies, strict=True)
            if r.returncode == 0 and redeemed_instances(r) == len(s.files())
        )
    finally:
        for proc in pushes + redeems:
            proc.kill()
    return end - start, completed


def concurrency(studies: list[Study], work: Path) -> ConcurrencyRun:
    alone, *together = studies
    for study in studies:
        study.files()
    relay = BenchRelay(work / "concurrency").start()
    try:
        alone_s, alone_ok = _transfers(relay, [alone], work / "concurrency" / "alone")
        if alone_ok != 1:
            raise RuntimeError("the transfer alone did not complete")
        together_s, completed = _transfers(relay, together, work / "concurrency" / "together")
    finally:
        peak = relay.stop()
    total = sum(s.megabytes() for s in together)
    return ConcurrencyRun(
        alone.megabytes() / alone_s, total / together_s, len(together), completed, peak
    )
