"""`trauma-relay audit forward` through the real CLI to a TLS syslog receiver (a small scripted
one here: no syslog daemon is installed on the test machines) that reads RFC 5425 frames."""

from __future__ import annotations

import datetime
import re
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from e2e.harness import E2ERelay, run_cli

HEADER = re.compile(
    rb'^<(\d+)>1 (\S+) (\S+) trauma-relay - IHE\+RFC-3881 \[meta sequenceId="(\d+)"\] \xef\xbb\xbf'
)


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(tz=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _pem(path: Path, *parts: bytes) -> Path:
    path.write_bytes(b"".join(parts))
    return path


@dataclass
class Receiver:
    """A TLS listener on localhost that keeps every byte each connection sent."""

    port: int
    ca: Path
    received: list[bytes] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def frames(self) -> list[bytes]:
        """RFC 5425 octet-counted messages, checked to fill the stream exactly."""
        assert self.done.wait(60)
        stream, messages = b"".join(self.received), []
        while stream:
            length, _, rest = stream.partition(b" ")
            assert length.isdigit(), stream[:40]
            messages.append(rest[: int(length)])
            assert len(messages[-1]) == int(length)
            stream = rest[int(length) :]
        return messages


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Audit test CA")])
    ca_cert = _certificate("Audit test CA", ca_key, ca_name, ca_key, ca=True)
    cert = _certificate("localhost", key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    ca = _pem(tmp_path / "ca.pem", ca_cert.public_bytes(pem))
    chain = _pem(
        tmp_path / "receiver.pem",
        cert.public_bytes(pem),
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    listener = socket.create_server(("127.0.0.1", 0))
    got = Receiver(listener.getsockname()[1], ca)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                while chunk := tls.recv(65536):
                    got.received.append(chunk)
        except (OSError, ssl.SSLError):
            pass  # a refused handshake: nothing received
        finally:
            got.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield got
    listener.close()
    thread.join(60)


def test_forwarded_records_are_rfc_5424_messages_in_rfc_5425_frames(
    fresh_relay: E2ERelay, receiver: Receiver, tmp_path: Path
) -> None:
    data = ["--data", str(fresh_relay.data_dir)]
    run_cli(["site", "disable", "st-mary-er", *data], cwd=tmp_path).ok()
    count = run_cli(["audit", "verify", *data, "--json"], cwd=tmp_path).ok().json()["records"]
    args = ["audit", "forward", *data, "--to", f"localhost:{receiver.port}"]
    run = run_cli([*args, "--ca", str(receiver.ca), "--source-id", "relay-1"], cwd=tmp_path).ok()
    assert run.stdout.strip() == f"{count} audit record(s) sent to localhost:{receiver.port}."

    messages = receiver.frames()
    assert len(messages) == count
    actions, numbers = [], []
    for message in messages:
        header = HEADER.match(message)
        assert header, message[:120]
        assert header.group(3) == b"relay-1"
        numbers.append(int(header.group(4)))
        audit = ET.fromstring(message[header.end() :])  # noqa: S314 (what the test sent)
        assert audit.tag == "AuditMessage"
        event = audit.find("EventIdentification")
        assert event is not None
        assert int(header.group(1)) == 13 * 8 + (
            6 if event.get("EventOutcomeIndicator") == "0" else 4
        )
        assert header.group(2).decode() == event.get("EventDateTime")
        action = event.find("EventTypeCode")
        assert action is not None
        actions.append(action.get("csd-code"))
    assert actions[:2] == ["site-added", "site-added"]
    assert numbers == list(range(1, count + 1))  # the records' own numbers
    assert "site-disabled" in actions


def test_a_receiver_whose_certificate_is_not_trusted_gets_nothing(
    fresh_relay: E2ERelay, receiver: Receiver, tmp_path: Path
) -> None:
    args = ["audit", "forward", "--data", str(fresh_relay.data_dir)]
    run = run_cli([*args, "--to", f"localhost:{receiver.port}"], cwd=tmp_path)
    assert run.failed().returncode == 2
    assert f"could not be sent to localhost:{receiver.port}" in run.message
    assert "0 were sent" in run.message
    assert receiver.frames() == []

    run = run_cli([*args, "--to", "localhost"], cwd=tmp_path)
    assert run.failed().returncode == 2
    assert "Give --to as HOST:PORT" in run.message
