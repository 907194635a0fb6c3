"""The layering, checked from the source (every import, including those inside functions):

- `transfer_codes` imports nothing of ours;
- `relay` imports only `transfer_codes` (it never loads an agent or DICOM code);
- `site_agent` (what both agents share) imports only `transfer_codes`;
- each agent imports `site_agent` and `transfer_codes`, never the relay nor the other agent;
- only `trauma_relay`, the composition root, imports them all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"transfer_codes", "relay", "site_agent", "sending_site", "receiving_site", "trauma_relay"}
ALLOWED = {
    "transfer_codes": set(),
    "relay": {"transfer_codes"},
    "site_agent": {"transfer_codes"},
    "sending_site": {"transfer_codes", "site_agent"},
    "receiving_site": {"transfer_codes", "site_agent"},
    "trauma_relay": OURS - {"trauma_relay"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every package `path` imports, at any depth of the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_every_package_is_ruled() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert on_disk == OURS


@pytest.mark.parametrize("package", sorted(OURS))
def test_imports_follow_the_layering(package: str) -> None:
    breaches = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in imported_packages(path) & OURS
        if name != package and name not in ALLOWED[package]
    }
    assert not breaches


def test_the_rule_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from sending_site.push import push\n    import relay.app\n")
    assert imported_packages(module) == {"sending_site", "relay"}


def test_building_the_command_line_loads_no_dicom_and_no_server() -> None:
    probe = (
        "import sys; from trauma_relay.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('pydicom', 'pynetdicom', 'aiohttp', 'relay.app') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
