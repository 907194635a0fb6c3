"""The trauma console serving the holds queue of a state folder that `trauma-relay redeem` held
studies in (the same folder, as on a trauma center's agent machine), and a browser-like HTTP
client that signs in and posts a choice with the form's CSRF token."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from console_harness import NURSE, NURSE_PASSWORD, Console, running_console

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _credential_file(root: Path, credential: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    credential_file = root / "relay.credential"
    credential_file.write_text(credential + "\n", encoding="utf-8")
    credential_file.chmod(0o600)
    return credential_file


@asynccontextmanager
async def trauma_console(
    root: Path, state: Path, relay_url: str, credential: str, *assignments: str
) -> AsyncIterator[Console]:
    """The receiver's console for `state` (the --state of the redeem runs), reaching the relay
    at `relay_url` with `credential` (kept in a 0600 file, as an installation would)."""
    credential_file = _credential_file(root, credential)
    async with running_console(
        root,
        "receiver",
        f"state.folder={state}",
        f"relay.url={relay_url}",
        f"relay.credential_file={credential_file}",
        *assignments,
    ) as console:
        yield console


class Staff:
    """A nurse at the console over HTTP, as a browser would be: cookies kept, forms posted
    with their CSRF token."""

    def __init__(self, console: Console, client: aiohttp.ClientSession) -> None:
        self.console = console
        self.client = client

    async def get(self, path: str) -> tuple[int, str]:
        async with self.client.get(self.console.url + path) as r:
            return r.status, await r.text()

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        """Post `form` with the CSRF token of the page at `path`."""
        _, page = await self.get(path)
        found = _TOKEN.search(page)
        assert found, page
        async with self.client.post(
            self.console.url + path, data={"csrf_token": found.group(1), **form}
        ) as r:
            return r.status, await r.text()


@asynccontextmanager
async def signed_in(console: Console) -> AsyncIterator[Staff]:
    # unsafe=True: keep cookies for an IP-address host (127.0.0.1), as browsers do.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        staff = Staff(console, client)
        status, _ = await staff.post(
            "/sign-in", {"user": NURSE, "password": NURSE_PASSWORD, "next": "/holds"}
        )
        assert status == 200
        yield staff


def audit_records(console: Console) -> list[dict[str, Any]]:
    """The audit log's records about holds."""
    lines = console.audit.read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if str(r["action"]).startswith("hold-")]
