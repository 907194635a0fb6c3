"""The audit table's hash chain, pure: what each record's hash covers, and what is wrong with a
trail whose records were edited, inserted or removed after they were written.

A record's hash is SHA-256 over the previous record's hash and the canonical JSON of its content
(`chain_hash`); the first record's previous hash is `GENESIS`. SQLite gives `seq` 1, 2, 3... and
the table refuses UPDATE and DELETE, so a gap in `seq` means rows were removed behind its back.
A trail cut short at its end cannot be told from a shorter trail: keep the last seq and hash
(`trauma-relay audit verify --json` prints them) somewhere else to notice that."""

from __future__ import annotations

import enum
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = b"\x00" * 32

# The stored columns a record's hash covers (`detail` as parsed JSON).
CONTENT_FIELDS = (
    "at",
    "event_id",
    "action",
    "actor",
    "actor_role",
    "transfer_id",
    "outcome",
    "detail",
    "remote",
)
# Every stored column of a record, in the order `audit_records()` reads them.
RECORD_COLUMNS = ("seq", *CONTENT_FIELDS, "prev_hash", "hash")
_SELECT = (
    "SELECT seq, at, event_id, action, actor, actor_role, transfer_id, outcome, detail, remote, "
    "prev_hash, hash FROM audit"
)
SELECT_RECORDS = _SELECT + " ORDER BY seq"
# The next records after a seq, at most a number of them (parameters: seq, limit; SQLite's
# LIMIT -1 and PostgreSQL's LIMIT NULL mean no limit).
SELECT_RECORDS_AFTER = _SELECT + " WHERE seq > ? ORDER BY seq LIMIT ?"
SELECT_RECORDS_AFTER_PG = _SELECT + " WHERE seq > $1 ORDER BY seq LIMIT $2"


def chain_hash(prev: bytes, fields: Mapping[str, Any]) -> bytes:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(prev + canonical).digest()


class Problem(enum.Enum):
    """What is wrong with one record (its name in `audit verify --json`)."""

    EDITED = "edited"  # its hash does not cover its content
    INSERTED = "inserted"  # the record after it follows on from the one before it
    LINK = "link"  # its previous hash matches no earlier record: the one before was replaced
    GAP = "gap"  # records before it are missing from seq: they were removed


@dataclass(frozen=True)
class ChainFinding:
    """One wrong record: its `seq`, the `problem`, and the plain sentence for the auditor."""

    seq: int
    problem: Problem
    sentence: str


def _bytes(value: object) -> bytes | None:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return None


def _content_intact(record: Mapping[str, Any]) -> bool:
    prev, stored = _bytes(record.get("prev_hash")), _bytes(record.get("hash"))
    if prev is None or stored is None:
        return False
    try:
        fields = {k: record[k] for k in CONTENT_FIELDS}
        fields["detail"] = json.loads(record["detail"])
        return chain_hash(prev, fields) == stored
    except (KeyError, TypeError, ValueError):
        return False


# How many of the latest records' hashes the check keeps, to tell records inserted from a record
# replaced (about 15 MB). A run of inserted records longer than this is still found, as a broken
# link at the record after it; the check's memory stays the same however long the trail.
INSERTIONS_TOLD_WITHIN = 100_000


def verify_audit_chain(
    records: Iterable[Mapping[str, Any]], remember: int = INSERTIONS_TOLD_WITHIN
) -> list[ChainFinding]:
    """What is wrong with `records` (stored rows in `seq` order, as `audit_records()` gives them),
    one finding per wrong record; empty when the trail is intact. Read once, in order, keeping
    the hashes of the latest `remember` records only."""
    findings: list[ChainFinding] = []
    # The latest records' stored hashes, to their seq, oldest first (an OrderedDict: dropping
    # the oldest of a plain dict gets slower with every entry dropped before it).
    seen: OrderedDict[bytes, int] = OrderedDict()
    prev_seq, prev_hash = 0, GENESIS
    for r in records:
        seq = int(r["seq"])
        gap = seq != prev_seq + 1
        if gap:
            missing = (
                f"record {prev_seq + 1} was"
                if seq == prev_seq + 2
                else f"records {prev_seq + 1} to {seq - 1} were"
            )
            findings.append(
                ChainFinding(seq, Problem.GAP, f"Before record {seq}, {missing} removed.")
            )
        if not _content_intact(r):
            findings.append(
                ChainFinding(
                    seq,
                    Problem.EDITED,
                    f"Record {seq} was changed after it was written: its hash does not cover "
                    "its content.",
                )
            )
        linked = _bytes(r.get("prev_hash"))
        if not gap and linked != prev_hash and linked is not None:
            skipped_from = seen.get(linked)
            if skipped_from is not None:
                inserted = range(skipped_from + 1, seq)
                for n in inserted:
                    findings.append(
                        ChainFinding(
                            n,
                            Problem.INSERTED,
                            f"Record {n} was inserted later: record {seq} follows on from "
                            f"record {skipped_from}, not from it.",
                        )
                    )
            else:
                findings.append(
                    ChainFinding(
                        seq,
                        Problem.LINK,
                        f"Record {seq}'s previous hash does not match record {prev_seq}'s hash: "
                        f"record {prev_seq} was replaced, or a record between them removed.",
                    )
                )
        stored = _bytes(r.get("hash"))
        if stored is not None:
            seen.setdefault(stored, seq)
            if len(seen) > remember:
                seen.popitem(last=False)
            prev_hash = stored
        prev_seq = seq
    return sorted(findings, key=lambda f: f.seq)


def audit_chain_intact(records: Sequence[Mapping[str, Any]]) -> bool:
    """True if every record's hash covers its content and the previous record's hash."""
    return not verify_audit_chain(records)
