"""A scripted DICOM peer speaking raw upper-layer PDUs (PS3.8 9.3), for what no polite
implementation sends: PDUs declaring absurd lengths, associations held open and left idle.
Like pynetdicom's own `parrot.py`, it writes bytes and reads what comes back."""

from __future__ import annotations

import socket
import struct

APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = b"1.2.840.10008.1.1"
IMPLICIT_VR_LITTLE_ENDIAN = b"1.2.840.10008.1.2"
IMPLEMENTATION_CLASS_UID = b"1.2.826.0.1.3680043.9.7433.1.1"
A_ASSOCIATE_RQ, A_ASSOCIATE_AC, A_ASSOCIATE_RJ, P_DATA_TF = 0x01, 0x02, 0x03, 0x04
A_RELEASE_RQ, A_ABORT = 0x05, 0x07
TIMEOUT = 30.0  # seconds any read may wait, so a silent agent fails the test instead of hanging


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(value)) + value


def _ae(title: str) -> bytes:
    return title.encode("ascii").ljust(16)


def association_request(called: str, calling: str = "HOSTILE", max_pdu: int = 16384) -> bytes:
    """An A-ASSOCIATE-RQ PDU proposing Verification in Implicit VR Little Endian."""
    context = struct.pack(">BBBB", 1, 0, 0, 0)
    context += _item(0x30, VERIFICATION) + _item(0x40, IMPLICIT_VR_LITTLE_ENDIAN)
    user = _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, IMPLEMENTATION_CLASS_UID)
    body = struct.pack(">HH", 1, 0) + _ae(called) + _ae(calling) + b"\x00" * 32
    body += _item(0x10, APPLICATION_CONTEXT) + _item(0x20, context) + _item(0x50, user)
    return pdu_header(A_ASSOCIATE_RQ, len(body)) + body


def pdu_header(pdu_type: int, declared_length: int) -> bytes:
    """The 6-byte header of a PDU of `pdu_type` declaring `declared_length` bytes to follow."""
    return struct.pack(">BBI", pdu_type, 0, declared_length)


class RawPeer:
    """One TCP connection to a DICOM node (`contextlib.closing` closes it)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def associate(self, called: str) -> int:
        """Send an association request; the type of the PDU answering it."""
        self.send(association_request(called))
        pdu_type, _body = self.read_pdu()
        return pdu_type

    def read_pdu(self) -> tuple[int, bytes]:
        """The next PDU (type, body). Raises `ConnectionError` if the peer closes first."""
        header = self._read_exactly(6)
        pdu_type, _, length = struct.unpack(">BBI", header)
        return pdu_type, self._read_exactly(length)

    def closed_by_peer(self) -> bool:
        """Read until the peer closes the connection (True), skipping any A-ABORT it sends
        first; False if it sends anything else."""
        while True:
            try:
                pdu_type, _body = self.read_pdu()
            except ConnectionError:
                return True
            if pdu_type != A_ABORT:
                return False

    def _read_exactly(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = self.sock.recv(min(count - len(data), 65536))
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} of {count} bytes")
            data += chunk
        return bytes(data)
