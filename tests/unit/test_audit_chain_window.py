"""`verify_audit_chain` keeps the hashes of the latest records only: inserted records are named
as such within that window, and a longer run of them is still found, as a broken link."""

from __future__ import annotations

import json
from typing import Any

from relay.storage.audit_chain import GENESIS, Problem, chain_hash, verify_audit_chain


def _content(n: int) -> dict[str, Any]:
    return {
        "at": 1_800_000_000.0 + n,
        "event_id": "110114",
        "action": "site-authentication",
        "actor": f"site-{n}",
        "actor_role": "sending",
        "transfer_id": None,
        "outcome": "success",
        "detail": {},
        "remote": "203.0.113.4",
    }


def _trail(contents: list[dict[str, Any]], prev: bytes = GENESIS) -> list[dict[str, Any]]:
    """Stored rows, seq 1, 2, ... each hashed onto the one before it (from `prev`)."""
    rows = []
    for seq, content in enumerate(contents, start=1):
        digest = chain_hash(prev, content)
        rows.append(
            {
                "seq": seq,
                **content,
                "detail": json.dumps(content["detail"]),
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return rows


def _with_inserted(count: int, after: int, total: int) -> list[dict[str, Any]]:
    """A trail of `total` records, then `count` well-formed records slipped in after record
    `after`, and the rest renumbered: the record after them still links to record `after`."""
    original = _trail([_content(n) for n in range(total)])
    inserted = _trail(
        [_content(1000 + n) for n in range(count)], prev=bytes(original[after - 1]["hash"])
    )
    rows = original[:after] + inserted + original[after:]
    return [{**row, "seq": seq} for seq, row in enumerate(rows, start=1)]


def _found(rows: list[dict[str, Any]], remember: int) -> list[tuple[int, Problem]]:
    return [(f.seq, f.problem) for f in verify_audit_chain(rows, remember=remember)]


def test_an_intact_trail_longer_than_the_window_is_intact() -> None:
    assert _found(_trail([_content(n) for n in range(50)]), remember=4) == []


def test_inserted_records_within_the_window_are_named() -> None:
    rows = _with_inserted(count=3, after=20, total=40)
    assert _found(rows, remember=10) == [
        (21, Problem.INSERTED),
        (22, Problem.INSERTED),
        (23, Problem.INSERTED),
    ]


def test_a_run_of_inserted_records_longer_than_the_window_is_still_found() -> None:
    rows = _with_inserted(count=12, after=20, total=40)
    # Record 20's hash is no longer kept when record 33 (the original 21st) is read.
    assert _found(rows, remember=10) == [(33, Problem.LINK)]
    assert _found(rows, remember=100) == [(21 + n, Problem.INSERTED) for n in range(12)]
