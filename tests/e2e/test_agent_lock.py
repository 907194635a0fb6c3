"""One process runs a state folder's push jobs: with `trauma-relay sender` running, a second
`trauma-relay sender console` or `trauma-relay sender` on the same configuration (so the same
state folder) says plainly which process holds it and exits with code 2; once the first has
stopped, the folder is free again."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_harness import AgentProcess, running_agent

from e2e.harness import run_cli
from sending_site.agent import lock

pytestmark = pytest.mark.peers


def test_a_second_agent_on_the_same_state_folder_is_refused_plainly(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "agent", "http://127.0.0.1:9", "unused-credential")
    with running_agent(agent):
        assert agent.proc is not None
        for command in (["sender", "console"], ["sender"]):
            run = run_cli([*command, "--config", str(agent.config)], cwd=tmp_path)
            assert run.returncode == 2, run.describe()
            assert f"in use by process {agent.proc.pid}" in run.stderr, run.describe()
            assert "Traceback" not in run.stdout + run.stderr
        assert agent.proc.poll() is None  # the first one goes on
    lock.take(agent.state).close()  # the stopped agent's lock ended with it
