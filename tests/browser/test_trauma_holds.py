"""The trauma console's held imports in Chromium at 1366 x 768, against real peers (a relay
process, `trauma-relay receiver --config FILE`, Orthanc): what the import page, the home page
and the holds queue say about a held study, and after a person resolves it in the queue.

A study held after some of its images were stored as they arrived (`pacs.as_they_arrive`) is
told as partly in the PACS, everywhere: the study there is incomplete, and discarding it here
leaves those images there."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from console_browsing import expect_signed_in_as, sign_in, snap, workstation
from e2e.conftest import fresh_relay
from e2e.harness import E2ERelay, finish_cli, printed_ready, start_cli, stop_cli
from e2e.test_as_they_arrive import _hold_after_a_few, _listed
from peers.orthanc import OrthancServer
from phone_harness import decode_qr, phone
from playwright.async_api import Browser, Locator, Page, expect
from trauma_harness import PASSWORD, USER, ReceivingAgent, configured_agent

from sending_site.synthetic import make_ct_study

pytestmark = [pytest.mark.asyncio, pytest.mark.peers]
relay = fresh_relay  # a relay process of each test's own

WAIT_MS = 120_000  # generous: the machine is shared; nothing here asserts a duration
WAIT_SECONDS = 120.0


def _under_another_patient(orthanc: OrthancServer, folder: Path, files: list[Path]) -> None:
    """The PACS already files these images' UIDs under ROE^RICHARD, ER-99999."""
    folder.mkdir(parents=True)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = "ER-99999", "ROE^RICHARD"
        ds.save_as(folder / path.name)
        orthanc.post_json("/instances", (folder / path.name).read_bytes(), "application/dicom")


def _filed_under(orthanc: OrthancServer, patient_id: str) -> list[dict[str, Any]]:
    tags = [orthanc.instance_tags(i) for i in orthanc.instances()]
    return [t for t in tags if t["PatientID"] == patient_id]


def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


async def _open_with_code(page: Page, agent: ReceivingAgent, code: str) -> None:
    await sign_in(page, agent.url, USER, PASSWORD)
    await expect_signed_in_as(page, USER)
    field = page.get_by_label("Code from the transfer sheet or the patient's phone")
    await field.fill(code)
    await field.press("Enter")
    await expect(page.locator("#preview")).to_be_visible(timeout=WAIT_MS)


async def _file_as_new_record(page: Page, mrn: str) -> None:
    """Type a local record number the PACS has nothing for, say so, and import."""
    await page.get_by_label("This hospital's medical record number (MRN)").fill(mrn)
    await page.get_by_role("button", name="Check this record").click()
    await page.get_by_label(f"{mrn} was just given to this patient").check()
    await page.get_by_role("button", name="Import into the PACS").click()


async def test_a_study_held_midway_is_told_as_partly_in_the_pacs(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """One transfer of DOE^JANE carries two studies (30 + 3 images); the PACS already files the
    second study's UID under another patient. Stored as they arrive under a new record, the
    first study's images reach the PACS before the second's are checked: held, with those
    images in the PACS. Every page says how many, that the PACS copy is incomplete, and that
    discarding here leaves them there."""
    study = tmp_path / "study"
    # Images over 1 MiB go one to an upload request, so the upload can be held midway.
    make_ct_study(study / "a", 30, rows=768, columns=768, seed=81)
    second = make_ct_study(study / "b", 3, seed=82)
    _under_another_patient(orthanc, tmp_path / "other", second)
    agent = configured_agent(relay, orthanc, tmp_path / "tc", {"pacs.as_they_arrive": "true"})
    agent.start()
    push = start_cli(
        relay.push_args([study], state=tmp_path / "er-state"),
        cwd=tmp_path,
        credential=relay.sender_credential,
    )
    try:
        printed = printed_ready(push)
        transfer_id = printed["transfer"]
        _hold_after_a_few(relay, push, transfer_id)
        held_at = _listed(relay, transfer_id)
        assert held_at < 30, "the upload went past the first study before it could be held"
        relay.authorize({"authorization_url": printed["link"]})
        async with workstation(browser) as page:
            await _open_with_code(page, agent, printed["code"])
            await _file_as_new_record(page, "MRN-200")
            # The images verified so far reach the PACS; then the upload goes on.
            _until(
                lambda: len(_filed_under(orthanc, "MRN-200")) >= held_at,
                "the images verified so far were not stored",
            )
            os.kill(push.pid, signal.SIGCONT)
            finish_cli(push).ok()

            held = page.locator("#held")
            await expect(held.locator("#held-in-pacs")).to_be_visible(timeout=WAIT_MS)
            in_pacs = len(_filed_under(orthanc, "MRN-200"))
            assert held_at <= in_pacs <= 30
            await expect(held).to_contain_text(
                f"{in_pacs} of its 33 images were already stored in the PACS before this was "
                "found, so the study there is INCOMPLETE: tell radiology not to rely on it as "
                "the whole study."
            )
            await expect(held).to_contain_text(
                "Discarding the study here does not remove the images already in the PACS."
            )
            await expect(held).not_to_contain_text("Nothing was stored")
            await snap(page, "trauma-held-partly-in-pacs.png")

            await page.get_by_role("link", name="Enter a code").click()
            await expect(page.locator("#unfinished")).to_contain_text(
                f"held for review; {in_pacs} of its images are already in the PACS, which has "
                "it INCOMPLETE."
            )

            await page.get_by_role("link", name="Holds").click()
            await expect(page.locator("main")).not_to_contain_text(
                "These studies were not stored in the PACS."
            )
            listed = page.locator(f'li.held[data-transfer-id="{transfer_id}"]')
            await expect(listed.locator(".in-pacs")).to_have_text(
                f"{in_pacs} of its 33 images were already stored in the PACS before this was "
                "found, so the study there is INCOMPLETE: tell radiology not to rely on it as "
                "the whole study. Discarding it here does not remove them from the PACS."
            )

            await listed.get_by_role("link", name="Decide about DOE, JANE").click()
            await expect(page.locator("#in-pacs")).to_contain_text(
                f"{in_pacs} of its 33 images were already stored in the PACS"
            )
            discard = page.locator("#choice-discard")
            await expect(discard).to_contain_text(
                f"The {in_pacs} images already stored in the PACS stay there"
            )
            await snap(page, "holds-decide-partly-in-pacs.png")
            await discard.get_by_label("Remove these images from this machine.").check()
            await discard.get_by_role("button", name="Discard").click()
            await expect(page.locator("#outcome")).to_have_text(
                "The images of DOE, JANE were removed from this machine. The "
                f"{in_pacs} already stored in the PACS are still there, and the study there is "
                "INCOMPLETE: tell radiology, and ask the PACS administrators to remove them if "
                "they must not stay. The emergency department that sent it sees that it was "
                "discarded here; call them if you still need the images: they can send them "
                "again, with a new code.",
                timeout=WAIT_MS,
            )
            await page.goto(f"{agent.url}/imports/{transfer_id}")
            await expect(page.locator("#discarded-in-pacs")).to_have_text(
                f"{in_pacs} of its 33 images were already stored in the PACS before this was "
                "found, so the study there is INCOMPLETE: tell radiology not to rely on it as "
                "the whole study. Those images are still in the PACS."
            )
    finally:
        stop_cli(push)
        agent.stop()
    assert len(_filed_under(orthanc, "MRN-200")) == in_pacs

    # The ER and the family are told: the study was discarded, and how much reached the PACS.
    listing = relay.as_sender(
        ["transfers", "--state", str(tmp_path / "er-state"), "--json"], workdir=tmp_path
    ).ok()
    (mine,) = [t for t in listing.json()["transfers"] if t["transfer_id"] == transfer_id]
    assert mine["status"].startswith("discarded at the trauma center "), mine
    assert (
        f"{in_pacs} of its images were already in their PACS, which has the study INCOMPLETE"
        in mine["status"]
    )
    async with phone(browser) as (_context, family):
        await family.goto(printed["link"])
        await expect(family.locator("#state-text")).to_have_text(
            "The trauma center checked the images and set them aside. If they still need them, "
            "the emergency department can send them again.",
            timeout=WAIT_MS,
        )
        await expect(family.locator("#timeline")).to_contain_text(
            "Checked and set aside by the trauma center on"
        )
        await snap(family, "phone-discarded-after-review.png")


def _pushed_under_another_patient(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, name: str, seed: int
) -> dict[str, Any]:
    """The ER sends DOE^JANE's study (3 images) whose UIDs the PACS files under another
    patient, and the patient authorizes it: the push's JSON."""
    files = make_ct_study(tmp_path / name / "study", 3, seed=seed)
    _under_another_patient(orthanc, tmp_path / name / "other", files)
    pushed: dict[str, Any] = relay.push([files[0].parent], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    return pushed


async def _held_at_the_console(page: Page, pushed: dict[str, Any], entered: str = "") -> None:
    """Redeemed at the console by its code (or `entered`: its QR) and filed under a new record:
    held for the study."""
    field = page.get_by_label("Code from the transfer sheet or the patient's phone")
    await field.fill(entered or pushed["code"])
    await field.press("Enter")
    await expect(page.locator("#preview")).to_be_visible(timeout=WAIT_MS)
    await _file_as_new_record(page, "MRN-901")
    await expect(page.locator("#held")).to_contain_text(
        "under a different patient; the study was held for review. Nothing was stored.",
        timeout=WAIT_MS,
    )


# A choice in the holds queue: what its form asks to confirm, and its button.
CHOICES = {
    "store_anyway": ("A person reviewed this hold", "Store anyway"),
    "discard": ("Remove these images from this machine.", "Discard"),
}


async def _decide(page: Page, transfer_id: str, choice: str) -> None:
    confirm, button = CHOICES[choice]
    await page.get_by_role("link", name="Holds").click()
    listed = page.locator(f'li.held[data-transfer-id="{transfer_id}"]')
    await listed.get_by_role("link", name="Decide about DOE, JANE").click()
    form = page.locator(f"#choice-{choice}")
    await form.get_by_label(confirm).check()
    await form.get_by_role("button", name=button).click()
    await expect(page.locator("#outcome")).to_be_visible(timeout=WAIT_MS)


async def test_a_held_import_resolved_in_the_holds_queue_says_what_became_of_it(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """Two imports held at the console (the PACS has their studies under another patient):
    one is stored anyway in the holds queue, the other discarded. Their pages and the list of
    imports say so at once (not "held for review"); the discarded one offers nothing to
    continue, and its code typed again opens that page, not a refusal from the relay."""
    stored = _pushed_under_another_patient(relay, orthanc, tmp_path, "stored", seed=85)
    dropped = _pushed_under_another_patient(relay, orthanc, tmp_path, "dropped", seed=86)
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            await expect_signed_in_as(page, USER)
            await _held_at_the_console(page, stored)
            # The table says what it compares, and its corner cell has a name: a screen
            # reader announces neither an unnamed table nor an empty column heading usefully.
            compare = page.locator("#held table.compare")
            await expect(compare).to_have_accessible_name("The ER's patient and the PACS's record")
            await expect(compare.get_by_role("columnheader").first).to_have_accessible_name(
                "Detail"
            )
            await page.get_by_role("link", name="Enter a code").click()
            await _held_at_the_console(page, dropped)

            await _decide(page, stored["transfer_id"], "store_anyway")
            await expect(page.locator("#outcome")).to_have_text(
                "Stored 3 images of DOE, JANE in the PACS under patient ID MRN-901, as DOE, JANE."
            )
            # The heading and the tab's title say what was done, and to whom: not just "Done".
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Stored under MRN-901: DOE, JANE"
            )
            await expect(page).to_have_title(re.compile(r"^Stored under MRN-901: DOE, JANE · "))
            await _decide(page, dropped["transfer_id"], "discard")
            await expect(page.get_by_role("heading", level=1)).to_have_text("Discarded: DOE, JANE")
            await expect(page).to_have_title(re.compile(r"^Discarded: DOE, JANE · "))

            await page.get_by_role("link", name="Enter a code").click()
            await expect(page.locator("#unfinished")).to_have_count(0)
            await expect(page.locator("#done")).to_contain_text(
                f"transfer {stored['transfer_id']} from St. Mary's ED: 3 images, filed under "
                "MRN-901."
            )
            await expect(page.locator("#done")).not_to_contain_text(dropped["transfer_id"])

            await page.goto(f"{agent.url}/imports/{stored['transfer_id']}")
            await expect(page.locator("#result")).to_contain_text(
                "Imported 3 verified images into the PACS"
            )
            await expect(page.locator("#resolved-by")).to_have_text(
                f"It had been held for review; {USER} decided in the holds queue to store it."
            )
            await expect(page.locator("#held")).to_have_count(0)

            await page.goto(f"{agent.url}/imports/{dropped['transfer_id']}")
            await expect(page.locator("#discarded")).to_contain_text(
                f"this study was held for review, and {USER} discarded it from this machine in "
                "the holds queue."
            )
            await expect(page.locator("#discarded")).to_contain_text(
                "ask St. Mary's ED to send it again with a new code."
            )
            await expect(
                page.get_by_role("button", name="Check again, from the preview")
            ).to_have_count(0)
            await snap(page, "trauma-discarded.png")

            await page.get_by_role("link", name="Enter a code").click()
            before = agent.audited("transfer-viewed")
            field = page.get_by_label("Code from the transfer sheet or the patient's phone")
            await field.fill(dropped["code"])
            await field.press("Enter")
            await expect(page).to_have_url(f"{agent.url}/imports/{dropped['transfer_id']}")
            await expect(page.locator("#discarded")).to_be_visible()
            # Nothing was sent, but its page was opened by its code: audited as an access.
            *_, viewed = agent.audited("transfer-viewed")
            assert len(agent.audited("transfer-viewed")) == len(before) + 1
            assert (viewed["who"], viewed["event_id"]) == (USER, "110103")
            assert viewed["detail"] == {"transfer": dropped["transfer_id"], "page": "imports"}
    finally:
        agent.stop()
    assert len(_filed_under(orthanc, "MRN-901")) == 3


async def test_a_held_import_checked_again_on_the_console_is_not_decided_in_the_queue_meanwhile(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """Held, then Check again on its import page: the import runs again from the preview (a
    registrar files it there), and holds its turn on the transfer. The holds queue still lists
    it; a decision there meanwhile is refused at once with why (it used to wait, the reviewer's
    page spinning, until the registrar confirmed), and nothing is done."""
    files = make_ct_study(tmp_path / "study", 2, seed=88)
    _under_another_patient(orthanc, tmp_path / "other", files[:1])
    er = tmp_path / "er"
    er.mkdir()
    pushed: dict[str, Any] = relay.push([tmp_path / "study"], workdir=er).ok().json()
    relay.authorize(pushed)
    tid = pushed["transfer_id"]
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await _open_with_code(page, agent, pushed["code"])
            await _file_as_new_record(page, "MRN-905")
            await expect(page.locator("#held")).to_be_visible(timeout=WAIT_MS)
            await page.get_by_role("button", name="Check again, from the preview").click()
            await expect(page.locator("#identity")).to_be_visible(timeout=WAIT_MS)

            await page.goto(f"{agent.url}/holds/{tid}")
            problem = page.locator("#problem")
            await expect(problem).to_contain_text("being checked again on its import page")
            await page.locator("#choice-discard input[type=checkbox]").check()
            await page.locator("#choice-discard button").click()
            await expect(problem).to_contain_text("Nothing was done", timeout=WAIT_MS)
            await snap(page, "trauma-holds-checked-again.png")
            await page.goto(f"{agent.url}/imports/{tid}")
            await expect(page.locator("#identity")).to_be_visible()
    finally:
        agent.stop()
    assert (agent.state / "receiving" / tid).exists()  # nothing discarded
    assert agent.audited("hold-discard") == []


def _scanned(pushed: dict[str, Any]) -> str:
    """What a scanner types for the transfer sheet's QR."""
    (text,) = decode_qr(Path(pushed["qr_png"]).read_bytes())
    return text


async def _refused(page: Page, agent: ReceivingAgent, code: str) -> Locator:
    """`code` typed on the home page and refused by the relay: the page's problem."""
    await page.goto(f"{agent.url}/")
    field = page.get_by_label("Code from the transfer sheet or the patient's phone")
    await field.fill(code)
    await field.press("Enter")
    problem = page.locator("#problem")
    await expect(problem).to_contain_text("That code was not accepted", timeout=WAIT_MS)
    return problem


async def test_a_refused_code_points_to_the_list_only_when_a_qr_opened_import_is_in_it(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """A transfer opened here by its QR is held, then discarded in the holds queue: the list
    of imports no longer has it. Its code typed afterwards from the sheet is refused by the
    relay, and the page does not say that its import is in the list below. Another one opened
    by its QR and stored in the holds queue is listed as imported: its code, refused, points to
    the list again."""
    dropped = _pushed_under_another_patient(relay, orthanc, tmp_path, "dropped", seed=89)
    stored = _pushed_under_another_patient(relay, orthanc, tmp_path, "stored", seed=90)
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with workstation(browser) as page:
            await sign_in(page, agent.url, USER, PASSWORD)
            await expect_signed_in_as(page, USER)
            await _held_at_the_console(page, dropped, _scanned(dropped))
            await _decide(page, dropped["transfer_id"], "discard")
            problem = await _refused(page, agent, dropped["code"])
            await expect(problem).not_to_contain_text("list below")
            await expect(page.locator("#unfinished")).to_have_count(0)
            await expect(page.locator("#done")).to_have_count(0)

            await page.goto(f"{agent.url}/")
            await _held_at_the_console(page, stored, _scanned(stored))
            await _decide(page, stored["transfer_id"], "store_anyway")
            problem = await _refused(page, agent, stored["code"])
            await expect(problem).to_contain_text(
                "If this transfer's QR was scanned here already, its import is in the list below"
            )
            listed = page.locator(f"#done a[href='/imports/{stored['transfer_id']}']")
            await expect(listed).to_be_visible()
    finally:
        agent.stop()


async def test_a_decision_from_a_page_left_open_says_the_study_was_already_dealt_with(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path, browser: Browser
) -> None:
    """A held study open in the holds queue on two machines: one stores it anyway; the other,
    its page left open, then presses Discard (its page needs no script: it is a form). The
    POST redirects (303) to the study's page, which says the study was already dealt with, by
    whom, when and how, that the click changed nothing (once: a reload says what became of it,
    and sends nothing again), and leads back to the queue; it is a page (200), not an error.
    The study stays
    stored, nothing is discarded, the ER is not told of a discard, and the refused discard is
    in the audit log. An address that never was a held study says so (404)."""
    pushed = _pushed_under_another_patient(relay, orthanc, tmp_path, "stale", seed=91)
    tid = pushed["transfer_id"]
    agent = configured_agent(relay, orthanc, tmp_path / "tc").start()
    try:
        async with (
            workstation(browser) as page,
            workstation(browser, java_script_enabled=False) as other,
        ):
            await sign_in(page, agent.url, USER, PASSWORD)
            await expect_signed_in_as(page, USER)
            await _held_at_the_console(page, pushed)
            await sign_in(other, agent.url, USER, PASSWORD)
            await expect_signed_in_as(other, USER)
            await other.goto(f"{agent.url}/holds/{tid}")
            await expect(other.get_by_role("heading", level=1)).to_have_text("Held: DOE, JANE")

            await _decide(page, tid, "store_anyway")
            await expect(page.locator("#outcome")).to_have_text(
                "Stored 3 images of DOE, JANE in the PACS under patient ID MRN-901, as DOE, JANE."
            )

            discard = other.locator("#choice-discard")
            await discard.get_by_label("Remove these images from this machine.").check()
            async with other.expect_response(
                lambda r: r.request.method == "POST" and r.url.endswith(f"/holds/{tid}")
            ) as answered:
                await discard.get_by_role("button", name="Discard").click()
            assert (await answered.value).status == 303
            await expect(other.get_by_role("heading", level=1)).to_have_text(
                "Already dealt with", timeout=WAIT_MS
            )
            assert other.url == f"{agent.url}/holds/{tid}"
            await expect(other).to_have_title(re.compile(r"^Already dealt with · "))
            await expect(other.locator("#what-happened")).to_have_text(
                re.compile(
                    rf"^{re.escape(USER)} stored it in the PACS as it was on "
                    r"\d{4}-\d\d-\d\d \d\d:\d\d UTC, in the holds queue\. "
                    r"3 images went to the PACS\.$"
                )
            )
            await expect(other.locator("#unchanged")).to_have_text(
                "Your click on Discard changed nothing: this study is no longer held here."
            )
            await snap(other, "holds-already-dealt-with.png")
            reloaded = await other.reload()  # a GET: nothing posted again
            assert reloaded is not None
            assert (reloaded.request.method, reloaded.status) == ("GET", 200)
            await expect(other.locator("#what-happened")).to_contain_text(
                f"{USER} stored it in the PACS as it was on "
            )
            await expect(other.locator("#unchanged")).to_have_text(
                "Nothing was changed: this study is no longer held here."
            )
            await other.get_by_role("link", name="Back to the held studies").click()
            await expect(other.locator("#no-holds")).to_be_visible()

            # Nothing was discarded: the import is still the stored one.
            await page.goto(f"{agent.url}/imports/{tid}")
            await expect(page.locator("#resolved-by")).to_have_text(
                f"It had been held for review; {USER} decided in the holds queue to store it."
            )

            never = "0" * 24
            answer = await other.goto(f"{agent.url}/holds/{never}")
            assert answer is not None
            assert answer.status == 404
            await expect(other.get_by_role("heading", level=1)).to_have_text("No such held study")
            await expect(other.locator("#what-happened")).to_contain_text(
                "No study is held here under this address"
            )
            await expect(other.get_by_role("link", name="Back to the held studies")).to_be_visible()
            await snap(other, "holds-no-such-study.png")
    finally:
        agent.stop()
    assert len(_filed_under(orthanc, "MRN-901")) == 3
    assert relay.audit_seq(tid, "discard-receipt") is None
    decided = [
        (r["action"], r["outcome"], r["who"], r["detail"]["transfer_id"])
        for r in agent.audited("hold-store-anyway") + agent.audited("hold-discard")
    ]
    assert decided == [
        ("hold-store-anyway", "success", USER, tid),
        ("hold-discard", "refused", USER, tid),
    ]
