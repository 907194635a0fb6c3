"""Acceptance: whatever a relay (or someone with its disk) does to a transfer's stored objects or
manifest after the push, redeem refuses with a clear message and nothing reaches the PACS."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from peers.storage_scp import RecordingStorageSCP

from e2e.harness import E2ERelay, pacs_address
from sending_site.synthetic import make_ct_study

INSTANCES = 3
TAG = 16  # bytes of GCM tag closing every sealed chunk
HEADER = 38  # bytes of sealed-object header


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _set_object(relay: E2ERelay, tid: str, index: int) -> None:
    """Make the relay's own bookkeeping agree with the altered file, as a relay that meant to
    cheat would: only the cryptography is left to catch it."""
    path = relay.object_path(tid, index)
    data = path.read_bytes()
    relay.execute(
        "UPDATE objects SET size = ?, durable_offset = ?, sha256 = ? WHERE transfer_id = ? "
        "AND idx = ?",
        len(data),
        len(data),
        hashlib.sha256(data).hexdigest(),
        tid,
        index,
    )


def flip_header(relay: E2ERelay, tid: str, other: str) -> None:
    _flip(relay.object_path(tid, 0), 10)  # the object index inside the header


def flip_middle(relay: E2ERelay, tid: str, other: str) -> None:
    path = relay.object_path(tid, 1)
    _flip(path, path.stat().st_size // 2)


def flip_last_tag(relay: E2ERelay, tid: str, other: str) -> None:
    path = relay.object_path(tid, INSTANCES - 1)
    _flip(path, path.stat().st_size - 1)


def flip_and_rehash(relay: E2ERelay, tid: str, other: str) -> None:
    _flip(relay.object_path(tid, 2), HEADER + 5)
    _set_object(relay, tid, 2)


def swap(relay: E2ERelay, tid: str, other: str) -> None:
    a, b = relay.object_path(tid, 0), relay.object_path(tid, 1)
    tmp = a.with_suffix(".swap")
    os.replace(a, tmp)
    os.replace(b, a)
    os.replace(tmp, b)


def swap_and_rehash(relay: E2ERelay, tid: str, other: str) -> None:
    swap(relay, tid, other)
    _set_object(relay, tid, 0)
    _set_object(relay, tid, 1)


def truncate_inside_chunk(relay: E2ERelay, tid: str, other: str) -> None:
    path = relay.object_path(tid, 1)
    os.truncate(path, path.stat().st_size - 1000)


def truncate_final_chunk_consistently(relay: E2ERelay, tid: str, other: str) -> None:
    """Cut the whole final chunk and tell the relay's database the shorter size: what remains
    is a run of valid chunks, none of them marked final."""
    path = relay.object_path(tid, 0)
    full = 64 * 1024 + TAG
    os.truncate(path, HEADER + 2 * full)
    _set_object(relay, tid, 0)


def object_from_other_transfer(relay: E2ERelay, tid: str, other: str) -> None:
    relay.object_path(tid, 1).write_bytes(relay.object_path(other, 1).read_bytes())
    _set_object(relay, tid, 1)


def drop_object(relay: E2ERelay, tid: str, other: str) -> None:
    relay.object_path(tid, 2).unlink()
    relay.execute("DELETE FROM objects WHERE transfer_id = ? AND idx = 2", tid)


def manifest_entry_from_other_transfer(relay: E2ERelay, tid: str, other: str) -> None:
    changed = relay.execute(
        "UPDATE manifest_records SET record = (SELECT record FROM manifest_records "
        "WHERE transfer_id = ? AND seq = 1) WHERE transfer_id = ? AND seq = 1",
        other,
        tid,
    )
    assert changed == 1


def manifest_summary_from_other_transfer(relay: E2ERelay, tid: str, other: str) -> None:
    changed = relay.execute(
        "UPDATE manifest_records SET record = (SELECT record FROM manifest_records "
        "WHERE transfer_id = ? AND seq = 0) WHERE transfer_id = ? AND seq = 0",
        other,
        tid,
    )
    assert changed == 1


def manifest_entries_swapped(relay: E2ERelay, tid: str, other: str) -> None:
    (one,), (two,) = relay.query(
        "SELECT record FROM manifest_records WHERE transfer_id = ? AND seq IN (1, 2) ORDER BY seq",
        tid,
    )
    relay.execute(
        "UPDATE manifest_records SET record = ? WHERE transfer_id = ? AND seq = 1", two, tid
    )
    relay.execute(
        "UPDATE manifest_records SET record = ? WHERE transfer_id = ? AND seq = 2", one, tid
    )


def manifest_entry_dropped(relay: E2ERelay, tid: str, other: str) -> None:
    """Drop the last entry and make the previous record look final: the close record is gone."""
    relay.execute("DELETE FROM manifest_records WHERE transfer_id = ? AND seq >= ?", tid, INSTANCES)
    relay.execute(
        "UPDATE manifest_records SET final = 1 WHERE transfer_id = ? AND seq = ?",
        tid,
        INSTANCES - 1,
    )


TAMPERING: dict[str, Callable[[E2ERelay, str, str], None]] = {
    f.__name__: f
    for f in (
        flip_header,
        flip_middle,
        flip_last_tag,
        flip_and_rehash,
        swap,
        swap_and_rehash,
        truncate_inside_chunk,
        truncate_final_chunk_consistently,
        object_from_other_transfer,
        drop_object,
        manifest_entry_from_other_transfer,
        manifest_summary_from_other_transfer,
        manifest_entries_swapped,
        manifest_entry_dropped,
    )
}


@pytest.fixture(scope="module")
def other_transfer(relay: E2ERelay, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A complete transfer of another study of the same size, to splice from."""
    work = tmp_path_factory.mktemp("other")
    make_ct_study(work / "study", INSTANCES, rows=256, columns=256, seed=99)
    tid: str = relay.push([work / "study"], workdir=work).ok().json()["transfer_id"]
    return tid


@pytest.mark.parametrize("tamper", TAMPERING)
def test_tampered_transfer_is_refused_and_nothing_reaches_the_pacs(
    tamper: str,
    relay: E2ERelay,
    other_transfer: str,
    storage_scp: RecordingStorageSCP,
    tmp_path: Path,
) -> None:
    # 256 x 256 slices: three sealed chunks per object (64 KiB plaintext each, the last short).
    make_ct_study(tmp_path / "study", INSTANCES, rows=256, columns=256, seed=7)
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)

    TAMPERING[tamper](relay, pushed["transfer_id"], other_transfer)
    run = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(storage_scp))

    run.failed()
    assert "Nothing was stored" in run.message, run.describe()
    assert "Call the sending hospital" in run.message, run.describe()
    assert storage_scp.stores == []
    assert storage_scp.received == {}
