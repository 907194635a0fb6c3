"""The trauma console's identity step with a Modality Worklist, in Chromium at 1366 x 768,
against real peers: the ER pushes a two-series CT study through a real relay, the patient
authorizes, and `trauma-relay receiver --config FILE` (configured with DCMTK's wlmscpfs as its
worklist) redeems it into a real Orthanc. The worklist is down when the preview opens: the page
says so and offers the typed number. Once it is up, staff search it, pick the patient (scheduled
under a trauma registration with a slightly different name), acknowledge each difference, and
import; Orthanc files the study under the worklist's record, and the ER sees the receipt say it
was reconciled."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_browsing import fits_the_screen, snap, workstation
from e2e.conftest import fresh_relay
from e2e.harness import E2ERelay, sop_instance_uid
from peers.orthanc import OrthancServer
from peers.worklist import ScheduledPatient, WorklistServer
from playwright.async_api import APIResponse, Browser, Page, expect
from test_trauma_console import (
    WAIT_MS,
    _open_with_code,
    _orthanc_holds_once,
    _pushed,
    _thumbnails_rendered,
)
from trauma_harness import ReceivingAgent, configured_agent, er_transfers

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]
relay = fresh_relay  # a relay process of each test's own

SCHEDULED = [
    ScheduledPatient("MRN-4243", "DOE^JOHN", "19700301", "M", "ACC-43", "CT CHEST"),
    # The ER's DOE^JANE, born 1985-02-14, registered here on arrival as DOE^JANIE.
    ScheduledPatient("MRN-4242", "DOE^JANIE", "19850214", "F", "ACC-42", "CT TRAUMA PANSCAN"),
]


def _agent_asking(
    worklist: WorklistServer, relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> ReceivingAgent:
    extra = {
        "worklist.host": worklist.host,
        "worklist.port": str(worklist.port),
        "worklist.ae_title": worklist.ae_title,
    }
    return configured_agent(relay, orthanc, tmp_path / "tc", extra)


async def _posted(page: Page, url: str, fields: dict[str, str]) -> APIResponse:
    """`fields` posted as the signed-in page would, with its CSRF token, but without the page's
    own checks: what the agent itself accepts."""
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    return await page.request.post(url, form={"csrf_token": token or "", **fields})


async def test_staff_pick_the_patient_from_the_worklist_and_import(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    files, er, pushed = _pushed(relay, tmp_path, seed=71, slices=(6, 4))
    transfer_id = pushed["transfer_id"]
    worklist = WorklistServer(SCHEDULED)  # its port is chosen; wlmscpfs is not started yet
    agent = _agent_asking(worklist, relay, orthanc, tmp_path).start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            await _thumbnails_rendered(page, 2)
            # The worklist is down: the page says why, and the typed number still works.
            await expect(page.locator("#worklist-problem")).to_contain_text(
                f"The worklist {worklist.ae_title} at {worklist.host}:{worklist.port} could not "
                "be reached."
            )
            await expect(page.locator("#worklist-problem")).to_contain_text(
                "or type the local medical record number"
            )
            await expect(
                page.get_by_label("This hospital's medical record number (MRN)")
            ).to_be_editable()
            await page.locator("#worklist").scroll_into_view_if_needed()
            await snap(page, "trauma-wl-1-worklist-down.png")

            with worklist:
                # The default search (the ER's family name, its birth date) is in the form.
                search = page.locator("#worklist-search")
                await expect(
                    search.get_by_label("Name (FAMILY^GIVEN, * for any letters)")
                ).to_have_value("DOE*")
                await expect(search.get_by_label("Birth date (YYYY-MM-DD)")).to_have_value(
                    "1985-02-14"
                )
                await search.get_by_role("button", name="Search the worklist").click()
                rows = page.locator("#worklist tr.candidate")
                await expect(rows).to_have_count(1, timeout=WAIT_MS)
                # Without the birth date, both DOEs: the closest to the ER's patient first.
                await search.get_by_label("Birth date (YYYY-MM-DD)").fill("")
                await search.get_by_role("button", name="Search the worklist").click()
                await expect(rows).to_have_count(2, timeout=WAIT_MS)
                assert page.url == f"{agent.url}/imports/{transfer_id}#worklist"  # no names
                first = rows.first
                await expect(first).to_have_attribute("data-patient-id", "MRN-4242")
                await expect(first).to_contain_text("DOE, JANIE")
                await expect(first).to_contain_text("1985-02-14")
                await expect(first).to_contain_text("female")
                await expect(first).to_contain_text("MRN-4242 (REGIONAL)")
                await expect(first).to_contain_text("CT TRAUMA PANSCAN · ACC-42")
                await expect(rows.nth(1)).to_have_attribute("data-patient-id", "MRN-4243")
                assert await fits_the_screen(page)
                await page.locator("#worklist").scroll_into_view_if_needed()
                await snap(page, "trauma-wl-2-candidates.png")

                # A pick must come from the last search: a record number it did not list is
                # refused by the agent, whatever a page sends.
                stale = {"from_worklist": "1", "local_patient_id": "MRN-9999"}
                refused = await _posted(page, f"{agent.url}/imports/{transfer_id}/identity", stale)
                assert refused.status == 409
                assert "search the worklist again" in await refused.text()

                await first.get_by_role("button", name="Use MRN-4242").click()

            await expect(page.locator("#checked-mrn")).to_have_text("MRN-4242")
            await expect(page.locator("#confirm-form")).to_contain_text(
                "(issuer REGIONAL), picked from the worklist"
            )
            await expect(page.locator("#compare")).to_have_accessible_name(
                "The ER's patient and the worklist's patient"
            )
            differs = page.locator("#compare tr.differs")
            await expect(differs).to_have_count(1)
            await expect(differs).to_contain_text("DOE, JANE")
            await expect(differs).to_contain_text("DOE, JANIE")
            acks = page.locator("#confirm-form input[type=checkbox]")
            await expect(acks).to_have_count(2)  # a number new to the PACS; the name
            assert await fits_the_screen(page)
            await page.locator("#identity").scroll_into_view_if_needed()
            await snap(page, "trauma-wl-3-differences.png")
            # One acknowledgement is not enough: the agent refuses (without the page's help).
            one = {"local_patient_id": "MRN-4242", "ack-new": "1"}
            refused = await _posted(page, f"{agent.url}/imports/{transfer_id}/import", one)
            assert refused.status == 400
            assert orthanc.get_json("/statistics")["CountInstances"] == 0

            await page.get_by_label("MRN-4242 was just given to this patient").check()
            await page.get_by_label("Name differs (DOE, JANE / DOE, JANIE)").check()
            await page.get_by_role("button", name="Import into the PACS").click()
            await expect(page.locator("#result")).to_contain_text(
                "Imported 10 verified images into the PACS", timeout=WAIT_MS
            )
            await expect(page.locator("#filed-under")).to_contain_text(
                "patient ID MRN-4242 (issuer REGIONAL)"
            )
            await expect(page.locator("#receipt")).to_contain_text("delivery receipt")
            await snap(page, "trauma-wl-4-imported.png")
    finally:
        agent.stop()

    # Orthanc files the study under the worklist's record, every image once.
    _orthanc_holds_once(orthanc, files)
    (patient,) = orthanc.patients()
    tags = orthanc.get_json(f"/patients/{patient}")["MainDicomTags"]
    assert tags["PatientID"] == "MRN-4242"
    for path in files:
        found = orthanc.instance_tags(orthanc.find_by_sop_instance_uid(sop_instance_uid(path)))
        assert (found["PatientID"], found["IssuerOfPatientID"]) == ("MRN-4242", "REGIONAL")
    # The ER sees the receipt: delivered, and filed under the local record.
    sent = er_transfers(relay, er / "er-state", er)[transfer_id]
    assert sent["state"] == "delivered"
    assert (sent["receipt"]["instances"], sent["receipt"]["reconciled"]) == (10, True)
    audit = (agent.state / "receiving" / "console-audit.jsonl").read_text("utf-8")
    confirmed = [line for line in audit.splitlines() if '"import-confirmed"' in line]
    assert len(confirmed) == 1
    assert '"from_worklist": true' in confirmed[0]
    assert '"local_issuer": "REGIONAL"' in confirmed[0]


async def test_a_worklist_pick_the_pacs_knows_is_compared_with_both(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """The PACS already holds MRN-4242 (an earlier image, born 1985-02-15): the ER's patient,
    the PACS's record and the worklist's are shown side by side, each difference ticked."""
    (earlier,) = make_ct_study(
        tmp_path / "earlier",
        1,
        seed=9,
        patient_id="MRN-4242",
        issuer_of_patient_id="REGIONAL",
        patient_name="DOE^JANIE",
        patient_birth_date="19850215",
    )
    orthanc.post_json("/instances", earlier.read_bytes(), "application/dicom")
    files, _er, pushed = _pushed(relay, tmp_path, seed=72, slices=(2, 1))
    with WorklistServer(SCHEDULED) as worklist:
        agent = _agent_asking(worklist, relay, orthanc, tmp_path).start()
        try:
            async with workstation(browser) as page:
                await _open_with_code(page, agent, pushed["code"])
                # The default search (name and birth date) finds the patient at once.
                pick = page.locator('#worklist tr.candidate[data-patient-id="MRN-4242"]')
                await pick.get_by_role("button", name="Use MRN-4242").click()
                await expect(page.locator("#checked-mrn")).to_have_text("MRN-4242")
                compare = page.locator("#compare")
                await expect(compare).to_have_accessible_name(
                    "The ER's patient and the PACS's record, and the worklist's patient"
                )
                await expect(compare.locator("thead th")).to_have_text(
                    [
                        "Detail",
                        "Sent by St. Mary's ED",
                        "In the PACS for MRN-4242",
                        "On the worklist",
                    ]
                )
                birth = compare.locator("tr", has_text="Birth date")
                await expect(birth.locator("td")).to_have_text(
                    ["1985-02-14", "1985-02-15", "1985-02-14"]
                )
                await expect(birth.locator("td.differs")).to_have_count(1)
                acks = page.locator("#confirm-form input[type=checkbox]")
                await expect(acks).to_have_count(3)  # name, birth date; the worklist's birth
                await snap(page, "trauma-wl-5-pacs-and-worklist.png")
                for label in (
                    "Name differs (DOE, JANE / DOE, JANIE)",
                    "Birth date differs (1985-02-14 / 1985-02-15)",
                    "Birth date on the worklist differs (1985-02-14 / 1985-02-15)",
                ):
                    await page.get_by_label(label).check()
                await page.get_by_role("button", name="Import into the PACS").click()
                await expect(page.locator("#result")).to_contain_text(
                    "Imported 3 verified images into the PACS", timeout=WAIT_MS
                )
        finally:
            agent.stop()
    for path in files:
        found = orthanc.instance_tags(orthanc.find_by_sop_instance_uid(sop_instance_uid(path)))
        assert (found["PatientID"], found["PatientBirthDate"]) == ("MRN-4242", "19850215")
