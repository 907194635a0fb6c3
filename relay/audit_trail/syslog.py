"""Forwarding the audit trail to an audit record repository by syslog: RFC 5424 messages over
TLS with RFC 5425's octet-counting framing, as IHE ATNA asks (MSGID `IHE+RFC-3881`, one DICOM
`<AuditMessage>` as each message's body, UTF-8 with its byte order mark), each with the record's
number as RFC 5424 `[meta sequenceId]`."""

from __future__ import annotations

import contextlib
import socket
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from relay import errors
from relay.audit_trail.dicom import MINOR_FAILURE, SUCCESS, audit_message, outcome_indicator
from relay.audit_trail.reading import Record, iso_time

LOG_AUDIT = 13  # syslog facility "log audit"
SEVERITY = {SUCCESS: 6, MINOR_FAILURE: 4}  # informational, warning; a serious failure: 2
BOM = b"\xef\xbb\xbf"
TIMEOUT = 30.0  # seconds for connecting and for each write
MAX_SEQUENCE_ID = 2**31 - 1


def _header_word(text: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most `limit` long, or "-"."""
    word = "".join(c for c in text if "!" <= c <= "~")[:limit]
    return word or "-"


def sequence_id(seq: int) -> int:
    """The record's `seq` as RFC 5424 `sequenceId` (1 to 2**31 - 1, then from 1 again)."""
    return (seq - 1) % MAX_SEQUENCE_ID + 1


def syslog_message(record: Record, source_id: str) -> bytes:
    """One record as an RFC 5424 message (without framing)."""
    severity = SEVERITY.get(outcome_indicator(record), 2)
    header = " ".join(
        (
            f"<{LOG_AUDIT * 8 + severity}>1",
            iso_time(float(record["at"])),
            _header_word(source_id, 255),
            "trauma-relay",
            "-",
            "IHE+RFC-3881",
            # RFC 5424's own sequence number: the record's, so a receiver can tell a record
            # sent again (forwarding is at-least-once) from a new one.
            f'[meta sequenceId="{sequence_id(int(record["seq"]))}"]',
        )
    )
    body: bytes = ET.tostring(
        audit_message(record, source_id), encoding="utf-8", xml_declaration=False
    )
    return header.encode("ascii") + b" " + BOM + body


def framed(message: bytes) -> bytes:
    """RFC 5425 octet counting: the message's length in octets, a space, the message."""
    return str(len(message)).encode("ascii") + b" " + message


def forward(
    records: Iterable[Record], host: str, port: int, context: ssl.SSLContext, source_id: str
) -> int:
    """Send each record to the syslog receiver at `host`:`port` over TLS; the count sent.

    Raises `SyslogUnreachable` when the connection or TLS handshake fails, or the receiver
    stops taking messages."""
    sent = 0
    try:
        with (
            socket.create_connection((host, port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            for record in records:
                tls.sendall(framed(syslog_message(record, source_id)))
                sent += 1
            _close(tls)
    except (OSError, ssl.SSLError) as e:
        raise errors.SyslogUnreachable(
            f"The audit records could not be sent to {host}:{port} ({e}); {sent} were sent. "
            "Check --to and --ca, and that the syslog receiver takes TLS there."
        ) from e
    return sent


def _close(tls: ssl.SSLSocket) -> None:
    """Close the TLS session cleanly: send close_notify and read what the receiver still sends
    (TLS 1.3 session tickets, its own close_notify). Closing with that unread would reset the
    connection, and the receiver could lose the last messages. A receiver that then just hangs
    up has read everything before our close_notify."""
    with contextlib.suppress(OSError):
        tls.unwrap()
