"""The relay's database upgrades in place: a version 3 database (before `revoked_by`) opens at
the latest version, keeps its transfers, and reports who revoked as unknown where it was not
recorded."""

from __future__ import annotations

import dataclasses
import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from relay.desk.documents import status_document
from relay.lifecycle import Revoker, State
from relay.storage.sqlite import SqliteMetadata

SCHEMA = resources.files("relay.storage") / "schema"
T0 = 1_800_000_000.0


def _version_3(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        for name in ("001_initial.sql", "002_phone.sql", "003_redemption.sql"):
            db.executescript((SCHEMA / name).read_text(encoding="utf-8"))
        db.execute("PRAGMA user_version = 3")
        for name, role in (("st-mary-er", "sending"), ("county-trauma", "receiving")):
            db.execute(
                "INSERT INTO sites VALUES (?, ?, ?, ?, ?)", (name, role, name, name.encode(), T0)
            )
        db.execute(
            "INSERT INTO transfers (id, sender, recipient, locator, state, created_at, "
            "expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("0" * 24, "st-mary-er", "county-trauma", 7, "revoked", T0, T0 + 3600, T0 + 60),
        )
        db.commit()
    finally:
        db.close()


@pytest.mark.asyncio
async def test_a_version_3_database_gains_revoked_by(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    _version_3(path)
    store = await SqliteMetadata.open(path)
    try:
        async with store.transaction() as tx:
            old = await tx.transfer("0" * 24)
            assert old is not None
            assert (old.state, old.revoked_at, old.revoked_by) == (State.REVOKED, T0 + 60, None)
            document = await status_document(tx, old, T0 + 120)
            assert (document["revoked_by"], document["declined"]) == (None, False)
            # A revocation recorded from now on keeps who made it.
            await tx.save_transfer(dataclasses.replace(old, revoked_by=Revoker.FAMILY))
            again = await tx.transfer("0" * 24)
            assert again is not None
            assert again.revoked_by == Revoker.FAMILY
    finally:
        await store.close()
    db = sqlite3.connect(path)
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE transfers SET revoked_by = 'someone'")
    finally:
        db.close()
    assert version == max(
        int(p.name.split("_", 1)[0]) for p in SCHEMA.iterdir() if p.name.endswith(".sql")
    )
    assert version >= 4


@pytest.mark.asyncio
async def test_an_upgraded_database_counts_the_bytes_it_already_held(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    _version_3(path)
    db = sqlite3.connect(path)
    try:
        db.execute("UPDATE transfers SET state = 'created'")
        db.executemany(
            "INSERT INTO objects (transfer_id, idx, durable_offset) VALUES (?, ?, ?)",
            [("0" * 24, 0, 1000), ("0" * 24, 1, 234)],
        )
        db.commit()
    finally:
        db.close()
    store = await SqliteMetadata.open(path)
    try:
        async with store.transaction() as tx:
            assert await tx.stored_bytes(transfer_id="0" * 24) == 1234
            assert await tx.stored_bytes(sender="st-mary-er") == 1234
            await tx.set_durable_offset("0" * 24, 1, 500)  # a later chunk
            await tx.set_durable_offset("0" * 24, 2, 6)  # a new object
            assert await tx.stored_bytes() == 1506
    finally:
        await store.close()
