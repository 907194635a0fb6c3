"""The encrypted manifest: layout, round trips, order, strict validation, object checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

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
from transfer_codes.manifest import (
    MAX_FILE_NAME_LENGTH,
    MAX_MODALITIES,
    MAX_MODALITY_LENGTH,
    MAX_OMITTED_NAMES,
    MAX_RECORD_SIZE,
    MAX_TEXT_LENGTH,
    ManifestEntry,
    ManifestReader,
    ManifestWriter,
    SeriesSummary,
    StudySummary,
)

DATA_KEY = bytes(range(32))
TRANSFER = "0123456789ABCDEFGHJKMNPQ"
OTHER_TRANSFER = "QPNMKJHGFEDCBA9876543210"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"

SUMMARY = StudySummary(
    patient_name="Müller^Hans",
    patient_id="PID-1",
    issuer_of_patient_id="ER-HOSPITAL",
    patient_birth_date="19700101",
    patient_sex="M",
    study_instance_uid=STUDY_UID,
    study_date="20261129",
    study_description="CT POLYTRAUMA",
    accession_number="A123",
    modalities=("CT", "SR"),
    series_count=2,
    instance_count=3,
    sending_site="ER Hospital",
    break_glass=False,
    series=(
        SeriesSummary("AXIAL 0.625MM", "CT", 2, "0.625"),
        SeriesSummary("Dose report", "SR", 1, ""),
    ),
    study_time="031500.25",
)


def object_bytes(index: int) -> bytes:
    return f"DICM object {index}".encode() * (index + 1)


def entry(index: int, kind: str = "dicom") -> ManifestEntry:
    data = object_bytes(index)
    return ManifestEntry(
        index=index,
        sop_instance_uid=f"{STUDY_UID}.2.{index}",
        series_instance_uid=f"{STUDY_UID}.1",
        study_instance_uid=STUDY_UID,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        kind=kind,
    )


def write(entries: list[ManifestEntry], close: bool = True) -> list[tuple[int, bytes]]:
    writer = ManifestWriter(DATA_KEY, TRANSFER)
    records = [writer.summary(SUMMARY)] + [writer.entry(e) for e in entries]
    if close:
        records.append(writer.close())
    return records


def read(records: list[tuple[int, bytes]]) -> ManifestReader:
    reader = ManifestReader(DATA_KEY, TRANSFER)
    for seq, record in records:
        reader.add(seq, record)
    return reader


def seal_document(seq: int, document: Any, final: bool = False, raw: bytes | None = None) -> bytes:
    """A record written by hand from the spec."""
    plaintext = raw if raw is not None else json.dumps(document).encode()
    nonce = b"\x00\x00\x00" + seq.to_bytes(8, "big") + bytes([final])
    aad = b"TRSM\x01" + TRANSFER.encode()
    return AESGCM(manifest_key(DATA_KEY, TRANSFER)).encrypt(nonce, plaintext, aad)


def summary_document(summary: StudySummary = SUMMARY) -> dict[str, Any]:
    """The spec's summary document: `omitted` and `omitted_count` only when files were left
    out (so a complete study's summary is the one written before they existed)."""
    document = dataclasses.asdict(summary)
    document["modalities"] = list(summary.modalities)
    document["series"] = [dataclasses.asdict(s) for s in summary.series]
    document["omitted"] = list(summary.omitted)
    document["type"] = "summary"
    if not summary.omitted_count:
        del document["omitted"], document["omitted_count"]
    return document


def entry_document(index: int = 0) -> dict[str, Any]:
    document = dataclasses.asdict(entry(index))
    document["type"] = "entry"
    return document


def reader_after_summary() -> ManifestReader:
    reader = ManifestReader(DATA_KEY, TRANSFER)
    reader.add(0, seal_document(0, summary_document()))
    return reader


# --- layout and round trip --------------------------------------------------------------------


def test_records_follow_the_spec() -> None:
    """Each record decrypts by hand: nonce = 3 zero bytes || u64 seq || final flag,
    aad = b"TRSM" || 0x01 || transfer id; canonical JSON inside."""
    records = write([entry(0), entry(1)])
    assert [seq for seq, _ in records] == [0, 1, 2, 3]
    aead = AESGCM(manifest_key(DATA_KEY, TRANSFER))
    aad = b"TRSM\x01" + TRANSFER.encode()
    documents = []
    for seq, record in records:
        final = seq == 3
        nonce = b"\x00\x00\x00" + seq.to_bytes(8, "big") + bytes([final])
        plaintext = aead.decrypt(nonce, record, aad)
        document = json.loads(plaintext)
        assert plaintext == json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        documents.append(document)
    assert documents[0] == summary_document()
    assert documents[1] == entry_document(0)
    assert documents[3] == {"type": "close", "entry_count": 2}


def test_close_record_known_answer() -> None:
    writer = ManifestWriter(DATA_KEY, TRANSFER, next_seq=3)
    seq, record = writer.close()
    assert seq == 3
    assert record == seal_document(3, None, final=True, raw=b'{"entry_count":2,"type":"close"}')


def test_round_trip() -> None:
    entries = [entry(0), entry(1), entry(5, kind="report")]
    reader = read(write(entries))
    assert reader.summary == SUMMARY
    assert reader.entries == {e.index: e for e in entries}
    assert reader.closed
    assert reader.expected_count == 3
    assert reader.next_seq == 5


def test_writer_is_deterministic_and_resumable() -> None:
    full = write([entry(0), entry(1), entry(2)])
    assert write([entry(0), entry(1), entry(2)]) == full
    resumed = ManifestWriter(DATA_KEY, TRANSFER, next_seq=2)
    assert resumed.next_seq == 2
    assert [resumed.entry(entry(1)), resumed.entry(entry(2)), resumed.close()] == full[2:]


entries_strategy = st.lists(
    st.integers(min_value=0, max_value=2**32 - 1), unique=True, max_size=12
).map(lambda indices: [entry(i % 50) if i < 50 else dataclasses.replace(entry(0), index=i)
                       for i in indices])  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(entries=entries_strategy, close=st.booleans())
def test_write_read_property(entries: list[ManifestEntry], close: bool) -> None:
    unique = list({e.index: e for e in entries}.values())
    reader = read(write(unique, close=close))
    assert reader.entries == {e.index: e for e in unique}
    assert reader.closed is close
    assert reader.expected_count == (len(unique) if close else None)
    assert reader.missing(set()) == {e.index for e in unique}


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=64),
    count=st.integers(min_value=0, max_value=2**31 - 1),
    break_glass=st.booleans(),
)
def test_summary_text_round_trips(text: str, count: int, break_glass: bool) -> None:
    summary = dataclasses.replace(
        SUMMARY, patient_name=text, study_description=text[::-1], instance_count=count,
        break_glass=break_glass, modalities=(),
    )  # fmt: skip
    writer = ManifestWriter(DATA_KEY, TRANSFER)
    reader = ManifestReader(DATA_KEY, TRANSFER)
    reader.add(*writer.summary(summary))
    assert reader.summary == summary


# --- order ------------------------------------------------------------------------------------


def test_records_must_come_in_seq_order() -> None:
    records = write([entry(0), entry(1)])
    reader = ManifestReader(DATA_KEY, TRANSFER)
    with pytest.raises(ManifestOutOfOrder):
        reader.add(*records[1])
    reader.add(*records[0])
    with pytest.raises(ManifestOutOfOrder):
        reader.add(*records[0])  # replay
    with pytest.raises(ManifestOutOfOrder):
        reader.add(*records[2])  # skips seq 1
    reader.add(*records[1])
    assert reader.next_seq == 2


def test_record_presented_under_another_seq_fails_authentication() -> None:
    records = write([entry(0), entry(1)])
    reader = read(records[:1])
    with pytest.raises(ManifestAuthenticationFailed):
        reader.add(1, records[2][1])
    reader.add(*records[1])  # the reader is unchanged by the failure


def test_nothing_is_accepted_after_close() -> None:
    records = write([entry(0)])
    reader = read(records)
    with pytest.raises(ManifestAlreadyClosed):
        reader.add(len(records), seal_document(len(records), entry_document(3)))


def test_writer_order_rules() -> None:
    writer = ManifestWriter(DATA_KEY, TRANSFER)
    with pytest.raises(ManifestOutOfOrder):
        writer.entry(entry(0))
    with pytest.raises(ManifestOutOfOrder):
        writer.close()
    writer.summary(SUMMARY)
    with pytest.raises(ManifestOutOfOrder):
        writer.summary(SUMMARY)
    writer.entry(entry(0))
    with pytest.raises(ManifestEntryInvalid):
        writer.entry(entry(0))
    assert writer.close()[0] == 2
    with pytest.raises(ManifestAlreadyClosed):
        writer.entry(entry(1))
    with pytest.raises(ManifestAlreadyClosed):
        writer.close()


# --- authentication ---------------------------------------------------------------------------


def test_every_flipped_byte_fails_authentication() -> None:
    seq, record = write([entry(0)])[1]
    reader = reader_after_summary()
    for position in range(len(record)):
        damaged = bytearray(record)
        damaged[position] ^= 0x01
        with pytest.raises(ManifestAuthenticationFailed):
            reader.add(seq, bytes(damaged))
    reader.add(seq, record)


def test_records_of_another_transfer_or_key_fail() -> None:
    other = ManifestWriter(DATA_KEY, OTHER_TRANSFER).summary(SUMMARY)
    with pytest.raises(ManifestAuthenticationFailed):
        ManifestReader(DATA_KEY, TRANSFER).add(*other)
    wrong_key = ManifestWriter(bytes(32), TRANSFER).summary(SUMMARY)
    with pytest.raises(ManifestAuthenticationFailed):
        ManifestReader(DATA_KEY, TRANSFER).add(*wrong_key)
    with pytest.raises(ManifestAuthenticationFailed):
        ManifestReader(DATA_KEY, TRANSFER).add(0, b"short")


def test_oversized_record_is_refused_before_decryption() -> None:
    with pytest.raises(ManifestEntryInvalid):
        ManifestReader(DATA_KEY, TRANSFER).add(0, bytes(MAX_RECORD_SIZE + 1))


# --- strict validation ------------------------------------------------------------------------


def with_changes(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = dict(document)
    for key, value in changes.items():
        if value is ...:
            del changed[key]
        else:
            changed[key] = value
    return changed


@pytest.mark.parametrize(
    "document",
    [
        with_changes(entry_document(), extra="x"),
        with_changes(entry_document(), kind=...),
        with_changes(entry_document(), size=True),
        with_changes(entry_document(), size=1.0),
        with_changes(entry_document(), size=-1),
        with_changes(entry_document(), size="12"),
        with_changes(entry_document(), index=2**32),
        with_changes(entry_document(), index=None),
        with_changes(entry_document(), sha256="A" * 64),
        with_changes(entry_document(), sha256="0" * 63),
        with_changes(entry_document(), kind="pdf"),
        with_changes(entry_document(), sop_instance_uid="1.2..3"),
        with_changes(entry_document(), sop_instance_uid="1.2.3."),
        with_changes(entry_document(), sop_instance_uid="1.2.a"),
        with_changes(entry_document(), sop_instance_uid="1." + "2" * 63),
        with_changes(entry_document(), sop_instance_uid=""),
        with_changes(entry_document(), type="summary"),
        with_changes(entry_document(), type=...),
        with_changes(summary_document(), type="entry"),
        [entry_document()],
        "entry",
    ],
)
def test_invalid_entries_are_refused(document: Any) -> None:
    reader = reader_after_summary()
    with pytest.raises(ManifestEntryInvalid):
        reader.add(1, seal_document(1, document))
    assert reader.entries == {}
    assert reader.next_seq == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b'{"type":"entry","type":"entry"}',
        b'{"type":"close","entry_count":NaN}',
        b'{"type":"close","entry_count":1e0}',
        b"[" * 100_000,
    ],
)
def test_malformed_json_is_refused(raw: bytes) -> None:
    reader = reader_after_summary()
    with pytest.raises(ManifestEntryInvalid):
        reader.add(1, seal_document(1, None, raw=raw))


@pytest.mark.parametrize(
    "document",
    [
        with_changes(summary_document(), series_count=-1),
        with_changes(summary_document(), instance_count=False),
        with_changes(summary_document(), break_glass=0),
        with_changes(summary_document(), modalities="CT"),
        with_changes(summary_document(), modalities=["CT", 5]),
        with_changes(summary_document(), modalities=["X" * 17]),
        with_changes(summary_document(), patient_name="A" * 1025),
        with_changes(summary_document(), patient_name="bell\x07"),
        with_changes(summary_document(), study_instance_uid=""),
        with_changes(summary_document(), patient_id=...),
        with_changes(summary_document(), type="entry"),
        {"type": "close", "entry_count": 0},
        with_changes(summary_document(), series={"description": "x"}),
        with_changes(summary_document(), series=["AXIAL"]),
        with_changes(summary_document(), series=[{"description": "AXIAL", "modality": "CT"}]),
        with_changes(
            summary_document(),
            series=[{**summary_document()["series"][0], "image_count": -1}],
        ),
        with_changes(
            summary_document(), series=[{**summary_document()["series"][0], "type": "entry"}]
        ),
        with_changes(summary_document(), series=[{**summary_document()["series"][0], "extra": 1}]),
        with_changes(
            summary_document(),
            series=[{**summary_document()["series"][0], "slice_thickness": "1" * 17}],
        ),
        with_changes(summary_document(), series=[summary_document()["series"][0]] * 65),
        with_changes(summary_document(), study_time=31500),
        with_changes(summary_document(), study_time="0" * 17),
    ],
)
def test_invalid_summaries_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ManifestEntryInvalid):
        ManifestReader(DATA_KEY, TRANSFER).add(0, seal_document(0, document))


def test_a_summary_sealed_before_series_and_study_time_still_reads() -> None:
    """Manifests sealed by an older sender lack `series` and `study_time`: read as empty."""
    document = summary_document()
    del document["series"], document["study_time"]
    reader = ManifestReader(DATA_KEY, TRANSFER)
    reader.add(0, seal_document(0, document))
    assert reader.summary == dataclasses.replace(SUMMARY, series=(), study_time="")


def test_the_largest_summary_fits_in_a_record() -> None:
    """Every field at its limit, in three-byte UTF-8 characters, still seals."""
    wide = "\u20ac"
    series = SeriesSummary(wide * 64, wide * 16, 2**31 - 1, wide * 16)
    largest = StudySummary(
        *([wide * 1024] * 5),
        study_instance_uid="1" * 64,
        study_date=wide * 1024,
        study_description=wide * 1024,
        accession_number=wide * 1024,
        modalities=(wide * 16,) * 32,
        series_count=2**31 - 1,
        instance_count=2**31 - 1,
        sending_site=wide * 1024,
        break_glass=True,
        series=(series,) * 64,
        study_time=wide * 16,
    )
    seq, record = ManifestWriter(DATA_KEY, TRANSFER).summary(largest)
    assert len(record) <= MAX_RECORD_SIZE
    reader = ManifestReader(DATA_KEY, TRANSFER)
    reader.add(seq, record)
    assert reader.summary == largest


def test_summary_must_not_be_final_or_closing() -> None:
    with pytest.raises(ManifestEntryInvalid):
        ManifestReader(DATA_KEY, TRANSFER).add(0, seal_document(0, summary_document(), True))


def test_close_needs_the_final_flag_and_flag_needs_close() -> None:
    reader = reader_after_summary()
    with pytest.raises(ManifestEntryInvalid):
        reader.add(1, seal_document(1, {"type": "close", "entry_count": 0}, final=False))
    with pytest.raises(ManifestEntryInvalid):
        reader.add(1, seal_document(1, entry_document(), final=True))
    reader.add(1, seal_document(1, {"type": "close", "entry_count": 0}, final=True))
    assert reader.closed
    assert reader.expected_count == 0


@pytest.mark.parametrize(
    "document",
    [
        {"type": "close", "entry_count": 2},
        {"type": "close", "entry_count": 0},
        {"type": "close", "entry_count": True},
        {"type": "close", "entry_count": 1, "extra": 1},
        {"type": "close"},
    ],
)
def test_close_count_must_match(document: dict[str, Any]) -> None:
    reader = reader_after_summary()
    reader.add(1, seal_document(1, entry_document(0)))
    with pytest.raises(ManifestEntryInvalid):
        reader.add(2, seal_document(2, document, final=True))
    assert not reader.closed


def test_duplicate_entry_index_is_refused_by_the_reader() -> None:
    reader = reader_after_summary()
    reader.add(1, seal_document(1, entry_document(4)))
    duplicate = with_changes(entry_document(4), sop_instance_uid=f"{STUDY_UID}.9")
    with pytest.raises(ManifestEntryInvalid, match="listed twice"):
        reader.add(2, seal_document(2, duplicate))


def test_dataclasses_validate_on_construction() -> None:
    with pytest.raises(ManifestEntryInvalid):
        dataclasses.replace(entry(0), sha256="xyz")
    with pytest.raises(ManifestEntryInvalid):
        dataclasses.replace(SUMMARY, modalities=["CT"])  # type: ignore[arg-type]
    report = dataclasses.replace(entry(0, kind="report"), sop_class_uid="", transfer_syntax_uid="")
    assert report.kind == "report"
    with pytest.raises(ManifestEntryInvalid):
        dataclasses.replace(entry(0), sop_class_uid="")
    assert isinstance(ManifestEntryInvalid(), ValueError)


def test_leading_zero_uid_components_are_tolerated() -> None:
    """Real modalities emit them; refusing would block a trauma transfer over a cosmetic flaw."""
    assert dataclasses.replace(entry(0), sop_instance_uid="1.2.840.0001.5").index == 0


# --- objects ----------------------------------------------------------------------------------


def test_verify_object() -> None:
    reader = read(write([entry(0), entry(1)]))
    assert reader.verify_object(1, object_bytes(1)) == entry(1)
    with pytest.raises(ObjectMismatch):
        reader.verify_object(1, object_bytes(1)[:-1])
    same_size = bytearray(object_bytes(1))
    same_size[0] ^= 1
    with pytest.raises(ObjectMismatch):
        reader.verify_object(1, bytes(same_size))
    with pytest.raises(ObjectMismatch):
        reader.verify_object(0, object_bytes(1))
    with pytest.raises(UnexpectedObject):
        reader.verify_object(2, object_bytes(2))


def test_missing_and_completeness() -> None:
    records = write([entry(0), entry(1), entry(2)])
    reader = read(records[:-1])
    assert reader.missing({0}) == {1, 2}
    with pytest.raises(ManifestIncomplete):
        reader.check_complete({0, 1, 2})
    reader.add(*records[-1])
    with pytest.raises(ObjectMissing) as raised:
        reader.check_complete({0})
    assert raised.value.missing == frozenset({1, 2})
    assert "2 image(s)" in str(raised.value)
    reader.check_complete({0, 1, 2})
    assert reader.missing({0, 1, 2}) == set()


def test_entries_property_is_a_copy() -> None:
    reader = read(write([entry(0)]))
    reader.entries.clear()
    assert list(reader.entries) == [0]


# --- files the ER left out (damaged) -------------------------------------------------------------

INCOMPLETE = dataclasses.replace(SUMMARY, omitted=("IM0003", "IM0007"), omitted_count=2)


def test_files_left_out_travel_in_the_sealed_summary() -> None:
    writer = ManifestWriter(DATA_KEY, TRANSFER)
    reader = ManifestReader(DATA_KEY, TRANSFER)
    reader.add(*writer.summary(INCOMPLETE))
    assert reader.summary == INCOMPLETE
    assert summary_document(INCOMPLETE)["omitted"] == ["IM0003", "IM0007"]


def test_a_summary_from_before_the_omitted_fields_reads_as_complete() -> None:
    document = summary_document()
    assert "omitted" not in document
    assert "omitted_count" not in document
    reader = ManifestReader(DATA_KEY, TRANSFER)
    reader.add(0, seal_document(0, document))
    assert reader.summary is not None
    assert (reader.summary.omitted, reader.summary.omitted_count) == ((), 0)


def test_a_complete_study_seals_exactly_as_before() -> None:
    """Older readers want exact key sets, and a resumed upload must re-seal identical bytes."""
    writer = ManifestWriter(DATA_KEY, TRANSFER)
    raw = json.dumps(summary_document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert writer.summary(SUMMARY) == (0, seal_document(0, None, raw=raw.encode("utf-8")))


@pytest.mark.parametrize(
    "document",
    [
        with_changes(summary_document(INCOMPLETE), omitted="IM0003"),
        with_changes(summary_document(INCOMPLETE), omitted=["IM0003", 7]),
        with_changes(summary_document(INCOMPLETE), omitted=["IM\n0003"]),
        with_changes(summary_document(INCOMPLETE), omitted=["X" * (MAX_FILE_NAME_LENGTH + 1)]),
        with_changes(summary_document(INCOMPLETE), omitted=["X"] * (MAX_OMITTED_NAMES + 1)),
        with_changes(summary_document(INCOMPLETE), omitted_count=1),
        with_changes(summary_document(INCOMPLETE), omitted_count=True),
        with_changes(summary_document(INCOMPLETE), omitted_count=-1),
        with_changes(summary_document(INCOMPLETE), omitted_files=["IM0003"]),
    ],
)
def test_invalid_lists_of_files_left_out_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(ManifestEntryInvalid):
        ManifestReader(DATA_KEY, TRANSFER).add(0, seal_document(0, document))


def test_the_largest_valid_summary_fits_one_record() -> None:
    widest = "\U0001f600" * MAX_TEXT_LENGTH  # four UTF-8 bytes a character
    largest = StudySummary(
        patient_name=widest,
        patient_id=widest,
        issuer_of_patient_id=widest,
        patient_birth_date=widest,
        patient_sex=widest,
        study_instance_uid="1." + "2" * 62,
        study_date=widest,
        study_description=widest,
        accession_number=widest,
        modalities=("\U0001f600" * MAX_MODALITY_LENGTH,) * MAX_MODALITIES,
        series_count=2**31 - 1,
        instance_count=2**31 - 1,
        sending_site=widest,
        break_glass=True,
        omitted=("\U0001f600" * MAX_FILE_NAME_LENGTH,) * MAX_OMITTED_NAMES,
        omitted_count=2**31 - 1,
    )
    reader = ManifestReader(DATA_KEY, TRANSFER)
    reader.add(*ManifestWriter(DATA_KEY, TRANSFER).summary(largest))
    assert reader.summary == largest


# --- a study the sender stopped following before it was complete ------------------------------


def test_a_close_marked_incomplete_says_the_study_is_not_whole() -> None:
    writer = ManifestWriter(DATA_KEY, TRANSFER)
    records = [writer.summary(SUMMARY), writer.entry(entry(0)), writer.close(incomplete=True)]
    reader = read(records)
    assert reader.closed
    assert reader.incomplete
    assert reader.expected_count == 1
    sealed = b'{"entry_count":1,"incomplete":true,"type":"close"}'
    assert records[-1][1] == seal_document(2, None, final=True, raw=sealed)


def test_a_whole_study_closes_as_before_and_is_not_incomplete() -> None:
    reader = read(write([entry(0)]))
    assert reader.closed
    assert not reader.incomplete
    sealed = b'{"entry_count":1,"type":"close"}'
    assert write([entry(0)])[-1][1] == seal_document(2, None, final=True, raw=sealed)


@pytest.mark.parametrize("value", [False, 1, "yes", None])
def test_incomplete_is_true_or_absent(value: object) -> None:
    reader = reader_after_summary()
    reader.add(1, seal_document(1, entry_document(0)))
    document = {"type": "close", "entry_count": 1, "incomplete": value}
    with pytest.raises(ManifestEntryInvalid):
        reader.add(2, seal_document(2, document, final=True))
    assert not reader.closed
