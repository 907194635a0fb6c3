"""Acceptance: a relay out of reach. push says why in plain words (no library class names),
keeps trying for a while with each wait shown on stderr, picks up by itself when the relay comes
back, and otherwise gives up saying that running the same command again continues."""

from __future__ import annotations

import re
from pathlib import Path

from peers.ports import free_port

from e2e.harness import E2ERelay, finish_cli, start_cli, stop_cli
from sending_site.synthetic import make_ct_study

CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b")  # ClientConnectorError and the like


def test_a_closed_port_is_retried_then_given_up_in_plain_words(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 2)
    closed = f"http://127.0.0.1:{free_port()}"
    run = relay.push(
        [tmp_path / "study"], workdir=tmp_path, relay_url=closed, extra=["--retry-for", "3"]
    ).failed()
    refused = f"The relay at {closed} could not be reached: connection refused"
    assert f"{refused} (nothing answers at that address and port). Retrying in 1 s." in run.stderr
    assert f"{refused} (nothing answers at that address and port). Retrying in 2 s." in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"trauma-relay: {refused}")
    assert "run the same command again" in last
    assert "It was tried for 3 s. Nothing was sent." in last
    assert not CLASS_NAME.search(run.stderr), run.stderr
    assert not (tmp_path / "er-state" / "sending").exists() or not any(
        (tmp_path / "er-state" / "sending").iterdir()
    )


def test_an_unknown_host_name_is_said_so(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 1)
    nowhere = "https://relay.nowhere.invalid:8750"  # .invalid never resolves (RFC 2606)
    run = relay.push(
        [tmp_path / "study"], workdir=tmp_path, relay_url=nowhere, extra=["--retry-for", "0"]
    ).failed()
    assert f"The relay at {nowhere} could not be reached: name not found." in run.message
    assert "Retrying" not in run.stderr
    assert not CLASS_NAME.search(run.stderr), run.stderr


def test_push_goes_on_by_itself_when_the_relay_comes_back(tmp_path: Path) -> None:
    relay = E2ERelay(tmp_path / "relay")  # sites registered; the relay not started yet
    make_ct_study(tmp_path / "study", 3)
    args = relay.push_args(
        [tmp_path / "study"], state=tmp_path / "er-state", extra=["--json", "--retry-for", "120"]
    )
    push = start_cli(args, cwd=tmp_path, credential=relay.sender_credential)
    try:
        assert push.stderr is not None
        first = push.stderr.readline()
        assert "could not be reached: connection refused" in first
        assert "Retrying in 1 s." in first
        relay.start()
        run = finish_cli(push).ok()
    finally:
        stop_cli(push)
        relay.stop()
    assert run.json()["instances"] == 3
