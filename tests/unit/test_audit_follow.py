"""`relay.audit_trail.follow`: the forwarding loop over a real relay database, with a recorder
for what is sent, said and slept. A batch that fails is sent again whole, the position moves
only past what was sent, and a position that does not fit the trail is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from relay import errors
from relay.audit_trail.follow import Forwarding, Position, load_position, save_position
from relay.audit_trail.reading import Record, read_audit_records
from relay.sites import add_site


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    data = tmp_path / "relay"
    asyncio.run(add_site(data, "st-mary-er", "sending", None))
    asyncio.run(add_site(data, "county-trauma", "receiving", None))
    return data


class Recorder:
    """Sends fail `failures` times, then succeed; sleeping counts towards stopping."""

    def __init__(self, failures: int, polls: int) -> None:
        self.failures, self.polls = failures, polls
        self.log: list[tuple[str, object]] = []

    def send(self, records: list[Record]) -> int:
        self.log.append(("send", [r["seq"] for r in records]))
        if self.failures:
            self.failures -= 1
            raise errors.SyslogUnreachable("The receiver hung up.")
        return len(records)

    def say(self, line: str) -> None:
        self.log.append(("say", line))

    def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", seconds))
        self.polls -= 1

    def stopped(self) -> bool:
        return self.polls <= 0


def test_a_failed_batch_is_sent_again_and_the_position_follows_what_was_sent(
    trail: Path, tmp_path: Path
) -> None:
    position = tmp_path / "position.json"
    recorder = Recorder(failures=2, polls=4)
    Forwarding(trail, position, recorder.send, recorder.say, sleep=recorder.sleep).follow(
        0.5, recorder.stopped
    )
    assert recorder.log == [
        ("send", [1, 2]),
        ("say", "The receiver hung up. Trying again in 0.5 s."),
        ("sleep", 0.5),
        ("send", [1, 2]),
        ("say", "The receiver hung up. Trying again in 1 s."),
        ("sleep", 1.0),
        ("send", [1, 2]),
        ("say", "2 audit record(s) sent."),
        ("sleep", 0.5),
        ("sleep", 0.5),  # nothing new: nothing sent
    ]
    last = read_audit_records(trail)[-1]
    assert load_position(position) == Position(2, bytes(last["hash"]).hex())
    assert json.loads(position.read_text()) == {"last_seq": 2, "last_hash": last["hash"].hex()}
    assert position.stat().st_mode & 0o077 == 0


def test_a_position_that_does_not_fit_the_trail_is_refused(trail: Path, tmp_path: Path) -> None:
    position = tmp_path / "position.json"
    recorder = Recorder(failures=0, polls=1)
    forwarding = Forwarding(trail, position, recorder.send, recorder.say, sleep=recorder.sleep)
    save_position(position, Position(2, "00" * 32))
    with pytest.raises(errors.ForwardingPositionWrong, match="kept for another audit trail"):
        forwarding.catch_up()
    save_position(position, Position(3, "00" * 32))
    with pytest.raises(errors.ForwardingPositionWrong, match="has no such record"):
        forwarding.catch_up()
    position.write_text("not json")
    with pytest.raises(errors.ForwardingPositionWrong, match="not a forwarding position"):
        forwarding.catch_up()
    assert recorder.log == []
