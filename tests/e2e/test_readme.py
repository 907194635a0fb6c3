"""The README's first two commands still work: the demo (run here, small) and the test command
(which is this suite, so only checked to exist). Only the first fenced block is read."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from e2e.harness import cli_environment, trauma_relay_executable

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def _first_block_commands() -> list[str]:
    match = re.search(r"^```[^\n]*\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    assert match, "README.md has no fenced code block"
    lines = (line.split("#", 1)[0].strip() for line in match.group(1).splitlines())
    return [line for line in lines if line]


def _demo_argv(command: str) -> list[str]:
    """The trauma-relay part of the README's demo command (after any set-up step)."""
    words = shlex.split(command.rsplit("&&", 1)[-1])
    assert Path(words[0]).name == "trauma-relay", command
    assert words[1] == "demo", command
    return [trauma_relay_executable(), *words[1:]]


def test_readme_demo_command_runs_a_whole_blind_transfer(tmp_path: Path) -> None:
    demo, _test = _first_block_commands()[:2]
    argv = [*_demo_argv(demo), "--instances", "5"]

    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env=cli_environment(None),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"patient's name occurs in the relay's data: nowhere", done.stdout, re.I), (
        done.stdout
    )
    assert list(tmp_path.iterdir()) == [], "the demo left files behind in the current folder"


def test_readme_test_command_exists() -> None:
    _demo, test = _first_block_commands()[:2]
    script = REPO / shlex.split(test)[0]
    assert script.is_file(), test
    assert os.access(script, os.X_OK), f"{script} is not executable"
