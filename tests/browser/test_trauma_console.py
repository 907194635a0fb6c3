"""The trauma console as staff use it, in Chromium at 1366 x 768, against real peers: the ER
pushes a two-series CT study through a real relay, the patient authorizes, and at the trauma
center `trauma-relay receiver --config FILE` serves the console that redeems it into a real
Orthanc. Sign in, type the code (a typing mistake is caught on the page and costs no attempt),
check the preview with its thumbnails, type the local record number, acknowledge each
difference from the PACS's record, import, and see the receipt reach the ER. Then a SIGKILL in
the middle of an import: the restarted agent lists it, finishes it, and Orthanc holds every
image once."""

from __future__ import annotations

import asyncio
import re
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from console_browsing import expect_signed_in_as, fits_the_screen, sign_in, snap, workstation
from e2e.conftest import fresh_relay
from e2e.harness import E2ERelay, sop_instance_uid
from peers.orthanc import OrthancServer
from phone_harness import decode_qr
from playwright.async_api import Browser, Page, expect
from trauma_harness import (
    LOCAL_ISSUER,
    PASSWORD,
    USER,
    ReceivingAgent,
    configured_agent,
    er_transfers,
    pacs_paused_at_first_image,
)

from receiving_site.console.errors import NoWorklist
from sending_site.synthetic import make_ct_study
from transfer_codes.codes import RedemptionCode

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]
relay = fresh_relay  # a relay process of each test's own

WAIT_MS = 120_000  # generous: the machine is shared; nothing here asserts a duration
THUMBNAIL_SIDE = 64  # the synthetic CT is 64 x 64: a rendered picture, not the 160 px placeholder


def _study(folder: Path, seed: int, slices: tuple[int, int]) -> list[Path]:
    """Two CT series of one study (thin 1 mm and 5 mm), DOE^JANE, born 1985-02-14, female."""
    thin = make_ct_study(folder / "thin", slices[0], seed=seed, slice_thickness_mm=1.0)
    thick = make_ct_study(
        folder / "thick", slices[1], seed=seed, series_number=2, slice_thickness_mm=5.0
    )
    return [*thin, *thick]


def _in_pacs(orthanc: OrthancServer, folder: Path, **patient: str) -> None:
    """What the trauma center's PACS already holds for MRN-555: one earlier image."""
    (path,) = make_ct_study(folder, 1, seed=7, patient_id="MRN-555", **patient)
    orthanc.post_json("/instances", path.read_bytes(), "application/dicom")


def _mistyped(code: str) -> str:
    """The code with two neighbouring, different symbols swapped (the check symbol's catch)."""
    symbols = code.replace("-", "")
    i = next(i for i in range(len(symbols) - 1) if symbols[i] != symbols[i + 1])
    swapped = symbols[:i] + symbols[i + 1] + symbols[i] + symbols[i + 2 :]
    return "-".join(swapped[k : k + 4] for k in range(0, 16, 4))


def _failed_attempts(relay: E2ERelay, transfer_id: str) -> int:
    return int(relay.query("SELECT failed_attempts FROM transfers WHERE id = ?", transfer_id)[0][0])


async def _thumbnails_rendered(page: Page, count: int) -> None:
    """Every series' thumbnail loaded, rendered from the images (not the placeholder)."""
    await page.wait_for_function(
        """([count, side]) => {
            const images = [...document.querySelectorAll("img.thumbnail")];
            return images.length === count && images.every(
                (i) => i.complete && i.naturalWidth === side && i.naturalHeight === side);
        }""",
        arg=[count, THUMBNAIL_SIDE],
        timeout=WAIT_MS,
    )


async def _open_with_code(page: Page, agent: ReceivingAgent, code: str) -> None:
    await sign_in(page, agent.url, USER, PASSWORD)
    await expect_signed_in_as(page, USER)
    field = page.get_by_label("Code from the transfer sheet or the patient's phone")
    await field.press_sequentially(code)  # key by key, as a USB scanner types
    await field.press("Enter")  # what a scanner types after the code
    await expect(page.locator("#preview")).to_be_visible(timeout=WAIT_MS)


def _pushed(
    relay: E2ERelay, tmp_path: Path, seed: int, slices: tuple[int, int]
) -> tuple[list[Path], Path, dict[str, Any]]:
    """The ER pushes the two-series study and the patient authorizes it: (files, the ER's
    working folder, the push's JSON)."""
    files = _study(tmp_path / "study", seed=seed, slices=slices)
    er = tmp_path / "er"
    er.mkdir()
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=er).ok().json()
    relay.authorize(pushed)
    return files, er, pushed


async def _file_as_new_record(page: Page, mrn: str) -> None:
    """Type a local record number the PACS has nothing for, say so, and import."""
    await page.get_by_label("This hospital's medical record number (MRN)").fill(mrn)
    await page.get_by_role("button", name="Check this record").click()
    await page.get_by_label(f"{mrn} was just given to this patient").check()
    await page.get_by_role("button", name="Import into the PACS").click()


async def _continue_and_import(page: Page, mrn: str, images: int) -> None:
    """On a stopped import's page: continue (the preview again, from the kept images), file it
    under a new record `mrn`, and see all `images` imported."""
    await page.get_by_role("button", name="Continue").click()
    await _thumbnails_rendered(page, 2)
    await _file_as_new_record(page, mrn)
    await expect(page.locator("#result")).to_contain_text(
        f"Imported {images} verified images", timeout=WAIT_MS
    )


def _orthanc_holds_once(orthanc: OrthancServer, files: list[Path]) -> None:
    uids = [sop_instance_uid(p) for p in files]
    stored = [orthanc.instance_tags(i)["SOPInstanceUID"] for i in orthanc.instances()]
    for uid in uids:
        assert stored.count(uid) == 1, uid


async def test_a_code_is_redeemed_previewed_filed_and_imported(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    _in_pacs(orthanc, tmp_path / "earlier", patient_name="DOE^JANET", patient_birth_date="19850212")
    files, er, pushed = _pushed(relay, tmp_path, seed=61, slices=(6, 4))
    code = RedemptionCode.parse(pushed["code"]).grouped()
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            await expect(page.get_by_role("heading", name="Enter a code")).to_be_visible()
            await snap(page, "trauma-1-enter-code.png")

            # A swapped pair is caught on the page: nothing is sent, no attempt is used.
            field = page.get_by_label("Code from the transfer sheet or the patient's phone")
            await field.fill(_mistyped(code))
            await expect(page.locator("#problem")).to_contain_text("typing mistake")
            await field.press("Enter")
            await expect(page.locator("#problem")).to_contain_text("No attempt was used")
            await expect(page).to_have_url(f"{agent.url}/")
            await snap(page, "trauma-2-typing-mistake.png")
            assert _failed_attempts(relay, pushed["transfer_id"]) == 0

            await field.fill(code)
            await field.press("Enter")
            await expect(page).to_have_url(
                f"{agent.url}/imports/{pushed['transfer_id']}", timeout=WAIT_MS
            )
            await expect(page.locator("#patient-name")).to_have_text("DOE, JANE")
            await expect(page.locator("#patient-birth-date")).to_have_text("1985-02-14")
            await expect(page.locator("#patient-sex")).to_have_text("female")
            await expect(page.locator("#outside-mrn")).to_have_text("ER-12345 (issuer ER-GENERAL)")
            await expect(page.locator("#sending-facility")).to_contain_text("St. Mary's ED")
            await expect(page.locator("#authorization")).to_have_text("by the patient or family")
            await expect(page.locator(".series-item")).to_have_count(2)
            await expect(page.locator(".series-item").nth(0)).to_contain_text("6 images, 1 mm")
            await expect(page.locator(".series-item").nth(1)).to_contain_text("4 images, 5 mm")
            await _thumbnails_rendered(page, 2)
            assert await fits_the_screen(page)
            await snap(page, "trauma-3-preview.png")
            # A thumbnail: for the signed-in user only, never kept by the browser.
            picture = f"{agent.url}/imports/{pushed['transfer_id']}/series/1.png"
            shown = await page.request.get(picture)
            assert shown.headers["content-type"] == "image/png"
            assert shown.headers["cache-control"] == "no-store"
            async with (
                aiohttp.ClientSession() as anonymous,
                anonymous.get(picture, allow_redirects=False) as answer,
            ):
                assert answer.status == 303
                assert answer.headers["Location"].startswith("/sign-in")
            assert orthanc.get_json("/statistics")["CountInstances"] == 1  # nothing imported
            # No worklist is set up here: the page says so in staff's words, and they type the
            # number; the setting's name is in a quieter line, for the administrator.
            await expect(page.locator("#worklist-problem")).to_have_text(NoWorklist().detail)
            await expect(page.locator("#worklist-problem")).not_to_contain_text("worklist.host")
            await expect(page.locator("#worklist-setting")).to_contain_text(
                "For the administrator: worklist.host is empty"
            )

            await page.get_by_label("This hospital's medical record number (MRN)").fill("MRN-555")
            await page.get_by_role("button", name="Check this record").click()
            await expect(page.locator("#checked-mrn")).to_have_text("MRN-555")
            await expect(page.locator("#compare tr.differs")).to_have_count(2)  # name, birth
            acks = page.locator("#confirm-form input[type=checkbox]")
            await expect(acks).to_have_count(2)
            await snap(page, "trauma-4-differences.png")
            # Unticked, the browser refuses to send; and so does the agent (without the page).
            await page.get_by_role("button", name="Import into the PACS").click()
            await expect(page.locator("#confirm-form")).to_be_visible()
            token = await page.locator("#confirm-form input[name=csrf_token]").get_attribute(
                "value"
            )
            refused = await page.request.post(
                f"{agent.url}/imports/{pushed['transfer_id']}/import",
                form={"csrf_token": token or "", "local_patient_id": "MRN-555", "ack-name": "1"},
            )
            assert refused.status == 400
            assert "Tick each difference" in await refused.text()
            assert orthanc.get_json("/statistics")["CountInstances"] == 1
            for n in range(2):
                await acks.nth(n).check()
            await page.get_by_role("button", name="Import into the PACS").click()

            await expect(page.locator("#result")).to_contain_text(
                "Imported 10 verified images into the PACS", timeout=WAIT_MS
            )
            await expect(page.locator("#filed-under")).to_contain_text(
                f"patient ID MRN-555 (issuer {LOCAL_ISSUER}), as DOE, JANET"
            )
            await expect(page.locator("#receipt")).to_contain_text("delivery receipt")
            await snap(page, "trauma-5-imported.png")
    finally:
        agent.stop()

    _orthanc_holds_once(orthanc, files)
    assert orthanc.get_json("/statistics")["CountInstances"] == 11
    for path in files:
        tags = orthanc.instance_tags(orthanc.find_by_sop_instance_uid(sop_instance_uid(path)))
        assert (tags["PatientID"], tags["IssuerOfPatientID"]) == ("MRN-555", LOCAL_ISSUER)
    sent = er_transfers(relay, er / "er-state", er)[pushed["transfer_id"]]
    assert sent["state"] == "delivered"
    assert (sent["receipt"]["instances"], sent["receipt"]["destination"]) == (10, "pacs")
    audit = (agent.state / "receiving" / "console-audit.jsonl").read_text("utf-8")
    for action in ("study-redeemed", "import-confirmed", "study-imported"):
        assert f'"action": "{action}"' in audit
    # The identity check's C-FIND found DOE^JANET: no patient data in the agent's log.
    log = agent.log.read_text("utf-8")
    for phi in ("DOE^JANET", "DOE^JANE", "19850212", "ER-12345"):
        assert phi not in log


async def test_an_import_killed_midway_finishes_after_a_restart(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    files, er, pushed = _pushed(relay, tmp_path, seed=62, slices=(300, 100))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            await _file_as_new_record(page, "MRN-900")

            # As soon as the PACS holds some of the images, it stops answering: the page shows
            # the import's progress as it stands (the images the PACS acknowledged: none, when
            # it stopped before answering the first request); then the agent is killed.
            async with pacs_paused_at_first_image(orthanc, WAIT_MS) as stored:
                assert 0 < stored < len(files)
                progress = page.locator("#progress-text")
                await expect(progress).to_contain_text(
                    re.compile(rf"stored [0-9]+ of {len(files)} in the PACS"),
                    timeout=WAIT_MS,
                )
                await expect(page.locator("#progress")).to_be_visible()
                await snap(page, "trauma-5b-import-progress.png")
                agent.kill()

        agent.start()
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            listed = page.locator(f"a[href='/imports/{pushed['transfer_id']}']")
            await expect(listed).to_be_visible()
            await snap(page, "trauma-6-after-restart.png")
            await listed.click()
            await expect(page.locator("#result")).to_contain_text(
                f"Imported {len(files)} verified images", timeout=WAIT_MS
            )
            await snap(page, "trauma-7-resumed-and-imported.png")
    finally:
        agent.stop()

    assert orthanc.get_json("/statistics")["CountInstances"] == len(files)
    _orthanc_holds_once(orthanc, files)
    sent = er_transfers(relay, er / "er-state", er)[pushed["transfer_id"]]
    assert sent["state"] == "delivered"
    assert sent["receipt"]["instances"] == len(files)


async def test_a_scanned_qr_opens_a_break_glass_transfer_marked_as_such(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    _study(tmp_path / "study", seed=63, slices=(3, 2))
    er = tmp_path / "er"
    er.mkdir()
    # The trauma center's PACS already has this study's UID, under another patient.
    (other,) = make_ct_study(
        tmp_path / "other", 1, seed=63, patient_id="MRN-4", patient_name="ROE^RICHARD"
    )
    orthanc.post_json("/instances", other.read_bytes(), "application/dicom")
    extra = ["--json", "--break-glass", "Unconscious, no family present", "--clinician", "Dr Ng"]
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=er, extra=extra).ok().json()
    # What the scanner types: the text of the QR on the transfer sheet.
    (scanned,) = decode_qr(await asyncio.to_thread(Path(pushed["qr_png"]).read_bytes))
    assert scanned.startswith("TR1:")
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, scanned)
            await expect(page.locator("#break-glass")).to_contain_text("BREAK-GLASS")
            await expect(page.locator("#authorization")).to_contain_text(
                "BREAK-GLASS: by a clinician, not by the patient or family"
            )
            await _thumbnails_rendered(page, 2)
            await snap(page, "trauma-8-break-glass-preview.png")

            # The PACS already files this study under another patient: held, nothing stored.
            await _file_as_new_record(page, "MRN-901")
            await expect(page.locator("#held")).to_contain_text(
                "under a different patient; the study was held for review. Nothing was stored.",
                timeout=WAIT_MS,
            )
            await expect(page.locator("#held tr.differs")).not_to_have_count(0)
            await snap(page, "trauma-9-held.png")
    finally:
        agent.stop()
    assert orthanc.get_json("/statistics")["CountInstances"] == 1


async def test_an_unconfirmed_import_is_listed_after_a_restart_and_continued(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    files, er, pushed = _pushed(relay, tmp_path, seed=64, slices=(4, 3))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            await _thumbnails_rendered(page, 2)
        agent.kill()  # before anyone confirmed the patient
        kept = agent.state / "receiving" / pushed["transfer_id"] / "listed-as.json"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # beside the staged images

        agent.start()
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            listed = page.locator("#unfinished li")
            await expect(listed).to_contain_text("stopped when the agent restarted")
            # Named as before the restart, from the summary this agent kept for the list.
            await expect(listed.get_by_role("link")).to_have_text(
                f"DOE, JANE, CT TRAUMA PANSCAN 2025-01-01, transfer {pushed['transfer_id']}"
            )
            await listed.get_by_role("link").click()
            await expect(page.locator("#stopped")).to_contain_text("without using the code again")
            await snap(page, "trauma-10-unfinished.png")
            await _continue_and_import(page, "MRN-902", len(files))
    finally:
        agent.stop()
    _orthanc_holds_once(orthanc, files)
    assert _failed_attempts(relay, pushed["transfer_id"]) == 0
    assert er_transfers(relay, er / "er-state", er)[pushed["transfer_id"]]["state"] == "delivered"
    # Nothing of the patient is left on the agent once the study is delivered.
    assert not (agent.state / "receiving" / pushed["transfer_id"]).exists()


async def _stopped_before_the_patient_was_confirmed(
    page: Page, agent: ReceivingAgent, code: str
) -> None:
    """The code opens the study (its key and images kept here); the agent is killed before
    anyone confirms the patient, so that after a restart the import waits for Continue."""
    await _open_with_code(page, agent, code)
    await _thumbnails_rendered(page, 2)
    agent.kill()


async def _continued_in_vain(page: Page, agent: ReceivingAgent, transfer_id: str) -> None:
    """After the restart, Continue on the import's page: it stops for good, and the page
    offers no Continue any more but says what staff can do instead; so does the list."""
    await sign_in(page, agent.url, USER, PASSWORD)
    await page.goto(f"{agent.url}/imports/{transfer_id}")
    await page.get_by_role("button", name="Continue").click()
    stopped = page.locator("#stopped")
    await expect(stopped.locator(".problem")).to_be_visible(timeout=WAIT_MS)
    await expect(page.get_by_role("button", name="Continue")).to_have_count(0)
    await expect(stopped).not_to_contain_text("press Continue")
    await expect(page.locator("#cannot-continue")).to_have_text(
        "Continuing cannot help: this import cannot be finished from this machine. If the study "
        "is still needed, ask the sending hospital to send it again with a new code."
    )
    await expect(stopped.get_by_role("link", name="Enter another code")).to_be_visible()
    await page.goto(f"{agent.url}/")
    await expect(page.locator("#unfinished li")).to_contain_text(
        "stopped and cannot be continued; open it to see why."
    )


async def test_an_import_of_a_transfer_expired_at_the_relay_offers_no_continue(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    _, _, pushed = _pushed(relay, tmp_path, seed=68, slices=(2, 2))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _stopped_before_the_patient_was_confirmed(page, agent, pushed["code"])
        # Its time at the relay runs out (as if the hours had passed): nothing more can be
        # taken from it, whatever this machine kept.
        moved = relay.execute(
            "UPDATE transfers SET expires_at = ? WHERE id = ?",
            time.time() - 60,
            pushed["transfer_id"],
        )
        assert moved == 1
        agent.start()
        async with workstation(browser) as page:
            await _continued_in_vain(page, agent, pushed["transfer_id"])
            await page.goto(f"{agent.url}/imports/{pushed['transfer_id']}")
            await expect(page.locator("#stopped .problem")).to_contain_text(
                "There is no such transfer for your site."
            )
            await snap(page, "trauma-13-cannot-continue.png")
    finally:
        agent.stop()
    assert orthanc.get_json("/statistics")["CountInstances"] == 0


async def test_an_import_whose_key_this_machine_no_longer_keeps_offers_no_continue(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    _, _, pushed = _pushed(relay, tmp_path, seed=69, slices=(2, 2))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _stopped_before_the_patient_was_confirmed(page, agent, pushed["code"])
        agent.start()  # lists it, from the key it keeps
        # Then what this machine kept is removed (as `receiver holds discard` does at the
        # command line): the transfer's key is gone.
        (agent.state / "receiving" / f"{pushed['transfer_id']}.json").unlink()
        async with workstation(browser) as page:
            await _continued_in_vain(page, agent, pushed["transfer_id"])
            await page.goto(f"{agent.url}/imports/{pushed['transfer_id']}")
            await expect(page.locator("#stopped .problem")).to_contain_text(
                f"This machine keeps nothing of transfer {pushed['transfer_id']}"
            )
    finally:
        agent.stop()
    assert orthanc.get_json("/statistics")["CountInstances"] == 0


def _pending_files(agent: ReceivingAgent) -> list[str]:
    """The redemption ids the agent keeps (`receiving_site.state`): one per code or QR sent."""
    folder = agent.state / "receiving"
    return sorted(p.name for p in folder.glob("pending-*.json"))


async def _scan(page: Page, agent: ReceivingAgent, text: str) -> None:
    """The scanner types `text` into the code field of the home page, then Enter."""
    await page.goto(f"{agent.url}/")
    field = page.get_by_label("Code from the transfer sheet or the patient's phone")
    await field.press_sequentially(text)
    await field.press("Enter")


def _views(agent: ReceivingAgent, transfer_id: str) -> int:
    """How many times its import's page was opened, each audited as an access (by whom, from
    where; no code, no capability)."""
    viewed = agent.audited("transfer-viewed")
    for record in viewed:
        assert (record["event_id"], record["who"], record["outcome"]) == ("110103", USER, "success")
        assert record["where"] == "127.0.0.1"
        assert record["detail"] == {"transfer": transfer_id, "page": "imports"}
    return len(viewed)


async def test_the_qr_of_a_transfer_open_here_goes_to_it_without_spending_anything(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    files, er, pushed = _pushed(relay, tmp_path, seed=65, slices=(3, 2))
    (scanned,) = decode_qr(await asyncio.to_thread(Path(pushed["qr_png"]).read_bytes))
    assert scanned.startswith(f"TR1:T:{pushed['transfer_id']}:")
    page_of_transfer = re.compile(re.escape(f"/imports/{pushed['transfer_id']}") + "$")
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])  # typed from the sheet
            await _thumbnails_rendered(page, 2)
            pending = _pending_files(agent)
            assert len(pending) == 1
            before = _views(agent, pushed["transfer_id"])
            assert before >= 1  # the page the typed code opened

            # Then someone scans the same transfer's QR: its import, not a refusal.
            await _scan(page, agent, scanned)
            await expect(page).to_have_url(page_of_transfer, timeout=WAIT_MS)
            await expect(page.locator("#preview")).to_be_visible()
            assert _pending_files(agent) == pending  # no second redemption id
            # Nothing was spent, but the study was opened again: that access is audited.
            assert _views(agent, pushed["transfer_id"]) == before + 1
            assert len(agent.audited("study-redeemed")) == 1  # the typed code's only
        agent.kill()

        # After a restart it is listed as redeemed here: the QR goes to it, and it continues.
        agent.start()
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            await _scan(page, agent, scanned)
            await expect(page).to_have_url(page_of_transfer, timeout=WAIT_MS)
            await expect(page.locator("#stopped")).to_contain_text("without using the code again")
            assert _views(agent, pushed["transfer_id"]) == before + 2
            assert len(agent.audited("study-redeemed")) == 1
            await _continue_and_import(page, "MRN-903", len(files))
    finally:
        agent.stop()
    _orthanc_holds_once(orthanc, files)
    # One redemption at the relay, and no refused attempt: nothing was spent by the QR.
    assert relay.audit_seq(pushed["transfer_id"], "redeem-attempt", "failure") is None
    assert _failed_attempts(relay, pushed["transfer_id"]) == 0
    assert er_transfers(relay, er / "er-state", er)[pushed["transfer_id"]]["state"] == "delivered"


async def test_a_right_code_not_authorized_yet_stays_in_the_field_to_send_again(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    _study(tmp_path / "study", seed=66, slices=(2, 2))
    er = tmp_path / "er"
    er.mkdir()
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=er).ok().json()
    code = RedemptionCode.parse(pushed["code"]).grouped()
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            field = page.get_by_label("Code from the transfer sheet or the patient's phone")
            await field.press_sequentially(code)
            await field.press("Enter")
            await expect(page.locator("#problem")).to_contain_text(
                "has not authorized the transfer yet", timeout=WAIT_MS
            )
            await expect(field).to_have_value(code)  # not typed again
            assert code.replace("-", "") not in page.url.upper().replace("-", "")
            await snap(page, "trauma-11-not-authorized-yet.png")

            relay.authorize(pushed)  # the family authorizes on their phone
            await field.press("Enter")
            await expect(page).to_have_url(
                f"{agent.url}/imports/{pushed['transfer_id']}", timeout=WAIT_MS
            )
            await expect(page.locator("#preview")).to_be_visible()
    finally:
        agent.stop()
    assert _failed_attempts(relay, pushed["transfer_id"]) == 0
    log = agent.log.read_text("utf-8")
    assert code not in log
    assert code.replace("-", "") not in log


async def test_the_familys_authorization_link_scanned_by_mistake_is_named_and_not_sent(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    _study(tmp_path / "study", seed=67, slices=(2, 2))
    er = tmp_path / "er"
    er.mkdir()
    extra = ["--json", "--link-qr", str(er / "link.png")]
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=er, extra=extra).ok().json()
    relay.authorize(pushed)
    # What the scanner types: the text of the QR on the ER screen, for the family's phone.
    (link,) = decode_qr(await asyncio.to_thread((er / "link.png").read_bytes))
    assert link == pushed["authorization_url"]
    token, phone_key = link.split("#")[1].split(".")
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            await _scan(page, agent, link)
            problem = page.locator("#problem")
            await expect(problem).to_contain_text("authorization link", timeout=WAIT_MS)
            await expect(problem).to_contain_text("not the transfer's code")
            await expect(problem).to_contain_text("Nothing was sent and no attempt was used")
            await expect(problem).not_to_contain_text("Character")
            field = page.get_by_label("Code from the transfer sheet or the patient's phone")
            await expect(field).to_have_value("")  # the link's key is not shown back
            assert token not in await page.content()
            await snap(page, "trauma-12-authorization-link-scanned.png")
    finally:
        agent.stop()
    assert relay.query("SELECT count(*) FROM audit WHERE action = 'redeem-attempt'") == [(0,)]
    assert _failed_attempts(relay, pushed["transfer_id"]) == 0
    log = agent.log.read_text("utf-8")
    assert token not in log
    assert phone_key not in log


async def test_a_qr_garbled_by_the_scanners_keyboard_layout_is_told_so_and_not_shown_back(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """A USB scanner set to a US layout on a German computer types the transfer QR's ':' as 'Ö'
    (and swaps Y and Z): the page says it is the scanner's keyboard layout, not a character to
    correct, and does not show the text back (it carries the transfer's key)."""
    _study(tmp_path / "study", seed=70, slices=(2, 2))
    er = tmp_path / "er"
    er.mkdir()
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=er).ok().json()
    relay.authorize(pushed)
    (qr,) = decode_qr(await asyncio.to_thread(Path(pushed["qr_png"]).read_bytes))
    garbled = qr.translate(str.maketrans({":": "\u00d6", "Y": "Z", "Z": "Y"}))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            await _scan(page, agent, garbled)
            problem = page.locator("#problem")
            await expect(problem).to_contain_text("keyboard layout", timeout=WAIT_MS)
            await expect(problem).to_contain_text("Nothing was sent and no attempt was used")
            await expect(problem).not_to_contain_text("Character")
            field = page.get_by_label("Code from the transfer sheet or the patient's phone")
            await expect(field).to_have_value("")
            assert garbled not in await page.content()
            await snap(page, "trauma-14-qr-garbled-by-the-scanner.png")
    finally:
        agent.stop()
    assert relay.query("SELECT count(*) FROM audit WHERE action = 'redeem-attempt'") == [(0,)]
    assert _failed_attempts(relay, pushed["transfer_id"]) == 0


async def test_a_record_number_that_cannot_be_checked_stays_in_its_field(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """A record number the PACS cannot hold, or one checked while the PACS is down, is told
    with what to do next, and stays in the field to correct or check again (not typed again
    from the wristband at night)."""
    _, _, pushed = _pushed(relay, tmp_path, seed=71, slices=(2, 2))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            field = page.get_by_label("This hospital's medical record number (MRN)")
            await field.fill("MRN-555*")
            await page.get_by_role("button", name="Check this record").click()
            problem = page.locator("#identity .problem")
            await expect(problem).to_contain_text("is not one a PACS can hold")
            await expect(field).to_have_value("MRN-555*")
            # Back in the field, which says what is wrong with it (read with its name by a
            # screen reader, which does not read an alert that was there as the page loaded).
            await expect(field).to_be_focused()
            await expect(field).to_have_attribute("aria-invalid", "true")
            await expect(field).to_have_accessible_description(
                re.compile("is not one a PACS can hold")
            )

            orthanc.stop()  # the PACS goes down
            await field.fill("MRN-557")
            await page.get_by_role("button", name="Check this record").click()
            await expect(problem).to_contain_text("could not be asked", timeout=WAIT_MS)
            await expect(problem).to_contain_text("Press Check this record again")
            await expect(field).to_have_value("MRN-557")
            await expect(field).to_be_focused()
            await expect(field).to_have_accessible_description(re.compile("could not be asked"))
            await expect(field).not_to_have_attribute("aria-invalid", "true")  # the PACS's fault
            await expect(page.locator("#confirm-form")).to_have_count(0)
            await snap(page, "trauma-15-pacs-down-at-the-check.png")
    finally:
        agent.stop()


async def test_the_code_of_a_transfer_its_qr_opened_here_points_to_that_import(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """One registrar scans the transfer's QR; another then types the code from the sheet. The
    relay refuses the code (the QR took the transfer) with its generic sentence, "call the
    sending hospital": the page also says that a transfer whose QR was scanned here is in the
    list below, and the list has it."""
    _, _, pushed = _pushed(relay, tmp_path, seed=72, slices=(2, 2))
    (scanned,) = decode_qr(await asyncio.to_thread(Path(pushed["qr_png"]).read_bytes))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, scanned)
            await _scan(page, agent, RedemptionCode.parse(pushed["code"]).grouped())
            problem = page.locator("#problem")
            await expect(problem).to_contain_text("That code was not accepted", timeout=WAIT_MS)
            await expect(problem).to_contain_text(
                "If this transfer's QR was scanned here already, its import is in the list below"
            )
            listed = page.locator(f"#unfinished a[href='/imports/{pushed['transfer_id']}']")
            await expect(listed).to_be_visible()
            await snap(page, "trauma-16-code-after-its-qr.png")
    finally:
        agent.stop()


async def test_an_import_held_because_the_pacs_is_down_says_to_check_again_once_it_answers(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """The PACS goes down between the record check and the import: the import is held (the
    PACS could not be asked), and its page says that it is the PACS, and what to do once it
    answers; not to check the patient and the record number, which nothing put in doubt."""
    _, _, pushed = _pushed(relay, tmp_path, seed=73, slices=(2, 2))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            await page.get_by_label("This hospital's medical record number (MRN)").fill("MRN-906")
            await page.get_by_role("button", name="Check this record").click()
            await page.get_by_label("MRN-906 was just given to this patient").check()
            orthanc.stop()
            await page.get_by_role("button", name="Import into the PACS").click()
            held = page.locator("#held")
            await expect(held).to_contain_text("could not be asked", timeout=WAIT_MS)
            await expect(held).to_contain_text("Once the PACS answers again, press Check again")
            await expect(held).not_to_contain_text("Check the patient and the record number")
            await snap(page, "trauma-17-held-pacs-down.png")
    finally:
        agent.stop()


async def test_a_scan_after_a_refused_code_replaces_it_in_the_field(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """A refused code stays in the field, focused, to send again with Enter; but the next scan
    (the scanner types into whatever has focus) replaces it instead of landing in front of or
    after it: refused by the page's check, then by the relay (not authorized yet), then the
    transfer sheet's QR, scanned once the family authorized, opens the study."""
    _study(tmp_path / "study", seed=74, slices=(2, 2))
    er = tmp_path / "er"
    er.mkdir()
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=er).ok().json()
    code = RedemptionCode.parse(pushed["code"]).grouped()
    (scanned,) = decode_qr(await asyncio.to_thread(Path(pushed["qr_png"]).read_bytes))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            field = page.get_by_label("Code from the transfer sheet or the patient's phone")
            await expect(field).to_be_focused()  # a scan on arrival lands in the field
            await page.keyboard.type(_mistyped(code))
            await page.keyboard.press("Enter")
            problem = page.locator("#problem")
            await expect(problem).to_contain_text("typing mistake")
            await expect(field).to_be_focused()

            await page.keyboard.type(code)  # the scanner, into the focused field
            await page.keyboard.press("Enter")
            await expect(problem).to_contain_text(
                "has not authorized the transfer yet", timeout=WAIT_MS
            )
            await expect(field).to_have_value(code)
            await expect(field).to_be_focused()

            relay.authorize(pushed)
            await page.keyboard.type(scanned)
            await page.keyboard.press("Enter")
            await expect(page).to_have_url(
                f"{agent.url}/imports/{pushed['transfer_id']}", timeout=WAIT_MS
            )
            await expect(page.locator("#preview")).to_be_visible()
    finally:
        agent.stop()
    assert _failed_attempts(relay, pushed["transfer_id"]) == 0


async def test_what_differs_from_the_pacss_record_is_said_not_only_coloured(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """The identity step's table of the ER's patient beside the PACS's record: a line that
    differs says so in words (a screen reader reads no background colour, nor does a
    colour-blind registrar see a pale one), as the holds queue's table does."""
    _in_pacs(orthanc, tmp_path / "earlier", patient_name="DOE^JANET", patient_birth_date="19850212")
    _, _, pushed = _pushed(relay, tmp_path, seed=75, slices=(2, 2))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            field = page.get_by_label("This hospital's medical record number (MRN)")
            await expect(field).to_be_focused()  # the next thing to do, by keyboard
            await page.keyboard.type("MRN-555")
            await page.keyboard.press("Enter")
            compare = page.locator("#compare")
            await expect(compare.locator("tr.differs")).to_have_count(2)
            # What the table compares, and its corner cell, have names (not an empty heading).
            await expect(compare).to_have_accessible_name("The ER's patient and the PACS's record")
            await expect(compare.get_by_role("columnheader").first).to_have_accessible_name(
                "Detail"
            )
            for differs in ("Name (differs)", "Birth date (differs)"):
                await expect(compare.get_by_role("rowheader", name=differs)).to_be_visible()
            await expect(compare.get_by_role("rowheader", name="Sex", exact=True)).to_be_visible()
            await compare.scroll_into_view_if_needed()
            await snap(page, "trauma-18-differences-in-words.png")
    finally:
        agent.stop()


async def test_a_scan_after_a_refused_record_number_replaces_it_in_the_field(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """A refused record number comes back in its field, focused, to correct or send again; but
    the next scan of the wristband (the scanner types into whatever has focus, then Enter)
    replaces it instead of landing in front of it ("MRN-556MRN-555*")."""
    _, _, pushed = _pushed(relay, tmp_path, seed=75, slices=(2, 2))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            field = page.get_by_label("This hospital's medical record number (MRN)")
            await field.fill("MRN-555*")
            await field.press("Enter")
            await expect(page.locator("#identity .problem")).to_contain_text(
                "is not one a PACS can hold", timeout=WAIT_MS
            )
            await expect(field).to_have_value("MRN-555*")
            await expect(field).to_be_focused()
            await snap(page, "trauma-18-refused-record-number.png")

            await page.keyboard.type("MRN-556")  # the scanner, into the focused field
            await expect(field).to_have_value("MRN-556")
            await page.keyboard.press("Enter")
            await expect(page.locator("#checked-mrn")).to_have_text("MRN-556", timeout=WAIT_MS)
    finally:
        agent.stop()


async def test_an_import_in_progress_is_told_to_a_screen_reader(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """While an import runs (the PACS stops answering for a while, so that it is seen), its
    progress bar has a name, and its progress line is one live region whose text changes (a
    screen reader announces a change inside a live region it knows, not a new one). When it
    finishes, the page reloads itself and puts the reader on the result; a person opening the
    page again is not moved there."""
    files, _, pushed = _pushed(relay, tmp_path, seed=76, slices=(300, 100))
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            await _file_as_new_record(page, "MRN-907")
            progress = page.locator("#progress-text")
            line = await progress.element_handle(timeout=WAIT_MS)
            first = await line.text_content()
            async with pacs_paused_at_first_image(orthanc, WAIT_MS):
                await expect(progress).to_contain_text(
                    re.compile(rf"stored [0-9]+ of {len(files)} in the PACS"),
                    timeout=WAIT_MS,
                )
                await expect(progress).not_to_have_text(first or "")
                assert await line.evaluate("(e) => e === document.getElementById('progress-text')")
                await expect(progress).to_have_attribute("role", "status")
                bar = page.get_by_role("progressbar", name="Import progress")
                await expect(bar).to_be_visible()
                await snap(page, "trauma-19-import-progress-named.png")
            result = page.locator("#result")
            await expect(result).to_contain_text(
                f"Imported {len(files)} verified images", timeout=WAIT_MS
            )
            await expect(result).to_be_focused()
            await snap(page, "trauma-20-import-finished-result-focused.png")
            for opened_again in (page.reload, lambda: page.goto(page.url)):
                await opened_again()
                await expect(result).to_contain_text(f"Imported {len(files)} verified images")
                await expect(page.locator("body")).to_be_focused()
    finally:
        agent.stop()


async def test_a_typing_mistake_caught_on_the_page_is_tied_to_the_code_field(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """The page's own catch of a typing mistake describes the code field (a screen reader reads
    it with the field, as it does the agent's refusal), and no longer once the code is right."""
    code = RedemptionCode.generate(locator=77).grouped()  # never sent: only typed
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            field = page.get_by_label("Code from the transfer sheet or the patient's phone")
            await expect(field).to_have_accessible_description(re.compile("^Type the 16"))
            await field.press_sequentially(_mistyped(code))
            await expect(page.locator("#problem")).to_contain_text("typing mistake")
            swapped = re.compile("a character is wrong or two are swapped")  # not in the hint
            await expect(field).to_have_accessible_description(swapped)
            await expect(field).to_have_accessible_description(re.compile("^Type the 16"))
            await snap(page, "trauma-21-typing-mistake-describes-the-field.png")

            await field.fill(code)
            await expect(page.locator("#problem")).to_be_hidden()
            await expect(field).to_have_attribute("aria-describedby", "code-hint")
            await expect(field).not_to_have_accessible_description(swapped)
    finally:
        agent.stop()
