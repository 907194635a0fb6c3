"""`trauma-relay relay migrate` moves a stopped relay's embedded storage (SQLite and its objects
folder) into PostgreSQL and an S3 bucket: the codes of its live transfers keep working on the new
storage, their failure counts carry over, and the audit trail verifies there with the same
hashes. It refuses while the relay runs, and refuses a target that already holds data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dicom_corpus import dataset_bytes
from peers.postgres import PostgresServer, postgres_server  # noqa: F401 - a fixture
from peers.s3 import S3Bucket
from relay_harness import RelayProcess

from e2e.harness import E2ERelay, run_cli, sop_instance_uid
from relay.lifecycle import MAX_FAILED_ATTEMPTS
from sending_site.synthetic import make_ct_study
from transfer_codes.codes import RedemptionCode

REFUSED = "That code was not accepted"


def _target_folder(
    root: Path, pg: PostgresServer, bucket: S3Bucket, prefix: str, database: str
) -> Path:
    """A new relay's data folder whose relay.toml names an empty database and bucket prefix."""
    target = root / "new-relay-data"
    target.mkdir(mode=0o700)
    settings: dict[str, Any] = {
        "metadata_url": pg.url(database),
        "metadata_password_file": pg.password_file,
        **bucket.settings(prefix),
    }
    (target / "relay.toml").write_text(
        "".join(f"{k} = {json.dumps(str(v))}\n" for k, v in settings.items())
    )
    return target


def _wrong_code(pushed: dict[str, Any]) -> str:
    code = RedemptionCode.generate(RedemptionCode.parse(pushed["code"]).locator).grouped()
    assert code != pushed["code"]
    return code


def _assert_same_study(sent: Path, received: Path) -> None:
    """The folder the trauma center wrote holds every sent instance, with the same data set."""
    originals = {sop_instance_uid(p): dataset_bytes(p) for p in sent.rglob("*") if p.is_file()}
    arrived = {sop_instance_uid(p): dataset_bytes(p) for p in received.rglob("IM*") if p.is_file()}
    assert len(originals) == 2
    assert arrived == originals


def _audit(data: Path, root: Path) -> dict[str, Any]:
    verified: dict[str, Any] = (
        run_cli(["audit", "verify", "--data", str(data), "--json"], cwd=root).ok().json()
    )
    return verified


def test_migrated_transfers_keep_their_codes_and_the_audit_trail_verifies(
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
    s3_bucket: S3Bucket,
    tmp_path: Path,
) -> None:
    relay = E2ERelay(tmp_path / "relay").start()
    source = relay.data_dir
    try:
        make_ct_study(tmp_path / "a", 2, seed=71)
        make_ct_study(tmp_path / "b", 2, seed=72)
        make_ct_study(tmp_path / "c", 1, seed=73)
        for work in ("wa", "wb", "wc"):
            (tmp_path / work).mkdir()
        authorized = relay.pushed_and_authorized(tmp_path / "a", tmp_path / "wa")
        waiting = relay.push([tmp_path / "b"], workdir=tmp_path / "wb").ok().json()
        delivered = relay.pushed_and_authorized(tmp_path / "c", tmp_path / "wc")
        relay.redeem(delivered["code"], workdir=tmp_path / "wc", out=tmp_path / "in-c").ok()
        # One wrong guess at the authorized transfer before the move.
        w = tmp_path / "guess-1"
        w.mkdir()
        assert (
            REFUSED
            in relay.redeem(_wrong_code(authorized), workdir=w, out=w / "x").failed().message
        )

        prefix = s3_bucket.new_prefix()
        database = postgres_server.new_database()
        target = _target_folder(tmp_path, postgres_server, s3_bucket, prefix, database)
        migrate = ["relay", "migrate", "--data", str(source), "--to-data", str(target)]

        # While the relay runs on the database, the migration refuses and copies nothing.
        running = run_cli(migrate, cwd=tmp_path).failed()
        assert "in use" in running.message
        assert "Stop" in running.message
        assert s3_bucket.keys(prefix) == []
    finally:
        relay.stop()

    before = _audit(source, tmp_path)
    assert before["intact"]
    assert before["records"] > 0

    done = run_cli([*migrate, "--json"], cwd=tmp_path).ok().json()
    assert done["rows"]["transfers"] == 3
    assert done["rows"]["sites"] == 2
    assert done["rows"]["audit"] == before["records"]
    assert done["objects"] >= 3
    assert (target / "decoy.key").read_bytes() == (source / "decoy.key").read_bytes()
    assert s3_bucket.keys(prefix)

    # The chain was copied as it was (same records, same hashes), then the move was recorded.
    after = _audit(target, tmp_path)
    assert after["intact"], after
    assert after["records"] == before["records"] + 1
    ((copied_last,),) = postgres_server.rows(
        database, "SELECT hash FROM audit WHERE seq = ?", before["last_seq"]
    )
    assert bytes(copied_last).hex() == before["last_hash"]
    ((action, actor, detail),) = postgres_server.rows(
        database, "SELECT action, actor, detail FROM audit WHERE seq = ?", after["last_seq"]
    )
    assert (action, actor) == ("relay-migrated", "operator")
    assert json.loads(detail)["counts"]["transfers"] == 3

    # A second run finds the target holding data and refuses, changing nothing.
    keys = sorted(s3_bucket.keys(prefix))
    again = run_cli(migrate, cwd=tmp_path).failed()
    assert "already holds" in again.message
    assert sorted(s3_bucket.keys(prefix)) == keys
    assert _audit(target, tmp_path)["records"] == after["records"]

    # The old relay, started again by mistake on its folder, would accept codes that now live
    # (and may be spent) on the new storage: it refuses to start.
    old = run_cli(["relay", "--data", str(source), "--listen", "127.0.0.1:0"], cwd=tmp_path,
                  timeout=30).failed()  # fmt: skip
    assert old.returncode == 2
    assert "was moved to PostgreSQL" in old.message

    # The new relay, on PostgreSQL and S3, at the same address.
    relay.process = RelayProcess(target, tmp_path / "new-relay.log", port=relay.process.port)
    relay.data_dir = target
    relay.start()
    try:
        # The earlier wrong guess still counts: this one leaves two fewer tries, not one.
        w = tmp_path / "guess-2"
        w.mkdir()
        message = relay.redeem(_wrong_code(authorized), workdir=w, out=w / "x").failed().message
        assert REFUSED in message
        assert f"{MAX_FAILED_ATTEMPTS - 2} more tries" in message, message

        first = relay.redeem(authorized["code"], workdir=tmp_path / "wa", out=tmp_path / "in-a")
        assert first.ok().json()["instances"] == 2
        _assert_same_study(tmp_path / "a", tmp_path / "in-a" / authorized["transfer_id"])

        relay.authorize(waiting)
        second = relay.redeem(waiting["code"], workdir=tmp_path / "wb", out=tmp_path / "in-b")
        assert second.ok().json()["instances"] == 2

        # The delivered one stays delivered: its code is spent.
        w = tmp_path / "spent"
        w.mkdir()
        spent = relay.redeem(delivered["code"], workdir=w, out=w / "x", state=w / "tc")
        assert REFUSED in spent.failed().message
    finally:
        relay.stop()

    final = _audit(target, tmp_path)
    assert final["intact"], final
    assert final["records"] > after["records"]


def test_a_failed_migration_leaves_the_target_empty(
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
    s3_bucket: S3Bucket,
    tmp_path: Path,
) -> None:
    """The objects are copied first; when the metadata then cannot be written (here: a row the
    source's database holds against its own rules, which PostgreSQL refuses), the copied objects
    are deleted again and the database stays empty, so the command can be run again."""
    relay = E2ERelay(tmp_path / "relay").start()
    try:
        make_ct_study(tmp_path / "a", 1, seed=74)
        (tmp_path / "wa").mkdir()
        relay.pushed_and_authorized(tmp_path / "a", tmp_path / "wa")
    finally:
        relay.stop()
    # An origin row of no transfer: SQLite lets a connection without foreign_keys write it.
    relay.execute("INSERT INTO transfer_origins (transfer_id) VALUES ('NO-SUCH-TRANSFER')")
    prefix = s3_bucket.new_prefix()
    database = postgres_server.new_database()
    # This time the new relay is named by a --config file, as a service would run it.
    settings = {
        "data_dir": tmp_path / "new-relay-data",
        "metadata_url": postgres_server.url(database),
        "metadata_password_file": postgres_server.password_file,
        **s3_bucket.settings(prefix),
    }
    config = tmp_path / "new.toml"
    config.write_text(
        "[storage]\n" + "".join(f"{k} = {json.dumps(str(v))}\n" for k, v in settings.items())
    )

    failed = run_cli(
        ["relay", "migrate", "--data", str(relay.data_dir), "--to-config", str(config)],
        cwd=tmp_path,
    ).failed()

    assert "transfer_origins" in failed.message, failed.message
    assert s3_bucket.keys(prefix) == []
    for table in ("sites", "transfers", "audit", "objects"):
        assert postgres_server.rows(database, f"SELECT count(*) FROM {table}") == [(0,)]  # noqa: S608


def test_migrate_needs_a_target(tmp_path: Path) -> None:
    relay = E2ERelay(tmp_path / "relay")
    run = run_cli(["relay", "migrate", "--data", str(relay.data_dir)], cwd=tmp_path).failed()
    assert "--to-config" in run.message


def test_migrate_refuses_a_target_that_is_the_source(tmp_path: Path) -> None:
    relay = E2ERelay(tmp_path / "relay")
    data = str(relay.data_dir)
    run = run_cli(["relay", "migrate", "--data", data, "--to-data", data], cwd=tmp_path).failed()
    assert "nothing to migrate" in run.message
