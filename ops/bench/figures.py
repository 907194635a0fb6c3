"""What the suite measures, and how it is written: `docs/benchmarks.json` and the table in
`docs/benchmarks.md`."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One figure. `ratio` is ours / peer's when there is a peer; the target applies to the
    ratio (`target_of="ratio"`) or to our value itself (`"value"`); `better` says which way is
    good. `met` is None when the figure was not measured (`note` says why)."""

    name: str
    unit: str
    ours: float | None
    peer: float | None
    target: float
    target_of: str = "ratio"
    better: str = "lower"
    peer_name: str = ""
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.peer is None or self.peer == 0:
            return None
        return self.ours / self.peer

    @property
    def met(self) -> bool | None:
        judged = self.ratio if self.target_of == "ratio" else self.ours
        if judged is None:
            return None
        return judged <= self.target if self.better == "lower" else judged >= self.target

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        data["met"] = self.met
        for key in ("ours", "peer"):
            if isinstance(data[key], float):
                data[key] = round(data[key], 3)
        return data


# Which step of the suite (`run.py --only NAME`) makes a figure, by how its name starts.
STEPS = {
    "PACS to PACS over": "wan",
    "PACS to PACS": "pacs",
    "Cut-through": "latency",
    "Relay leg": "wormhole",
    "Concurrency": "concurrency",
    "Scale-out": "scale-out",
    "Crypto": "crypto",
    "Peak RSS": "memory",
}


def step_of(figure: Figure) -> str:
    return next(step for start, step in STEPS.items() if figure.name.startswith(start))


def load(path: Path) -> list[Figure]:
    """The figures an earlier run wrote to `path` (none if it is missing)."""
    if not path.exists():
        return []
    kept = []
    for data in json.loads(path.read_text())["figures"]:
        data = {k: v for k, v in data.items() if k not in ("ratio", "met")}
        kept.append(Figure(**data))
    return kept


def not_measured(name: str, unit: str, target: float, reason: str, **kw: Any) -> Figure:
    return Figure(name, unit, None, None, target, note=f"not measured: {reason}", **kw)


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    root = Path(__file__).resolve().parents[2]
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1e6, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _verdict(figure: Figure) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[figure.met]


def table(figures: list[Figure]) -> str:
    """The figures as a Markdown table."""
    lines = [
        "| figure | ours | peer | ratio | target | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        sign = "≤" if f.better == "lower" else "≥"
        target = f"{f.target_of} {sign} {f.target:g}"
        peer = f"{_number(f.peer)} {f.unit} ({f.peer_name})" if f.peer is not None else "—"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "—"
        ours = f"{_number(f.ours)} {f.unit}" if f.ours is not None else "—"
        lines.append(f"| {f.name} | {ours} | {peer} | {ratio} | {target} | {_verdict(f)} |")
    return "\n".join(lines)


def notes(figures: list[Figure]) -> str:
    return "\n".join(f"- **{f.name}**: {f.note}" for f in figures if f.note)


def write(figures: list[Figure], facts: dict[str, Any], docs: Path, preface: str = "") -> None:
    """`benchmarks.json` and `benchmarks.md` in `docs`; the Markdown keeps whatever follows
    its `<!-- analysis -->` line (the hand-written profile notes)."""
    body = {"machine": facts, "figures": [f.as_json() for f in figures]}
    (docs / "benchmarks.json").write_text(json.dumps(body, indent=2) + "\n")
    md = docs / "benchmarks.md"
    kept = ""
    if md.exists() and "<!-- analysis -->" in (text := md.read_text()):
        kept = text[text.index("<!-- analysis -->") :]
    facts_line = ", ".join(f"{k}: {v}" for k, v in facts.items())
    parts = [
        "# Benchmarks\n",
        "Written by `.venv/bin/python ops/bench/run.py` (see README.md). Ratios compare us with "
        "peers measured in the same run; absolute times on a shared machine are noise.\n",
        preface,
        f"Machine: {facts_line}.\n",
        table(figures) + "\n",
        "## Notes per figure\n",
        notes(figures) + "\n",
        kept or "<!-- analysis -->\n",
    ]
    md.write_text("\n".join(p for p in parts if p))
