"""The audit trail as JSON lines: one record a line, every stored field, hashes in hex, so the
chain can be checked again from the export alone (`record_from_line`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import BinaryIO

from relay.audit_trail.reading import Record, iso_time, parsed_detail


def to_line(record: Record) -> str:
    """One record as one line of JSON (no newline): the stored fields, `detail` as JSON, the
    hashes in hex, and `time`, the record's `at` in ISO 8601 UTC."""
    line = dict(record)
    line["detail"] = parsed_detail(record)
    line["prev_hash"] = bytes(record["prev_hash"]).hex()
    line["hash"] = bytes(record["hash"]).hex()
    line["time"] = iso_time(float(record["at"]))
    return json.dumps(line, sort_keys=True, ensure_ascii=False)


def record_from_line(line: str) -> Record:
    """A record as stored, back from `to_line`'s line."""
    loaded = json.loads(line)
    del loaded["time"]
    loaded["detail"] = json.dumps(loaded["detail"], sort_keys=True, separators=(",", ":"))
    loaded["prev_hash"] = bytes.fromhex(loaded["prev_hash"])
    loaded["hash"] = bytes.fromhex(loaded["hash"])
    return dict(loaded)


def export_jsonl(records: Iterable[Record]) -> str:
    return "".join(to_line(r) + "\n" for r in records)


def write_jsonl(records: Iterable[Record], out: BinaryIO) -> int:
    """`export_jsonl` written to `out` a line at a time; the number of records written."""
    count = 0
    for record in records:
        out.write((to_line(record) + "\n").encode())
        count += 1
    return count
