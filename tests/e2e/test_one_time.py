"""Acceptance, at the command line: a code works once; wrong codes lock the transfer without
destroying it; a re-issued code works and the old one is dead. (The relay API tests cover
concurrency and the lifecycle in depth.)"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from peers.storage_scp import RecordingStorageSCP

from e2e.harness import E2ERelay, pacs_address, run_cli
from relay.lifecycle import MAX_FAILED_ATTEMPTS
from sending_site.synthetic import make_ct_study
from transfer_codes.codes import RedemptionCode

REFUSED = "That code was not accepted"


def _pushed(relay: E2ERelay, tmp_path: Path, seed: int) -> dict[str, Any]:
    make_ct_study(tmp_path / "study", 2, seed=seed)
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    return pushed


def _attempts(relay: E2ERelay, transfer_id: str) -> tuple[str, int]:
    ((state, failed),) = relay.query(
        "SELECT state, failed_attempts FROM transfers WHERE id = ?", transfer_id
    )
    return str(state), int(failed)


def test_a_code_works_once(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    pushed = _pushed(relay, tmp_path, seed=41)
    first = relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").ok().json()
    assert first["instances"] == 2

    # This machine knows it delivered that code: it says when and where, without asking.
    here = relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(storage_scp)).ok()
    answer = here.json()
    assert answer["delivered_before"] is not None, answer
    assert answer["destination"] == str(tmp_path / "inbox" / pushed["transfer_id"])
    assert answer["instances"] == 2
    assert REFUSED not in here.stdout + here.stderr

    # Another machine (its own state folder) cannot use it again.
    again = relay.redeem(
        pushed["code"],
        workdir=tmp_path,
        pacs=pacs_address(storage_scp),
        state=tmp_path / "other-machine",
    )

    again.failed()
    assert REFUSED in again.message
    assert storage_scp.stores == []
    assert _attempts(relay, pushed["transfer_id"])[0] == "delivered"


def test_a_typo_is_caught_before_it_costs_an_attempt(relay: E2ERelay, tmp_path: Path) -> None:
    pushed = _pushed(relay, tmp_path, seed=42)
    code = pushed["code"]
    typo = code[:-1] + ("0" if code[-1] != "0" else "1")

    run = relay.redeem(typo, workdir=tmp_path, out=tmp_path / "inbox")

    run.failed()
    assert _attempts(relay, pushed["transfer_id"]) == ("authorized", 0)
    relay.redeem(code, workdir=tmp_path, out=tmp_path / "inbox").ok()


def test_wrong_codes_lock_and_a_reissued_code_works(
    relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    pushed = _pushed(relay, tmp_path, seed=43)
    tid, right = pushed["transfer_id"], pushed["code"]
    locator = RedemptionCode.parse(right).locator
    wrong = [RedemptionCode.generate(locator).grouped() for _ in range(MAX_FAILED_ATTEMPTS)]
    assert right not in wrong

    def attempt(n: int) -> str:
        work = tmp_path / f"attempt-{n}"
        work.mkdir()
        return relay.redeem(wrong[n], workdir=work, out=work / "inbox").failed().message

    with ThreadPoolExecutor(4) as pool:
        messages = list(pool.map(attempt, range(MAX_FAILED_ATTEMPTS)))
    assert all(REFUSED in m for m in messages)
    assert _attempts(relay, tid) == ("locked", MAX_FAILED_ATTEMPTS)
    # Each says how many tries were left (in whichever order they ran), the last that it was.
    left = sorted(int(n) for m in messages for n in re.findall(r"(\d+) more tr(?:y|ies)", m))
    assert left == list(range(1, MAX_FAILED_ATTEMPTS))
    assert sum("that was the last try: the transfer is now locked" in m for m in messages) == 1

    # Locked: even the right code now gets the same answer as a wrong one.
    assert REFUSED in relay.redeem(right, workdir=tmp_path, out=tmp_path / "x").failed().message

    reissued = run_cli(
        ["reissue", tid, "--state", str(tmp_path / "er-state"), "--json"],
        cwd=tmp_path,
        credential=relay.sender_credential,
    ).ok()
    new_code = reissued.json()["code"]
    assert new_code != right
    assert new_code not in reissued.args
    assert _attempts(relay, tid)[1] == 0

    assert REFUSED in relay.redeem(right, workdir=tmp_path, out=tmp_path / "x").failed().message
    redeemed = relay.redeem(new_code, workdir=tmp_path, pacs=pacs_address(storage_scp)).ok()
    assert redeemed.json()["instances"] == 2
    assert len(storage_scp.received) == 2


def test_a_code_the_family_cancelled_says_so(relay: E2ERelay, tmp_path: Path) -> None:
    pushed = _pushed(relay, tmp_path, seed=44)
    relay.cancel_on_the_phone(pushed)

    run = relay.redeem(pushed["code"], workdir=tmp_path, out=tmp_path / "inbox").failed()

    assert "This transfer was cancelled by the patient or family" in run.message
    assert "call the sending hospital" not in run.message
    assert not (tmp_path / "inbox" / pushed["transfer_id"]).exists()
    # A wrong code for it learns nothing of the kind.
    wrong = RedemptionCode.generate(RedemptionCode.parse(pushed["code"]).locator).grouped()
    refused = relay.redeem(wrong, workdir=tmp_path, out=tmp_path / "inbox").failed()
    assert REFUSED in refused.message
    assert "cancelled" not in refused.message
    assert "more tr" not in refused.message
