"""The DICOM node's records in the agent's audit log: refusals from one address at most once a
minute, the next saying how many were left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sending_site.inbox.audited import NodeAudit
from site_agent.audit import FILE, AuditLog, verify_chain


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _records(folder: Path) -> list[dict[str, object]]:
    verify_chain(folder / FILE)
    return [json.loads(line) for line in (folder / FILE).read_text().splitlines()]


def test_refusals_from_one_address_are_recorded_once_a_minute(tmp_path: Path) -> None:
    clock = _Clock()
    audit = NodeAudit(AuditLog(tmp_path, lambda: 0.0), clock)
    for _ in range(3):
        audit.refused("LAPTOP", "10.0.0.9", "not allowed")
        clock.now += 10
    audit.refused("CT9", "10.0.0.8", "wrong AE title")  # another address: its own count
    clock.now += 31  # 61 s after the first
    audit.refused("LAPTOP", "10.0.0.9", "not allowed")
    audit.received("CT1", "10.0.0.1", kept=3, refused=1)
    records = _records(tmp_path)
    assert [(r["action"], r["where"], r.get("detail")) for r in records] == [
        ("association-refused", "10.0.0.9", {"reason": "not allowed"}),
        ("association-refused", "10.0.0.8", {"reason": "wrong AE title"}),
        ("association-refused", "10.0.0.9", {"reason": "not allowed", "refused_before": 2}),
        ("images-received", "10.0.0.1", {"kept": 3, "refused": 1}),
    ]
    assert records[-1]["outcome"] == "failure"  # one of its images was refused


def test_an_audit_log_that_cannot_be_written_does_not_stop_the_node(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("in the way")
    audit = NodeAudit(AuditLog(tmp_path / "a-file", lambda: 0.0))
    audit.received("CT1", "10.0.0.1", kept=1, refused=0)  # logged, not raised
    assert f"Could not write the audit log {tmp_path / 'a-file' / FILE}" in caplog.text
