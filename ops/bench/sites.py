"""A relay process with an ER and a trauma center registered, and the sites' commands against
it: `push` (plain text, so the code shows before the upload ends), the patient's authorization,
and `redeem`, each a `Measured` child process."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

from peers.ports import free_port
from processes import CLI, Measured, environment, http_ok, post
from relay_harness import RECEIVER, SENDER

from relay.sites import add_site
from transfer_codes.phone import split_link

START_TIMEOUT = 60.0


class BenchRelay:
    def __init__(
        self,
        folder: Path,
        host: str = "127.0.0.1",
        settings: dict[str, object] | None = None,
        *,
        register: bool = True,
    ) -> None:
        """With `settings` (relay.toml fields, such as `metadata_url` and `objects_url`), the
        relay is configured by them before the sites are registered."""
        self.folder = folder
        self.data = folder / "relay-data"
        self.host = host
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        if settings:
            self.data.mkdir(mode=0o700, parents=True)
            (self.data / "relay.toml").write_text(
                "".join(f"{k} = {json.dumps(str(v))}\n" for k, v in settings.items())
            )
        if register:
            er = asyncio.run(add_site(self.data, SENDER, "sending", "Bench ER"))
            tc = asyncio.run(add_site(self.data, RECEIVER, "receiving", "Bench Trauma"))
            self.sender_credential = er.credential
            self.receiver_credential = tc.credential
        self.process = Measured(
            "relay",
            [*CLI, "relay", "--data", str(self.data), "--listen", f"{host}:{self.port}"],
            folder,
            environment(),
        )

    def another_instance(self, folder: Path) -> BenchRelay:
        """A second relay process on a port and data folder of its own, sharing this one's
        database and bucket (its relay.toml) and decoy key: two instances behind a load
        balancer. This one must have run once (it makes the decoy key)."""
        folder.mkdir(parents=True, exist_ok=True)
        other = BenchRelay(folder, self.host, register=False)
        other.data.mkdir(mode=0o700)
        for name in ("relay.toml", "decoy.key"):
            (other.data / name).write_bytes((self.data / name).read_bytes())
            (other.data / name).chmod(0o600)
        other.sender_credential = self.sender_credential
        other.receiver_credential = self.receiver_credential
        return other

    def start(self) -> BenchRelay:
        self.process.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not http_ok(self.url + "/healthz"):
            if self.process.poll() or time.monotonic() > deadline:
                self.process.stop()
                raise RuntimeError(f"the relay did not start: {self.process.describe()}")
            time.sleep(0.05)
        return self

    def stop(self) -> float | None:
        """Stop it; its peak RSS in MB."""
        return self.process.stop().peak_rss_mb

    def push(self, name: str, paths: list[Path], folder: Path) -> Measured:
        """`push` to this relay."""
        argv = [*CLI, "push", *map(str, paths), "--relay", self.url, "--to", RECEIVER]
        argv += ["--state", str(folder / f"{name}-state"), "--yes"]
        env = environment(TRAUMA_RELAY_CREDENTIAL=self.sender_credential)
        return Measured(name, argv, folder, env, cwd=folder).start()

    def authorized_code(self, push: Measured, timeout: float = START_TIMEOUT) -> str:
        """Wait for the push to show its code, authorize it as the patient's phone would; the
        code."""
        out = push.wait_for_output("authorization link:", timeout)
        code = re.search(r"Code:\s+(\S+)", out)
        link = re.search(r"authorization link:\s+(\S+)", out)
        assert code is not None, out
        assert link is not None, out
        token, _phone_key = split_link(link.group(1))
        answer = json.loads(
            post(self.url + "/api/v1/authorizations", json.dumps({"token": token}).encode())
        )
        assert answer["state"] == "authorized", answer
        return code.group(1)

    def redeem(
        self,
        name: str,
        code: str | None,
        folder: Path,
        *,
        pacs: str | None = None,
        out: Path | None = None,
    ) -> Measured:
        """`redeem` through this relay, given `code`; without one, it starts and waits for it
        (`Measured.type_in`), as staff have it open before the code comes."""
        where = ["--pacs", pacs] if pacs else ["--out", str(out)]
        argv = [*CLI, "redeem", "--relay", self.url, *where]
        argv += ["--state", str(folder / f"{name}-state"), "--yes", "--json"]
        env = environment(TRAUMA_RELAY_CREDENTIAL=self.receiver_credential)
        typed = code is None
        stdin = "" if code is None else code + "\n"
        return Measured(name, argv, folder, env, stdin=stdin, cwd=folder, typed_later=typed).start()


def redeemed_instances(redeem: Measured) -> int:
    """How many images a finished `redeem --json` says it delivered."""
    return int(json.loads(redeem.stdout())["instances"])


__all__ = ["SENDER", "BenchRelay", "redeemed_instances"]
