"""Acceptance: sending again after a transfer went wrong, with the real CLI and relay process. A
push stopped mid-upload (the ER closed the window) leaves a code with the patient; once that
transfer is revoked, the same files still go as a new transfer, and when the files change, the
new push revokes the old transfer so its code cannot be redeemed for a study that will not
arrive."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

from e2e.harness import E2ERelay, start_cli, stop_cli
from sending_site.synthetic import make_ct_study

WAIT_SECONDS = 60.0
# No proxy: the machine's HTTP(S)_PROXY must not capture calls to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _revoke(relay: E2ERelay, transfer_id: str) -> None:
    """What the ER (or the family, on the phone) does to withdraw a transfer."""
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1:<relay port>
        f"{relay.url}/api/v1/transfers/{transfer_id}/revoke",
        headers={"Authorization": f"Bearer {relay.sender_credential}"},
        method="POST",
    )
    with _OPENER.open(request, timeout=30) as response:
        assert json.loads(response.read())["state"] == "revoked"


def _stopped_push(relay: E2ERelay, study: Path, state: Path, workdir: Path) -> dict[str, Any]:
    """Start a push and SIGKILL it once the relay holds its first image; returns the journal
    it left (what the code printed was made from)."""
    before = {row[0] for row in relay.query("SELECT id FROM transfers")}
    args = relay.push_args([study], state=state, extra=["--json"])
    push = start_cli(args, cwd=workdir, credential=relay.sender_credential)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            new = {row[0] for row in relay.query("SELECT id FROM transfers")} - before
            if new:
                (transfer_id,) = new
                done = relay.query(
                    "SELECT count(*) FROM objects WHERE transfer_id = ? AND complete = 1",
                    transfer_id,
                )[0][0]
                if done:
                    break
            assert push.poll() is None, "the push ended before it could be stopped"
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.005)
    finally:
        stop_cli(push)
    body: dict[str, Any] = json.loads((state / "sending" / f"{transfer_id}.json").read_text())
    assert body["done"] is False
    return body


def _state(relay: E2ERelay, transfer_id: str) -> str:
    return str(relay.query("SELECT state FROM transfers WHERE id = ?", transfer_id)[0][0])


def _code(journal: dict[str, Any]) -> str:
    code = str(journal["code"])
    return "-".join(code[i : i + 4] for i in range(0, 16, 4))


def test_the_same_files_go_again_after_the_transfer_was_revoked(
    relay: E2ERelay, tmp_path: Path
) -> None:
    make_ct_study(tmp_path / "study", 24, rows=512, columns=512, seed=21)
    state = tmp_path / "er-state"
    first = _stopped_push(relay, tmp_path / "study", state, tmp_path)
    _revoke(relay, first["transfer_id"])

    again = relay.push([tmp_path / "study"], workdir=tmp_path, state=state).ok()
    pushed = again.json()
    assert pushed["transfer_id"] != first["transfer_id"]
    assert pushed["resumed"] is False
    assert pushed["instances"] == 24
    assert pushed["replaced"] == [
        {"transfer_id": first["transfer_id"], "code": _code(first), "reason": "it was revoked"}
    ]
    assert f"its code {_code(first)} no longer works" in again.message
    relay.authorize(pushed)
    relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").ok()


def test_changed_files_replace_the_unfinished_transfer_and_revoke_its_code(
    relay: E2ERelay, tmp_path: Path
) -> None:
    files = make_ct_study(tmp_path / "study", 24, rows=512, columns=512, seed=22)
    state = tmp_path / "er-state"
    first = _stopped_push(relay, tmp_path / "study", state, tmp_path)
    assert _state(relay, first["transfer_id"]) == "awaiting_authorization"
    # The images are exported again from the PACS, one more slice with them.
    extra = make_ct_study(tmp_path / "pacs", 25, rows=512, columns=512, seed=22)[-1]
    shutil.copyfile(extra, tmp_path / "study" / extra.name)
    for path in files[:3]:
        shutil.copyfile(path, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)

    again = relay.push([tmp_path / "study"], workdir=tmp_path, state=state, extra=()).ok()

    assert _state(relay, first["transfer_id"]) == "revoked"
    assert f"Transfer {first['transfer_id']} was given up" in again.stdout
    assert f"its code {_code(first)} no longer works" in again.stdout
    assert "Uploaded 25 images" in again.stdout
    # The old code, already on the patient's sheet, opens nothing.
    refused = relay.redeem(_code(first), workdir=tmp_path, out=tmp_path / "old").failed()
    assert "not accepted" in refused.message
    assert not (tmp_path / "old").exists() or not any((tmp_path / "old").iterdir())
