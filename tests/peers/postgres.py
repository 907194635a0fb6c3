"""A real PostgreSQL server for tests: Debian's binaries (/usr/lib/postgresql/N/bin), a cluster
made by initdb in a temporary folder, listening on a free loopback port, fsync on.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster belongs to, and runs
as, the unprivileged `nobody` (its folder owned by that user). The relay connects over TCP as
the cluster's superuser with a password (scram-sha-256), read from a password file, as the
relay does in production (`metadata_password_file`).

A missing PostgreSQL skips the tests that need it, or fails them under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from peers import running_under_ci
from peers.ports import free_port

UNPRIVILEGED = "nobody"
SUPERUSER = "relay"
T = TypeVar("T")


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def require_postgres() -> Path:
    """PostgreSQL's bin folder; skip the test (fail it under CI) if it is not installed."""
    found = postgres_bin()
    if found is not None:
        return found
    message = "PostgreSQL is not installed (Debian package postgresql)"
    if running_under_ci():
        pytest.fail(f"{message}; CI must have every peer", pytrace=False)
    pytest.skip(message)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end on its own event loop in a thread (callable from inside a test's
    running loop, for synchronous helpers)."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as e:  # handed to the caller
            failure.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


@dataclass
class PostgresServer:
    root: Path
    port: int
    password_file: Path
    bin: Path
    owner: str | None  # the account the server runs as, when we are root

    def url(self, database: str = "postgres") -> str:
        """The URL the relay is configured with: no password in it."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def password(self) -> str:
        return self.password_file.read_text(encoding="utf-8").strip()

    async def connect(self, database: str = "postgres") -> asyncpg.Connection:
        return await asyncpg.connect(self.url(database), password=self.password)

    def new_database(self) -> str:
        """A fresh, empty database; its name."""
        name = "t_" + secrets.token_hex(6)

        async def create() -> None:
            conn = await self.connect()
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        run_sync(create())
        return name

    def rows(self, database: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """`sql` (SQLite's `?` placeholders are taken) run in `database`, as plain tuples."""
        parts = sql.split("?")
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))

        async def fetch() -> list[tuple[Any, ...]]:
            conn = await self.connect(database)
            try:
                return [tuple(r) for r in await conn.fetch(numbered, *args)]
            finally:
                await conn.close()

        return run_sync(fetch())


def _as_owner(owner: str | None, argv: list[str]) -> list[str]:
    if owner is None:
        return argv
    entry = pwd.getpwnam(owner)
    return [
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--clear-groups",
        *argv,
    ]


def _pg_run(owner: str | None, argv: list[str], cwd: Path) -> None:
    done = subprocess.run(
        _as_owner(owner, argv), cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{argv[0]} failed: {done.stdout}\n{done.stderr}"


def _chown_tree(path: Path, owner: str) -> None:
    entry = pwd.getpwnam(owner)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(base, name), entry.pw_uid, entry.pw_gid)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the test session, stopped and removed at its end."""
    with postgres_cluster(require_postgres()) as server:
        yield server


@contextlib.contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[PostgresServer]:
    """A new PostgreSQL cluster made with `bin_dir`'s initdb, running until the context ends,
    then stopped and removed (the benchmark suite uses it outside pytest too)."""
    owner = UNPRIVILEGED if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="trauma-relay-pg-"))
    try:
        password_file = root / "password"
        password_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        cluster = root / "cluster"
        cluster.mkdir(mode=0o700)
        pwfile = root / "initdb-password"
        shutil.copy(password_file, pwfile)
        if owner is not None:
            _chown_tree(cluster, owner)
            entry = pwd.getpwnam(owner)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            # The tests (root) keep their own copy of the password readable by themselves.
            os.chown(password_file, 0, 0)
        _pg_run(
            owner,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(cluster),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            root,
        )
        pwfile.unlink()
        port = free_port()
        _pg_run(
            owner,
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(cluster),
                "-l",
                str(root / "server.log"),
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=on "
                "-c synchronous_commit=on -c full_page_writes=on -c max_connections=200",
            ],
            root,
        )
        try:
            yield PostgresServer(root, port, password_file, bin_dir, owner)
        finally:
            _pg_run(
                owner,
                [str(bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(cluster)],
                root,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
