"""The relay's wire vocabulary, shared by the relay's API and the sites' client: transfer state
names, problem codes, header names, endpoint paths, and the text form of bytes in JSON (also
used in the sites' state files). Pure; no I/O.

A name changed here changes on both sides at once, so neither side spells a wire string itself.
"""

from __future__ import annotations

import base64
import enum
import json
import struct
from collections.abc import Sequence


class TransferState(enum.StrEnum):
    """A transfer's state as the relay reports it (`"state"` in a status document)."""

    CREATED = "created"
    AWAITING_AUTHORIZATION = "awaiting_authorization"
    AUTHORIZED = "authorized"
    REDEEMED = "redeemed"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    REVOKED = "revoked"
    LOCKED = "locked"


# A relay's problem document's `type` (RFC 9457) is this followed by a `Problem`: a proxy's
# answer never says it.
PROBLEM_TYPE = "urn:trauma-relay:problem:"


class Problem(enum.StrEnum):
    """The last segment of a problem document's `type` (RFC 9457), one per relay error."""

    RELAY_ERROR = "relay-error"
    CONFIG = "config"
    NOT_AUTHENTICATED = "not-authenticated"
    NOT_PERMITTED = "not-permitted"
    SITE_DISABLED = "site-disabled"
    THROTTLED = "throttled"
    SITE_LIMIT = "site-limit"
    STORAGE_FULL = "storage-full"
    STORAGE_UNAVAILABLE = "storage-unavailable"
    NOT_FOUND = "not-found"
    BAD_REQUEST = "bad-request"
    CLIENT_TOO_SLOW = "client-too-slow"
    UNKNOWN_SITE = "unknown-site"
    SITE_EXISTS = "site-exists"
    INVALID_STATE = "invalid-state"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ALREADY_REDEEMED = "already-redeemed"
    CODE_NOT_ACCEPTED = "code-not-accepted"
    AWAITING_AUTHORIZATION = "awaiting-authorization"
    UPLOAD_OFFSET_MISMATCH = "upload-offset-mismatch"
    TOO_LARGE = "too-large"
    OBJECT_INCOMPLETE = "object-incomplete"
    STORED_OBJECT_DAMAGED = "stored-object-damaged"
    INTEGRITY = "integrity"
    CSRF = "csrf"


# -- headers ---------------------------------------------------------------------------------

UPLOAD_OFFSET = "Upload-Offset"  # where a PATCH appends; the relay answers with its new offset
UPLOAD_LENGTH = "Upload-Length"  # with UPLOAD_SHA256: this PATCH ends an object of this size
UPLOAD_SHA256 = "Upload-SHA256"  # hex SHA-256 of the whole sealed object
MANIFEST_FINAL = "Manifest-Final"  # "1" on the manifest's closing record (a batch's last one)
MANIFEST_FROM = "Manifest-From"  # a batch of manifest records: the first one's number
OBJECT_SHA256 = "X-Object-SHA256"  # on a download: the sealed object's SHA-256
CSRF_TOKEN = "X-CSRF-Token"  # noqa: S105 (a header name, not a secret): the phone page's double-submit token

# -- receipts --------------------------------------------------------------------------------

# Where the trauma center put what it received: its PACS, a folder, a copy kept for a person's
# review (the transfer stays redeemed), or nowhere: discarded after review (also stays redeemed).
RECEIPT_DESTINATIONS = ("pacs", "folder", "review", "discarded")
DISCARDED = "discarded"

# -- paths -----------------------------------------------------------------------------------

HEALTH = "/healthz"
SITES = "/api/v1/sites"
TRANSFERS = "/api/v1/transfers"
AUTHORIZATIONS = "/api/v1/authorizations"
REDEMPTIONS = "/api/v1/redemptions"
REDEMPTION_SALT = "/api/v1/redemptions/salt"
PHONE_STATUS = "/api/v1/phone/status"
PHONE_REVOKE = "/api/v1/phone/revoke"
PHONE_DECLINE = "/api/v1/phone/decline"


def transfer(transfer_id: str) -> str:
    return f"{TRANSFERS}/{transfer_id}"


def transfer_action(transfer_id: str, action: str) -> str:
    """`locks`, `reissue`, `break-glass`, `revoke`, `receipt`, `phone`, `objects`, `manifest`."""
    return f"{TRANSFERS}/{transfer_id}/{action}"


def sealed_object(transfer_id: str, index: int) -> str:
    return f"{TRANSFERS}/{transfer_id}/objects/{index}"


def objects(transfer_id: str) -> str:
    """GET: what the relay holds of the upload; POST: several whole objects (`pack_objects`)."""
    return f"{TRANSFERS}/{transfer_id}/objects"


def objects_fetch(transfer_id: str) -> str:
    """POST `{"indices": [...]}`: those sealed objects, one after the other (`OBJECT_FRAME`)."""
    return f"{TRANSFERS}/{transfer_id}/objects/fetch"


def manifest_record(transfer_id: str, seq: int) -> str:
    return f"{TRANSFERS}/{transfer_id}/manifest/{seq}"


def manifest_batch(transfer_id: str) -> str:
    """POST several manifest records at once (`pack_records`); GET reads them."""
    return f"{TRANSFERS}/{transfer_id}/manifest"


# -- manifest records in batches -------------------------------------------------------------

BATCH_RECORDS = 256  # at most this many manifest records in one batch
BATCH_BYTES = 1024 * 1024  # and at most this many bytes of body, length prefixes included
LENGTH_PREFIX = 4  # each record follows its length, 4 bytes big-endian


def pack_records(records: list[bytes]) -> bytes:
    """The body of a batch: each record after its length (`LENGTH_PREFIX` bytes, big-endian)."""
    return b"".join(len(r).to_bytes(LENGTH_PREFIX, "big") + r for r in records)


def unpack_records(body: bytes) -> list[bytes]:
    """Inverse of `pack_records`; ValueError if `body` is cut short or holds an empty record."""
    records: list[bytes] = []
    at = 0
    while at < len(body):
        if at + LENGTH_PREFIX > len(body):
            raise ValueError("a record's length is cut short")
        size = int.from_bytes(body[at : at + LENGTH_PREFIX], "big")
        at += LENGTH_PREFIX
        if size == 0 or at + size > len(body):
            raise ValueError("a record is empty or cut short")
        records.append(body[at : at + size])
        at += size
    return records


# -- sealed objects in batches ---------------------------------------------------------------

BATCH_OBJECTS = 64  # at most this many objects in one batch, up or down
BATCH_UPLOAD_BYTES = 16 * 1024 * 1024  # at most this many sealed bytes in one batch upload


def pack_objects(objects: Sequence[tuple[int, bytes, str]]) -> bytes:
    """The body of a batch upload of whole sealed objects, given as (index, sealed bytes, hex
    SHA-256 of those bytes): the list `{"objects": [{"index", "size", "sha256"}, ...]}` as JSON
    after its length (`LENGTH_PREFIX` bytes, big-endian), then the objects' bytes in that
    order."""
    listing = json.dumps(
        {"objects": [{"index": i, "size": len(b), "sha256": d} for i, b, d in objects]}
    ).encode("ascii")
    return b"".join(
        [len(listing).to_bytes(LENGTH_PREFIX, "big"), listing, *(b for _, b, _ in objects)]
    )


OBJECT_FRAME = struct.Struct(">IQ")  # before each object of a batch: its index and its size


def object_frame(index: int, size: int) -> bytes:
    """What precedes object `index` (`size` sealed bytes) in a batch download's body."""
    return OBJECT_FRAME.pack(index, size)


def read_object_frame(frame: bytes) -> tuple[int, int]:
    """Inverse of `object_frame`: (index, size). `frame` is `OBJECT_FRAME.size` bytes."""
    index, size = OBJECT_FRAME.unpack(frame)
    return int(index), int(size)


# -- bytes in JSON ---------------------------------------------------------------------------


def b64encode_text(data: bytes) -> str:
    """`data` as standard base64 with padding (RFC 4648 section 4), the one text form of bytes in
    JSON bodies and state files."""
    return base64.b64encode(data).decode("ascii")


def b64decode_text(text: str) -> bytes:
    """Inverse of `b64encode_text`, strict: ValueError (`binascii.Error` is one) unless `text` is
    standard base64 with correct padding and no other characters, whitespace included. Only the
    one spelling `b64encode_text` gives is taken (no surplus `=`, no stray bits in the last
    symbol), so the same bytes never arrive as two different texts."""
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return data
