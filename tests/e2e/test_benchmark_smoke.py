"""Smoke run of the benchmark suite (`ops/bench/run.py --quick`) on tiny studies: the figures
that need no download (magic-wormhole comes from PyPI, so it is left out) run to the end, every
transfer is verified, and `benchmarks.json` holds a number for each measured figure. No timing
is asserted: on a CI machine the figures themselves are noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from peers import require_peer
from peers.postgres import require_postgres

pytestmark = pytest.mark.peers

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 1800.0  # seconds: generous, for a loaded machine; never asserted


def _ratio_of(figure: dict[str, Any]) -> Any:
    """The figure's ratio from its `ours` and `peer`, as far as their rounding to 3 decimals
    allows (a tiny direct send of 0.028 s is rounded by up to 1.8%)."""
    return pytest.approx(
        figure["ours"] / figure["peer"],
        rel=max(1e-2, 1e-3 / figure["peer"] + 1e-3 / figure["ours"]),
    )


def test_the_quick_suite_runs_and_writes_every_chosen_figure(tmp_path: Path) -> None:
    require_peer("Orthanc")
    require_peer("storescu")
    require_postgres()  # the scale-out figure's two instances share a PostgreSQL database
    docs = tmp_path / "docs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(ROOT / "ops" / "bench" / "run.py"), "--quick", "--no-large"]
    argv += ["--only", "pacs", "latency", "wan", "memory", "scale-out", "crypto"]
    argv += ["--docs", str(docs), "--work", str(tmp_path / "work")]
    run = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    written = json.loads((docs / "benchmarks.json").read_text())
    assert written["machine"]["cores"] >= 1
    by_name = {f["name"]: f for f in written["figures"]}
    pacs = [f for name, f in by_name.items() if name.startswith("PACS to PACS, ")]
    assert len(pacs) == 2  # the CT and the small-image study
    for figure in pacs:
        assert figure["details"]["verified_instances"] > 0
        assert figure["ours"] > 0
        assert figure["peer"] > 0
        assert figure["ratio"] == _ratio_of(figure)
        assert isinstance(figure["met"], bool)
        steps = figure["details"]["steps_s"]  # seconds from the nurse's Fetch to each step
        assert 0 <= steps["study listed"] <= steps["code shown"] <= steps["code entered"]
        assert steps["patient confirmed"] <= steps["first image stored"]
        assert steps["every image stored"] == round(figure["ours"], 3)
        assert steps["last image at the relay"] >= steps["first image at the relay"] >= 0
        by_cstore = figure["details"]["steps_cstore_s"]  # the same path, storing by C-STORE
        assert by_cstore["patient confirmed"] <= by_cstore["first image stored"]
        assert by_cstore["every image stored"] == round(figure["details"]["ours_cstore_s"], 3)
    latency = [f for name, f in by_name.items() if name.startswith("Cut-through latency")]
    assert len(latency) == 2
    assert all(f["ours"] >= 0 for f in latency)
    memory = [f for name, f in by_name.items() if name.startswith("Peak RSS")]
    assert len(memory) >= 3
    assert all(f["ours"] > 0 for f in memory if f["met"] is not None)
    (crypto,) = (f for name, f in by_name.items() if name.startswith("Crypto"))
    assert crypto["ours"] > 0
    (scale,) = (f for name, f in by_name.items() if name.startswith("Scale-out"))
    assert scale["ours"] > 0
    assert scale["peer"] > 0
    assert scale["details"]["completed_two_instances"] == scale["details"]["transfers"] == 20
    assert scale["details"]["completed_one_instance"] == 20
    assert isinstance(scale["met"], bool)  # (tiny MB/s: rounded too far to check the ratio)
    (wan,) = (f for name, f in by_name.items() if "WAN" in name)
    assert wan["details"]["verified_instances"] > 0
    assert wan["ours"] > 0
    assert wan["peer"] > 0
    assert wan["ratio"] == _ratio_of(wan)
    assert isinstance(wan["met"], bool)
    assert wan["details"]["link_checked"]["bulk_mb_s"] > 0  # the link carried a bulk transfer
    assert "user-space" in wan["details"]["link_made_by"]
    assert (docs / "cut-through.png").read_bytes().startswith(b"\x89PNG")
    table = (docs / "benchmarks.md").read_text()
    assert all(f["name"] in table for f in written["figures"])
