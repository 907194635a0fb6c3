"""`trauma-relay push --break-glass` stopped before its code is shown (the relay out of reach,
Ctrl-C, the relay refusing), in-process against the real relay: the site's audit log records
the break-glass as the relay answered it, as soon as it answered (added, refused, or no answer
came), and none that never left this machine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from relay_harness import RECEIVER, Relay, running_relay

from sending_site import journal, phone, push
from sending_site.synthetic import make_ct_study
from site_agent.audit import FILE, verify_chain
from site_agent.client import RelayClient, RelayUnreachable
from trauma_relay.cli import main

pytestmark = pytest.mark.asyncio

REASON = "Unconscious after a fall, no family reachable."
CLINICIAN = "Dr. Grey"


async def _push_with_break_glass(relay: Relay, study: Path, state: Path) -> int:
    """`trauma-relay push --break-glass`, in a thread (it runs its own event loop) beside our
    relay; its exit status."""
    argv = ["push", str(study), "--relay", relay.url, "--to", RECEIVER, "--yes", "--json"]
    glass = ["--break-glass", REASON, "--clinician", f" {CLINICIAN}  "]  # recorded trimmed
    return await asyncio.to_thread(main, [*argv, "--state", str(state), *glass])


def _records(state: Path) -> list[dict[str, Any]]:
    log = state / "sending" / FILE
    verify_chain(log)
    return [json.loads(line) for line in log.read_text().splitlines()]


def _glass(state: Path) -> list[tuple[str, dict[str, Any]]]:
    """The break-glass records: outcome and detail, each by the operating-system account."""
    found = [r for r in _records(state) if r["action"] == "break-glass"]
    assert all(r["where"] == "local" and r["event_id"] == "110113" for r in found)
    assert REASON not in (state / "sending" / FILE).read_text()
    return [(r["outcome"], r["detail"]) for r in found]


def _sent(state: Path) -> str:
    (record,) = journal.every(state)
    return record.transfer_id


async def _break_glass_on_relay(relay: Relay, transfer_id: str) -> bool:
    async with RelayClient(relay.url, relay.sender_credential) as client:
        return bool((await client.status(transfer_id))["break_glass"])


@pytest.mark.parametrize(
    ("stop", "status"),
    [(RelayUnreachable("out of reach", "connection refused"), 2), (KeyboardInterrupt(), 130)],
    ids=["relay-out-of-reach", "ctrl-c"],
)
async def test_a_break_glass_the_relay_added_is_recorded_though_no_code_was_shown(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stop: BaseException,
    status: int,
) -> None:
    """The relay added the break-glass; the push stopped before the code was shown (leaving the
    phone's documents): it is recorded as added, as the console's button records it."""
    make_ct_study(tmp_path / "study", 1, seed=5151)
    state = tmp_path / "er"

    async def stopped(*_: object) -> None:
        raise stop

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        monkeypatch.setattr(phone, "upload", stopped)
        assert await _push_with_break_glass(relay, tmp_path / "study", state) == status
        transfer = _sent(state)
        assert await _break_glass_on_relay(relay, transfer)
    capsys.readouterr()
    added = {"via": "command line", "transfer": transfer, "clinician": CLINICIAN}
    assert _glass(state) == [("success", {**added, "already": False})]
    assert "transfer-started" not in [r["action"] for r in _records(state)]  # no code shown


async def test_a_break_glass_the_relay_refused_is_recorded_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The family authorized on their phone just before the break-glass reached the relay,
    which refuses it: recorded refused, with what refused it and the clinician who tried."""
    make_ct_study(tmp_path / "study", 1, seed=5252)
    state = tmp_path / "er"
    sent_by_relay_client = RelayClient.break_glass

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        phones_reach = relay.url

        async def family_first(client: RelayClient, transfer_id: str, sealed: bytes) -> None:
            token = journal.load(state, transfer_id).authorization_token
            async with RelayClient(phones_reach, None) as phones:
                await phones.authorize(token)
            await sent_by_relay_client(client, transfer_id, sealed)

        monkeypatch.setattr(RelayClient, "break_glass", family_first)
        assert await _push_with_break_glass(relay, tmp_path / "study", state) == 2
        transfer = _sent(state)
        assert not await _break_glass_on_relay(relay, transfer)
    capsys.readouterr()
    tried = {"via": "command line", "transfer": transfer, "why": "RelayRefused"}
    assert _glass(state) == [("refused", {**tried, "clinician": CLINICIAN})]


async def test_a_break_glass_whose_answer_was_lost_is_recorded_unknown_then_as_found(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The break-glass reached the relay and its answer was lost: recorded with outcome
    unknown (not as added, not as refused); the same push run again finds it added and records
    it, `already`."""
    make_ct_study(tmp_path / "study", 1, seed=5353)
    state = tmp_path / "er"
    sent_by_relay_client = RelayClient.break_glass

    async def answer_lost(client: RelayClient, transfer_id: str, sealed: bytes) -> None:
        await sent_by_relay_client(client, transfer_id, sealed)
        raise RelayUnreachable("no answer", "connection reset", unsent=False)

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        with monkeypatch.context() as patched:
            patched.setattr(RelayClient, "break_glass", answer_lost)
            assert await _push_with_break_glass(relay, tmp_path / "study", state) == 2
        transfer = _sent(state)
        assert await _break_glass_on_relay(relay, transfer)
        assert await _push_with_break_glass(relay, tmp_path / "study", state) == 0
    capsys.readouterr()
    by = {"via": "command line", "transfer": transfer}
    assert _glass(state) == [
        ("unknown", {**by, "why": "RelayUnreachable", "clinician": CLINICIAN}),
        ("success", {**by, "clinician": CLINICIAN, "already": True}),
    ]


async def test_a_push_stopped_before_its_break_glass_was_sent_records_none(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The relay went out of reach while the transfer's keys were installed, before the
    break-glass was sent: nothing of it reached the relay, and none is recorded."""
    make_ct_study(tmp_path / "study", 1, seed=5454)
    state = tmp_path / "er"

    async def out_of_reach(*_: object) -> None:
        raise RelayUnreachable("out of reach", "connection refused")

    async with running_relay(tmp_path / "relay") as relay:
        monkeypatch.setenv("TRAUMA_RELAY_CREDENTIAL", relay.sender_credential)
        monkeypatch.setattr(push, "install_locks", out_of_reach)
        assert await _push_with_break_glass(relay, tmp_path / "study", state) == 2
        transfer = _sent(state)
        assert not await _break_glass_on_relay(relay, transfer)
    capsys.readouterr()
    assert not (state / "sending" / FILE).exists() or _glass(state) == []
