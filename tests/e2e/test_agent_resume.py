"""Acceptance: SIGKILL the sending agent (`trauma-relay sender`) in the middle of an upload the
ER console started, and start it again: the transfer resumes by itself, and the trauma center
redeems every image exactly once."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pydicom
import pytest
from agent_harness import AgentProcess, ConsoleClient, running_agent
from peers.storage_scp import RecordingStorageSCP
from relay_harness import RECEIVER

from e2e.harness import (
    E2ERelay,
    assert_identical_in_scp,
    pacs_address,
    post_json,
    uploaded_objects,
)
from sending_site import journal
from sending_site.synthetic import make_ct_study

pytestmark = pytest.mark.peers

INSTANCES = 96  # 512 x 512 slices, 48 MiB: seconds of upload, so the kill lands mid-way
KILL_AFTER_COMPLETE = 6
WAIT_SECONDS = 180.0
_CODE = re.compile(r'id="code">([^<]+)<')
_STUDY = re.compile(r'href="/studies/(\d+)"')
_TRANSFER = re.compile(r"/transfers/([0-9A-Za-z_-]+)$")


def _complete_objects(relay: E2ERelay) -> tuple[str, set[int]] | None:
    """The (only) transfer and the indexes of its objects the relay holds whole."""
    rows = relay.query("SELECT id FROM transfers")
    if not rows:
        return None
    (transfer_id,) = rows[0]
    complete = relay.query(
        "SELECT idx FROM objects WHERE transfer_id = ? AND complete = 1", transfer_id
    )
    return str(transfer_id), {int(i) for (i,) in complete}


def _wait(what: str, condition: object, agent: AgentProcess) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not callable(condition) or not condition():
        log = agent.log()
        assert "stopped:" not in log, f"{what} failed:\n{log[-3000:]}"
        assert time.monotonic() < deadline, f"{what} did not happen:\n{log[-3000:]}"
        time.sleep(0.05)


def test_the_agent_killed_mid_upload_resumes_the_transfer_when_started_again(
    fresh_relay: E2ERelay, storage_scp: RecordingStorageSCP, tmp_path: Path
) -> None:
    relay = fresh_relay
    files = make_ct_study(tmp_path / "study", INSTANCES, rows=512, columns=512, seed=21)
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    agent = AgentProcess(tmp_path / "agent", relay.url, relay.sender_credential)
    agent.add_user()
    with running_agent(agent):
        agent.receive(tmp_path / "study")
        console = ConsoleClient(agent.url).sign_in()
        _, _, home = console.get("/")
        found_study = _STUDY.search(home)
        assert found_study, home
        study = f"/studies/{found_study.group(1)}"  # the index's id: no UID in addresses
        assert study_uid not in home
        assert console.get(f"/studies/{study_uid}")[0] == 404
        status, _, page = console.get(study)
        assert status == 200, page
        assert "County Trauma" in page
        status, _, page = console.post(
            f"{study}/send", {"recipient": RECEIVER, "acknowledge": "yes"}
        )
        assert status == 200, page
        holding: list[tuple[str, set[int]]] = []

        def some_complete() -> bool:
            found = _complete_objects(relay)
            holding[:] = [found] if found else []
            return found is not None and len(found[1]) >= KILL_AFTER_COMPLETE

        _wait("the upload", some_complete, agent)
        agent.kill()
    transfer_id, complete_before = holding[0]
    assert len(complete_before) < INSTANCES, "the kill came after the upload"
    record = journal.load(agent.state, transfer_id)
    assert not record.done

    log_mark = relay.log_file.stat().st_size
    with running_agent(agent):
        assert "Resuming the push job" in agent.log()
        _wait("the resumed upload", lambda: journal.load(agent.state, transfer_id).done, agent)
        console = ConsoleClient(agent.url).sign_in()
        status, _, page = console.get(f"/transfers/{transfer_id}")
        assert status == 200, page
        assert "Upload complete." in page
        found = _CODE.search(page)
        assert found, page
        code = html.unescape(found.group(1)).strip()

    assert relay.transfer_count() == 1  # resumed, not sent again as a new transfer
    log = relay.log_file.read_bytes()[log_mark:].decode(errors="replace")
    patched = uploaded_objects(log, transfer_id)
    assert patched, "the resumed push uploaded nothing"
    assert not patched & complete_before  # what the relay held whole was not sent again
    record = journal.load(agent.state, transfer_id)
    # What the family's phone does with the link the page shows as a QR.
    answer = post_json(relay.url + "/api/v1/authorizations", {"token": record.authorization_token})
    assert answer["state"] == "authorized", answer
    redeemed = relay.redeem(code, workdir=tmp_path, pacs=pacs_address(storage_scp)).ok().json()
    assert redeemed["instances"] == INSTANCES
    stores = storage_scp.stores
    assert len(stores) == INSTANCES  # each image arrived once: nothing lost, nothing doubled
    assert_identical_in_scp(storage_scp, files)
