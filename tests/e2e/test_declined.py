"""Acceptance: the family says "Don't share" on their phone and the ER sees it, through the real
CLI and relay process. A push still uploading stops and says the family declined; a push run
again over a declined transfer says so instead of sending it again; and `reissue` refuses to
give a new code for what they declined. Running the push once more (the family changed their
mind) starts a new transfer that they must authorize."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from e2e.harness import E2ERelay, finish_cli, run_cli, start_cli, stop_cli
from sending_site.synthetic import make_ct_study
from transfer_codes.phone import split_link

INSTANCES = 60  # enough that the upload is still running when the test holds it
DECLINED = "The patient's family declined on their phone ("
TELL_THEM = "The trauma center will not receive these images through trauma-relay: let them know."
# No proxy: the machine's HTTP(S)_PROXY must not capture calls to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _decline(relay: E2ERelay, link: str) -> dict[str, Any]:
    """What the phone page posts when the family presses "Don't share" and confirms (with the
    page's CSRF cookie and header)."""
    token, _key = split_link(link)
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1:<relay port>
        f"{relay.url}/api/v1/phone/decline",
        data=json.dumps({"token": token, "role": "family"}).encode(),
        headers={
            "Content-Type": "application/json",
            "Cookie": "tr_csrf=phone-page",
            "X-CSRF-Token": "phone-page",
        },
        method="POST",
    )
    with _OPENER.open(request, timeout=30) as response:
        document: dict[str, Any] = json.loads(response.read())
    assert (document["state"], document["revoked_by"], document["declined"]) == (
        "revoked",
        "family",
        True,
    )
    return document


def _held_push(
    relay: E2ERelay, args: list[str], workdir: Path
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start a push (plain text) and hold it (SIGSTOP) once it has printed its transfer, code and
    link, while it is still uploading."""
    push = start_cli(args, cwd=workdir, credential=relay.sender_credential)
    assert push.stdout is not None
    printed: dict[str, str] = {}
    patterns = {
        "transfer": r"transfer (\w{24}) to",
        "code": r"Code:\s+(\S+)",
        "link": r"authorization link:\s+(\S+)",
    }
    while set(patterns) - set(printed):
        line = push.stdout.readline()
        assert line, f"push ended before printing its code: {finish_cli(push).describe()}"
        printed |= {k: m.group(1) for k, p in patterns.items() if (m := re.search(p, line))}
    os.kill(push.pid, signal.SIGSTOP)
    ((closed,),) = relay.query(
        "SELECT manifest_closed FROM transfers WHERE id = ?", printed["transfer"]
    )
    assert closed == 0, "the upload finished before the test could hold it"
    return push, printed


def _declined_while_uploading(
    relay: E2ERelay, workdir: Path, *, seed: int
) -> tuple[subprocess.Popen[str], dict[str, str], list[str]]:
    """A push of a fresh study in `workdir`, held while uploading, whose family then declined
    on their phone: the held push, what it printed, and its arguments."""
    make_ct_study(workdir / "study", INSTANCES, rows=512, columns=512, seed=seed)
    args = relay.push_args([workdir / "study"], state=workdir / "er-state")
    push, printed = _held_push(relay, args, workdir)
    try:
        _decline(relay, printed["link"])
    except BaseException:
        stop_cli(push)
        raise
    return push, printed, args


def _revocation(relay: E2ERelay, transfer_id: str) -> tuple[str, str | None]:
    ((state, revoked_by),) = relay.query(
        "SELECT state, revoked_by FROM transfers WHERE id = ?", transfer_id
    )
    return state, revoked_by


def _journal(state: Path, transfer_id: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((state / "sending" / f"{transfer_id}.json").read_text())
    return body


def test_a_push_still_uploading_stops_and_says_the_family_declined(
    relay: E2ERelay, tmp_path: Path
) -> None:
    push, printed, _ = _declined_while_uploading(relay, tmp_path, seed=31)
    try:
        os.kill(push.pid, signal.SIGCONT)
        stopped = finish_cli(push).failed()
    finally:
        stop_cli(push)
    state = tmp_path / "er-state"

    tid = printed["transfer"]
    assert DECLINED in stopped.message
    assert f"to share the images of transfer {tid}" in stopped.message
    assert f"its code {printed['code']} no longer works and nothing more was sent" in (
        stopped.message
    )
    assert TELL_THEM in stopped.message
    assert "Uploaded" not in stopped.stdout
    assert _revocation(relay, tid) == ("revoked", "family")
    record = _journal(state, tid)
    assert (record["done"], record["abandoned"]) == (
        True,
        "the patient's family declined to share it on their phone",
    )
    refused = relay.redeem(printed["code"], workdir=tmp_path, out=tmp_path / "inbox").failed()
    assert "cancelled by the patient or family" in refused.message


def test_a_push_run_again_over_a_declined_transfer_says_so_and_sends_nothing(
    relay: E2ERelay, tmp_path: Path
) -> None:
    push, printed, args = _declined_while_uploading(relay, tmp_path, seed=32)
    stop_cli(push)  # the ER's window closed before the push met the refusal
    state = tmp_path / "er-state"
    tid = printed["transfer"]
    assert _journal(state, tid)["done"] is False
    transfers = relay.transfer_count()

    again = run_cli(args, cwd=tmp_path, credential=relay.sender_credential).failed()

    assert DECLINED in again.message
    assert f"its code {printed['code']} no longer works and nothing more was sent" in (
        again.message
    )
    assert TELL_THEM in again.message
    assert "If they change their mind, run the same command again" in again.message
    assert relay.transfer_count() == transfers  # nothing new was created or sent
    assert _journal(state, tid)["abandoned"] == (
        "the patient's family declined to share it on their phone"
    )

    # They changed their mind: the same command starts a new transfer for them to authorize.
    new = relay.push([tmp_path / "study"], workdir=tmp_path, state=state).ok().json()
    assert new["transfer_id"] != tid
    assert (new["resumed"], new["break_glass"], new["replaced"]) == (False, False, [])
    assert _revocation(relay, new["transfer_id"]) == ("awaiting_authorization", None)


def test_reissue_after_the_family_declined_says_so(relay: E2ERelay, tmp_path: Path) -> None:
    make_ct_study(tmp_path / "study", 3, seed=33)
    state = tmp_path / "er-state"
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path, state=state).ok().json()
    tid = pushed["transfer_id"]
    _decline(relay, pushed["authorization_url"])
    before = _journal(state, tid)

    reissued = run_cli(
        ["reissue", tid, "--state", str(state)],
        cwd=tmp_path,
        credential=relay.sender_credential,
    ).failed()

    assert reissued.returncode == 2
    assert DECLINED in reissued.message
    assert f"to share the images of transfer {tid}, so its code cannot be re-issued." in (
        reissued.message
    )
    assert TELL_THEM in reissued.message
    assert "send the study again with trauma-relay push" in reissued.message
    assert _journal(state, tid) == before  # no new code was made for what they declined
    assert _revocation(relay, tid) == ("revoked", "family")
