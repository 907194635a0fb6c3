"""Forwarding the audit trail continuously (`audit forward --follow`), and resuming where the
last forwarding stopped (`--position`).

The position file holds the number and hash of the last record read: forwarded, or passed over
because it is before the period (`--since`), so a later run with the same file does not send
those either. Reading stops at the first record from the period's end (`--until`) on, and the
position stays before it: a later run with the same file (`--follow`, say) sends it and the
records after it, which nobody has sent yet. It is first written once a batch of records has
been read (a missing file means the start of the trail), and then after each batch, durably (a
new file synced, then renamed over the old one), and after a batch that was sent only once its
connection was closed cleanly; so a forwarder killed at any moment starts again after the last
batch it finished, and sends the batch it was in the middle of once more: at least once, and
repeated at most one batch. Each syslog message carries its record's number as `[meta
sequenceId]`, so the receiver can tell a repeat from a new record."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from relay import errors
from relay.audit_trail.reading import Period, Record, read_audit_records

BATCH = 500  # records sent over one connection
MAX_BACK_OFF = 60.0  # seconds between tries while the receiver is unreachable


@dataclass(frozen=True)
class Position:
    """The last record read (forwarded, or passed over as outside the period): its `seq` (0:
    none yet) and its `hash` (hex)."""

    seq: int = 0
    hash: str = ""


def load_position(path: Path) -> Position:
    """The position kept in `path`; the start of the trail if there is no such file yet.
    Raises `ForwardingPositionWrong` for a file that is not a position."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        position = Position(int(kept["last_seq"]), str(kept["last_hash"]))
    except FileNotFoundError:
        return Position()
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise errors.ForwardingPositionWrong(
            f"{path} is not a forwarding position this command wrote ({e}). Give --position "
            "the file an earlier `audit forward --position` kept, or a new file name."
        ) from e
    if position.seq < 0:
        raise errors.ForwardingPositionWrong(f"{path} holds a negative record number.")
    return position


def save_position(path: Path, position: Position) -> None:
    """Keep `position` in `path` durably: written to a new file, synced, renamed over `path`,
    and the folder synced, so a crash leaves the old position or the new one, whole."""
    fresh = path.with_name(path.name + ".new")
    text = json.dumps({"last_seq": position.seq, "last_hash": position.hash}) + "\n"
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(fresh, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def check_position(
    data_dir: Path, position: Position, path: Path, config_file: Path | None = None
) -> None:
    """Raise `ForwardingPositionWrong` unless the trail's record `position.seq` is the one the
    position was kept for (same hash)."""
    if position.seq == 0:
        return
    found = read_audit_records(data_dir, after=position.seq - 1, limit=1, config_file=config_file)
    if not found or found[0]["seq"] != position.seq:
        raise errors.ForwardingPositionWrong(
            f"{path} says records up to {position.seq} were forwarded, but this audit trail "
            "has no such record: it was kept for another relay's trail, or the trail was "
            "restored from an older backup. Check --position and --data."
        )
    if bytes(found[0]["hash"]).hex() != position.hash:
        raise errors.ForwardingPositionWrong(
            f"{path} was kept for another audit trail: record {position.seq} here is not the "
            "one it forwarded. Check --position and --data."
        )


def _after(position: Position, records: list[Record]) -> Position:
    last = records[-1]
    return Position(int(last["seq"]), bytes(last["hash"]).hex())


@dataclass
class Forwarding:
    """One forwarder's loop: `send` a batch of records (raising `SyslogUnreachable` when it
    cannot), keep the position in `path`, `say` what happened (a line for the operator)."""

    data_dir: Path
    path: Path
    send: Callable[[list[Record]], int]
    say: Callable[[str], None]
    period: Period = field(default_factory=Period)
    sleep: Callable[[float], None] = time.sleep
    config_file: Path | None = None  # the relay's --config, naming its storage

    def catch_up(self) -> int:
        """Send every record after the kept position that is in the period, batch by batch,
        keeping the position after each (past the records before the period too, not past the
        first record from its end on, where it stops); the number of records sent. Raises
        `SyslogUnreachable` as `send` does (the position then stays after the last batch sent
        whole)."""
        position = load_position(self.path)
        check_position(self.data_dir, position, self.path, self.config_file)
        sent = 0
        while records := read_audit_records(
            self.data_dir, after=position.seq, limit=BATCH, config_file=self.config_file
        ):
            ended = self._ended(records)
            records = records[:ended]
            chosen = [r for r in records if self.period.covers(r)]
            if chosen:
                sent += self.send(chosen)
            if records:
                position = _after(position, records)
                save_position(self.path, position)
            if ended is not None:
                break
        return sent

    def _ended(self, records: list[Record]) -> int | None:
        """The index of the first of `records` from the period's end on, if any."""
        until = self.period.until
        if until is None:
            return None
        return next((i for i, r in enumerate(records) if float(r["at"]) >= until), None)

    def follow(self, interval: float, stopped: Callable[[], bool] = lambda: False) -> None:
        """Catch up, then again every `interval` seconds, until `stopped()`; while the
        receiver cannot be reached, say so and try again later, waiting longer each time (up
        to `MAX_BACK_OFF`)."""
        wait = interval
        while not stopped():
            try:
                sent = self.catch_up()
            except errors.SyslogUnreachable as e:
                self.say(f"{e} Trying again in {wait:g} s.")
                self.sleep(wait)
                wait = min(wait * 2, max(MAX_BACK_OFF, interval))
                continue
            if sent:
                self.say(f"{sent} audit record(s) sent.")
            wait = interval
            self.sleep(interval)
