"""The holds queue in real Chromium at 1366 x 768: a study `trauma-relay redeem` held (the local
record number staff gave is filed in the PACS with another birth date) is listed with its
reason and both sides; a nurse opens it, ticks the confirmation and files it under the PACS's
record; the real Orthanc then holds it under that record, and the audit log says who decided.
Screenshots go to test-artifacts/browser/console/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_browsing import expect_signed_in_as, fits_the_screen, sign_in, snap, workstation
from console_harness import NURSE, NURSE_PASSWORD
from e2e.harness import E2ERelay, pacs_address, run_cli, sop_instance_uid
from holds_harness import trauma_console
from peers.orthanc import OrthancServer
from peers.worklist import ScheduledPatient, WorklistServer
from playwright.async_api import Browser, expect

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[E2ERelay]:
    running = E2ERelay(tmp_path / "relay").start()
    try:
        yield running
    finally:
        running.stop()


def _held_under_a_local_record(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, seed: int = 191
) -> str:
    """The PACS has MRN-777 born 1985-02-15; the ER's DOE^JANE was born 1985-02-14. Staff
    gave MRN-777 at the command line: held. Returns the transfer id."""
    for path in make_ct_study(
        tmp_path / "local",
        1,
        seed=seed,
        patient_id="MRN-777",
        issuer_of_patient_id="REGIONAL",
        patient_birth_date="19850215",
    ):
        orthanc.post_json("/instances", path.read_bytes(), "application/dicom")
    make_ct_study(tmp_path / "study", 3, seed=seed + 1)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    args = relay.redeem_args(state=tmp_path / "tc-state", pacs=pacs_address(orthanc))
    local = ["--local-patient-id", "MRN-777", "--local-issuer", "REGIONAL"]
    run_cli(
        [*args, *local],
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=pushed["code"] + "\n",
    ).failed()
    assert len(orthanc.instances()) == 1
    return str(pushed["transfer_id"])


async def test_a_nurse_files_a_held_study_under_the_local_record(
    tmp_path: Path, browser: Browser, relay: E2ERelay, orthanc: OrthancServer
) -> None:
    transfer_id = _held_under_a_local_record(relay, orthanc, tmp_path)

    async with (
        trauma_console(
            tmp_path / "console", tmp_path / "tc-state", relay.url, relay.receiver_credential
        ) as console,
        workstation(browser) as page,
    ):
        await sign_in(page, console.url, NURSE, NURSE_PASSWORD)
        await expect_signed_in_as(page, NURSE)
        await page.get_by_role("link", name="Holds").click()
        await expect(page.get_by_role("heading", name="Held studies")).to_be_visible()
        held = page.locator(f'li.held[data-transfer-id="{transfer_id}"]')
        await expect(held.locator(".reason")).to_have_text(
            "The local record given is someone else's."
        )
        sides = held.get_by_role("table")
        await expect(sides.get_by_role("columnheader").first).to_have_accessible_name("Detail")
        birth = held.locator("tr", has_text="Birth date")
        await expect(birth).to_have_class("differs")
        await expect(birth.locator("td")).to_have_text(["1985-02-14", "1985-02-15"])
        assert await fits_the_screen(page)
        await snap(page, "holds-queue.png")

        await held.get_by_role("link", name="Decide about DOE, JANE").click()
        await expect(page.get_by_role("heading", name="Held: DOE, JANE")).to_be_visible()
        confirm = page.locator("#choice-confirm_local_record")
        assert await fits_the_screen(page)
        await snap(page, "holds-decide.png")

        # The button alone does nothing: the confirmation must be ticked (the browser says so).
        await confirm.get_by_role("button", name="File under the PACS's record").click()
        await expect(page).to_have_url(f"{console.url}/holds/{transfer_id}")
        assert len(orthanc.instances()) == 1

        await confirm.get_by_label("I checked the patient in front of me").check()
        await confirm.get_by_role("button", name="File under the PACS's record").click()
        await expect(page.locator("#outcome")).to_have_text(
            "Stored 3 images of DOE, JANE in the PACS under patient ID MRN-777, as DOE, JANE.",
            timeout=120_000,
        )
        await snap(page, "holds-done.png")
        await page.get_by_role("link", name="Back to the held studies").click()
        await expect(page.locator("#no-holds")).to_be_visible()
        await snap(page, "holds-empty.png")

    for path in (tmp_path / "study").iterdir():
        found = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
        assert found is not None, path
        tags = orthanc.instance_tags(found)
        assert (tags["PatientID"], tags["PatientBirthDate"]) == ("MRN-777", "19850215")
    records = [json.loads(line) for line in console.audit.read_text("utf-8").splitlines()]
    decided = [r for r in records if r["action"].startswith("hold-")]
    assert [(r["action"], r["who"], r["outcome"]) for r in decided] == [
        ("hold-confirm-local-record", NURSE, "success")
    ]
    assert decided[0]["detail"]["transfer_id"] == transfer_id


async def test_a_nurse_picks_the_patients_record_from_the_worklist(
    tmp_path: Path, browser: Browser, relay: E2ERelay, orthanc: OrthancServer
) -> None:
    """Held under MRN-777 (someone else's birth date); the patient's own record, MRN-778, is
    on the worklist (and in the PACS, from an earlier visit), beside another DOE."""
    transfer_id = _held_under_a_local_record(relay, orthanc, tmp_path, seed=193)
    for path in make_ct_study(
        tmp_path / "earlier", 1, seed=195, patient_id="MRN-778", issuer_of_patient_id="REGIONAL"
    ):
        orthanc.post_json("/instances", path.read_bytes(), "application/dicom")
    scheduled = [
        ScheduledPatient("MRN-779", "DOE^JOHN", "19700301", "M", "ACC-9", "CT CHEST"),
        ScheduledPatient("MRN-778", "DOE^JANE", "19850214", "F", "ACC-8", "CT TRAUMA PANSCAN"),
    ]

    with WorklistServer(scheduled) as worklist:
        async with (
            trauma_console(
                tmp_path / "console",
                tmp_path / "tc-state",
                relay.url,
                relay.receiver_credential,
                f"worklist.host={worklist.host}",
                f"worklist.port={worklist.port}",
                f"worklist.ae_title={worklist.ae_title}",
            ) as console,
            workstation(browser) as page,
        ):
            await sign_in(page, console.url, NURSE, NURSE_PASSWORD)
            await expect_signed_in_as(page, NURSE)
            await page.goto(f"{console.url}/holds/{transfer_id}")
            search = page.locator("#worklist")
            await expect(
                search.get_by_label("Name (FAMILY^GIVEN, * for any letters)")
            ).to_have_value("DOE*")
            await search.get_by_label("Birth date (YYYY-MM-DD)").fill("")
            await search.get_by_role("button", name="Search the worklist").click()
            rows = page.locator("#worklist tr.candidate")
            await expect(rows).to_have_count(2)
            # The ER's patient first (same name and birth date), marked, in words too: not by
            # its colour alone.
            await expect(rows.first).to_have_attribute("data-patient-id", "MRN-778")
            await expect(rows.first).to_have_class("candidate same")
            await expect(rows.first.get_by_role("rowheader")).to_have_accessible_name(
                "DOE, JANE (same name and birth date as sent)"
            )
            await expect(rows.nth(1).get_by_role("rowheader")).to_have_accessible_name("DOE, JOHN")
            await expect(rows.first).to_contain_text("CT TRAUMA PANSCAN")
            assert await fits_the_screen(page)
            await page.locator("#worklist").scroll_into_view_if_needed()
            await snap(page, "holds-worklist.png")

            # Each row's confirmation names its patient: a screen reader's list of the page's
            # controls does not list them all as "This is the patient".
            for n, named in enumerate(("DOE, JANE, MRN-778", "DOE, JOHN, MRN-779")):
                await expect(rows.nth(n).get_by_role("checkbox")).to_have_accessible_name(
                    f"This is the patient: {named}"
                )
            await rows.first.get_by_label("This is the patient").check()
            await rows.first.get_by_role("button", name="File under MRN-778").click()
            await expect(page.locator("#outcome")).to_have_text(
                "Stored 3 images of DOE, JANE in the PACS under patient ID MRN-778, as DOE, JANE.",
                timeout=120_000,
            )

    for path in (tmp_path / "study").iterdir():
        found = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
        assert found is not None, path
        assert orthanc.instance_tags(found)["PatientID"] == "MRN-778"
    records = [json.loads(line) for line in console.audit.read_text("utf-8").splitlines()]
    decided = [r for r in records if r["action"].startswith("hold-")]
    assert [(r["action"], r["who"], r["outcome"]) for r in decided] == [
        ("hold-other-record", NURSE, "success")
    ]
    assert decided[0]["detail"]["decided"] == {"local_patient_id": "MRN-778"}
