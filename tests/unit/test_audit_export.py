"""The audit trail's exports, pure: DICOM PS3.15 audit messages parsed back with ElementTree,
JSON lines back to records, and the ISO dates an export is limited by."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from io import BytesIO
from typing import Any

import pytest

from relay import audit
from relay.audit_trail.dicom import (
    ACTION_CODES,
    EVENT_NAMES,
    audit_message,
    export_dicom,
    write_dicom,
)
from relay.audit_trail.jsonl import export_jsonl, record_from_line, write_jsonl
from relay.audit_trail.reading import Period, instant
from relay.audit_trail.syslog import framed, sequence_id, syslog_message
from relay.storage.audit_chain import GENESIS, chain_hash, verify_audit_chain

AT = 1_796_300_000.25  # 2026-12-03T12:13:20.250Z


def _chain(*rows: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as the relay stores them: seq from 1, detail as canonical JSON, hashes chained."""
    records, prev = [], GENESIS
    for seq, row in enumerate(rows, start=1):
        content = {
            "at": AT + seq,
            "transfer_id": None,
            "outcome": "success",
            "detail": {},
            "remote": "local",
            **row,
        }
        content["event_id"] = audit.EVENT_IDS[content["action"]]
        digest = chain_hash(prev, content)
        stored = dict(
            content, detail=json.dumps(content["detail"], sort_keys=True, separators=(",", ":"))
        )
        records.append({"seq": seq, **stored, "prev_hash": prev, "hash": digest})
        prev = digest
    return records


TRAIL = _chain(
    {
        "action": "site-added",
        "actor": "operator",
        "actor_role": "operator",
        "detail": {"site": "st-mary-er"},
    },
    {
        "action": "transfer-created",
        "actor": "st-mary-er",
        "actor_role": "sending",
        "transfer_id": "t-1",
        "remote": "192.0.2.7",
        "detail": {"expires_at": 1},
    },
    {
        "action": "redeem-attempt",
        "actor": "county-trauma",
        "actor_role": "receiving",
        "outcome": "failure",
        "remote": "2001:db8::5",
        "detail": {"via": "code"},
    },
    {
        "action": "transfer-locked",
        "actor": "county-trauma",
        "actor_role": "receiving",
        "transfer_id": "t-1",
        "outcome": "failure",
        "remote": "198.51.100.9",
    },
    {
        "action": "object-download",
        "actor": "county-trauma",
        "actor_role": "receiving",
        "transfer_id": "t-1",
    },
    {"action": "transfer-purged", "actor": "relay", "actor_role": "relay", "transfer_id": "t-1"},
)


def _parse(document: bytes) -> ET.Element:
    return ET.fromstring(document)  # noqa: S314 (our own export, the thing under test)


def _messages(records: list[dict[str, Any]]) -> list[ET.Element]:
    root = _parse(export_dicom(records, "relay.example.org"))
    assert root.tag == "AuditMessages"
    assert [m.tag for m in root] == ["AuditMessage"] * len(records)
    return list(root)


def _coded(element: ET.Element | None) -> tuple[str | None, ...]:
    assert element is not None
    return tuple(element.get(a) for a in ("csd-code", "codeSystemName", "originalText"))


def test_every_action_has_an_event_action_code_and_every_event_id_a_name() -> None:
    assert set(ACTION_CODES) == set(audit.EVENT_IDS)
    assert set(ACTION_CODES.values()) <= {"C", "R", "U", "D", "E"}
    assert set(audit.EVENT_IDS.values()) <= set(EVENT_NAMES)


def test_dicom_messages_carry_event_ids_actions_times_and_outcomes() -> None:
    events = [m.find("EventIdentification") for m in _messages(TRAIL)]
    shape = [
        (e.get("EventActionCode"), e.get("EventOutcomeIndicator"), _coded(e.find("EventID")))
        for e in events
        if e is not None
    ]
    assert shape == [
        ("C", "0", ("110100", "DCM", "Application Activity")),
        ("C", "0", ("110102", "DCM", "Begin Transferring DICOM Instances")),
        ("E", "4", ("110114", "DCM", "User Authentication")),  # a wrong code: minor
        ("U", "8", ("110113", "DCM", "Security Alert")),  # a transfer locked: serious
        ("R", "0", ("110103", "DCM", "DICOM Instances Accessed")),
        ("D", "0", ("110105", "DCM", "DICOM Study Deleted")),
    ]
    first = events[0]
    assert first is not None
    assert first.get("EventDateTime") == "2026-12-03T12:13:21.250Z"
    assert _coded(first.find("EventTypeCode")) == ("site-added", "trauma-relay", "site-added")


def test_dicom_messages_name_the_actor_its_address_the_source_and_the_transfer() -> None:
    messages = _messages(TRAIL)
    participants = [m.find("ActiveParticipant") for m in messages]
    assert [
        (
            p.get("UserID"),
            p.get("UserIsRequestor"),
            p.get("NetworkAccessPointID"),
            p.get("NetworkAccessPointTypeCode"),
            _coded(p.find("RoleIDCode")),
        )
        for p in participants
        if p is not None
    ] == [
        ("operator", "true", None, None, ("operator", "trauma-relay", "operator")),
        ("st-mary-er", "true", "192.0.2.7", "2", ("110153", "DCM", "Source Role ID")),
        ("county-trauma", "true", "2001:db8::5", "2", ("110152", "DCM", "Destination Role ID")),
        ("county-trauma", "true", "198.51.100.9", "2", ("110152", "DCM", "Destination Role ID")),
        ("county-trauma", "true", None, None, ("110152", "DCM", "Destination Role ID")),
        ("relay", "true", None, None, ("110150", "DCM", "Application")),
    ]
    for m in messages:
        source = m.find("AuditSourceIdentification")
        assert source is not None
        assert source.get("AuditSourceID") == "relay.example.org"
        assert _coded(source.find("AuditSourceTypeCode")) == ("4", "DCM", "Application Server")
    objects = [m.findall("ParticipantObjectIdentification") for m in messages]
    assert [[o.get("ParticipantObjectID") for o in found] for found in objects] == [
        ["st-mary-er"],
        ["t-1"],
        [],
        ["t-1"],
        ["t-1"],
        ["t-1"],
    ]
    (site,) = objects[0]
    assert (site.get("ParticipantObjectTypeCode"), site.get("ParticipantObjectTypeCodeRole")) == (
        "2",
        "11",
    )
    assert _coded(site.find("ParticipantObjectIDTypeCode")) == ("site", "trauma-relay", "Site name")
    site_detail = site.find("ParticipantObjectDetail")
    assert site_detail is not None
    assert json.loads(base64.b64decode(site_detail.get("value") or "")) == {"site": "st-mary-er"}
    (created,) = objects[1]
    assert (
        created.get("ParticipantObjectTypeCode"),
        created.get("ParticipantObjectTypeCodeRole"),
    ) == ("2", "20")
    assert _coded(created.find("ParticipantObjectIDTypeCode")) == (
        "transfer-id",
        "trauma-relay",
        "Transfer ID",
    )
    detail = created.find("ParticipantObjectDetail")
    assert detail is not None
    assert detail.get("type") == "detail"
    assert json.loads(base64.b64decode(detail.get("value") or "")) == {"expires_at": 1}


def test_dicom_export_escapes_markup_and_replaces_what_xml_cannot_hold() -> None:
    (record,) = _chain(
        {
            "action": "phone-link-refused",
            "actor": "a<b>&\"c'",
            "actor_role": "unknown",
            "remote": "proxy-\x01-host</x>",
            "outcome": "failure",
        }
    )
    document = export_dicom([record], "relay&<x>")
    assert b"<b>" not in document
    assert b"\x01" not in document
    (message,) = _messages([record])
    participant = message.find("ActiveParticipant")
    assert participant is not None
    assert participant.get("UserID") == "a<b>&\"c'"
    assert participant.get("NetworkAccessPointID") == "proxy-\ufffd-host</x>"
    assert participant.get("NetworkAccessPointTypeCode") == "1"
    root = _parse(document)
    assert root[0].find("AuditSourceIdentification").get("AuditSourceID") == "relay&<x>"  # type: ignore[union-attr]


def test_an_empty_trail_is_an_empty_document() -> None:
    assert list(_parse(export_dicom([], "relay"))) == []
    assert export_jsonl([]) == ""


def test_json_lines_hold_every_field_and_come_back_as_the_stored_records() -> None:
    text = export_jsonl(TRAIL)
    lines = text.splitlines()
    assert len(lines) == len(TRAIL)
    assert text.endswith("\n")
    second = json.loads(lines[1])
    assert second == {
        "seq": 2,
        "at": AT + 2,
        "time": "2026-12-03T12:13:22.250Z",
        "event_id": "110102",
        "action": "transfer-created",
        "actor": "st-mary-er",
        "actor_role": "sending",
        "transfer_id": "t-1",
        "outcome": "success",
        "detail": {"expires_at": 1},
        "remote": "192.0.2.7",
        "prev_hash": TRAIL[0]["hash"].hex(),
        "hash": TRAIL[1]["hash"].hex(),
    }
    back = [record_from_line(line) for line in lines]
    assert back == TRAIL
    assert verify_audit_chain(back) == []


@pytest.mark.parametrize(
    ("text", "end_of_day", "expected"),
    [
        ("2026-12-04", False, "2026-12-04T00:00:00+00:00"),
        ("2026-12-04", True, "2026-12-05T00:00:00+00:00"),
        ("2026-12-04T10:13", True, "2026-12-04T10:13:00+00:00"),
        ("2026-12-04T10:13:00+02:00", False, "2026-12-04T08:13:00+00:00"),
        ("2026-12-04T10:13:00Z", False, "2026-12-04T10:13:00+00:00"),
    ],
)
def test_export_periods_take_iso_dates_and_times(
    text: str, end_of_day: bool, expected: str
) -> None:
    import datetime

    assert (
        instant(text, end_of_day=end_of_day)
        == datetime.datetime.fromisoformat(expected).timestamp()
    )


def test_a_period_includes_its_start_and_excludes_its_end() -> None:
    period = Period(since=AT + 2, until=AT + 4)
    assert [r["seq"] for r in TRAIL if period.covers(r)] == [2, 3]
    assert [r["seq"] for r in TRAIL if Period().covers(r)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "", "12/04/2026"])
def test_a_date_that_is_not_iso_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"isoformat|must be in"):
        instant(text, end_of_day=False)


def test_syslog_messages_rank_outcomes_and_are_framed_by_their_length_in_octets() -> None:
    priorities = [syslog_message(r, "relay 1\u00e9").split(b" ", 1)[0] for r in TRAIL]
    # facility 13 (log audit): informational, warning for a wrong code, critical for a lock
    assert priorities == [b"<110>1", b"<110>1", b"<108>1", b"<106>1", b"<110>1", b"<110>1"]
    message = syslog_message(TRAIL[0], "relay 1\u00e9")
    assert message.startswith(
        b"<110>1 2026-12-03T12:13:21.250Z relay1 trauma-relay - IHE+RFC-3881 "
        b'[meta sequenceId="1"] \xef\xbb\xbf<AuditMessage>'
    )
    # the record's number, as RFC 5424 allows it (1 to 2**31 - 1, then from 1 again)
    assert [sequence_id(n) for n in (1, 2, 2**31 - 1, 2**31, 2**31 + 1)] == [1, 2, 2**31 - 1, 1, 2]
    assert framed("\u00e9t\u00e9".encode()) == b"5 \xc3\xa9t\xc3\xa9"


def test_a_tampered_record_whose_detail_is_not_json_is_still_exported() -> None:
    record = dict(TRAIL[1], detail="{not json")
    assert json.loads(export_jsonl([record]))["detail"] == "{not json"
    (message,) = _messages([record])
    detail = message.find("ParticipantObjectIdentification/ParticipantObjectDetail")
    assert detail is not None
    assert json.loads(base64.b64decode(detail.get("value") or "")) == "{not json"
    assert [(f.seq, f.problem.value) for f in verify_audit_chain([TRAIL[0], record])] == [
        (2, "edited")
    ]


def _whole_tree(records: list[dict[str, Any]], source_id: str) -> bytes:
    """The document as ElementTree makes it of the whole tree at once (the export before it
    was written a message at a time)."""
    root = ET.Element("AuditMessages")
    for record in records:
        root.append(audit_message(record, source_id))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


@pytest.mark.parametrize("count", [0, 1, 2, len(TRAIL)])
def test_the_dicom_export_written_a_message_at_a_time_is_the_whole_tree_byte_for_byte(
    count: int,
) -> None:
    records = list(TRAIL[:count])
    out = BytesIO()
    assert write_dicom(records, "relay.example.org", out) == count
    assert out.getvalue() == _whole_tree(records, "relay.example.org")
    assert export_dicom(records, "relay.example.org") == out.getvalue()


def test_the_json_lines_export_written_a_line_at_a_time_is_the_same_text() -> None:
    out = BytesIO()
    assert write_jsonl(TRAIL, out) == len(TRAIL)
    assert out.getvalue() == export_jsonl(TRAIL).encode()
