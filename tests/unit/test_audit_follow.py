"""`relay.audit_trail.follow`: the forwarding loop over a real relay database, with a recorder
for what is sent, said and slept. A batch that fails is sent again whole, the position moves
only past what was sent or passed over (outside the period), and a position that does not fit
the trail is refused. The command's words say the same."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from relay import errors
from relay.audit_trail import commands
from relay.audit_trail.follow import Forwarding, Position, load_position, save_position
from relay.audit_trail.reading import Period, Record, read_audit_records
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


def test_records_before_the_period_are_read_past_and_kept_as_the_position(
    trail: Path, tmp_path: Path
) -> None:
    position = tmp_path / "position.json"
    recorder = Recorder(failures=0, polls=1)
    from_2100 = Period(since=4_102_444_800.0)
    Forwarding(trail, position, recorder.send, recorder.say, period=from_2100).catch_up()
    assert load_position(position).seq == 2  # nothing sent, yet both records are behind it
    assert Forwarding(trail, position, recorder.send, recorder.say).catch_up() == 0
    assert recorder.log == []


def test_forwarding_until_a_moment_stops_before_the_records_after_it_for_a_later_run(
    trail: Path, tmp_path: Path
) -> None:
    """`forward --until X --position F` then `forward --follow --position F`: the records from X
    on were never sent, so the second run sends them (before, the first run had read past them
    and the second sent nothing)."""
    position = tmp_path / "position.json"
    recorder = Recorder(failures=0, polls=1)
    records = read_audit_records(trail, after=0, limit=10)
    second_at = float(records[1]["at"])
    until = Period(until=second_at)
    assert Forwarding(trail, position, recorder.send, recorder.say, period=until).catch_up() == 1
    assert load_position(position).seq == 1
    assert Forwarding(trail, position, recorder.send, recorder.say).catch_up() == 1
    assert recorder.log == [("send", [1]), ("send", [2])]


def _forward_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trauma-relay")
    commands.add_parsers(parser.add_subparsers())
    audit = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "audit"
    ]
    sub = next(a for a in audit._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["forward"]


def test_the_command_says_what_the_position_file_keeps_and_when_it_is_written(
    trail: Path, tmp_path: Path
) -> None:
    words = " ".join(_forward_parser().format_help().split())
    assert "records before --since are read past without being sent, and a later run " in words
    assert (
        "with the same FILE does not send them either; it stops before the first record " in words
    )
    assert "from --until on, which a later run with the same FILE sends" in words
    assert "keep the last record read there after each batch (sent, or passed over" in words
    assert "written once a record is read, so a missing FILE means from the first record" in words
    assert "keep the last record forwarded" not in words

    position = tmp_path / "position.json"
    assert commands._stopped(position) == (
        f"Stopped before any record was read: {position} was not written, and forwarding "
        "started again begins at the trail's first record."
    )
    save_position(position, Position(7, "00" * 32))
    assert commands._stopped(position) == (
        f"Stopped. {position} keeps record 7, the last one read (sent, or passed over as before "
        "--since); started again with it, forwarding goes on after record 7."
    )
