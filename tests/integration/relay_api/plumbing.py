"""What the relay API tests share: a client for the in-process relay (`Ctx`), the sending
site's side of a transfer (`Sent`) and the calls and checks the test modules make.

Key locks are real (`transfer_codes.keys`); the relay only ever sees proofs, so a "wrong code" is
any proof that does not match the stored verifier. Time is a `FakeClock` the tests move by hand.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from peers.postgres import PostgresServer
from peers.s3 import S3Bucket
from relay_harness import RECEIVER, FakeClock, Relay
from yarl import URL

from relay import errors, sweeper
from relay.appkeys import CONFIG, METADATA, OBJECTS
from relay.sites import open_store
from transfer_codes.capability import Capability
from transfer_codes.codes import LOCATOR_LIMIT, RedemptionCode
from transfer_codes.keys import (
    KeyLock,
    lock_with_capability,
    lock_with_code,
    new_data_key,
    stretch_capability,
    stretch_code,
    unwrap,
)
from transfer_codes.sealed import seal_object
from transfer_codes.tokens import new_token

PROBLEM = "urn:trauma-relay:problem:"
REFUSED = (403, PROBLEM + "code-not-accepted", errors.CodeNotAccepted().detail)


@dataclass(frozen=True)
class StoredObjects:
    """What the relay's object storage really holds, looked at directly (not through the
    relay's store): its objects folder, or its prefix in an S3 bucket."""

    folder: Path
    bucket: S3Bucket | None = None
    prefix: str = ""

    def _keys(self, transfer_id: str, index: int | None = None) -> list[str]:
        assert self.bucket is not None
        under = f"{self.prefix}/transfers/{transfer_id}/"
        return self.bucket.keys(under if index is None else f"{under}{index:08d}/")

    def holds(self, transfer_id: str) -> bool:
        """Whether anything is stored for the transfer."""
        if self.bucket is None:
            return (self.folder / transfer_id).exists()
        return bool(self._keys(transfer_id))

    def leave(self, transfer_id: str, index: int, offset: int, data: bytes) -> None:
        """Store `data` at `offset` of an object behind the relay's back, as a write whose
        answer never came (so never acknowledged) leaves it."""
        if self.bucket is None:
            path = self.folder / transfer_id / f"{index:08d}.sealed"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as f:
                f.truncate(offset)
                f.seek(offset)
                f.write(data)
            return
        key = f"{self.prefix}/transfers/{transfer_id}/{index:08d}/part-{offset:020d}"
        self.bucket.client().put_object(Bucket=self.bucket.bucket, Key=key, Body=data)

    def content(self, transfer_id: str, index: int) -> bytes:
        if self.bucket is None:
            return (self.folder / transfer_id / f"{index:08d}.sealed").read_bytes()
        bucket = self.bucket
        return b"".join(bucket.read(key) for key in sorted(self._keys(transfer_id, index)))


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def problem(self) -> tuple[int, str, str]:
        """(status, type, detail) of a problem document; fails if this is not one."""
        assert self.headers.get("Content-Type", "").startswith("application/problem+json"), self
        assert self.body["status"] == self.status
        return self.status, self.body["type"], self.body["detail"]

    @property
    def code(self) -> str:
        return str(self.problem[1]).removeprefix(PROBLEM)


@dataclass(frozen=True)
class PgDatabase:
    """The PostgreSQL database a relay under test keeps its metadata in."""

    server: PostgresServer
    name: str


@dataclass
class Ctx:
    relay: Relay
    clock: FakeClock
    http: aiohttp.ClientSession
    forwarded_for: str | None = None  # as a proxy in front of the relay would say
    pg: PgDatabase | None = None  # None: the embedded SQLite file
    objects: StoredObjects | None = None  # where the relay's sealed objects are really kept

    def stored_objects(self) -> StoredObjects:
        return self.objects or StoredObjects(self.relay.data_dir / "objects")

    @property
    def er(self) -> str:
        return self.relay.sender_credential

    @property
    def tc(self) -> str:
        return self.relay.receiver_credential

    async def call(
        self,
        method: str,
        path: str | URL,
        *,
        cred: str | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if self.forwarded_for is not None:
            all_headers.setdefault("X-Forwarded-For", self.forwarded_for)
        if cred is not None:
            all_headers["Authorization"] = f"Bearer {cred}"
        url = path if isinstance(path, URL) else self.relay.url + path
        async with self.http.request(
            method, url, json=json, data=data, headers=all_headers, params=params
        ) as response:
            raw = await response.read()
            body: Any = raw
            if response.content_type in ("application/json", "application/problem+json"):
                body = await response.json(content_type=None)
            return Reply(response.status, body, dict(response.headers))

    def db(self) -> sqlite3.Connection:
        """The embedded SQLite file (tests marked `sqlite_only`)."""
        assert self.pg is None, "a test using ctx.db() must be marked sqlite_only"
        return sqlite3.connect(self.relay.data_dir / "relay.sqlite3")

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """`sql` (with `?` placeholders) run on the relay's metadata, whichever backend."""
        if self.pg is not None:
            return self.pg.server.rows(self.pg.name, sql, *args)
        with contextlib.closing(self.db()) as db:
            return list(db.execute(sql, args).fetchall())

    async def audit_records(self) -> list[dict[str, Any]]:
        store = await open_store(self.relay.data_dir, create=False, upgrade=False)
        try:
            return await store.audit_records()
        finally:
            await store.close()


@dataclass
class Sent:
    """A transfer as the sending site knows it (it alone holds the data key)."""

    transfer_id: str
    locator: int
    expires_at: float
    data_key: bytes
    code: RedemptionCode
    capability: Capability
    token: str
    code_lock: KeyLock | None = None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def locks_body(sent: Sent) -> dict[str, Any]:
    code_lock = await asyncio.to_thread(lock_with_code, sent.data_key, sent.transfer_id, sent.code)
    sent.code_lock = code_lock
    return {
        "code": code_lock.to_json(),
        "capability": lock_with_capability(
            sent.data_key, sent.transfer_id, sent.capability
        ).to_json(),
    }


async def create_transfer(
    ctx: Ctx, *, install: bool = True, authorize: bool = True, expires_in: int | None = None
) -> Sent:
    body: dict[str, Any] = {"recipient": RECEIVER}
    if expires_in is not None:
        body["expires_in"] = expires_in
    r = await ctx.call("POST", "/api/v1/transfers", cred=ctx.er, json=body)
    assert r.status == 201, r
    tid = r.body["transfer_id"]
    sent = Sent(
        transfer_id=tid,
        locator=r.body["locator"],
        expires_at=r.body["expires_at"],
        data_key=new_data_key(),
        code=RedemptionCode.generate(r.body["locator"]),
        capability=Capability.generate(tid),
        token=new_token(),
    )
    if install:
        locks = await locks_body(sent)
        r = await ctx.call(
            "PUT",
            f"/api/v1/transfers/{tid}/locks",
            cred=ctx.er,
            json={**locks, "authorization_token": sent.token},
        )
        assert (r.status, r.body["state"]) == (200, "awaiting_authorization"), r
    if authorize:
        r = await ctx.call("POST", "/api/v1/authorizations", json={"token": sent.token})
        assert (r.status, r.body["state"]) == (200, "authorized"), r
    return sent


async def salt(ctx: Ctx, locator: int, cred: str | None = None) -> bytes:
    r = await ctx.call(
        "POST", "/api/v1/redemptions/salt", cred=cred or ctx.tc, json={"locator": locator}
    )
    assert r.status == 200, r
    return base64.b64decode(r.body["salt"])


async def code_proof(ctx: Ctx, code: RedemptionCode) -> bytes:
    """What a receiving site sends for a typed code: scrypt with the salt the relay gives."""
    unlock = await asyncio.to_thread(stretch_code, code, await salt(ctx, code.locator))
    return unlock.proof


async def redeem(ctx: Ctx, locator: int, proof: bytes, cred: str | None = None) -> Reply:
    return await ctx.call(
        "POST",
        "/api/v1/redemptions",
        cred=cred or ctx.tc,
        json={"locator": locator, "proof": b64(proof)},
    )


async def redeem_capability(ctx: Ctx, capability: Capability) -> Reply:
    proof = stretch_capability(capability).proof
    return await ctx.call(
        "POST",
        "/api/v1/redemptions",
        cred=ctx.tc,
        json={"transfer_id": capability.transfer_id, "proof": b64(proof)},
    )


def wrong_proof() -> bytes:
    return secrets.token_bytes(32)


async def status(ctx: Ctx, sent: Sent, cred: str | None = None) -> Reply:
    return await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}", cred=cred or ctx.er)


async def state_of(ctx: Ctx, sent: Sent) -> tuple[str, int]:
    r = await status(ctx, sent)
    assert r.status == 200, r
    return r.body["state"], r.body["failed_attempts"]


async def upload(ctx: Ctx, sent: Sent, index: int, plaintext: bytes) -> bytes:
    """Seal, upload and complete one object; returns the sealed bytes."""
    sealed = seal_object(sent.data_key, sent.transfer_id, index, plaintext)
    base = f"/api/v1/transfers/{sent.transfer_id}/objects/{index}"
    r = await ctx.call("PATCH", base, cred=ctx.er, data=sealed, headers={"Upload-Offset": "0"})
    assert (r.status, r.body["offset"]) == (200, len(sealed)), r
    r = await ctx.call(
        "POST",
        base + "/complete",
        cred=ctx.er,
        json={"size": len(sealed), "sha256": hashlib.sha256(sealed).hexdigest()},
    )
    assert r.status == 200, r
    return sealed


async def put_record(ctx: Ctx, sent: Sent, seq: int, record: bytes, *, final: bool) -> Reply:
    return await ctx.call(
        "PUT",
        f"/api/v1/transfers/{sent.transfer_id}/manifest/{seq}",
        cred=ctx.er,
        data=record,
        headers={"Manifest-Final": "1" if final else "0"},
    )


async def holdings(ctx: Ctx, sent: Sent) -> dict[str, Any]:
    r = await ctx.call("GET", f"/api/v1/transfers/{sent.transfer_id}/objects", cred=ctx.er)
    assert r.status == 200, r
    return dict(r.body)


async def sweep(ctx: Ctx) -> int:
    app = ctx.relay.app
    assert app is not None
    return await sweeper.sweep_once(app[CONFIG], app[METADATA], app[OBJECTS])


def unused_locator(*used: Sent) -> int:
    return next(n for n in range(LOCATOR_LIMIT) if n not in {s.locator for s in used})


def assert_unwraps(reply: Reply, sent: Sent, unlock_proof_source: RedemptionCode) -> None:
    assert reply.status == 200, reply
    assert sent.code_lock is not None
    unlock = stretch_code(unlock_proof_source, sent.code_lock.salt)
    key = unwrap(base64.b64decode(reply.body["wrapped_key"]), unlock, sent.transfer_id)
    assert key == sent.data_key


def assert_clear_refusal(r: Reply, *statuses: int) -> None:
    """A 4xx problem document with a sentence, never a 500."""
    status_, type_, detail = r.problem
    assert 400 <= status_ < 500, r
    assert not statuses or status_ in statuses, r
    assert type_.startswith(PROBLEM)
    assert type_ != PROBLEM + "internal"
    assert isinstance(detail, str)
    assert detail.strip()


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("relay.sqlite3")
    }


@contextlib.contextmanager
def nothing_changes(ctx: Ctx) -> Iterator[None]:
    """Asserts that no file under the data directory and no table except the audit changed."""
    tables = ("transfers", "key_locks", "objects", "manifest_records", "sites")
    before_files = tree(ctx.relay.data_dir)
    before = {t: ctx.rows(f"SELECT * FROM {t}") for t in tables}  # noqa: S608 - fixed names
    yield
    assert tree(ctx.relay.data_dir) == before_files
    assert {t: ctx.rows(f"SELECT * FROM {t}") for t in tables} == before  # noqa: S608


async def audit_since(ctx: Ctx, count: int) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(event id, action, outcome, actor, detail) of the audit records after the first `count`."""
    return [
        (r["event_id"], r["action"], r["outcome"], r["actor"], json.loads(r["detail"]))
        for r in (await ctx.audit_records())[count:]
    ]


def assert_no_secret(records: list[dict[str, Any]], *secrets_: str) -> None:
    trail = json.dumps(
        [{k: v for k, v in r.items() if k not in ("prev_hash", "hash")} for r in records]
    )
    for secret in secrets_:
        assert secret not in trail


async def _in_pieces(data: bytes, pieces: int) -> AsyncIterator[bytes]:
    """A request body sent with chunked encoding, in pieces with a pause between them, as a
    slow network delivers it. The pause only makes the split land; no result depends on it."""
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        if start:
            await asyncio.sleep(0.05)
        yield data[start : start + step]
