"""The encrypted manifest: what a transfer contains, record by record.

Each record is one JSON document (UTF-8, keys sorted, no spaces) sealed with AES-256-GCM under
``manifest_key(data_key, transfer_id)``:

    nonce = 00 00 00 || seq (u64 BE) || final flag (0x01 on the closing record, else 0x00)
    aad   = b"TRSM" || 0x01 (format version) || transfer id (24 ASCII bytes)
    record bytes = ciphertext || 16-byte tag

Record 0 is the study summary (``{"type": "summary", ...}``), records 1..n are entries
(``{"type": "entry", ...}``, one per sealed object) and record n+1 closes the manifest
(``{"type": "close", "entry_count": n}``, final flag set). A sender that stops following a study
still arriving before it is complete closes with ``"incomplete": true`` added: the entries are
all there is, and the study is not whole (``ManifestReader.incomplete``). The relay can drop,
reorder, replay or splice records only by failing authentication or breaking the seq order,
and it cannot cut the manifest short without the reader noticing it never closed.

Sealing is deterministic (the seq is the nonce). **A seq must never be sealed twice with
different content**: a sender that resumes with ``next_seq`` must re-send stored record bytes (or
re-create byte-identical records) for any seq the relay may already have seen.

Validation is strict on both sides: exact key sets, exact JSON types (no bool for int, no floats,
no NaN, no duplicate keys), bounded lengths, DICOM UID syntax (digits and dots, at most 64
characters; leading zeros inside components are tolerated because real modalities emit them),
lowercase hex SHA-256. Anything else raises ``ManifestEntryInvalid``.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transfer_codes.errors import (
    ManifestAlreadyClosed,
    ManifestAuthenticationFailed,
    ManifestEntryInvalid,
    ManifestIncomplete,
    ManifestOutOfOrder,
    ObjectMismatch,
    ObjectMissing,
    UnexpectedObject,
)
from transfer_codes.keys import manifest_key
from transfer_codes.tokens import is_transfer_id

MANIFEST_MAGIC = b"TRSM"
MANIFEST_VERSION = 1
TAG_SIZE = 16
MAX_RECORD_SIZE = 64 * 1024  # sealed bytes; the largest valid summary is under 54 KiB
MAX_TEXT_LENGTH = 1024
MAX_MODALITIES = 32
MAX_MODALITY_LENGTH = 16
MAX_SERIES = 64  # series listed in a summary (series_count counts them all)
MAX_SERIES_DESCRIPTION = 64  # characters: a DICOM Long String
MAX_SHORT_VALUE = 16  # characters: a DICOM Time or Decimal String
MAX_OMITTED_NAMES = 32  # file names listed in `StudySummary.omitted`; the count says the rest
MAX_FILE_NAME_LENGTH = 128
MAX_COUNT = 2**31 - 1
MAX_OBJECT_SIZE = 2**63 - 1
OBJECT_INDEX_LIMIT = 2**32
KINDS = frozenset({"dicom", "report"})

_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_NONCE_PREFIX = b"\x00\x00\x00"


def _invalid(field: str) -> ManifestEntryInvalid:
    return ManifestEntryInvalid(
        f"The list of images in this transfer contains an invalid value ({field}). Ask the "
        "sending hospital to check their trauma-relay version."
    )


def _check_int(name: str, value: object, limit: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise _invalid(name)


def _check_text(name: str, value: object, max_length: int = MAX_TEXT_LENGTH) -> None:
    if not isinstance(value, str) or len(value) > max_length:
        raise _invalid(name)
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise _invalid(name)


def _check_uid(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value == "":
        return
    if not isinstance(value, str) or len(value) > 64 or not _UID.fullmatch(value):
        raise _invalid(name)


@dataclass(frozen=True)
class SeriesSummary:
    """One series as the preview lists it: ``description`` (at most 64 characters),
    ``modality`` (at most 16), ``image_count`` and ``slice_thickness`` in mm as the images give
    it (a DICOM decimal string such as "0.625", at most 16 characters; empty when they do not
    say). Construction validates (``ManifestEntryInvalid``)."""

    description: str
    modality: str
    image_count: int
    slice_thickness: str

    def __post_init__(self) -> None:
        _check_text("series description", self.description, MAX_SERIES_DESCRIPTION)
        _check_text("series modality", self.modality, MAX_MODALITY_LENGTH)
        _check_int("series image count", self.image_count, MAX_COUNT)
        _check_text("slice thickness", self.slice_thickness, MAX_SHORT_VALUE)


@dataclass(frozen=True)
class StudySummary:
    """What the receiving site previews before import. All text fields are str (at most 1024
    characters, no control characters; empty when unknown). ``instance_count`` is the expected
    number of instances, 0 when unknown. ``series`` lists the series in the sender's order (at
    most 64; ``series_count`` counts them all) and ``study_time`` is a DICOM time (at most 16
    characters); manifests sealed before they existed lack both, read as empty. ``omitted``
    names files the sender left out because they were damaged (file names only, at most 32 of
    at most 128 characters) and ``omitted_count`` says how many were left out in all (at least
    as many as are named); both are absent from the sealed document when nothing was left out,
    as in manifests written before they existed. Construction validates
    (``ManifestEntryInvalid``)."""

    patient_name: str
    patient_id: str
    issuer_of_patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_instance_uid: str
    study_date: str
    study_description: str
    accession_number: str
    modalities: tuple[str, ...]
    series_count: int
    instance_count: int
    sending_site: str
    break_glass: bool
    series: tuple[SeriesSummary, ...] = ()
    study_time: str = ""
    omitted: tuple[str, ...] = ()
    omitted_count: int = 0

    def __post_init__(self) -> None:
        for name in (
            "patient_name",
            "patient_id",
            "issuer_of_patient_id",
            "patient_birth_date",
            "patient_sex",
            "study_date",
            "study_description",
            "accession_number",
            "sending_site",
        ):
            _check_text(name, getattr(self, name))
        _check_uid("study_instance_uid", self.study_instance_uid)
        if not isinstance(self.modalities, tuple) or len(self.modalities) > MAX_MODALITIES:
            raise _invalid("modalities")
        for modality in self.modalities:
            _check_text("modalities", modality, MAX_MODALITY_LENGTH)
        _check_int("series_count", self.series_count, MAX_COUNT)
        _check_int("instance_count", self.instance_count, MAX_COUNT)
        if not isinstance(self.break_glass, bool):
            raise _invalid("break_glass")
        if not isinstance(self.series, tuple) or len(self.series) > MAX_SERIES:
            raise _invalid("series")
        if not all(isinstance(item, SeriesSummary) for item in self.series):
            raise _invalid("series")
        _check_text("study_time", self.study_time, MAX_SHORT_VALUE)
        if not isinstance(self.omitted, tuple) or len(self.omitted) > MAX_OMITTED_NAMES:
            raise _invalid("omitted")
        for name in self.omitted:
            _check_text("omitted", name, MAX_FILE_NAME_LENGTH)
        _check_int("omitted_count", self.omitted_count, MAX_COUNT)
        if self.omitted_count < len(self.omitted):
            raise _invalid("omitted_count")


@dataclass(frozen=True)
class ManifestEntry:
    """One sealed object: its ``index`` (u32), DICOM identity, plaintext ``size`` in bytes and
    ``sha256`` (lowercase hex) of the plaintext, and ``kind`` ("dicom" or "report"). For a
    "report" the UID fields may be empty. Construction validates (``ManifestEntryInvalid``)."""

    index: int
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    size: int
    sha256: str
    kind: str

    def __post_init__(self) -> None:
        _check_int("index", self.index, OBJECT_INDEX_LIMIT - 1)
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise _invalid("kind")
        for name in (
            "sop_instance_uid",
            "series_instance_uid",
            "study_instance_uid",
            "sop_class_uid",
            "transfer_syntax_uid",
        ):
            _check_uid(name, getattr(self, name), optional=self.kind == "report")
        _check_int("size", self.size, MAX_OBJECT_SIZE)
        if not isinstance(self.sha256, str) or not _SHA256_HEX.fullmatch(self.sha256):
            raise _invalid("sha256")


def _nonce(seq: int, final: bool) -> bytes:
    return _NONCE_PREFIX + seq.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def _aad(transfer_id: str) -> bytes:
    if not is_transfer_id(transfer_id):
        raise ValueError("transfer_id must be 24 uppercase Crockford base32 symbols")
    return MANIFEST_MAGIC + bytes([MANIFEST_VERSION]) + transfer_id.encode("ascii")


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _summary_document(summary: StudySummary) -> dict[str, Any]:
    document = asdict(summary)
    document["modalities"] = list(summary.modalities)
    document["omitted"] = list(summary.omitted)
    document["type"] = "summary"
    # A field at its default is left out: a complete study seals as it did before the field
    # existed, so older readers (which want exact key sets) and resumed uploads agree.
    for f in fields(StudySummary):
        if f.default is not MISSING and getattr(summary, f.name) == f.default:
            del document[f.name]
    return document


def _entry_document(entry: ManifestEntry) -> dict[str, Any]:
    document = asdict(entry)
    document["type"] = "entry"
    return document


class ManifestWriter:
    """Produces the sealed records of one transfer's manifest, in order.

    ``next_seq`` resumes a manifest whose records 0..next_seq-1 were already written (see the
    module doc on never re-sealing a seq with other content). Each method returns
    ``(seq, record bytes)``. Order errors raise ``ManifestOutOfOrder`` (summary not at seq 0,
    entry or close before the summary), use after ``close`` raises ``ManifestAlreadyClosed``, a
    repeated index (within this writer's lifetime) raises ``ManifestEntryInvalid``.
    """

    def __init__(self, data_key: bytes, transfer_id: str, next_seq: int = 0) -> None:
        if not 0 <= next_seq < 2**64:
            raise ValueError("next_seq must be in 0..2**64-1")
        self._aad = _aad(transfer_id)
        self._aead = AESGCM(manifest_key(data_key, transfer_id))
        self._next_seq = next_seq
        self._indices: set[int] = set()
        self._closed = False

    @property
    def next_seq(self) -> int:
        """The seq the next record will get."""
        return self._next_seq

    def _seal(self, document: dict[str, Any], final: bool = False) -> tuple[int, bytes]:
        plaintext = _encode(document)
        if len(plaintext) + TAG_SIZE > MAX_RECORD_SIZE:
            raise _invalid("record too large")
        seq = self._next_seq
        record = self._aead.encrypt(_nonce(seq, final), plaintext, self._aad)
        self._next_seq += 1
        return seq, record

    def _check_open(self) -> None:
        if self._closed:
            raise ManifestAlreadyClosed()

    def summary(self, summary: StudySummary) -> tuple[int, bytes]:
        """Record 0: the study summary."""
        self._check_open()
        if self._next_seq != 0:
            raise ManifestOutOfOrder("The study summary must be the first manifest record.")
        return self._seal(_summary_document(summary))

    def entry(self, entry: ManifestEntry) -> tuple[int, bytes]:
        """The next entry record."""
        self._check_open()
        if self._next_seq == 0:
            raise ManifestOutOfOrder("The study summary must come before any entry.")
        if entry.index in self._indices:
            raise _invalid(f"index {entry.index} listed twice")
        sealed = self._seal(_entry_document(entry))
        self._indices.add(entry.index)
        return sealed

    def close(self, *, incomplete: bool = False) -> tuple[int, bytes]:
        """The closing record (final flag set), carrying the number of entries (seq - 1);
        `incomplete` when the sender stopped before the study was complete."""
        self._check_open()
        if self._next_seq == 0:
            raise ManifestOutOfOrder("The study summary must come before closing the manifest.")
        document: dict[str, Any] = {"type": "close", "entry_count": self._next_seq - 1}
        if incomplete:  # absent otherwise: a whole study closes as it always did
            document["incomplete"] = True
        sealed = self._seal(document, final=True)
        self._closed = True
        return sealed


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _invalid(f"duplicate key {key!r}")
        document[key] = value
    return document


def _reject_constant(name: str) -> Any:
    raise _invalid(name)


def _reject_float(text: str) -> Any:
    raise _invalid("number " + text)


def _decode(plaintext: bytes) -> dict[str, Any]:
    try:
        document = json.loads(
            plaintext.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_float=_reject_float,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _invalid("not JSON") from None
    if not isinstance(document, dict):
        raise _invalid("not a JSON object")
    return document


def _build(cls: type[Any], document: dict[str, Any]) -> Any:
    """`cls` from `document`: every field without a default must be there (fields added later
    have one, so older documents still read), and nothing else."""
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING}
    if not required <= set(document) - {"type"} <= names:
        raise _invalid("fields")
    values = {name: document[name] for name in names if name in document}
    for name in ("modalities", "series", "omitted"):
        if name in values:
            if not isinstance(values[name], list):
                raise _invalid(name)
            values[name] = tuple(values[name])
    if "series" in values:
        if not all(isinstance(item, dict) and "type" not in item for item in values["series"]):
            raise _invalid("series")
        values["series"] = tuple(_build(SeriesSummary, item) for item in values["series"])
    return cls(**values)


class ManifestReader:
    """Authenticates and checks manifest records as they arrive, in seq order 0, 1, 2, ...

    ``add`` raises (and leaves the reader unchanged): ``ManifestAlreadyClosed`` after the
    closing record, ``ManifestOutOfOrder`` if ``seq`` is not the next one,
    ``ManifestAuthenticationFailed`` if the record does not authenticate as that seq (with either
    final flag), ``ManifestEntryInvalid`` for a malformed document, a record of the wrong type for
    its place, a repeated entry index or a wrong entry count in the closing record.
    """

    def __init__(self, data_key: bytes, transfer_id: str) -> None:
        self._aad = _aad(transfer_id)
        self._aead = AESGCM(manifest_key(data_key, transfer_id))
        self._next_seq = 0
        self._summary: StudySummary | None = None
        self._entries: dict[int, ManifestEntry] = {}
        self._expected_count: int | None = None
        self._incomplete = False

    @property
    def summary(self) -> StudySummary | None:
        """The study summary, once record 0 has been added."""
        return self._summary

    @property
    def entries(self) -> dict[int, ManifestEntry]:
        """Entries received so far, by object index (a copy)."""
        return dict(self._entries)

    @property
    def closed(self) -> bool:
        """True once the closing record has been added: ``entries`` is then complete."""
        return self._expected_count is not None

    @property
    def incomplete(self) -> bool:
        """True when the closing record says the sender stopped before the study was complete:
        the entries are all there is, and the study is not whole."""
        return self._incomplete

    @property
    def expected_count(self) -> int | None:
        """The number of entries announced by the closing record; None before it arrives."""
        return self._expected_count

    @property
    def next_seq(self) -> int:
        """The seq ``add`` expects next (the number of records accepted so far)."""
        return self._next_seq

    def _open(self, seq: int, record: bytes) -> tuple[bool, bytes]:
        for final in (False, True):
            try:
                return final, self._aead.decrypt(_nonce(seq, final), record, self._aad)
            except InvalidTag:
                continue
        raise ManifestAuthenticationFailed()

    def add(self, seq: int, record: bytes) -> None:
        """Authenticate, check and take in record ``seq``."""
        if self.closed:
            raise ManifestAlreadyClosed()
        if seq != self._next_seq:
            raise ManifestOutOfOrder()
        if len(record) > MAX_RECORD_SIZE:
            raise _invalid("record too large")
        if len(record) < TAG_SIZE:
            raise ManifestAuthenticationFailed()
        final, plaintext = self._open(seq, record)
        document = _decode(plaintext)
        kind = document.get("type")
        if final:
            keys = set(document) - {"incomplete"}
            if kind != "close" or keys != {"type", "entry_count"} or seq == 0:
                raise _invalid("closing record")
            if document.get("incomplete", True) is not True:
                raise _invalid("incomplete")
            count = document["entry_count"]
            _check_int("entry_count", count, MAX_COUNT)
            if count != seq - 1 or count != len(self._entries):
                raise _invalid("entry_count")
            self._expected_count = count
            self._incomplete = "incomplete" in document
        elif seq == 0:
            if kind != "summary":
                raise _invalid("first record is not the study summary")
            self._summary = _build(StudySummary, document)
        else:
            if kind != "entry":
                raise _invalid("record is not an entry")
            entry: ManifestEntry = _build(ManifestEntry, document)
            if entry.index in self._entries:
                raise _invalid(f"index {entry.index} listed twice")
            self._entries[entry.index] = entry
        self._next_seq += 1

    def verify_object(self, index: int, plaintext: bytes) -> ManifestEntry:
        """The entry for ``index`` if ``plaintext`` has its size and SHA-256.

        Raises ``UnexpectedObject`` if no entry lists ``index`` (before the manifest is closed it
        may simply not have arrived yet) and ``ObjectMismatch`` on a size or hash difference.
        """
        entry = self._entries.get(index)
        if entry is None:
            raise UnexpectedObject()
        if len(plaintext) != entry.size or hashlib.sha256(plaintext).hexdigest() != entry.sha256:
            raise ObjectMismatch()
        return entry

    def missing(self, received: set[int]) -> set[int]:
        """Indices listed so far that are not in ``received``."""
        return set(self._entries) - received

    def check_complete(self, received: set[int]) -> None:
        """Return only if the manifest is closed and every listed object is in ``received``.

        Raises ``ManifestIncomplete`` before the closing record and ``ObjectMissing`` (with
        ``.missing``) if listed objects have not been received.
        """
        if not self.closed:
            raise ManifestIncomplete()
        missing = self.missing(received)
        if missing:
            raise ObjectMissing(missing)
