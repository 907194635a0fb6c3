"""The audit trail as DICOM PS3.15 A.5 audit messages (the RFC 3881 schema as DICOM has it,
IHE ATNA): one `<AuditMessage>` per record, inside one `<AuditMessages>` root for a file.

Built with ElementTree, which escapes; characters XML 1.0 cannot hold at all are replaced.
Everything comes from the record, whose fields carry no PHI, plus this relay's source id."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from io import BytesIO
from typing import BinaryIO

from relay import audit
from relay.audit_trail.reading import Record, iso_time, parsed_detail

DCM = "DCM"
OWN_CODES = "trauma-relay"  # our code system, for what DICOM has no code for

EVENT_NAMES = {
    audit.APPLICATION_ACTIVITY: "Application Activity",
    audit.BEGIN_TRANSFERRING: "Begin Transferring DICOM Instances",
    audit.INSTANCES_ACCESSED: "DICOM Instances Accessed",
    audit.INSTANCES_TRANSFERRED: "DICOM Instances Transferred",
    audit.STUDY_DELETED: "DICOM Study Deleted",
    audit.EXPORT: "Export",
    audit.IMPORT: "Import",
    "110110": "Patient Record",
    audit.SECURITY_ALERT: "Security Alert",
    audit.USER_AUTHENTICATION: "User Authentication",
}

# EventActionCode for every action in `audit.EVENT_IDS`: Create, Read, Update, Delete or
# Execute. A test holds the two tables to the same actions.
ACTION_CODES = {
    "site-added": "C",
    "guessing-throttled": "E",
    "site-credential-rotated": "U",
    "site-disabled": "U",
    "site-enabled": "U",
    "relay-migrated": "E",
    "site-authentication": "E",
    "transfer-created": "C",
    "keys-installed": "C",
    "phone-documents-installed": "C",
    "code-reissued": "U",
    "break-glass-authorization": "E",
    "patient-authorization": "E",
    "consent-from-sending-site": "E",
    "transfer-revoked": "U",
    "status-read": "R",
    "phone-link-refused": "E",
    "phone-status-read": "R",
    "phone-revocation": "U",
    "redeem-attempt": "E",
    "transfer-locked": "U",
    "delivery-receipt": "U",
    "review-copy-receipt": "U",
    "discard-receipt": "U",
    "holdings-read": "R",
    "object-download": "R",
    "upload-begun": "E",
    "upload-closed": "C",
    "manifest-read": "R",
    "transfer-expired": "U",
    "transfer-purged": "D",
}

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"

# Roles DICOM has a code for (CID 402, Audit Active Participant Role ID).
ROLE_CODES = {
    "sending": ("110153", "Source Role ID"),
    "receiving": ("110152", "Destination Role ID"),
    "relay": ("110150", "Application"),
}

# Characters XML 1.0 cannot hold, even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def _coded(parent: ET.Element, tag: str, code: str, system: str, meaning: str) -> ET.Element:
    return ET.SubElement(
        parent,
        tag,
        {"csd-code": _text(code), "codeSystemName": system, "originalText": _text(meaning)},
    )


def outcome_indicator(record: Record) -> str:
    """0 for success; a failure is serious (8) when it raised a security alert (a transfer
    locked, guessing throttled, consent from the sender's own address), else minor (4)."""
    if record["outcome"] == "success":
        return SUCCESS
    return SERIOUS_FAILURE if record["event_id"] == audit.SECURITY_ALERT else MINOR_FAILURE


def _network_access_point(remote: str) -> dict[str, str]:
    """Type 2 (an IP address) for an address; a machine name (1) for anything else, except the
    relay's own `local` operator commands, which came over no network."""
    if remote == "local":
        return {}
    try:
        ipaddress.ip_address(remote)
    except ValueError:
        return {"NetworkAccessPointID": _text(remote), "NetworkAccessPointTypeCode": "1"}
    return {"NetworkAccessPointID": remote, "NetworkAccessPointTypeCode": "2"}


def audit_message(record: Record, source_id: str) -> ET.Element:
    """One record as a DICOM `<AuditMessage>`."""
    message = ET.Element("AuditMessage")
    event_id, action = str(record["event_id"]), str(record["action"])
    event = ET.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": ACTION_CODES.get(action, "E"),
            "EventDateTime": iso_time(float(record["at"])),
            "EventOutcomeIndicator": outcome_indicator(record),
        },
    )
    _coded(event, "EventID", event_id, DCM, EVENT_NAMES.get(event_id, event_id))
    _coded(event, "EventTypeCode", action, OWN_CODES, action)

    role = str(record["actor_role"])
    participant = ET.SubElement(
        message,
        "ActiveParticipant",
        {
            "UserID": _text(record["actor"]),
            "UserIsRequestor": "true",
            **_network_access_point(str(record["remote"])),
        },
    )
    code, meaning = ROLE_CODES.get(role, (role, role))
    _coded(participant, "RoleIDCode", code, DCM if role in ROLE_CODES else OWN_CODES, meaning)

    source = ET.SubElement(message, "AuditSourceIdentification", {"AuditSourceID": source_id})
    _coded(source, "AuditSourceTypeCode", "4", DCM, "Application Server")

    detail = parsed_detail(record)
    objects = []
    if record["transfer_id"]:
        objects.append(_object(message, record["transfer_id"], "20", "transfer-id", "Transfer ID"))
    site = detail.get("site") if isinstance(detail, dict) else None
    if isinstance(site, str) and site:
        # The site a site-lifecycle record is about (its actor is the operator).
        objects.append(_object(message, site, "11", "site", "Site name"))
    if objects and detail:
        ET.SubElement(
            objects[0],
            "ParticipantObjectDetail",
            {"type": "detail", "value": base64.b64encode(_canonical(detail)).decode()},
        )
    return message


def _object(
    message: ET.Element, object_id: object, role: str, id_type: str, meaning: str
) -> ET.Element:
    """A ParticipantObjectIdentification of a system object (type 2) in `role` (20 job, 11
    security user entity)."""
    found = ET.SubElement(
        message,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": _text(object_id),
            "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": role,
        },
    )
    _coded(found, "ParticipantObjectIDTypeCode", id_type, OWN_CODES, meaning)
    return found


def _canonical(detail: object) -> bytes:
    return json.dumps(detail, sort_keys=True).encode()


def export_dicom(records: Iterable[Record], source_id: str) -> bytes:
    """The records as one XML document (UTF-8, with its declaration)."""
    out = BytesIO()
    write_dicom(records, source_id, out)
    return out.getvalue()


def write_dicom(records: Iterable[Record], source_id: str, out: BinaryIO) -> int:
    """`export_dicom`'s document written to `out` one message at a time (never the whole
    document in memory), byte for byte what ElementTree makes of the whole tree indented;
    the number of records written."""
    source = _text(source_id)
    out.write(b"<?xml version='1.0' encoding='utf-8'?>\n")
    count = 0
    for record in records:
        message = audit_message(record, source)
        ET.indent(message, level=1)  # as `ET.indent` of the root would
        out.write(b"<AuditMessages>\n  " if count == 0 else b"\n  ")
        out.write(ET.tostring(message, encoding="utf-8"))
        count += 1
    out.write(b"\n</AuditMessages>\n" if count else b"<AuditMessages />\n")
    return count
