"""What PostgreSQL adds: several relay instances on one database stay one relay. A code is
redeemed once however the attempts are spread, locators are never handed out twice, the audit
trail stays one unbroken chain, the sweep runs on one instance at a time, and instances that
start together migrate the schema once without tripping over each other."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from peers.postgres import PostgresServer
from relay_harness import RelayProcess

from relay import audit
from relay import config as relay_config
from relay.app import make_app
from relay.appkeys import METADATA
from relay.errors import ConfigError
from relay.metrics import METRICS
from relay.storage.audit_chain import verify_audit_chain
from relay.storage.postgres import PostgresMetadata
from relay.storage.rows import schema_steps
from relay_api.conftest import use_postgres
from relay_api.plumbing import (
    REFUSED,
    Ctx,
    assert_unwraps,
    code_proof,
    create_transfer,
    put_record,
    redeem,
    state_of,
    sweep,
    wrong_proof,
)
from relay_api.test_manifest import eventually, waiting_on

ON_POSTGRES = pytest.mark.parametrize("backend", ["postgres"])


def share_database(first: Path, second: Path) -> None:
    """Set up `second` as the data folder of another instance on `first`'s database."""
    second.mkdir(mode=0o700)
    (second / "relay.toml").write_bytes((first / "relay.toml").read_bytes())


@asynccontextmanager
async def second_instance(ctx: Ctx, data_dir: Path, **config: object) -> AsyncIterator[Ctx]:
    """Another relay process's worth of relay (its own app, connection pools and port) on the
    same database as `ctx` and the same prefix of its bucket, as a second instance behind a
    load balancer; `config`: settings of its own (such as its throttles' limits)."""
    assert ctx.pg is not None
    await asyncio.to_thread(share_database, ctx.relay.data_dir, data_dir)
    bucket = ctx.objects.bucket if ctx.objects else None
    settings: dict[str, object] = {
        **(bucket.settings(ctx.objects.prefix) if bucket and ctx.objects else {}),
        **config,
    }
    loaded = relay_config.load(data_dir, "127.0.0.1:0", environ={}, clock=ctx.clock, **settings)
    app = make_app(loaded, sweep=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    relay = dataclasses.replace(ctx.relay, url=f"http://127.0.0.1:{port}", data_dir=data_dir)
    relay.app = app
    try:
        yield dataclasses.replace(ctx, relay=relay)
    finally:
        await runner.cleanup()


@ON_POSTGRES
@pytest.mark.asyncio
async def test_fifty_redemptions_split_across_two_instances_give_exactly_one_success(
    ctx: Ctx, tmp_path: Path
) -> None:
    async with second_instance(ctx, tmp_path / "second") as other:
        sent = await create_transfer(ctx)
        proof = await code_proof(other, sent.code)
        replies = await asyncio.gather(
            *(redeem(ctx if n % 2 else other, sent.locator, proof) for n in range(50))
        )
    winners = [r for r in replies if r.status == 200]
    assert len(winners) == 1
    assert_unwraps(winners[0], sent, sent.code)
    # The spent code is refused as a wrong one is, so it counts as a guess: once the site's
    # limit (30) is reached in the shared count, the rest are throttled instead, untried.
    refused = [r.problem for r in replies if r.status == 403]
    assert refused == [REFUSED] * len(refused)
    assert 30 <= len(refused) <= 49
    assert all(r.status in (200, 403, 429) for r in replies)
    assert await state_of(ctx, sent) == ("redeemed", 0)
    records = await ctx.audit_records()
    attempts = [
        r
        for r in records
        if r["event_id"] == audit.USER_AUTHENTICATION and r["transfer_id"] == sent.transfer_id
    ]
    assert sorted(r["outcome"] for r in attempts) == ["failure"] * len(refused) + ["success"]
    # both instances appended to one chain: numbered without gaps, every link intact
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert verify_audit_chain(records) == []


def manifest_waits(ctx: Ctx, ended: str) -> float:
    assert ctx.relay.app is not None
    registry = ctx.relay.app[METRICS].registry
    return registry.get_sample_value("trauma_relay_manifest_waits_total", {"ended": ended}) or 0


@ON_POSTGRES
@pytest.mark.asyncio
async def test_a_long_poll_on_one_instance_wakes_for_records_stored_through_the_other(
    ctx: Ctx, tmp_path: Path
) -> None:
    async with second_instance(ctx, tmp_path / "second") as other:
        sent = await create_transfer(ctx)
        assert (await redeem(ctx, sent.locator, await code_proof(ctx, sent.code))).status == 200
        path = f"/api/v1/transfers/{sent.transfer_id}/manifest"
        # The trauma center follows the manifest through `other`, with the longest wait.
        poll = asyncio.create_task(
            other.call("GET", path, cred=other.tc, params={"from": "0", "wait": "25"})
        )
        await eventually(lambda: waiting_on(other, sent.transfer_id) == 1)
        # The ER's record arrives through `ctx`, the first instance.
        assert (await put_record(ctx, sent, 0, b"record", final=False)).status == 201
        r = await poll
        assert [x["seq"] for x in r.body["records"]] == [0]
        # Woken by the first instance's notification, not by its wait running out.
        assert (manifest_waits(other, "woken"), manifest_waits(other, "ran_out")) == (1, 0)
        # A record stored through the instance the poll is on wakes it too, once.
        poll = asyncio.create_task(
            other.call("GET", path, cred=other.tc, params={"from": "1", "wait": "25"})
        )
        await eventually(lambda: waiting_on(other, sent.transfer_id) == 1)
        assert (await put_record(other, sent, 1, b"closing", final=True)).status == 201
        assert [x["seq"] for x in (await poll).body["records"]] == [1]
        assert (manifest_waits(other, "woken"), manifest_waits(other, "ran_out")) == (2, 0)


@ON_POSTGRES
@pytest.mark.asyncio
async def test_wrong_guesses_on_two_instances_all_count(ctx: Ctx, tmp_path: Path) -> None:
    async with second_instance(ctx, tmp_path / "second") as other:
        sent = await create_transfer(ctx)
        wrong = wrong_proof()
        replies = await asyncio.gather(
            *(redeem(ctx if n % 2 else other, sent.locator, wrong) for n in range(4))
        )
    assert [r.code for r in replies] == ["code-not-accepted"] * 4
    # each saw the count the one before it left: "9 more tries", "8 more tries", ...
    assert len({r.problem[2] for r in replies}) == 4
    assert await state_of(ctx, sent) == ("authorized", 4)


@ON_POSTGRES
@pytest.mark.asyncio
async def test_two_instances_never_hand_out_one_locator(ctx: Ctx, tmp_path: Path) -> None:
    async with second_instance(ctx, tmp_path / "second") as other:
        sent = await asyncio.gather(
            *(
                create_transfer(ctx if n % 2 else other, install=False, authorize=False)
                for n in range(16)
            )
        )
    locators = [s.locator for s in sent]
    assert len(set(locators)) == len(locators)
    assert ctx.rows("SELECT count(DISTINCT locator) FROM transfers") == [(16,)]


@ON_POSTGRES
@pytest.mark.asyncio
async def test_one_instance_sweeps_at_a_time(ctx: Ctx, tmp_path: Path) -> None:
    async with second_instance(ctx, tmp_path / "second") as other:
        assert ctx.relay.app is not None
        sent = await create_transfer(ctx, expires_in=60)
        ctx.clock.advance(120)
        async with ctx.relay.app[METADATA].exclusive() as mine:
            assert mine
            assert await sweep(other) == 0  # the first instance is sweeping: skip this round
        assert await sweep(other) == 1
        assert await sweep(ctx) == 0  # nothing left to do
    assert ctx.rows("SELECT purged FROM transfers WHERE id = ?", sent.transfer_id) == [(1,)]


@ON_POSTGRES
@pytest.mark.asyncio
async def test_the_audit_table_refuses_changes(ctx: Ctx) -> None:
    await create_transfer(ctx)
    assert ctx.pg is not None
    for statement in (
        "UPDATE audit SET detail = '{}' WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 2",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            ctx.rows(statement)
    assert verify_audit_chain(await ctx.audit_records()) == []


async def _opened_together(server: PostgresServer, database: str, count: int) -> list[int]:
    password = server.password
    stores = await asyncio.gather(
        *(PostgresMetadata.open(server.url(database), password) for _ in range(count))
    )
    try:
        return [await s.schema_version() for s in stores]
    finally:
        for s in stores:
            await s.close()


@pytest.mark.asyncio
async def test_instances_starting_at_once_migrate_the_schema_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    database = postgres_server.new_database()
    latest = schema_steps("schema_pg")[-1][0]
    assert await _opened_together(postgres_server, database, 4) == [latest] * 4
    # and again: nothing left to do, nothing done twice
    assert await _opened_together(postgres_server, database, 2) == [latest] * 2
    assert postgres_server.rows(database, "SELECT count(*) FROM relay_schema") == [(1,)]


def test_the_password_never_goes_in_the_url(tmp_path: Path) -> None:
    data_dir = tmp_path / "relay"
    data_dir.mkdir()
    (data_dir / "relay.toml").write_text(
        'metadata_url = "postgresql://relay:secret@127.0.0.1:5432/relay"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="metadata_password_file") as caught:
        relay_config.load(data_dir, environ={})
    assert "secret" not in str(caught.value)


@pytest.mark.asyncio
async def test_a_site_added_on_one_instance_works_on_the_other(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    from relay.sites import add_site, list_sites

    first, second = tmp_path / "first", tmp_path / "second"
    pg = await asyncio.to_thread(use_postgres, first, postgres_server)
    await asyncio.to_thread(share_database, first, second)
    await add_site(first, "st-mary-er", "sending", None)
    assert [r.site.name for r in await list_sites(second)] == ["st-mary-er"]
    assert not await asyncio.to_thread((second / "relay.sqlite3").exists)
    assert pg.server.rows(pg.name, "SELECT name FROM sites") == [("st-mary-er",)]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trauma_relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_relay_and_operator_commands_use_the_database_relay_toml_names(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    data = tmp_path / "relay"
    pg = use_postgres(data, postgres_server)
    added = _cli("site", "add", "st-mary-er", "--role", "sending", "--data", str(data), "--json")
    assert added.returncode == 0, added.stderr
    relay = RelayProcess(data, tmp_path / "relay.log")
    relay.start()  # waits for /healthz to answer: it reached the database
    try:
        listed = _cli("site", "list", "--data", str(data), "--json")
        assert listed.returncode == 0, listed.stderr
        assert "st-mary-er" in listed.stdout
    finally:
        relay.stop()
    verified = _cli("audit", "verify", "--data", str(data), "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["intact"] is True
    assert json.loads(verified.stdout)["records"] == 1
    assert pg.server.rows(pg.name, "SELECT action FROM audit") == [("site-added",)]
    assert not (data / "relay.sqlite3").exists()
    assert pg.server.password not in (tmp_path / "relay.log").read_text(encoding="utf-8")


@ON_POSTGRES
@pytest.mark.asyncio
async def test_guesses_spread_over_two_instances_are_throttled_as_on_one(
    ctx: Ctx, tmp_path: Path
) -> None:
    """A site allowed three failures in the window makes two through one instance and one
    through another: its next attempt, through either, waits. Each instance alone saw fewer
    than three (before, each counted only its own: N instances allowed N times the limit)."""
    limits = {"guess_limit_site": 3, "guess_limit_address": 1000, "guess_limit_global": 1000}
    async with (
        second_instance(ctx, tmp_path / "b", **limits) as b,
        second_instance(ctx, tmp_path / "c", **limits) as c,
    ):
        waiting = [await create_transfer(ctx) for _ in range(4)]
        for through, sent in zip((b, b, c), waiting, strict=False):
            r = await redeem(through, sent.locator, wrong_proof())
            assert (r.status, r.code) == (403, "code-not-accepted")
        for through in (c, b):
            r = await redeem(through, waiting[3].locator, wrong_proof())
            assert (r.status, r.code) == (429, "throttled")
        ctx.clock.advance(901)  # the window (15 minutes by default) is past for all of them
        r = await redeem(c, waiting[3].locator, await code_proof(c, waiting[3].code))
        assert r.status == 200, r
    assert ctx.rows("SELECT count(*) FROM guess_failures WHERE key LIKE 'site:%'") == [(3,)]
